"""VCTK 0.92: one Entry per utterance, the audio of one microphone, text from its transcript file.

Layout of the extracted zip (``parts/VCTK-Corpus-0.92/``, no top-level folder)::

    speaker-info.txt                                   ID AGE GENDER ACCENTS REGION COMMENTS
    wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac  (and _mic2.flac)
    txt/<spk>/<spk>_<nnn>.txt                          one sentence

VCTK has no combined transcript file, so each utterance's text file is read once. p315 has no
transcripts (its entries have no text) and p280 no mic2 recordings (the reader falls back to mic1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import subfolders
from uniflow.corpora.recipe import Recipe

# mic2 (Sennheiser MKH 800) is wide-band; mic1 (DPA 4035) carries very low-frequency noise.
PREFERRED_MIC = "mic2"
FALLBACK_MIC = "mic1"
# The VCTK test speakers of the NVSR / ssr_eval super-resolution benchmark (the paper's SR evaluation).
SR_TEST_SPEAKERS: frozenset[str] = frozenset({"p360", "p361", "p362", "p363", "p364", "p374", "p376", "s5"})
TRAIN_SUBSET = "train-speakers"
TEST_SUBSET = "sr-test-speakers"
AUDIO_FOLDER = "wav48_silence_trimmed"

_GENDERS = {"F": "female", "M": "male"}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every utterance of the speakers whose subset (train-speakers / sr-test-speakers) a split names."""
    split_of_subset = recipe.split_of_parts()
    for part in recipe.parts:
        root = corpus_root(Path(corpus_dir) / "parts" / part.name)
        if root is None:
            yield Problem(Path(corpus_dir) / "parts" / part.name, f"no {AUDIO_FOLDER}/ folder: part {part.name} is not extracted")
            continue
        speakers = speaker_info(root / "speaker-info.txt")
        audio_root = root / AUDIO_FOLDER
        for speaker in subfolders(audio_root):
            subset = TEST_SUBSET if speaker in SR_TEST_SPEAKERS else TRAIN_SUBSET
            split = split_of_subset.get(subset)
            if split is None:
                continue
            yield from _speaker_entries(root, speaker, split, subset, speakers.get(speaker, {}))


def corpus_root(part_dir: Path) -> Path | None:
    """The folder holding wav48_silence_trimmed/: the part folder itself, or one folder below it."""
    if (part_dir / AUDIO_FOLDER).is_dir():
        return part_dir
    if part_dir.is_dir():
        for child in subfolders(part_dir):
            if (part_dir / child / AUDIO_FOLDER).is_dir():
                return part_dir / child
    return None


def speaker_info(path: Path) -> dict[str, dict[str, str]]:
    """Speaker id -> {gender, accent, region} from speaker-info.txt (empty if the file is missing)."""
    if not path.is_file():
        return {}
    info: dict[str, dict[str, str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] == "ID":
            continue
        # Older releases name speakers by number ("225"); folders are always "p225".
        speaker = f"p{fields[0]}" if fields[0].isdigit() else fields[0]
        record = {"gender": _GENDERS.get(fields[2].upper(), "")}
        if len(fields) > 3:
            record["accent"] = fields[3]
        if len(fields) > 4:
            record["region"] = " ".join(fields[4:])
        info[speaker] = record
    return info


def _speaker_entries(root: Path, speaker: str, split: str, subset: str, info: dict[str, str]) -> Iterator[Entry | Problem]:
    audio_dir = root / AUDIO_FOLDER / speaker
    mics: dict[str, set[str]] = {}
    with os.scandir(audio_dir) as listing:
        names = sorted(item.name for item in listing if not item.name.startswith("."))
    for name in names:
        if not name.endswith(".flac"):
            continue  # not a recording of this layout (e.g. a log file)
        utterance, _, mic = name[: -len(".flac")].rpartition("_")
        if mic not in (PREFERRED_MIC, FALLBACK_MIC) or not utterance.startswith(speaker + "_") or "." in utterance:
            yield Problem(audio_dir / name, f"file name is not {speaker}_<nnn>_mic1.flac or _mic2.flac")
            continue
        mics.setdefault(utterance, set()).add(mic)
    text_dir = root / "txt" / speaker
    # A speaker without a transcript folder (p315) is a documented gap: its entries carry no text.
    transcripts: set[str] | None = None
    if text_dir.is_dir():
        with os.scandir(text_dir) as listing:
            transcripts = {item.name for item in listing}
    extra_info = {key: value for key, value in info.items() if key != "gender" and value}
    for utterance in sorted(mics):
        mic = PREFERRED_MIC if PREFERRED_MIC in mics[utterance] else FALLBACK_MIC
        audio = audio_dir / f"{utterance}_{mic}.flac"
        text: str | None = None
        if transcripts is not None:
            if f"{utterance}.txt" not in transcripts:
                yield Problem(audio, f"no transcript txt/{speaker}/{utterance}.txt", key=utterance)
                continue
            try:
                text = (text_dir / f"{utterance}.txt").read_text(encoding="utf-8").strip()
            except UnicodeDecodeError as exc:
                yield Problem(text_dir / f"{utterance}.txt", f"transcript is not valid UTF-8 ({exc.reason})", key=utterance)
                continue
            if not text:
                yield Problem(text_dir / f"{utterance}.txt", "empty transcript", key=utterance)
                continue
        yield Entry(
            key=utterance,
            split=split,
            audio=audio,
            subset=subset,
            text=text,
            speaker=speaker,
            gender=info.get("gender") or None,
            language="en",
            extra={"mic": mic, **extra_info},
        )
