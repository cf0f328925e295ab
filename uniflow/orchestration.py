"""How uniflow talks to Prefect: an embedded (ephemeral) server by default, a real one when configured.

Call ``configure_prefect`` before Prefect is imported: Prefect reads these settings at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def configure_prefect(project_dir: str | Path | None = None) -> str:
    """Point Prefect at a project-local home unless a server is configured; return the mode in words.

    With ``PREFECT_API_URL`` set, flows report to that server (a cluster's, or ``uniflow dashboard``).
    Without it, Prefect starts a temporary local server backed by SQLite under ``<project>/.prefect``.
    """
    home = Path(project_dir or os.getcwd()) / ".prefect"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The embedded server takes about 20 s to start on 2 cores, which is Prefect's default limit.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "1")
    if os.environ.get("PREFECT_API_URL"):
        return f"Prefect server at {os.environ['PREFECT_API_URL']}"
    os.environ.setdefault("PREFECT_HOME", str(home))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    return f"embedded Prefect (no server; state in {os.environ['PREFECT_HOME']})"


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run, where artifacts can be published; plain calls skip them."""
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


RUNNERS = ("processes", "dask", "ray")


def make_task_runner(runner: str = "processes", workers: int | None = None, address: str | None = None) -> Any:
    """The Prefect task runner a stage fans out on: local processes (default), Dask or Ray.

    ``address`` joins a running cluster (a Dask scheduler ``tcp://host:8786``, a Ray head ``ray://host:10001``
    or ``host:6379``); without it Dask and Ray start a local cluster of ``workers`` processes (default: all cores).
    """
    workers = workers or os.cpu_count() or 1
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
    if runner == "ray":
        from prefect_ray import RayTaskRunner

        if address:
            return RayTaskRunner(address=address)
        return RayTaskRunner(init_kwargs={"num_cpus": workers, "include_dashboard": False})
    if runner == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers)
    raise ValueError(f"unknown task runner {runner!r}; choose one of {', '.join(RUNNERS)}")


def on_task_runner(flow: Any, runner: str = "processes", workers: int | None = None, address: str | None = None) -> Any:
    """``flow`` with its tasks fanned out on ``runner`` (see ``make_task_runner``): what a cluster run changes."""
    return flow.with_options(task_runner=make_task_runner(runner, workers, address))
