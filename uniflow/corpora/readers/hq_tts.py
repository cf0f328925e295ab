"""HQ-TTS equivalent assembled by the user: ``hq_tts/<speaker>/<utterance>.wav`` (see the recipe's steps).

The id is ``<speaker>/<utterance>``: utterance names are only unique within a speaker folder.
Anything outside that layout is reported, so a mis-packed archive is noticed instead of half-read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

TOP_FOLDER = "hq_tts"
# Names become id parts: no dots (they split WebDataset keys), no '/', no spaces.
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff")


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every WAV of every speaker folder of the parts a split names."""
    for part in recipe.parts:
        split = recipe.split_of(part.name)
        if split is None:
            continue
        root = Path(corpus_dir) / "parts" / part.name / TOP_FOLDER
        if not root.is_dir():
            yield Problem(root, f"no {TOP_FOLDER}/ folder in part {part.name}: the archive must hold {TOP_FOLDER}/<speaker>/<utterance>.wav")
            continue
        with os.scandir(root) as listing:
            items = sorted((item.name, item.is_dir()) for item in listing if not item.name.startswith("."))
        for name, is_dir in items:
            if not is_dir:
                if name.lower().endswith(_AUDIO_SUFFIXES):
                    yield Problem(root / name, f"audio outside a speaker folder; expected {TOP_FOLDER}/<speaker>/<utterance>.wav")
                continue  # a README or licence file beside the speaker folders
            if not _NAME.match(name):
                yield Problem(root / name, "speaker folder name must use only letters, digits, '_' and '-'")
                continue
            yield from _speaker_entries(root / name, name, split, part.name)


def _speaker_entries(folder: Path, speaker: str, split: str, part: str) -> Iterator[Entry | Problem]:
    with os.scandir(folder) as listing:
        items = sorted((item.name, item.is_dir()) for item in listing if not item.name.startswith("."))
    for name, is_dir in items:
        path = folder / name
        if is_dir:
            yield Problem(path, f"nested folder; expected {TOP_FOLDER}/<speaker>/<utterance>.wav")
            continue
        if not name.endswith(".wav"):
            yield Problem(path, "not a .wav file; convert recordings to 44.1 kHz WAV (see the recipe's steps)")
            continue
        utterance = name[: -len(".wav")]
        if not _NAME.match(utterance):
            yield Problem(path, "utterance name must use only letters, digits, '_' and '-' (ids may not contain dots)")
            continue
        yield Entry(key=f"{speaker}/{utterance}", split=split, audio=path, subset=part, speaker=speaker)
