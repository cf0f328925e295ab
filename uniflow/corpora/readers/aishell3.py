"""AISHELL-3: one Entry per line of train/content.txt and test/content.txt.

Layout of the extracted archive (``parts/data_aishell3/``, no top-level folder)::

    spk-info.txt                          '#' comments, then speaker, age group, gender, accent
    train/content.txt                     "SSB00050001.wav<TAB>广 guang3 州 zhou1 ..."
    train/wav/SSB0005/SSB00050001.wav     44.1 kHz mono 16-bit
    test/content.txt, test/wav/...

The text is the characters joined; the pinyin (tone-numbered, space-separated) goes to extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

SUBSETS: tuple[str, ...] = ("train", "test")
# Some re-packs put the tree under a data_aishell3/ folder; the OpenSLR archive does not.
REPACK_FOLDER = "data_aishell3"

_GENDERS = {"female": "female", "male": "male", "f": "female", "m": "male"}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every utterance of the corpus subsets (train/, test/) that a split names."""
    for part in recipe.parts:
        part_dir = Path(corpus_dir) / "parts" / part.name
        root = corpus_root(part_dir)
        if root is None:
            yield Problem(part_dir, f"no train/ or test/ folder: part {part.name} is not extracted")
            continue
        genders = speaker_genders(root / "spk-info.txt")
        for subset in SUBSETS:
            split = recipe.split_of(subset)
            if split is not None:
                yield from _subset_entries(root / subset, subset, split, genders)


def corpus_root(part_dir: Path) -> Path | None:
    for candidate in (part_dir, part_dir / REPACK_FOLDER):
        if any((candidate / subset).is_dir() for subset in SUBSETS):
            return candidate
    return None


def speaker_genders(path: Path) -> dict[str, str]:
    """Speaker id -> 'female'/'male' from spk-info.txt (empty if the file is missing)."""
    if not path.is_file():
        return {}
    genders: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and fields[2].lower() in _GENDERS:
            genders[fields[0]] = _GENDERS[fields[2].lower()]
    return genders


def _subset_entries(subset_dir: Path, subset: str, split: str, genders: dict[str, str]) -> Iterator[Entry | Problem]:
    content = subset_dir / "content.txt"
    if not content.is_file():
        yield Problem(content, f"content.txt of {subset}/ not found")
        return
    wav_root = subset_dir / "wav"
    recorded: dict[str, set[str]] = {}
    if wav_root.is_dir():
        with os.scandir(wav_root) as speakers:
            speaker_names = sorted(item.name for item in speakers if item.is_dir() and not item.name.startswith("."))
        for speaker in speaker_names:
            with os.scandir(wav_root / speaker) as files:
                recorded[speaker] = {item.name[:-4] for item in files if item.name.endswith(".wav") and not item.name.startswith(".")}
    listed: set[str] = set()
    for number, line in enumerate(content.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, tab, transcript = line.partition("\t")
        name = name.strip()
        if not tab or not name.endswith(".wav"):
            yield Problem(content, f"line {number}: expected '<id>.wav<TAB><characters and pinyin>'")
            continue
        utterance = name[:-4]
        speaker = utterance[:-4]
        if utterance in listed:
            yield Problem(content, f"line {number}: {utterance} is listed twice", key=utterance)
            continue
        # Listed even when the line is broken: one Problem per recording, not a second "no line" one.
        listed.add(utterance)
        tokens = transcript.split()
        if not tokens or len(tokens) % 2:
            yield Problem(content, f"line {number}: characters and pinyin do not pair up ({len(tokens)} tokens)", key=utterance)
            continue
        audio = wav_root / speaker / name
        if utterance not in recorded.get(speaker, ()):
            yield Problem(audio, f"listed in {subset}/content.txt but the audio file is missing", key=utterance)
            continue
        yield Entry(
            key=utterance,
            split=split,
            audio=audio,
            subset=subset,
            text="".join(tokens[0::2]),
            speaker=speaker,
            gender=genders.get(speaker),
            language="zh",
            extra={"pinyin": " ".join(tokens[1::2])},
        )
    for speaker, utterances in recorded.items():
        for utterance in sorted(utterances - listed):
            yield Problem(wav_root / speaker / f"{utterance}.wav", f"audio file has no line in {subset}/content.txt", key=utterance)
