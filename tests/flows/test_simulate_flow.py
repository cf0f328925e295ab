"""The simulation flow on a local Dask cluster (prefect-dask) and a local Ray cluster (prefect-ray): the code
paths a cluster uses.

Each runs through `uniflow simulate --runner dask|ray` in a child process reporting to the test's Prefect
server: Dask's and Ray's runtimes leave process-wide state behind (handlers, threads) that makes later forked
DataLoader workers of the same test process die, which a real training process, never having run them, does
not meet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import DATASETS, PROJECT, latest_artifact, make_storage, write_profile
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests
from uniflow.simulate.stage import summarize

pytestmark = pytest.mark.prefect


# What each runner prints when it starts its local cluster: proof the batches ran there, not in local processes.
CLUSTER_STARTED = {
    "dask": "Creating a new Dask cluster with `distributed.deploy.local.LocalCluster`",
    "ray": "Creating a local Ray instance",
}


@pytest.mark.parametrize("runner", sorted(CLUSTER_STARTED))
def test_simulate_flow_on_a_local_cluster(prefect_harness, recipes, mirror_url: str, tmp_path: Path, runner: str) -> None:
    from prefect.settings import PREFECT_API_URL

    storage = make_storage(tmp_path, mirror_url)
    for name in ("ljspeech", "musan", "rirs_noises", "musdb18hq"):
        assert acquire_corpus(storage, recipes[name], progress=False).status == "done"
        prepare_manifests(recipes[name], storage, progress=False)
    profile = write_profile(tmp_path, mirror_url)

    command = [str(Path(sys.executable).with_name("uniflow")), "simulate", "--runner", runner, "--workers", "2",
               "--profile", profile, "--datasets", str(DATASETS), "--config", str(DATASETS / "simulation_demo.yaml")]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200", "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert summarize(storage, "se", "train").pairs > 0 and summarize(storage, "sr", "train").pairs > 0
    assert CLUSTER_STARTED[runner] in run.stdout + run.stderr
    assert latest_artifact("simulation") is not None
    histograms = latest_artifact("simulation-histograms")
    assert "snr_db" in str(histograms["data"]) and "cutoff_hz" in str(histograms["data"])
