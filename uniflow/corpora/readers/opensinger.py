"""OpenSinger: one Entry per wav of ``{ManRaw,WomanRaw}/<singer>_<Song>/``, text from its ``.txt``.

Layout (``OpenSinger/`` at the top of the part, or the gender folders directly)::

    OpenSinger/ManRaw/<singer>_<Song>/<singer>_<Song>_<n>.wav   (+ .txt lyric line, .lab)
    OpenSinger/WomanRaw/...

Singer ids restart in each gender folder, so the speaker is ``ManRaw_<id>`` or ``WomanRaw_<id>``.
There is no combined transcript; each recording's small .txt is read. No official split: all train.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import top_folder_candidates
from uniflow.corpora.recipe import Recipe

GENDER_FOLDERS: dict[str, str] = {"ManRaw": "male", "WomanRaw": "female"}
_UNSAFE_KEY = re.compile(r"[.\s]+")


def find_root(part_dir: Path) -> Path | None:
    """The folder holding ManRaw/ and WomanRaw/: the part itself or its top folder."""
    candidates = top_folder_candidates(part_dir)
    return next((c for c in candidates if any((c / name).is_dir() for name in GENDER_FOLDERS)), None)


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    part = recipe.parts[0].name
    part_dir = Path(corpus_dir) / "parts" / part
    root = find_root(part_dir)
    if root is None:
        yield Problem(part_dir, "no ManRaw/ or WomanRaw/ folder found: is the opensinger part extracted?")
        return
    for gender_folder, gender in GENDER_FOLDERS.items():
        base = root / gender_folder
        if not base.is_dir():
            yield Problem(base, f"{gender_folder}/ is missing from the release")
            continue
        with os.scandir(base) as listing:
            song_dirs = sorted(item.name for item in listing if item.is_dir())
        for song_dir in song_dirs:
            singer, _, song = song_dir.partition("_")
            if not song:
                yield Problem(base / song_dir, "folder name is not <singer>_<Song>")
                continue
            yield from _song_entries(base / song_dir, gender_folder, singer, song, gender, part)


def _song_entries(
    folder: Path, gender_folder: str, singer: str, song: str, gender: str, part: str
) -> Iterator[Entry | Problem]:
    with os.scandir(folder) as listing:
        names = {item.name for item in listing}
    for wav in sorted(name for name in names if name.endswith(".wav")):
        stem = wav[:-4]
        key = f"{gender_folder}/{_UNSAFE_KEY.sub('_', stem)}"
        audio = folder / wav
        text = None
        if f"{stem}.txt" in names:
            try:
                text = (folder / f"{stem}.txt").read_text(encoding="utf-8").strip() or None
            except UnicodeDecodeError as exc:
                yield Problem(folder / f"{stem}.txt", f"not valid UTF-8 ({exc.reason})", key=key)
                continue
        if text is None:
            yield Problem(audio, f"no lyric line: {stem}.txt is missing or empty", key=key)
            continue
        extra: dict[str, object] = {"song": song}
        if f"{stem}.lab" in names:
            extra["lab"] = str(folder / f"{stem}.lab")
        yield Entry(
            key=key,
            split="train",
            audio=audio,
            subset=part,
            text=text,
            speaker=f"{gender_folder}_{singer}",
            gender=gender,
            language="zh",
            extra=extra,
        )
