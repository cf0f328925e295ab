"""The simulation flow on a local Dask cluster through prefect-dask: the code path a cluster uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS, latest_artifact, make_storage, write_profile
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests

pytestmark = pytest.mark.prefect


def test_simulate_flow_on_dask(prefect_harness, recipes, mirror_url: str, tmp_path: Path) -> None:
    from flows.simulate import run_simulation

    storage = make_storage(tmp_path, mirror_url)
    for name in ("ljspeech", "musan", "rirs_noises", "musdb18hq"):
        assert acquire_corpus(storage, recipes[name], progress=False).status == "done"
        prepare_manifests(recipes[name], storage, progress=False)
    profile = write_profile(tmp_path, mirror_url)

    outcome = run_simulation(["se", "sr"], profile, str(DATASETS), runner="dask", workers=2,
                             config_path=str(DATASETS / "simulation_demo.yaml"))
    by_task = {summary["task"]: summary for summary in outcome["summaries"]}
    assert by_task["se"]["pairs"] > 0 and by_task["sr"]["pairs"] > 0
    assert latest_artifact("simulation") is not None
    histograms = latest_artifact("simulation-histograms")
    assert "snr_db" in str(histograms["data"]) and "cutoff_hz" in str(histograms["data"])
