"""`uniflow status`: each stage's state read back from the files the stages write."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from support import DATASETS, make_storage
from uniflow.corpora.recipe import load_plan, load_recipes
from uniflow.shards.ledger import ShardSet, ledger_totals, read_ledger, write_ledger
from uniflow.status import NO_SPLIT, StatusReport, status
from uniflow.storage import Storage

sys.path.insert(0, str(Path(__file__).resolve().parent / "shards"))
from shard_set_builder import build_set  # noqa: E402

LIBRITTS_PARTS = [part.name for part in load_recipes(DATASETS)["libritts"].parts]  # 7 archives


@pytest.fixture(scope="module")
def plan():
    return load_plan(DATASETS / "plan.yaml", load_recipes(DATASETS))


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return make_storage(tmp_path)


def report_of(storage: Storage, plan) -> StatusReport:
    return status(storage, plan, DATASETS)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def write_libritts_summary(storage: Storage, quarantined: int = 2) -> None:
    """The summary ``prepare_manifests`` writes, with a manifest per split beside it."""
    folder = storage.path("manifests", "libritts")
    for split in ("train", "valid", "test"):
        write_json(folder / f"{split}.jsonl.gz", {})  # presence only: status never opens manifests
    write_json(folder / "summary.json", {
        "corpus": "libritts", "version": 1,
        "recordings": {"test": 4, "train": 10, "valid": 3},
        "seconds": {"test": 36.0, "train": 7200.0, "valid": 18.0},
        "quarantined": quarantined, "quarantine_reasons": {"truncated": quarantined},
    })


def test_an_empty_build_is_missing_everywhere(storage: Storage, plan) -> None:
    report = report_of(storage, plan)
    assert {row.state for row in report.rows} == {"missing"}
    assert report.exit_code() == 2
    assert [row.split for row in report.rows if row.stage == "acquire" and row.name == "libritts"] == [
        NO_SPLIT, "train", "valid", "test"]
    assert report.row("train", "vae").detail == "no run"
    assert report.row("train", "uniflow").state == "missing"


def test_acquire_counts_markers_recordings_hours_and_quarantine(storage: Storage, plan) -> None:
    parts = storage.path("raw", "libritts", "parts")
    parts.mkdir(parents=True)
    for name in LIBRITTS_PARTS[:2]:
        (parts / f"{name}.completed").write_text("{}")
    (parts / LIBRITTS_PARTS[2]).mkdir()  # extracted in part, never marked: an interrupted extraction
    write_libritts_summary(storage)

    downloads = report_of(storage, plan).row("acquire", "libritts")
    assert downloads.state == "partial"
    assert downloads.counts == {"parts": 7, "parts_done": 2, "quarantined": 2}
    assert "train-other-500" in downloads.detail and "truncated 2" in downloads.detail

    shutil.rmtree(parts / LIBRITTS_PARTS[2])
    for name in LIBRITTS_PARTS[2:]:
        (parts / f"{name}.completed").write_text("{}")
    report = report_of(storage, plan)
    assert report.row("acquire", "libritts").state == "done"
    train = report.row("acquire", "libritts", "train")
    assert (train.state, train.counts, train.hours) == ("done", {"recordings": 10}, pytest.approx(2.0))
    assert report.row("acquire", "libritts", "test").hours == pytest.approx(0.01)


def test_an_official_split_without_recordings_is_missing(storage: Storage, plan) -> None:
    write_libritts_summary(storage)
    summary_path = storage.path("manifests", "libritts", "summary.json")
    summary = json.loads(summary_path.read_text())
    del summary["recordings"]["valid"], summary["seconds"]["valid"]
    summary_path.write_text(json.dumps(summary))
    report = report_of(storage, plan)
    assert report.row("acquire", "libritts", "valid").state == "missing"
    assert report.row("acquire", "libritts", "train").state == "done"


def test_alignment_done_partial_and_failed(storage: Storage, plan) -> None:
    write_libritts_summary(storage)
    write_json(storage.path("manifests", "libritts", "train.align_summary.json"), {
        "corpus": "libritts", "split": "train", "aligner": "sphinx", "aligned": 9, "failed": 1,
        "failures_by_reason": {"no speech": 1}, "hours_aligned": 1.8, "skipped_without_text": 0, "chunks": 1,
    })
    work = storage.path("work", "align", "libritts", "valid")
    write_json(work / "plan.json", {"chunks": 3})
    write_json(work / "chunk_00001.done", {"aligned": 2, "failed": 1, "seconds": 36.0, "at": 0})
    write_json(storage.path("manifests", "libritts", "test.align_summary.json"), {
        "corpus": "libritts", "split": "test", "aligner": "sphinx", "aligned": 0, "failed": 4,
        "failures_by_reason": {"aligner crashed": 4}, "hours_aligned": 0.0, "chunks": 1,
    })
    report = report_of(storage, plan)

    train = report.row("align", "libritts", "train")
    assert (train.state, train.counts["aligned"], train.counts["failed"], train.hours) == ("done", 9, 1, 1.8)
    valid = report.row("align", "libritts", "valid")
    assert valid.state == "partial"
    assert valid.counts == {"aligned": 2, "failed": 1, "chunks": 3, "chunks_done": 1}
    assert valid.hours == pytest.approx(0.01)
    assert report.row("align", "libritts", "test").state == "failed"
    assert report.exit_code() == 1


def test_simulation_batches_against_their_done_markers(storage: Storage, plan) -> None:
    folder = storage.path("work", "simulate", "se", "train")
    write_json(folder / "plan.json", {"task": "se", "split": "train", "batches": 2, "pairs": 5, "skipped": 0})
    write_json(folder / "batch_00000.done", {"pairs": 3, "quarantined": 1, "seconds": 1800.0})
    partial = report_of(storage, plan).row("simulate", "se", "train")
    assert partial.state == "partial"
    assert partial.counts == {"batches": 2, "batches_done": 1, "pairs": 3, "quarantined": 1}

    write_json(folder / "batch_00001.done", {"pairs": 2, "quarantined": 0, "seconds": 1800.0})
    done = report_of(storage, plan).row("simulate", "se", "train")
    assert (done.state, done.counts["pairs"], done.hours) == ("done", 5, pytest.approx(1.0))


def test_shards_report_the_ledger_hours_and_interrupted_writes(tmp_path: Path, storage: Storage, plan) -> None:
    build_set(tmp_path)  # se/train: 10 samples in 4 shards, with their ledger
    shard_set = ShardSet(storage, "shards", "se", "train")
    totals = ledger_totals(read_ledger(shard_set))

    row = report_of(storage, plan).row("shards", "se", "train")
    assert (row.state, row.counts["shards"], row.counts["samples"]) == ("done", 4, 10)
    assert row.hours == pytest.approx(totals.hours)

    # What a killed writer leaves: a temporary beside the shards (atomic_write's naming).
    Path(shard_set.url(".se-train-000001.tar.k3j9.tmp")).write_bytes(b"half a shard")
    row = report_of(storage, plan).row("shards", "se", "train")
    assert (row.state, row.counts["temporaries"]) == ("partial", 1)

    os.unlink(shard_set.url(".se-train-000001.tar.k3j9.tmp"))
    os.unlink(shard_set.url("se-train-000002.tar"))
    row = report_of(storage, plan).row("shards", "se", "train")
    assert row.state == "partial" and "se-train-000002.tar" in row.detail


def write_feature_shards(storage: Storage, audio_names: list[str], input_sha256: dict[str, str] | None = None) -> None:
    """Feature shards (the audio tar's bytes stand in) and their ledger lines, as the feature stage records them."""
    from uniflow.features.stage import FeatureShardRecord, SkippedSample, feature_set

    audio = {record.name: record for record in read_ledger(ShardSet(storage, "shards", "se", "train"))}
    features = feature_set(storage, "se", "train")
    records = []
    for name in audio_names:
        target = Path(features.url(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ShardSet(storage, "shards", "se", "train").url(name), target)
        record = audio[name]
        records.append(FeatureShardRecord(
            name=name, sha256=record.sha256, bytes=target.stat().st_size, samples=record.samples - 1,
            seconds=record.seconds, keys_sha256=record.keys_sha256, cache_key="k",
            input_sha256=(input_sha256 or {}).get(name, record.sha256), input_samples=record.samples, encoders={},
            skipped=[SkippedSample(key="x", reason="target.flac: shorter than one latent frame")],
        ))
    write_ledger(features, records)


def test_an_audio_shard_without_its_feature_shard_is_partial(tmp_path: Path, storage: Storage, plan) -> None:
    build_set(tmp_path)
    audio = read_ledger(ShardSet(storage, "shards", "se", "train"))
    names = [record.name for record in audio]
    write_feature_shards(storage, names[:-1])
    row = report_of(storage, plan).row("features", "se", "train")
    assert row.state == "partial"
    kept = sum(record.samples - 1 for record in audio[:-1])  # one skipped sample per feature shard
    assert row.counts == {"audio_shards": 4, "feature_shards": 3, "missing": 1, "samples": kept, "skipped": 3}

    # A feature shard made from an older version of its audio shard does not count either.
    write_feature_shards(storage, names, input_sha256={names[0]: "0" * 64})
    assert report_of(storage, plan).row("features", "se", "train").counts["missing"] == 1

    write_feature_shards(storage, names)
    row = report_of(storage, plan).row("features", "se", "train")
    assert (row.state, row.counts["missing"], row.counts["skipped"]) == ("done", 0, 4)
    assert report_of(storage, plan).row("features", "tts", "train").detail == "no audio shards"


def make_checkpoint(run: Path, step: int, steps: int, complete: bool = True) -> None:
    checkpoint = run / f"step-{step}"
    checkpoint.mkdir(parents=True)
    if complete:  # trainer.json is written last: without it the checkpoint is incomplete
        (checkpoint / "trainer.json").write_text(json.dumps({"step": step, "config": {"steps": steps}}))
    latest = run / "latest"
    if latest.is_symlink():
        latest.unlink()
    os.symlink(checkpoint.name, latest)


def test_training_runs_by_their_latest_checkpoint(storage: Storage, plan) -> None:
    make_checkpoint(storage.path("checkpoints", "vae", "demo"), 20, 50)
    make_checkpoint(storage.path("checkpoints", "uniflow", "tiny"), 100, 100)
    report = report_of(storage, plan)
    vae = report.row("train", "vae/demo")
    assert (vae.state, vae.counts) == ("partial", {"step": 20, "steps": 50})
    assert report.row("train", "uniflow/tiny").state == "done"

    make_checkpoint(storage.path("checkpoints", "vae", "demo"), 50, 50, complete=False)
    assert report_of(storage, plan).row("train", "vae/demo").state == "failed"


def test_markdown_and_exit_code_of_a_finished_report(storage: Storage, plan) -> None:
    make_checkpoint(storage.path("checkpoints", "vae", "demo"), 50, 50)
    make_checkpoint(storage.path("checkpoints", "uniflow", "tiny"), 100, 100)
    report = report_of(storage, plan)
    finished = StatusReport(report.stage_rows("train"))
    assert finished.exit_code() == 0
    text = report.markdown()
    assert "## train" in text and "| vae/demo | - | done | step 50, steps 50 |" in text
    assert "| libritts | train | missing |" in text


def test_a_split_with_nothing_to_simulate_is_not_expected(storage: Storage, plan) -> None:
    """The simulate flow plans every split; one whose inputs have no recordings plans no pairs, and that is fine."""
    write_json(storage.path("work", "simulate", "sr", "valid", "plan.json"), {"batches": 0, "pairs": 0, "skipped": 0})
    write_json(storage.path("work", "simulate", "se", "valid", "plan.json"), {"batches": 0, "pairs": 0, "skipped": 2})
    report = report_of(storage, plan)
    assert [row.split for row in report.stage_rows("simulate") if row.name == "sr"] == ["train"]
    assert report.row("simulate", "se", "valid").state == "failed"
