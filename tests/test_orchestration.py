"""Task runners: local processes by default, Dask or Ray on a cluster, chosen by name."""

from __future__ import annotations

import pytest
from prefect.task_runners import ProcessPoolTaskRunner
from prefect_dask import DaskTaskRunner
from prefect_ray import RayTaskRunner

from uniflow.orchestration import make_task_runner


def test_runners_by_name_with_and_without_a_cluster_address() -> None:
    local = make_task_runner("processes", workers=3)
    assert isinstance(local, ProcessPoolTaskRunner) and local._max_workers == 3
    assert isinstance(make_task_runner("dask", address="tcp://scheduler:8786"), DaskTaskRunner)
    assert make_task_runner("dask", address="tcp://scheduler:8786").address == "tcp://scheduler:8786"
    ray = make_task_runner("ray", address="ray://head:10001")
    assert isinstance(ray, RayTaskRunner) and ray.address == "ray://head:10001"
    # Without an address each starts a local cluster of `workers` processes.
    assert make_task_runner("ray", workers=2).init_kwargs["num_cpus"] == 2
    assert make_task_runner("dask", workers=2).cluster_kwargs["n_workers"] == 2


def test_unknown_runner_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="processes, dask, ray"):
        make_task_runner("spark")
