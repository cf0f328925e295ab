"""Manifest preparation: probing, quarantine with reasons, atomic outputs, stable ids."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from uniflow.corpora import manifest as manifest_module
from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.manifest import prepare_manifests, read_manifest, read_summary
from uniflow.corpora.recipe import Recipe
from uniflow.storage import ROLES, Storage, StorageProfile

RECIPE = Recipe.model_validate(
    {
        "name": "toy",
        "title": "Toy corpus",
        "homepage": "http://127.0.0.1/",
        "license": "CC BY 4.0",
        "tasks": ["tts"],
        "source": {"kind": "http", "parts": [{"name": "all", "url": "http://127.0.0.1/toy.tar.gz"}]},
    }
)


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Storage:
    storage = Storage(StorageProfile(name="t", roles={role: str(tmp_path / role) for role in ROLES}))
    root = storage.path("raw", "toy", "parts", "all")
    root.mkdir(parents=True)
    rate = 24000
    for index in range(6):
        sf.write(root / f"spk1_{index}.wav", 0.1 * np.ones(rate * (index + 1) // 2), rate)
    sf.write(root / "nan.wav", np.full(100, np.nan, dtype=np.float32), rate, subtype="FLOAT")
    (root / "cut.wav").write_bytes((root / "spk1_5.wav").read_bytes()[:2000])
    (root / "empty.wav").write_bytes(b"")

    def entries(corpus_dir: Path, recipe: Recipe):
        base = corpus_dir / "parts" / "all"
        for index in range(6):
            split = "test" if index == 5 else "train"
            yield Entry(key=f"spk1/{index:03d}", split=split, audio=base / f"spk1_{index}.wav", text=f"utterance {index}", speaker="spk1")
        yield Entry(key="bad/nan", split="train", audio=base / "nan.wav")
        yield Entry(key="bad/cut", split="train", audio=base / "cut.wav")
        yield Entry(key="bad/empty", split="train", audio=base / "empty.wav")
        yield Entry(key="bad/missing", split="train", audio=base / "missing.wav")
        yield Entry(key="spk1/000", split="train", audio=base / "spk1_0.wav")  # duplicate id
        yield Entry(key="bad.key", split="train", audio=base / "spk1_1.wav")
        yield Problem(path=base / "spk1_9.txt", reason="transcript missing", key="spk1/009")

    monkeypatch.setattr(manifest_module, "reader_for", lambda recipe: entries)
    return storage


def test_manifest_lines_and_summary(corpus: Storage) -> None:
    summary = prepare_manifests(RECIPE, corpus, progress=False)
    train = list(read_manifest(corpus, "toy", "train"))
    test = list(read_manifest(corpus, "toy", "test"))
    assert [r["id"] for r in train] == [f"toy/spk1/{i:03d}" for i in range(5)]
    assert [r["id"] for r in test] == ["toy/spk1/005"]
    first = train[0]
    assert first["audio"] == "toy/parts/all/spk1_0.wav"
    assert first["sample_rate"] == 24000 and first["channels"] == 1 and first["seconds"] == 0.5
    assert first["text"] == "utterance 0" and first["speaker"] == "spk1" and first["license"] == "CC BY 4.0"
    assert "caption" not in first, "absent fields are omitted, not null"
    assert summary.recordings == {"test": 1, "train": 5}
    assert summary.seconds["train"] == pytest.approx(0.5 + 1 + 1.5 + 2 + 2.5)
    assert read_summary(corpus, "toy")["hours"]["test"] == pytest.approx(3 / 3600, abs=1e-4)


def test_quarantine_lists_every_bad_recording_with_reason(corpus: Storage) -> None:
    summary = prepare_manifests(RECIPE, corpus, progress=False)
    lines = [json.loads(line) for line in corpus.read_text("manifests", "toy", "quarantine.jsonl").splitlines()]
    reasons = {line["id"]: line["reason"] for line in lines}
    assert set(reasons) == {"toy/bad/nan", "toy/bad/cut", "toy/bad/empty", "toy/bad/missing", "toy/spk1/000", "toy/bad.key", "toy/spk1/009"}
    assert "non-finite" in reasons["toy/bad/nan"]
    assert reasons["toy/bad/cut"].startswith("truncated")
    assert reasons["toy/bad/empty"].startswith("empty file")
    assert reasons["toy/bad/missing"] == "file not found"
    assert reasons["toy/spk1/000"] == "duplicate id"
    assert "dot" in reasons["toy/bad.key"]
    assert reasons["toy/spk1/009"] == "transcript missing"
    assert summary.quarantined == 7
    assert summary.quarantine_reasons["truncated"] == 1


def test_rebuild_is_byte_identical_and_parallel_matches(corpus: Storage) -> None:
    prepare_manifests(RECIPE, corpus, progress=False)
    first = corpus.path("manifests", "toy", "train.jsonl.gz").read_bytes()
    prepare_manifests(RECIPE, corpus, progress=False, num_workers=2)
    assert corpus.path("manifests", "toy", "train.jsonl.gz").read_bytes() == first
    assert gzip.decompress(first).count(b"\n") == 5


def test_failed_run_keeps_previous_manifests(corpus: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_manifests(RECIPE, corpus, progress=False)
    before = corpus.path("manifests", "toy", "train.jsonl.gz").read_bytes()

    def exploding_reader(corpus_dir: Path, recipe: Recipe):
        yield Entry(key="spk1/000", split="train", audio=corpus_dir / "parts" / "all" / "spk1_0.wav")
        raise RuntimeError("disk vanished")

    monkeypatch.setattr(manifest_module, "reader_for", lambda recipe: exploding_reader)
    with pytest.raises(RuntimeError, match="disk vanished"):
        prepare_manifests(RECIPE, corpus, progress=False)
    assert corpus.path("manifests", "toy", "train.jsonl.gz").read_bytes() == before


def test_unacquired_corpus_is_a_clear_error(tmp_path: Path) -> None:
    storage = Storage(StorageProfile(name="t", roles={role: str(tmp_path / role) for role in ROLES}))
    with pytest.raises(FileNotFoundError, match="uniflow download toy"):
        prepare_manifests(RECIPE, storage, progress=False)
