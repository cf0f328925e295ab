"""The rebuild flow on the demo profile: every data stage in order, from the mini mirror to feature shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS, PROJECT, latest_artifact
from uniflow.features.stage import read_feature_ledger
from uniflow.shards.ledger import ShardSet, ledger_totals, read_ledger
from uniflow.storage import Storage

pytestmark = pytest.mark.prefect

TASKS = ("tts", "svs", "t2a", "t2m", "se", "sr", "v2a")


def test_demo_rebuild_runs_every_stage_and_a_rerun_recomputes_nothing(
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
