"""The main job's chain on a smaller demo: the rebuild flow (every data stage in order, from the mini mirror to
feature shards), a short training of the tiny model, its evaluation (Table 1 layout) and the data card."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS, PROJECT, latest_artifact
from uniflow.features.stage import read_feature_ledger
from uniflow.shards.ledger import ShardSet, ledger_totals, read_ledger
from uniflow.storage import Storage

pytestmark = pytest.mark.prefect

TASKS = ("tts", "svs", "t2a", "t2m", "se", "sr", "v2a")


def test_demo_chain_rebuilds_trains_evaluates_and_reports_and_a_rerun_recomputes_nothing(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.rebuild import rebuild_flow

    monkeypatch.setenv("UNIFLOW_DATA", str(tmp_path / "demo"))
    monkeypatch.setenv("UNIFLOW_MIRROR_URL", "http://127.0.0.1:9")  # restored after the test; the flow sets its own
    profile = str(PROJECT / "storage_config" / "demo.yaml")
    options = {"profile": "demo", "storage_profile": profile, "datasets_dir": str(DATASETS),
               "mirror_dir": str(tmp_path / "mirror"), "demo_vae_steps": 2}
    first = rebuild_flow(**options)

    assert first["stages"] == ["acquire", "align", "simulate", "shard", "features"]
    assert not [part for part in first["acquire"]["parts"] if part["status"] == "failed"]
    assert first["vae"]["step"] == 2
    storage = Storage.from_file(profile)
    for task in TASKS:
        audio = read_ledger(ShardSet(storage, "shards", task, "train"))
        features = read_feature_ledger(ShardSet(storage, "features", task, "train"))
        assert audio and [r.name for r in features] == [r.name for r in audio], task
        assert sum(r.samples for r in features) == ledger_totals(audio).samples, task
    assert "features" in latest_artifact("rebuild")["data"]

    again = rebuild_flow(**{**options, "stages": ["shard", "features"]})
    assert all(row["written"] == 0 for row in again["shard"]["sets"])
    assert all(row["computed"] == 0 and row["reused"] == row["shards"] for row in again["features"]["sets"])

    # The data card of the build, with the hours table (its rendering is checked in tests/reporting).
    card = (storage.path("reports") / "data_card.html").read_text()
    assert '<table id="hours"' in card and "libritts" in card
    assert "data_card.html" in latest_artifact("data-card")["data"]

    # Train the tiny model a few steps on the feature shards, then evaluate it as the demo does.
    from flows.evaluate import evaluate_flow, prepare_demo_backbones
    from uniflow.train.trainer import resolve_train_config, train

    vae_dir = Path(first["vae"]["checkpoint"]) / "vae"
    config = resolve_train_config("tiny", str(DATASETS)).model_copy(update={
        "steps": 2, "checkpoint_every": 2, "generate_items": 1, "vae_dir": str(vae_dir), "trackers": [],
        "tiny_feature_dims": {"text": 32, "video": 32, "instruction": 32},
    })  # fmt: skip
    trained = train(config, storage, "chain", resume=False)
    assert trained.step == 2 and (trained.checkpoint / "model" / "config.json").is_file()
    prepare_demo_backbones(storage.path("checkpoints").parent / "models" / "eval")
    evaluation = evaluate_flow(checkpoint=str(trained.checkpoint.parent), profile=profile,
                               config_path=str(DATASETS / "evaluation_demo.yaml"), max_items=2)
    rows = {(row["task"], row["metric"]): row for row in evaluation["rows"]}
    assert set(evaluation["generated"]) == set(TASKS) and all(count > 0 for count in evaluation["generated"].values())
    # What has a backbone here is computed, with a card; a 2-step model's noise may leave SVS nothing voiced
    # and V2A no onset to align, which the rows then say.
    for computed in [("tts", "wer"), ("tts", "speaker_similarity"), ("se", "pesq_wb"), ("se", "stoi"), ("sr", "lsd"),
                     ("t2a", "fd"), ("t2a", "clap")]:
        assert rows[computed]["value"] is not None and len(rows[computed]["card_sha256"]) == 64, (computed, rows[computed])
    for maybe in [("svs", "f0_rmse"), ("v2a", "sync_offset_onset")]:
        assert rows[maybe]["value"] is not None or rows[maybe]["reason"], maybe
    assert rows[("v2a", "imagebind")]["value"] is None and "imagebind" in rows[("v2a", "imagebind")]["reason"]
    table = Path(evaluation["directory"], "evaluation.md").read_text()
    assert "| TTS | WER↓ (%) |" in table and "| steps (NFE per guidance branch) | 10 |" in table
    assert "| SE | PESQ↑ |" in latest_artifact(f"evaluation-{evaluation['name']}")["data"]
    assert not list(Path(evaluation["directory"]).rglob("*.f32")), "the clips' scratch files are removed after scoring"
