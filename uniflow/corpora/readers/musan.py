"""MUSAN (OpenSLR 17): one Entry per recording of the music, speech and noise folders.

Layout of the extracted part (``parts/musan/`` holds the archive's tree)::

    musan/<category>/<source>/<category>-<source>-NNNN.wav   16 kHz mono
    musan/<category>/<source>/LICENSE                        per-file attributions
    musan/music/<source>/ANNOTATIONS      "<id> <genres,comma-separated> <vocals Y|N> <artist ...>"
    musan/speech/librivox/ANNOTATIONS     "<id> <gender m|f> <language>" (us-gov has none)
    musan/noise/free-sound/ANNOTATIONS    a header line, then the ids of the background noises

Every entry carries ``extra["category"]`` (music / speech / noise) and ``extra["source"]``; music
adds genres, vocals and artist, noise from an annotated folder adds ``background``. MUSAN has no
official split: the split is the one ``recipe.splits`` gives the part (train). A malformed
annotation line, or one naming a missing file, is a Problem; the recording itself is still yielded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import subfolders
from uniflow.corpora.recipe import Recipe

CATEGORIES = ("music", "speech", "noise")
ANNOTATIONS_NAME = "ANNOTATIONS"
_GENDERS = {"m": "male", "f": "female"}
_VOCALS = {"Y": True, "N": False}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every recording, by part, category, source folder and file name."""
    for part in recipe.parts:
        root = Path(corpus_dir) / "parts" / part.name / "musan"
        if not root.is_dir():
            yield Problem(root, f"part {part.name} is not extracted")
            continue
        split = recipe.split_of(part.name, "train")
        for category in CATEGORIES:
            category_dir = root / category
            if not category_dir.is_dir():
                yield Problem(category_dir, f"category folder {category}/ is missing")
                continue
            for source in subfolders(category_dir):
                yield from _source_entries(category_dir / source, category, source, split, part.name)


def _source_entries(folder: Path, category: str, source: str, split: str, part: str) -> Iterator[Entry | Problem]:
    with os.scandir(folder) as listing:
        recordings = sorted(item.name[:-4] for item in listing if item.is_file() and item.name.endswith(".wav"))
    annotations_path = folder / ANNOTATIONS_NAME
    annotations: dict[str, dict[str, object]] = {}
    if annotations_path.is_file():
        parse = {"music": _music_annotations, "speech": _speech_annotations, "noise": _noise_annotations}[category]
        for item in parse(annotations_path, set(recordings)):
            if isinstance(item, Problem):
                yield item
            else:
                annotations.update(item)
    for recording in recordings:
        fields = dict(annotations.get(recording, {}))
        if category == "noise" and annotations_path.is_file():
            fields.setdefault("background", False)
        gender = fields.pop("gender", None)
        language = fields.pop("language", None)
        yield Entry(
            key=f"{category}/{source}/{recording}".replace(".", "_"),
            split=split,
            audio=folder / f"{recording}.wav",
            subset=part,
            gender=gender if isinstance(gender, str) else None,
            language=language if isinstance(language, str) else None,
            extra={"category": category, "source": source, **fields},
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def _music_annotations(path: Path, recordings: set[str]) -> Iterator[dict[str, dict[str, object]] | Problem]:
    for number, line in _lines(path):
        fields = line.split(maxsplit=3)
        if len(fields) < 3 or fields[2] not in _VOCALS:
            yield Problem(path, f"line {number}: expected '<id> <genres> <Y|N> <artist>', got {line!r}")
            continue
        recording, genres, vocals = fields[:3]
        if recording not in recordings:
            yield Problem(path, f"line {number}: {recording}.wav is not in {path.parent.name}/", recording)
            continue
        annotation: dict[str, object] = {"genres": [g for g in genres.split(",") if g], "vocals": _VOCALS[vocals]}
        if len(fields) == 4:
            annotation["artist"] = fields[3]
        yield {recording: annotation}


def _speech_annotations(path: Path, recordings: set[str]) -> Iterator[dict[str, dict[str, object]] | Problem]:
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) < 2 or fields[1].lower() not in _GENDERS:
            yield Problem(path, f"line {number}: expected '<id> <m|f> <language>', got {line!r}")
            continue
        if fields[0] not in recordings:
            yield Problem(path, f"line {number}: {fields[0]}.wav is not in {path.parent.name}/", fields[0])
            continue
        annotation: dict[str, object] = {"gender": _GENDERS[fields[1].lower()]}
        if len(fields) > 2:
            annotation["language"] = " ".join(fields[2:])
        yield {fields[0]: annotation}


def _noise_annotations(path: Path, recordings: set[str]) -> Iterator[dict[str, dict[str, object]] | Problem]:
    # Lines that are not a single "noise-..." id are headers (the file opens with one).
    for number, line in _lines(path):
        if " " in line or not line.startswith("noise-"):
            continue
        if line not in recordings:
            yield Problem(path, f"line {number}: background noise {line}.wav is not in {path.parent.name}/", line)
            continue
        yield {line: {"background": True}}
