"""RIR and noise database (OpenSLR 28): RIRs and noises, indexed by the corpus's Kaldi list files.

Layout of the extracted part (``parts/rirs_noises/`` holds the archive's tree)::

    RIRS_NOISES/simulated_rirs/{small,medium,large}room/rir_list
        "--rir-id small-Room001-00001 --room-id small-Room001 <location of Room001/Room001-00001.wav>"
    RIRS_NOISES/real_rirs_isotropic_noises/rir_list
        "--rir-id 00001 --room-id <room> <location>"
    RIRS_NOISES/real_rirs_isotropic_noises/noise_list
        "--noise-id 00001 --noise-type isotropic --room-linkage <room> <location>"
    RIRS_NOISES/pointsource_noises/noise_list
        "--noise-id <id> --noise-type point-source --bg-fg-type <foreground|background> <location>"

Locations are relative to the folder holding RIRS_NOISES. RIRs get ``extra`` kind "rir", source
"simulated" or "real", room and room_size (small / medium / large for simulated rooms, None for
real ones); noises get kind "noise", noise_type, and room or background where the list has them.
No official split: everything takes the split ``recipe.splits`` gives the part (train). A list
line that cannot be parsed, lacks a required option or names a missing file is a Problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

TOP = "RIRS_NOISES"
ROOM_SIZES = ("small", "medium", "large")
# (list file relative to RIRS_NOISES, kind, source, room size)
LISTS: tuple[tuple[str, str, str, str | None], ...] = (
    *((f"simulated_rirs/{size}room/rir_list", "rir", "simulated", size) for size in ROOM_SIZES),
    ("real_rirs_isotropic_noises/rir_list", "rir", "real", None),
    ("real_rirs_isotropic_noises/noise_list", "noise", "real", None),
    ("pointsource_noises/noise_list", "noise", "real", None),
)
_REQUIRED = {"rir": ("--rir-id", "--room-id"), "noise": ("--noise-id", "--noise-type")}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every RIR and noise the list files name, list by list, in list order."""
    for part in recipe.parts:
        base = Path(corpus_dir) / "parts" / part.name
        top = base / TOP
        if not top.is_dir():
            yield Problem(top, f"part {part.name} is not extracted")
            continue
        state = _PartState(base=base, split=recipe.split_of(part.name, "train"), part=part.name)
        for relative, kind, source, size in LISTS:
            list_file = _ListFile(path=top / relative, kind=kind, source=source, room_size=size)
            if not list_file.path.is_file():
                yield Problem(list_file.path, f"list file {relative} is missing")
                continue
            for number, line in _lines(list_file.path):
                yield _line_entry(line, number, list_file, state)


def parse_list_line(line: str) -> tuple[dict[str, str], str]:
    """``--option value ... location`` -> (options, location); raises ValueError when malformed."""
    tokens = line.split()
    if len(tokens) < 3 or len(tokens) % 2 == 0 or tokens[-1].startswith("--"):
        raise ValueError("expected '--option value' pairs followed by one location")
    options: dict[str, str] = {}
    for name, value in zip(tokens[:-1:2], tokens[1:-1:2], strict=True):
        if not name.startswith("--") or value.startswith("--"):
            raise ValueError(f"option {name!r} has no value")
        options[name] = value
    return options, tokens[-1]


@dataclass
class _ListFile:
    path: Path
    kind: str
    source: str
    room_size: str | None


@dataclass
class _PartState:
    """What the lines of one part share: where it lies, its split, and what was seen so far."""

    base: Path
    split: str
    part: str
    seen: set[str] = field(default_factory=set)
    listings: _DirectoryListings = field(default_factory=lambda: _DirectoryListings())


def _line_entry(line: str, number: int, list_file: _ListFile, state: _PartState) -> Entry | Problem:
    where = f"{list_file.path.parent.name}/{list_file.path.name} line {number}"
    try:
        options, location = parse_list_line(line)
    except ValueError as error:
        return Problem(list_file.path, f"{where}: {error}: {line!r}")
    missing = [name for name in _REQUIRED[list_file.kind] if name not in options]
    if missing:
        return Problem(list_file.path, f"{where}: missing {', '.join(missing)}: {line!r}")
    # Locations are relative to the folder that holds RIRS_NOISES (Kaldi recipes run from there).
    if ".." in Path(location).parts or Path(location).is_absolute():
        return Problem(list_file.path, f"{where}: location {location!r} leaves {TOP}/")
    audio = state.base / location if location.startswith(f"{TOP}/") else list_file.path.parent / location
    relative = audio.relative_to(state.base / TOP)
    key = relative.with_suffix("").as_posix().replace(".", "_")
    if not state.listings.contains(audio):
        return Problem(audio, f"named by {where} but not found", key)
    if key in state.seen:
        return Problem(audio, f"{where}: listed twice", key)
    state.seen.add(key)
    if list_file.kind == "rir":
        extra: dict[str, object] = {
            "kind": "rir",
            "source": list_file.source,
            "room": options["--room-id"],
            "room_size": list_file.room_size,
            "rir_id": options["--rir-id"],
        }
        for option, name in (("--rt-60", "rt60"), ("--rt60", "rt60"), ("--drr", "drr")):
            if option in options:
                try:
                    extra[name] = float(options[option])
                except ValueError:
                    return Problem(list_file.path, f"{where}: {option} {options[option]!r} is not a number", key)
    else:
        extra = {
            "kind": "noise",
            "source": list_file.source,
            "noise_id": options["--noise-id"],
            "noise_type": options["--noise-type"],
        }
        if "--room-linkage" in options:
            extra["room"] = options["--room-linkage"]
        if "--bg-fg-type" in options:
            extra["background"] = options["--bg-fg-type"] == "background"
    return Entry(key=key, split=state.split, audio=audio, subset=state.part, extra=extra)


class _DirectoryListings:
    """File names per folder, each folder listed once (simulated rooms hold 100 RIRs each)."""

    def __init__(self) -> None:
        self._names: dict[Path, set[str]] = {}

    def contains(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._names:
            try:
                with os.scandir(folder) as listing:
                    self._names[folder] = {item.name for item in listing if item.is_file()}
            except OSError:
                self._names[folder] = set()
        return path.name in self._names[folder]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            yield number, line.strip()
