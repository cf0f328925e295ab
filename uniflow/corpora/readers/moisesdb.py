"""MoisesDB: one Entry per song, with every source recording of every stem in ``extra["stems"]``.

Layout of the extracted part (``parts/moisesdb/`` holds the archive's tree)::

    moisesdb/moisesdb_v0.1/<song uuid>/data.json
        {"artist", "song", "genre",
         "stems": [{"stemName": "drums", "tracks": [{"id", "trackType", "extension", "has_bleed"}, ...]}, ...]}
    moisesdb/moisesdb_v0.1/<song uuid>/<stemName>/<track id>.<extension>     44.1 kHz wav

MoisesDB has no mixture file: the mixture is the sum of all source recordings, made later. The
entry's ``audio`` is the first source file (stems by name, then tracks by id), only so that the
manifest can probe sample rate, channels and length; ``extra["mixture"]`` says so. Source paths
are relative to the raw storage root, like the manifest's ``audio`` field. A song whose data.json
is missing or broken, lists no source, or names a file that is not there is a Problem. No official
split: every song takes the split ``recipe.splits`` gives the part (train).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import raw_relative, subfolders
from uniflow.corpora.recipe import Recipe

RELEASE = "moisesdb_v0.1"
MIXTURE_NOTE = "sum of all stems' source files; no mixture file exists"


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every song folder of the release, in uuid order."""
    corpus_dir = Path(corpus_dir)
    for part in recipe.parts:
        part_dir = corpus_dir / "parts" / part.name
        release = find_release(part_dir)
        if release is None:
            yield Problem(part_dir, f"part {part.name}: no {RELEASE}/ folder (part not extracted?)")
            continue
        split = recipe.split_of(part.name, "train")
        for song in subfolders(release):
            yield _song_entry(release / song, split, part.name, corpus_dir.parent)


def find_release(part_dir: Path) -> Path | None:
    """moisesdb_v0.1/ inside the part, directly or under the archive's moisesdb/ folder."""
    for candidate in (part_dir / "moisesdb" / RELEASE, part_dir / RELEASE):
        if candidate.is_dir():
            return candidate
    return None


def _song_entry(song_dir: Path, split: str, part: str, raw_root: Path) -> Entry | Problem:
    key = song_dir.name.replace(".", "_")
    data_path = song_dir / "data.json"
    try:
        data = json.loads(data_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Problem(data_path, "data.json is missing", key)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return Problem(data_path, f"data.json is not valid JSON: {error}", key)
    stems = data.get("stems") if isinstance(data, dict) else None
    if not isinstance(stems, list) or not stems:
        return Problem(data_path, "data.json has no 'stems' list", key)
    sources: dict[str, list[dict[str, Any]]] = {}
    files: list[Path] = []
    for stem in stems:
        parsed = _stem_sources(stem, song_dir)
        if isinstance(parsed, str):
            return Problem(data_path, parsed, key)
        name, tracks = parsed
        for track_path, track_type, has_bleed in tracks:
            files.append(track_path)
            sources.setdefault(name, []).append(
                {"path": raw_relative(track_path, raw_root), "track_type": track_type, "has_bleed": has_bleed}
            )
    if not files:
        return Problem(data_path, "data.json lists no source recording", key)
    present = _present_files({path.parent for path in files})
    absent = [path for path in files if path not in present]
    if absent:
        listed = ", ".join(path.relative_to(song_dir).as_posix() for path in absent)
        return Problem(song_dir, f"data.json names missing file(s): {listed}", key)
    first = sorted(files, key=lambda path: (path.parent.name, path.name))[0]
    return Entry(
        key=key,
        split=split,
        audio=first,
        subset=part,
        extra={
            "artist": str(data.get("artist", "")),
            "song": str(data.get("song", "")),
            "genre": str(data.get("genre", "")),
            "mixture": MIXTURE_NOTE,
            "stems": {name: sources[name] for name in sorted(sources)},
        },
    )


def _stem_sources(stem: Any, song_dir: Path) -> tuple[str, list[tuple[Path, str | None, bool]]] | str:
    """(stem name, [(file, trackType, has_bleed)]) or the reason the stem entry is unusable."""
    if not isinstance(stem, dict) or not isinstance(stem.get("stemName"), str) or not stem["stemName"]:
        return f"a stem entry has no stemName: {stem!r:.120}"
    name = stem["stemName"]
    tracks = stem.get("tracks")
    if not isinstance(tracks, list):
        return f"stem {name!r} has no 'tracks' list"
    parsed: list[tuple[Path, str | None, bool]] = []
    for track in tracks:
        if not isinstance(track, dict) or not isinstance(track.get("id"), str) or not track["id"]:
            return f"stem {name!r} has a track without an id: {track!r:.120}"
        extension = str(track.get("extension") or "wav")
        if "/" in name or "/" in track["id"] or ".." in (name, track["id"]):
            return f"stem {name!r} track {track['id']!r} is not a plain file name"
        track_type = track.get("trackType")
        path = song_dir / name / f"{track['id']}.{extension}"
        parsed.append((path, track_type if isinstance(track_type, str) else None, bool(track.get("has_bleed", False))))
    return name, parsed


def _present_files(folders: set[Path]) -> set[Path]:
    present: set[Path] = set()
    for folder in folders:
        try:
            with os.scandir(folder) as listing:
                present.update(folder / item.name for item in listing if item.is_file())
        except OSError:
            continue
    return present
