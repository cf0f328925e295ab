"""ESC-50: one Entry per clip, described by meta/esc50.csv; an evaluation set, so every clip is test.

Layout of the extracted part (``parts/ESC-50-master/`` holds the archive's tree)::

    ESC-50-master/audio/{fold}-{clip id}-{take}-{target}.wav     5 s, 44.1 kHz, mono
    ESC-50-master/meta/esc50.csv     filename,fold,target,category,esc10,src_file,take

The caption is the category with '_' read as a space ("chirping_birds" -> "chirping birds"); fold,
target, category, esc10, src_file and take stay in ``extra``. A row whose file is missing, whose
fold or target is not a number in range, or whose file name disagrees with its columns is a Problem.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

TOP = "ESC-50-master"
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = range(1, 6)
CLASSES = range(0, 50)
_BOOLEANS = {"true": True, "false": False}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every clip of esc50.csv, in CSV order."""
    for part in recipe.parts:
        root = Path(corpus_dir) / "parts" / part.name / TOP
        metadata = root / "meta" / "esc50.csv"
        if not metadata.is_file():
            yield Problem(metadata, f"part {part.name}: meta/esc50.csv not found (part not extracted?)")
            continue
        split = recipe.split_of(part.name, "test")
        audio_dir = root / "audio"
        present = _file_names(audio_dir)
        with open(metadata, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in COLUMNS if name not in (reader.fieldnames or [])]
            if missing:
                yield Problem(metadata, f"missing column(s) {', '.join(missing)}; header is {reader.fieldnames}")
                continue
            for line, row in enumerate(reader, start=2):
                yield _clip_entry(row, line, metadata, audio_dir, present, split, part.name)


def _clip_entry(
    row: dict[str, str], line: int, metadata: Path, audio_dir: Path, present: set[str], split: str, part: str
) -> Entry | Problem:
    values = {name: (row.get(name) or "").strip() for name in COLUMNS}
    filename = values["filename"]
    key = Path(filename).stem.replace(".", "_")
    where = f"line {line}: {filename or '<empty filename>'}"
    try:
        fold, target = int(values["fold"]), int(values["target"])
    except ValueError:
        numbers = f"fold {values['fold']!r} / target {values['target']!r}"
        return Problem(metadata, f"{where}: {numbers} are not integers", key)
    if fold not in FOLDS or target not in CLASSES:
        return Problem(metadata, f"{where}: fold {fold} or target {target} out of range (folds 1-5, targets 0-49)", key)
    expected = f"{fold}-{values['src_file']}-{values['take']}-{target}.wav"
    if filename != expected:
        return Problem(metadata, f"{where}: name does not match its columns (expected {expected})", key)
    if not values["category"]:
        return Problem(metadata, f"{where}: empty category", key)
    esc10 = _BOOLEANS.get(values["esc10"].lower())
    if esc10 is None:
        return Problem(metadata, f"{where}: esc10 {values['esc10']!r} is neither True nor False", key)
    if filename not in present:
        return Problem(audio_dir / filename, f"listed in esc50.csv line {line} but not in audio/", key)
    return Entry(
        key=key,
        split=split,
        audio=audio_dir / filename,
        subset=part,
        caption=values["category"].replace("_", " "),
        extra={
            "fold": fold,
            "target": target,
            "category": values["category"],
            "esc10": esc10,
            "src_file": values["src_file"],
            "take": values["take"],
        },
    )


def _file_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as listing:
        return {item.name for item in listing if item.is_file()}
