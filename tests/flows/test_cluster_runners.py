"""The CPU data stages on a local Dask cluster (prefect-dask) and a local Ray cluster (prefect-ray): the code
paths a cluster uses. The simulation runs on both; alignment on Dask and sharding on Ray.

Each runs through its CLI command with ``--runner dask|ray`` in a child process reporting to the test's Prefect
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
from uniflow.align.score import prepare_scores
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests
from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.shards.samples import required_files
from uniflow.shards.validate import validate_shard_set
from uniflow.simulate.stage import summarize

pytestmark = pytest.mark.prefect


# What each runner prints when it starts its local cluster: proof the batches ran there, not in local processes.
CLUSTER_STARTED = {
    "dask": "Creating a new Dask cluster with `distributed.deploy.local.LocalCluster`",
    "ray": "Creating a local Ray instance",
}


def run_on_cluster(runner: str, *arguments: str) -> subprocess.CompletedProcess:
    """``uniflow <arguments> --runner <runner> --workers 2`` in a child process reporting to the test's server;
    asserts it succeeded on a local cluster of that runner."""
    from prefect.settings import PREFECT_API_URL

    command = [str(Path(sys.executable).with_name("uniflow")), *arguments, "--runner", runner, "--workers", "2"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200", "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert CLUSTER_STARTED[runner] in run.stdout + run.stderr
    return run


def acquired(tmp_path: Path, mirror_url: str, recipes, names: tuple[str, ...]) -> tuple[object, str]:
    """Storage holding the manifests of ``names`` (from the mirror), and its profile's path."""
    storage = make_storage(tmp_path, mirror_url)
    for name in names:
        assert acquire_corpus(storage, recipes[name], progress=False).status == "done"
        prepare_manifests(recipes[name], storage, progress=False)
    return storage, write_profile(tmp_path, mirror_url)


@pytest.mark.parametrize("runner", sorted(CLUSTER_STARTED))
def test_simulate_flow_on_a_local_cluster(prefect_harness, recipes, mirror_url: str, tmp_path: Path, runner: str) -> None:
    storage, profile = acquired(tmp_path, mirror_url, recipes, ("ljspeech", "musan", "rirs_noises", "musdb18hq"))
    run_on_cluster(runner, "simulate", "--profile", profile, "--datasets", str(DATASETS),
                   "--config", str(DATASETS / "simulation_demo.yaml"))
    assert summarize(storage, "se", "train").pairs > 0 and summarize(storage, "sr", "train").pairs > 0
    assert latest_artifact("simulation") is not None
    histograms = latest_artifact("simulation-histograms")
    assert "snr_db" in str(histograms["data"]) and "cutoff_hz" in str(histograms["data"])


def test_align_flow_on_a_local_dask_cluster(prefect_harness, recipes, mirror_url: str, tmp_path: Path) -> None:
    storage, profile = acquired(tmp_path, mirror_url, recipes, ("libritts",))
    run_on_cluster("dask", "align", "libritts", "--profile", profile, "--datasets", str(DATASETS),
                   "--aligner", "pocketsphinx", "--chunk-size", "4", "--no-scores")
    assert (tmp_path / "manifests" / "libritts" / "train.align.jsonl.gz").exists()
    assert "libritts" in str(latest_artifact("alignment")["data"])


def test_shard_flow_on_a_local_ray_cluster(prefect_harness, recipes, mirror_url: str, tmp_path: Path) -> None:
    storage, profile = acquired(tmp_path, mirror_url, recipes, ("audiocaps", "m4singer"))
    for split in ("train", "test"):
        prepare_scores(storage, "m4singer", split)
    run_on_cluster("ray", "shards", "write", "--task", "t2a", "--task", "svs", "--profile", profile,
                   "--datasets", str(DATASETS), "--max-samples", "2")
    for task in ("t2a", "svs"):
        assert read_ledger(ShardSet(storage, "shards", task, "train")), f"no {task} shards written"
        report = validate_shard_set(storage, "shards", task, "train", required_files(task))
        assert report.ok, report.faults
