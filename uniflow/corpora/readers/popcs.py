"""PopCS: one Entry per ``<n>_wf0.wav``, with the lyric line of ``<n>.txt`` and the phones of ``<n>_ph.txt``.

Layout (``popcs/`` at the top of the part, or the song folders directly)::

    popcs/popcs-<Song>/<n>_wf0.wav   <n>.txt   <n>_ph.txt   <n>.TextGrid

There is no combined transcript file, so each song folder is listed once and its small text files
are read. A recording without its lyric file is a Problem. PopCS has no official split: all train.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import top_folder_candidates
from uniflow.corpora.recipe import Recipe

_WAV_SUFFIX = "_wf0.wav"
_UNSAFE_KEY = re.compile(r"[.\s]+")


def song_folders(part_dir: Path) -> list[Path]:
    """The ``popcs-<Song>`` folders, whether the part holds them directly or in one top folder."""
    for base in top_folder_candidates(part_dir):
        with os.scandir(base) as listing:
            songs = sorted(Path(item.path) for item in listing if item.is_dir() and item.name.startswith("popcs-"))
        if songs:
            return songs
    return []


def _first_line(path: Path) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return lines[0].strip() if lines and lines[0].strip() else None


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    part = recipe.parts[0].name
    part_dir = Path(corpus_dir) / "parts" / part
    songs = song_folders(part_dir) if part_dir.is_dir() else []
    if not songs:
        yield Problem(part_dir, "no popcs-<Song> folders found: is the popcs part extracted?")
        return
    for song_dir in songs:
        with os.scandir(song_dir) as listing:
            names = {item.name for item in listing}
        for wav in sorted(name for name in names if name.endswith(_WAV_SUFFIX)):
            number = wav[: -len(_WAV_SUFFIX)]
            key = f"{_UNSAFE_KEY.sub('_', song_dir.name)}/{number}"
            audio = song_dir / wav
            text = _first_line(song_dir / f"{number}.txt") if f"{number}.txt" in names else None
            if text is None:
                yield Problem(audio, f"no lyric line: {number}.txt is missing or empty", key=key)
                continue
            phones = _first_line(song_dir / f"{number}_ph.txt") if f"{number}_ph.txt" in names else None
            extra: dict[str, object] = {"song": song_dir.name.removeprefix("popcs-")}
            if phones:
                extra["phones"] = phones.split()
            if f"{number}.TextGrid" in names:
                # Relative to the raw role, as manifest audio paths are: shards must not depend on where data lives.
                extra["textgrid"] = (song_dir / f"{number}.TextGrid").relative_to(Path(corpus_dir).parent).as_posix()
            yield Entry(
                key=key,
                split="train",
                audio=audio,
                subset=part,
                text=text,
                speaker="popcs",
                gender="female",
                language="zh",
                extra=extra,
            )
