"""Opencpop: one Entry per segment of the official train.txt / test.txt, with its phone-level score.

Layout of the release (directly in ``parts/opencpop/`` or in one top folder inside it)::

    segments/wavs/<segment id>.wav            2001000001.wav: song 2001, segment 000001
    segments/train.txt, segments/test.txt     official split, one line per segment
    segments/transcriptions.txt               every segment (same format)
    wavs/<song>.wav, midis/<song>.midi, textgrids/<song>.TextGrid

A line is ``id|text|phones|notes|note durations|phone durations|slurs``; the last five fields are
space-separated lists with one value per phone. Notes are names (``C#4/Db4``, ``rest``) and are also
given as MIDI numbers (rest = 0) in the score. A segment in transcriptions.txt but in neither split
file is reported, not guessed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

_NOTE = re.compile(r"^([A-G])([#b]?)(-?\d+)$")
_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def find_root(part_dir: Path) -> Path | None:
    """The release folder (the one holding segments/transcriptions.txt), at most one level down."""
    candidates = [part_dir] + (sorted(p for p in part_dir.iterdir() if p.is_dir()) if part_dir.is_dir() else [])
    return next((c for c in candidates if (c / "segments" / "transcriptions.txt").is_file()), None)


def note_to_midi(name: str) -> int:
    """``C#4/Db4`` -> 61, ``rest`` -> 0; raises ValueError for anything else."""
    if name == "rest":
        return 0
    match = _NOTE.match(name.split("/")[0])
    if match is None:
        raise ValueError(f"not a note name: {name!r}")
    letter, accidental, octave = match.groups()
    return (int(octave) + 1) * 12 + _SEMITONE[letter] + {"#": 1, "b": -1, "": 0}[accidental]


def parse_line(line: str) -> dict[str, Any]:
    """One transcription line as a dict; raises ValueError naming what is wrong."""
    fields = line.split("|")
    if len(fields) != 7:
        raise ValueError(f"expected 7 '|'-separated fields, got {len(fields)}")
    segment, text, phones, notes, note_durs, phone_durs, slurs = fields
    lists = {
        "phs": phones.split(),
        "note_names": notes.split(),
        "notes_dur": note_durs.split(),
        "ph_dur": phone_durs.split(),
        "is_slur": slurs.split(),
    }
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) != 1 or not lengths["phs"]:
        raise ValueError(
            "score lists differ in length or are empty: " + ", ".join(f"{k}={v}" for k, v in lengths.items())
        )
    return {
        "id": segment.strip(),
        "text": text.strip(),
        "score": {
            "phs": lists["phs"],
            "ph_dur": [float(v) for v in lists["ph_dur"]],
            "notes": [note_to_midi(v) for v in lists["note_names"]],
            "note_names": lists["note_names"],
            "notes_dur": [float(v) for v in lists["notes_dur"]],
            "is_slur": [int(v) for v in lists["is_slur"]],
        },
    }


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    part = recipe.parts[0].name
    part_dir = Path(corpus_dir) / "parts" / part
    root = find_root(part_dir)
    if root is None:
        yield Problem(part_dir, "segments/transcriptions.txt not found: is the opencpop part extracted?")
        return
    segments = root / "segments"
    wav_dir = segments / "wavs"
    with os.scandir(wav_dir) as listing:
        wavs = {item.name for item in listing}
    split_ids: set[str] = set()
    for split, file_name in (("train", "train.txt"), ("test", "test.txt")):
        path = segments / file_name
        if not path.is_file():
            yield Problem(path, f"official {split} list is missing")
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = parse_line(line)
            except ValueError as exc:
                yield Problem(path, f"line {number}: {exc}")
                continue
            split_ids.add(row["id"])
            audio = wav_dir / f"{row['id']}.wav"
            if audio.name not in wavs:
                yield Problem(audio, f"listed in {file_name} but the wav file is missing", key=row["id"])
                continue
            yield Entry(
                key=row["id"],
                split=split,
                audio=audio,
                subset=part,
                text=row["text"],
                speaker="opencpop",
                gender="female",
                language="zh",
                score=row["score"],
                extra={"song": row["id"][:4]},
            )
    transcriptions = segments / "transcriptions.txt"
    for line in transcriptions.read_text(encoding="utf-8").splitlines():
        segment = line.split("|", 1)[0].strip()
        if segment and segment not in split_ids:
            yield Problem(
                wav_dir / f"{segment}.wav", "in transcriptions.txt but in neither train.txt nor test.txt", key=segment
            )
