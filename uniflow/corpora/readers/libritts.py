"""LibriTTS (OpenSLR 60): one Entry per utterance, its text read from the chapter's trans.tsv.

Layout of an extracted part (``parts/<part>/`` holds the archive's tree)::

    LibriTTS/speakers.tsv                       READER GENDER SUBSET NAME (tab-separated, header)
    LibriTTS/SPEAKERS.txt                       ';' comments, then "ID | SEX | SUBSET | MINUTES | NAME"
    LibriTTS/<part>/<spk>/<chap>/<spk>_<chap>.trans.tsv   id, original, normalized (tabs, no header)
    LibriTTS/<part>/<spk>/<chap>/<spk>_<chap>.book.tsv    every sentence of the chapter, SNR last
    LibriTTS/<part>/<spk>/<chap>/<spk>_<chap>_<para>_<sent>.wav (+ .normalized.txt, .original.txt)

The reader lists each chapter folder once and reads its two TSV files once, so it never opens a
file per utterance unless trans.tsv lacks one. Parts that no split names (dev-other, test-other in
the paper's setup) are not read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers._folders import subfolders
from uniflow.corpora.recipe import Recipe

# Recordings of the release known to be broken; skipped with a Problem, as other LibriTTS recipes do.
CORRUPT_UTTERANCES: frozenset[str] = frozenset({"1092_134562_000013_000004"})

_GENDERS = {"F": "female", "M": "male"}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every utterance of the parts named in ``recipe.splits``, in split, part, speaker, chapter order."""
    parts_dir = Path(corpus_dir) / "parts"
    genders = speaker_genders(parts_dir, [part.name for part in recipe.parts])
    for split, part_names in recipe.splits.items():
        for part in part_names:
            subset_dir = parts_dir / part / "LibriTTS" / part
            if not subset_dir.is_dir():
                yield Problem(subset_dir, f"part {part} of split {split} is not extracted")
                continue
            for speaker in subfolders(str(subset_dir)):
                speaker_dir = os.path.join(subset_dir, speaker)
                for chapter in subfolders(speaker_dir):
                    yield from _chapter_entries(
                        os.path.join(speaker_dir, chapter), speaker, chapter, part, split, genders.get(speaker)
                    )


def speaker_genders(parts_dir: Path, part_names: list[str]) -> dict[str, str]:
    """Speaker id -> 'female'/'male' from the first part carrying speakers.tsv (or SPEAKERS.txt).

    Every LibriTTS archive ships the same speaker tables, so one is enough.
    """
    for part in part_names:
        root = parts_dir / part / "LibriTTS"
        table = root / "speakers.tsv"
        if table.is_file():
            rows = (line.split("\t") for line in table.read_text(encoding="utf-8").splitlines()[1:])
            return {row[0].strip(): _GENDERS[row[1].strip()] for row in rows if len(row) > 1 and row[1].strip() in _GENDERS}
        legacy = root / "SPEAKERS.txt"
        if legacy.is_file():
            rows = (line.split("|") for line in legacy.read_text(encoding="utf-8").splitlines() if not line.startswith(";"))
            return {row[0].strip(): _GENDERS[row[1].strip()] for row in rows if len(row) > 1 and row[1].strip() in _GENDERS}
    return {}


def _chapter_entries(
    chapter_dir: str, speaker: str, chapter: str, part: str, split: str, gender: str | None
) -> Iterator[Entry | Problem]:
    with os.scandir(chapter_dir) as listing:
        names = {item.name for item in listing}
    # "._*" files are macOS resource forks some re-packs carry; they are not recordings.
    recorded = {name[:-4] for name in names if name.endswith(".wav") and not name.startswith("._")}
    prefix = f"{speaker}_{chapter}"
    book_name = f"{prefix}.book.tsv"
    snr = _snr_by_utterance(os.path.join(chapter_dir, book_name)) if book_name in names else {}
    trans_name = f"{prefix}.trans.tsv"
    trans_path = os.path.join(chapter_dir, trans_name)
    listed: set[str] = set()
    if trans_name in names:
        try:
            lines = Path(trans_path).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            yield Problem(Path(trans_path), f"not valid UTF-8 ({exc.reason}); falling back to per-utterance texts")
            lines = []
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                yield Problem(
                    Path(trans_path),
                    f"line {number}: expected 3 tab-separated fields (id, original, normalized), got {len(fields)}",
                )
                continue
            utterance, original, normalized = fields
            if not utterance.startswith(prefix + "_"):
                yield Problem(Path(trans_path), f"line {number}: id {utterance!r} does not belong to chapter {prefix}")
                continue
            listed.add(utterance)
            audio = f"{chapter_dir}/{utterance}.wav"
            if utterance in CORRUPT_UTTERANCES:
                yield Problem(Path(audio), "known corrupt recording of the LibriTTS release, skipped", key=utterance)
            elif utterance not in recorded:
                yield Problem(Path(audio), f"listed in {trans_name} but the audio file is missing", key=utterance)
            elif not normalized.strip():
                yield Problem(Path(audio), f"empty normalized text in {trans_name}", key=utterance)
            else:
                yield _entry(utterance, audio, split, part, speaker, chapter, gender, normalized, original, snr)
    for utterance in sorted(recorded - listed):
        # Not in trans.tsv (or no trans.tsv): the per-utterance text files are the only transcript.
        audio = f"{chapter_dir}/{utterance}.wav"
        if utterance in CORRUPT_UTTERANCES:
            yield Problem(Path(audio), "known corrupt recording of the LibriTTS release, skipped", key=utterance)
            continue
        normalized = _read_text(chapter_dir, f"{utterance}.normalized.txt", names)
        if not normalized:
            yield Problem(Path(audio), f"no transcript: not in {trans_name} and no {utterance}.normalized.txt", key=utterance)
            continue
        original = _read_text(chapter_dir, f"{utterance}.original.txt", names) or normalized
        yield _entry(utterance, audio, split, part, speaker, chapter, gender, normalized, original, snr)


def _entry(
    utterance: str,
    audio: str,
    split: str,
    part: str,
    speaker: str,
    chapter: str,
    gender: str | None,
    normalized: str,
    original: str,
    snr: dict[str, float],
) -> Entry:
    extra: dict[str, object] = {"original_text": original, "chapter": chapter}
    if utterance in snr:
        extra["snr"] = snr[utterance]
    return Entry(
        key=utterance,
        split=split,
        audio=Path(audio),
        subset=part,
        text=normalized,
        speaker=speaker,
        gender=gender,
        language="en",
        extra=extra,
    )


def _snr_by_utterance(path: str) -> dict[str, float]:
    """Utterance id -> SNR (dB) from book.tsv, whose last column is the SNR; unparsable rows are left out."""
    snr: dict[str, float] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return snr
    for line in lines:
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        try:
            value = float(fields[-1])
        except ValueError:
            continue
        if math.isfinite(value):
            snr[fields[0]] = value
    return snr


def _read_text(folder: str, name: str, names: set[str]) -> str | None:
    if name not in names:
        return None
    try:
        return Path(folder, name).read_text(encoding="utf-8").strip() or None
    except UnicodeDecodeError:
        return None
