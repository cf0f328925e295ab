"""The features flow: feature shards for every audio shard set, instruction embeddings, and a rerun that computes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from support import DATASETS, latest_artifact, make_storage, write_profile
from uniflow.features.stage import feature_set, read_feature_ledger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shards"))
from shard_set_builder import build_set  # noqa: E402

from feature_inputs import sample, save_vae, speech, write_set  # noqa: E402

pytestmark = pytest.mark.prefect


def test_features_flow_computes_then_reuses(prefect_harness, tmp_path: Path) -> None:
    from flows.features import run_features
    from uniflow.features.text import save_tiny_text_encoder

    build_set(tmp_path)  # se/train: 4 shards
    storage = make_storage(tmp_path)
    write_set(storage, "t2a", "train", [[sample("t2a", "t2a/audiocaps/a1", speech(0, 1.0), caption="A man speaks")]])
    encoders = {
        "text": {"name": "tiny-t5", "path": str(save_tiny_text_encoder(tmp_path / "t5")), "dtype": "fp32"},
        "vae": {"path": str(save_vae(tmp_path / "vae"))},
    }
    encoders_path = tmp_path / "features.yaml"
    encoders_path.write_text(yaml.safe_dump(encoders))
    profile = write_profile(tmp_path, None)
    arguments = {
        "tasks": ["se", "t2a"],
        "profile": profile,
        "encoders_path": str(encoders_path),
        "instructions_path": str(DATASETS / "instructions.yaml"),
        "device": "cpu",
        "workers": 1,
    }

    first = run_features(**arguments)
    rows = {(row["task"], row["split"]): row for row in first["sets"]}
    assert set(rows) == {("se", "train"), ("t2a", "train")}
    assert (rows["se", "train"]["computed"], rows["se", "train"]["reused"]) == (4, 0)
    assert (rows["t2a", "train"]["computed"], rows["t2a", "train"]["hours"]) == (1, pytest.approx(1 / 3600))
    assert first["instructions"]["written"] and first["device"] == "cpu"
    assert len(read_feature_ledger(feature_set(storage, "se", "train"))) == 4
    assert "computed" in str(latest_artifact("features")["data"])

    again = run_features(**arguments)
    assert all(row["computed"] == 0 and row["reused"] == row["shards"] for row in again["sets"])
    assert not again["instructions"]["written"]
