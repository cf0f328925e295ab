"""A real-speech LibriTTS-layout corpus for VAE training tests: LibriVox recordings at 24 kHz, real manifests."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from support import make_storage

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# The held-out utterance: the shortest "he might even have been made amiable himself" (3.3 s).
HELDOUT = "sense_and_sensibility_01_austen_64kb-0930"
# Train and test speakers differ, as LibriTTS ids are unique over the whole corpus.
TRAIN_CHAPTER, TEST_CHAPTER = ("1089", "134686"), ("121", "127105")


def _transcripts() -> dict[str, str]:
    pattern = re.compile(r"<s> (.*) </s> \((.*)\)")
    lines = (LIBRIVOX / "transcription").read_text(encoding="utf-8").splitlines()
    return {match.group(2): match.group(1) for match in map(pattern.match, lines) if match}


def _write_chapter(part_dir: Path, speaker: str, chapter: str, recordings: list[tuple[str, str]]) -> None:
    """LibriTTS chapter folder: <spk>_<chap>_<para>_<sent>.wav at 24 kHz and the chapter's trans.tsv."""
    chapter_dir = part_dir / speaker / chapter
    chapter_dir.mkdir(parents=True)
    rows = []
    for index, (name, text) in enumerate(recordings):
        audio, rate = sf.read(LIBRIVOX / f"{name}.wav", dtype="float32")
        utterance = f"{speaker}_{chapter}_{index:06d}_000000"
        sf.write(chapter_dir / f"{utterance}.wav", soxr.resample(audio, rate, 24000).astype(np.float32), 24000, subtype="PCM_16")
        rows.append(f"{utterance}\t{text}\t{text}")
    (chapter_dir / f"{speaker}_{chapter}.trans.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def speech_storage(tmp_path_factory: pytest.TempPathFactory, recipes):
    """Storage whose raw role holds a LibriTTS tree (4 train utterances, 1 test) and whose manifests are real."""
    from uniflow.corpora.manifest import prepare_manifests

    root = tmp_path_factory.mktemp("vae-speech")
    storage = make_storage(root)
    texts = _transcripts()
    parts = storage.path("raw", "libritts", "parts")
    train = [(name, text) for name, text in sorted(texts.items()) if name != HELDOUT]
    _write_chapter(parts / "train-clean-100" / "LibriTTS" / "train-clean-100", *TRAIN_CHAPTER, train)
    _write_chapter(parts / "test-clean" / "LibriTTS" / "test-clean", *TEST_CHAPTER, [(HELDOUT, texts[HELDOUT])])
    summary = prepare_manifests(recipes["libritts"], storage, progress=False)
    assert summary.recordings == {"test": 1, "train": 4}
    return storage
