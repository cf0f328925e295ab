"""LJ Speech 1.1: one Entry per line of metadata.csv, single speaker "LJ".

Layout of the extracted archive (``parts/LJSpeech-1.1/``)::

    LJSpeech-1.1/metadata.csv          "LJ001-0001|original text|normalized text", UTF-8, no header
    LJSpeech-1.1/wavs/LJ001-0001.wav   22.05 kHz mono 16-bit

metadata.csv is split on '|' by hand: it has no quoting and its texts contain double quotes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

SPEAKER = "LJ"
TOP_FOLDER = "LJSpeech-1.1"


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every clip of the parts a split names (all of LJSpeech is one part, in train)."""
    for part in recipe.parts:
        split = recipe.split_of(part.name)
        if split is None:
            continue
        root = Path(corpus_dir) / "parts" / part.name / TOP_FOLDER
        metadata = root / "metadata.csv"
        if not metadata.is_file():
            yield Problem(metadata, f"metadata.csv not found: part {part.name} is not extracted")
            continue
        yield from _clips(root, metadata, split, part.name)


def _clips(root: Path, metadata: Path, split: str, part: str) -> Iterator[Entry | Problem]:
    wav_dir = root / "wavs"
    recorded: set[str] = set()
    if wav_dir.is_dir():
        with os.scandir(wav_dir) as listing:
            recorded = {item.name[:-4] for item in listing if item.name.endswith(".wav") and not item.name.startswith(".")}
    listed: set[str] = set()
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 3:
            yield Problem(metadata, f"line {number}: expected 3 '|'-separated fields (id|text|normalized text), got {len(fields)}")
            continue
        clip, original, normalized = (field.strip() for field in fields)
        if not clip or "." in clip or "/" in clip:
            yield Problem(metadata, f"line {number}: invalid clip id {clip!r}")
            continue
        if clip in listed:
            yield Problem(metadata, f"line {number}: clip {clip} is listed twice", key=clip)
            continue
        listed.add(clip)
        audio = wav_dir / f"{clip}.wav"
        if clip not in recorded:
            yield Problem(audio, "listed in metadata.csv but the audio file is missing", key=clip)
            continue
        # The normalized column spells out numbers and abbreviations; it is what a model should read.
        text = normalized or original
        if not text:
            yield Problem(metadata, f"line {number}: empty transcription", key=clip)
            continue
        yield Entry(
            key=clip,
            split=split,
            audio=audio,
            subset=part,
            text=text,
            speaker=SPEAKER,
            gender="female",
            language="en",
            extra={"original_text": original},
        )
    for clip in sorted(recorded - listed):
        yield Problem(wav_dir / f"{clip}.wav", "audio file has no line in metadata.csv", key=clip)
