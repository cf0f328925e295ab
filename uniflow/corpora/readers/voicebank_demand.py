"""VoiceBank+DEMAND: one Entry per clean file, with its noisy twin in ``extra["noisy"]``.

Each zip extracts to a folder named like it (``parts/<zip stem>/<zip stem>/p226_001.wav``). A set
(train or test) is three zips: clean wav, noisy wav, and transcripts (one .txt per utterance). The
split of a set is the split the recipe lists its clean zip under.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe

# (subset, clean zip, noisy zip, transcript zip) of each set of the release.
SETS: tuple[tuple[str, str, str, str], ...] = (
    ("trainset_28spk", "clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "trainset_28spk_txt"),
    ("testset", "clean_testset_wav", "noisy_testset_wav", "testset_txt"),
)


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """Every clean/noisy pair of the sets whose clean zip a split names.

    ``extra["noisy"]`` is the noisy file's path relative to the raw root (the folder holding the
    corpus folder), the same base as the manifest's ``audio`` field.
    """
    corpus_dir = Path(corpus_dir)
    for subset, clean, noisy, transcripts in SETS:
        split = recipe.split_of(clean)
        if split is None:
            continue
        clean_dir = corpus_dir / "parts" / clean / clean
        noisy_dir = corpus_dir / "parts" / noisy / noisy
        if not clean_dir.is_dir():
            yield Problem(clean_dir, f"part {clean} is not extracted")
            continue
        if not noisy_dir.is_dir():
            yield Problem(noisy_dir, f"part {noisy} is not extracted: no noisy twin for any file of {clean}")
            continue
        clean_files = _stems(clean_dir, ".wav")
        noisy_files = _stems(noisy_dir, ".wav")
        text_dir = corpus_dir / "parts" / transcripts / transcripts
        text_files = _stems(text_dir, ".txt") if text_dir.is_dir() else set()
        noisy_base = Path(corpus_dir.name, "parts", noisy, noisy)
        for utterance in sorted(clean_files):
            audio = clean_dir / f"{utterance}.wav"
            if utterance not in noisy_files:
                yield Problem(audio, f"clean file without its noisy twin {noisy}/{utterance}.wav", key=utterance)
                continue
            yield Entry(
                key=utterance,
                split=split,
                audio=audio,
                subset=subset,
                text=_transcript(text_dir, utterance) if utterance in text_files else None,
                speaker=utterance.split("_", 1)[0],
                language="en",
                extra={"noisy": (noisy_base / f"{utterance}.wav").as_posix()},
            )
        for utterance in sorted(noisy_files - clean_files):
            yield Problem(noisy_dir / f"{utterance}.wav", f"noisy file without its clean twin {clean}/{utterance}.wav", key=utterance)


def _stems(folder: Path, suffix: str) -> set[str]:
    # "._*" files are macOS resource forks some copies of the zips carry; they are not recordings.
    with os.scandir(folder) as listing:
        return {item.name[: -len(suffix)] for item in listing if item.name.endswith(suffix) and not item.name.startswith(".")}


def _transcript(folder: Path, utterance: str) -> str | None:
    # The transcripts are plain ASCII; a stray byte should not cost the pair, only that character.
    return (folder / f"{utterance}.txt").read_text(encoding="utf-8", errors="replace").strip() or None
