"""MUSDB18-HQ: one Entry per track (audio = mixture.wav) with its four stems in ``extra["stems"]``.

Layout of the extracted part (``parts/musdb18hq/`` holds the archive's tree; some re-packs add one
enclosing folder, which the reader accepts)::

    {train,test}/<Artist> - <Title>/{mixture,drums,bass,other,vocals}.wav   44.1 kHz stereo

The folder decides the split. Keys are "<folder>/<track name>" with every character other than
letters, digits, '-' and '_' made '_' (track names hold spaces, dots and apostrophes); the real name
is kept in ``extra["track"]``. Stem paths are relative to the raw storage root, like the manifest's
``audio`` field. A track without its mixture or any stem is a Problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import raw_relative, subfolders
from uniflow.corpora.recipe import Recipe

FOLDERS = {"train": "train", "test": "test"}
STEMS = ("drums", "bass", "other", "vocals")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every track of train/ then test/, in name order."""
    corpus_dir = Path(corpus_dir)
    for part in recipe.parts:
        part_dir = corpus_dir / "parts" / part.name
        root = find_root(part_dir)
        if root is None:
            yield Problem(part_dir, f"part {part.name}: no train/ or test/ folder (part not extracted?)")
            continue
        for folder, split in FOLDERS.items():
            if not (root / folder).is_dir():
                yield Problem(root / folder, f"{folder}/ folder is missing")
                continue
            seen: dict[str, str] = {}
            for track in subfolders(root / folder):
                yield _track_entry(root / folder / track, folder, split, part.name, corpus_dir.parent, seen)


def track_key(folder: str, track: str) -> str:
    """'<folder>/<track>' with unsafe characters (spaces, dots, quotes...) collapsed to '_'."""
    return f"{folder}/{_UNSAFE.sub('_', track).strip('_')}"


def find_root(part_dir: Path) -> Path | None:
    """The folder holding train/ and test/: the part folder itself or its only subfolder."""
    if any((part_dir / folder).is_dir() for folder in FOLDERS):
        return part_dir
    if part_dir.is_dir():
        children = subfolders(part_dir)
        if len(children) == 1 and any((part_dir / children[0] / folder).is_dir() for folder in FOLDERS):
            return part_dir / children[0]
    return None


def _track_entry(
    track_dir: Path, folder: str, split: str, part: str, raw_root: Path, seen: dict[str, str]
) -> Entry | Problem:
    track = track_dir.name
    key = track_key(folder, track)
    with os.scandir(track_dir) as listing:
        names = {item.name for item in listing if item.is_file()}
    missing = [f"{name}.wav" for name in ("mixture", *STEMS) if f"{name}.wav" not in names]
    if missing:
        return Problem(track_dir, f"track {track!r} lacks {', '.join(missing)}", key)
    if key in seen:
        return Problem(track_dir, f"track {track!r} has the same key {key!r} as {seen[key]!r}", key)
    seen[key] = track
    artist, _, title = track.partition(" - ")
    stems = {name: raw_relative(track_dir / f"{name}.wav", raw_root) for name in STEMS}
    return Entry(
        key=key,
        split=split,
        audio=track_dir / "mixture.wav",
        subset=part,
        extra={"track": track, "artist": artist.strip(), "title": title.strip(), "stems": stems},
    )
