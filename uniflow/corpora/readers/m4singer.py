"""M4Singer: one Entry per item of ``meta.json``, its phone-level score taken straight from it.

Layout of the extracted part (``parts/m4singer/`` holds the archive's tree)::

    m4singer/meta.json                        [{item_name, txt, phs, ph_dur, notes, notes_dur, is_slur}, ...]
    m4singer/<Singer>#<Song>/<sentid>.wav     (+ <sentid>.mid, <sentid>.TextGrid)

``item_name`` is ``<Singer>#<Song>#<sentid>``; the entry key is ``<Singer>/<Song>/<sentid>``. The
test split is the eight songs of the UniFlow-Audio preprocessing (which reuses them for validation,
so they are emitted once, as test); every other item is train. Each song folder is listed once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

TEST_SONGS: tuple[str, ...] = (
    "Alto-2#岁月神偷",
    "Alto-2#奇妙能力歌",
    "Tenor-1#一千年以后",
    "Tenor-1#童话",
    "Tenor-2#消愁",
    "Tenor-2#一荤一素",
    "Soprano-1#念奴娇赤壁怀古",
    "Soprano-1#问春",
)
SCORE_FIELDS: tuple[str, ...] = ("phs", "ph_dur", "notes", "notes_dur", "is_slur")
_GENDER_BY_VOICE = {"Soprano": "female", "Alto": "female", "Tenor": "male", "Bass": "male"}
_UNSAFE_KEY = re.compile(r"[.\s]+")


def find_root(part_dir: Path) -> Path | None:
    """The folder holding meta.json: the part itself or its top folder (``m4singer/``)."""
    if (part_dir / "meta.json").is_file():
        return part_dir
    if part_dir.is_dir():
        for child in sorted(part_dir.iterdir()):
            if child.is_dir() and (child / "meta.json").is_file():
                return child
    return None


def item_key(item_name: str) -> str:
    """``Alto-2#岁月神偷#0000`` -> ``Alto-2/岁月神偷/0000`` ('/' separates singer, song, sentence)."""
    return "/".join(_UNSAFE_KEY.sub("_", part) for part in item_name.split("#"))


def split_of(item_name: str) -> str:
    return "test" if any(item_name.startswith(song + "#") for song in TEST_SONGS) else "train"


def _score_problem(item: dict[str, Any]) -> str | None:
    missing = [name for name in ("item_name", "txt", *SCORE_FIELDS) if name not in item]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if not all(isinstance(item[name], list) for name in SCORE_FIELDS):
        return "phs, ph_dur, notes, notes_dur and is_slur must all be lists"
    lengths = {name: len(item[name]) for name in SCORE_FIELDS}
    if len(set(lengths.values())) != 1:
        return "score lists differ in length: " + ", ".join(f"{name}={n}" for name, n in lengths.items())
    if not lengths["phs"]:
        return "empty score"
    return None


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every recording described by meta.json; broken items and missing wavs become Problems."""
    part = recipe.parts[0].name
    part_dir = Path(corpus_dir) / "parts" / part
    root = find_root(part_dir)
    if root is None:
        yield Problem(part_dir, "meta.json not found: is the m4singer part extracted?")
        return
    meta_path = root / "meta.json"
    try:
        items = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        yield Problem(meta_path, f"not a readable JSON file: {exc}")
        return
    if not isinstance(items, list):
        yield Problem(meta_path, "expected a JSON list of items")
        return
    listings: dict[str, set[str]] = {}
    described: set[tuple[str, str]] = set()
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            yield Problem(meta_path, f"item {number}: not a JSON object")
            continue
        name = str(item.get("item_name", f"#{number}"))
        if name.count("#") != 2:
            yield Problem(meta_path, f"item {number}: item_name {name!r} is not <Singer>#<Song>#<sentid>")
            continue
        singer, song, sent_id = name.split("#")
        folder = f"{singer}#{song}"
        # Described, even if broken: its wav is reported once, for the broken item, not again below.
        described.add((folder, sent_id))
        problem = _score_problem(item)
        if problem is not None:
            yield Problem(meta_path, f"item {name}: {problem}", key=item_key(name))
            continue
        if folder not in listings:
            listings[folder] = _list(root / folder)
        audio = root / folder / f"{sent_id}.wav"
        if f"{sent_id}.wav" not in listings[folder]:
            yield Problem(audio, f"item {name}: the wav file is missing", key=item_key(name))
            continue
        extra: dict[str, Any] = {"song": song}
        for suffix, field in ((".mid", "midi"), (".TextGrid", "textgrid")):
            if f"{sent_id}{suffix}" in listings[folder]:
                # Relative to the raw role, as manifest audio paths are: shards must not depend on where data lives.
                extra[field] = (root / folder / f"{sent_id}{suffix}").relative_to(Path(corpus_dir).parent).as_posix()
        yield Entry(
            key=item_key(name),
            split=split_of(name),
            audio=audio,
            subset=part,
            text=item["txt"],
            speaker=singer,
            gender=_GENDER_BY_VOICE.get(singer.split("-")[0]),
            language="zh",
            score={field: item[field] for field in SCORE_FIELDS},
            extra=extra,
        )
    # Recordings meta.json does not describe have no score: report them rather than drop them silently.
    with os.scandir(root) as listing:
        folders = sorted(entry.name for entry in listing if entry.is_dir() and "#" in entry.name)
    for folder in folders:
        names = listings.get(folder) or _list(root / folder)
        for name in sorted(names):
            if name.endswith(".wav") and (folder, name[:-4]) not in described:
                yield Problem(
                    root / folder / name, "not described in meta.json (no score)", key=item_key(f"{folder}#{name[:-4]}")
                )


def _list(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as listing:
            return {entry.name for entry in listing}
    except FileNotFoundError:
        return set()
