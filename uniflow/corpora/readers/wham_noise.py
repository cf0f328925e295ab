"""WHAM! noise, 48 kHz release: one Entry per noise recording, split from the metadata CSV.

Layout of the extracted part (``parts/high_res_wham/`` holds the archive's tree)::

    high_res_wham/high_res_metadata.csv   header row; "Filename", "WHAM! Split" (Train/Valid/Test),
                                          "File Length (sec)" and further descriptive columns
    high_res_wham/audio/<Filename>        48 kHz, 2-channel, 24-bit wav

The CSV is the index: a listed file that is missing, or a row with an unknown split, is a Problem.
Columns other than name, split and length are kept in ``extra["wham"]``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

METADATA_NAME = "high_res_metadata.csv"
FILENAME_COLUMN = "Filename"
SPLIT_COLUMN = "WHAM! Split"
LENGTH_COLUMN = "File Length (sec)"
_SPLITS = {"train": "train", "valid": "valid", "test": "test"}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every recording listed in each part's high_res_metadata.csv, in CSV order."""
    for part in recipe.parts:
        root = Path(corpus_dir) / "parts" / part.name / "high_res_wham"
        yield from _part_entries(root, part.name)


def recording_key(filename: str) -> str:
    """The corpus-local id of a file: its stem with dots made underscores (dots split sample keys)."""
    return Path(filename).stem.replace(".", "_")


def _part_entries(root: Path, part: str) -> Iterator[Entry | Problem]:
    metadata = root / METADATA_NAME
    if not metadata.is_file():
        yield Problem(metadata, f"part {part}: {METADATA_NAME} not found (part not extracted?)")
        return
    audio_dir = root / "audio"
    present = _file_names(audio_dir)
    with open(metadata, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [name for name in (FILENAME_COLUMN, SPLIT_COLUMN) if name not in columns]
        if missing:
            yield Problem(metadata, f"missing column(s) {', '.join(map(repr, missing))}; header is {columns}")
            return
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            yield _row_entry(row, line, metadata, audio_dir, present, seen, part)


def _row_entry(
    row: dict[str, str], line: int, metadata: Path, audio_dir: Path, present: set[str], seen: set[str], part: str
) -> Entry | Problem:
    filename = (row.get(FILENAME_COLUMN) or "").strip()
    if not filename:
        return Problem(metadata, f"line {line}: empty {FILENAME_COLUMN}")
    key = recording_key(filename)
    split_value = (row.get(SPLIT_COLUMN) or "").strip()
    split = _SPLITS.get(split_value.lower())
    if split is None:
        return Problem(metadata, f"line {line}: {filename}: unknown {SPLIT_COLUMN} {split_value!r}", key)
    if filename not in present:
        return Problem(audio_dir / filename, f"listed in {METADATA_NAME} line {line} but not in audio/", key)
    if key in seen:
        return Problem(audio_dir / filename, f"line {line}: key {key!r} already used by another file", key)
    seen.add(key)
    extra: dict[str, object] = {}
    length = (row.get(LENGTH_COLUMN) or "").strip()
    if length:
        try:
            extra["file_length_sec"] = float(length)
        except ValueError:
            return Problem(metadata, f"line {line}: {filename}: {LENGTH_COLUMN} {length!r} is not a number", key)
    described = {
        name: value.strip()
        for name, value in row.items()
        if name not in (FILENAME_COLUMN, SPLIT_COLUMN, LENGTH_COLUMN) and name is not None and value and value.strip()
    }
    if described:
        extra["wham"] = described
    return Entry(key=key, split=split, audio=audio_dir / filename, subset=part, extra=extra)


def _file_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as listing:
        return {item.name for item in listing if item.is_file()}
