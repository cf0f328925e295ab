"""Prefect flow: simulate SE and SR pairs, one task per shard-sized batch.

Runs on local processes by default, or on Dask (``prefect-dask``) or Ray (``prefect-ray``) with
``runner="dask"``/``"ray"``: a local cluster, or the cluster at ``address``. Parameters are sampled first (one task
per task and split), then batches render in parallel; a batch already marked ``.done`` returns at
once, so a rerun redoes nothing finished. Publishes pairs and hours per task and split, and
histograms of SNR, cutoff and augmentation counts.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.progress import outcomes_with_progress
from uniflow.corpora.recipe import SPLITS, load_plan, load_recipes
from uniflow.orchestration import on_task_runner
from uniflow.simulate.stage import (
    BatchResult,
    SimulationPlan,
    SimulationSummary,
    load_simulation_config,
    noise_cache,
    plan_simulation,
    render_batch,
    summarize,
    work_dir,
)
from uniflow.storage import Storage, remove_leftovers


@task(task_run_name="plan {sim_task}/{split}")
def plan_task(profile: str, datasets_dir: str, config_path: str, sim_task: str, split: str) -> SimulationPlan:
    plan = load_plan(f"{datasets_dir}/plan.yaml", load_recipes(datasets_dir))
    return plan_simulation(Storage.from_file(profile), sim_task, split, plan, load_simulation_config(config_path))


@task(retries=1, retry_delay_seconds=10, task_run_name="render {sim_task}/{split} batch {index}")
def render_task(profile: str, config_path: str, sim_task: str, split: str, index: int) -> BatchResult:
    return render_batch(Storage.from_file(profile), sim_task, split, index, load_simulation_config(config_path))


@task(task_run_name="summarize {sim_task}/{split}")
def summary_task(profile: str, sim_task: str, split: str) -> SimulationSummary:
    return summarize(Storage.from_file(profile), sim_task, split)


def _histogram_markdown(summaries: list[SimulationSummary]) -> str:
    lines = ["# Simulation parameters", ""]
    for summary in summaries:
        for name, counts in summary.histograms.items():
            total = max(1, sum(counts.values()))
            lines += [f"## {summary.task}/{summary.split}: {name}", "", "| bin | pairs | share |", "|---|---:|---|"]
            lines += [f"| {bin_} | {count} | {'#' * max(1, round(40 * count / total))} |" for bin_, count in counts.items()]
            lines.append("")
    return "\n".join(lines)


@flow(name="simulate", log_prints=True)
def simulate_flow(
    tasks: list[Literal["se", "sr"]] | None = None,
    profile: str = "storage_config/local.yaml",
    datasets_dir: str = "datasets",
    config_path: str | None = None,
) -> dict[str, Any]:
    """Plan, render and summarize the simulated pairs of ``tasks`` (default: SE and SR).

    ``config_path`` defaults to ``<datasets_dir>/simulation.yaml``.
    """
    config_path = config_path or f"{datasets_dir}/simulation.yaml"
    logger = get_run_logger()
    storage = Storage.from_file(profile)
    chosen = tasks or ["se", "sr"]
    # Left by a killed run (parameter files, batch tars, markers, generated RIRs); no writer of them runs now.
    for folder in [work_dir(storage, sim_task, split) for sim_task in chosen for split in SPLITS]:
        remove_leftovers(folder)
    remove_leftovers(storage.path("raw", "generated_rirs"))
    cache_root = noise_cache(storage).root  # decoded noise: a killed build leaves its temporary in a subfolder
    for folder in [cache_root, *(p for p in cache_root.rglob("*") if p.is_dir())] if cache_root.is_dir() else []:
        remove_leftovers(folder)
    if storage.is_local("reports"):
        remove_leftovers(storage.path("reports", "simulate"))
    plans = [plan_task(profile, datasets_dir, config_path, sim_task, split) for sim_task in chosen for split in SPLITS]
    plans = [plan for plan in plans if plan.batches]
    for plan in plans:
        logger.info("%s/%s: %d pairs in %d batches from %s", plan.task, plan.split, plan.pairs, plan.batches, plan.sources)
    futures = [render_task.submit(profile, config_path, p.task, p.split, index) for p in plans for index in range(p.batches)]
    outcomes = outcomes_with_progress(futures, "simulation-progress", "Batches rendered")
    failed = sum(isinstance(outcome, BaseException) for _, outcome in outcomes)
    if failed:
        raise RuntimeError(f"{failed} batch(es) failed after retries; rerun to resume from the finished ones")
    summaries = [summary_task(profile, plan.task, plan.split) for plan in plans]
    rows = [
        {"task": s.task, "split": s.split, "pairs": s.pairs, "hours": s.hours, "quarantined": s.quarantined,
         "reasons": ", ".join(f"{k}: {v}" for k, v in s.quarantine_reasons.items()) or "-"}
        for s in summaries
    ]
    if rows:
        create_table_artifact(rows, key="simulation", description="Simulated pairs and hours per task and split")
        create_markdown_artifact(_histogram_markdown(summaries), key="simulation-histograms",
                                 description="SNR, cutoff, filter and augmentation-count histograms")
    return {"summaries": [vars(s) for s in summaries], "reports": storage.url("reports", "simulate")}


def run_simulation(runner: str = "processes", workers: int | None = None, address: str | None = None, **options: Any) -> dict[str, Any]:
    """``simulate_flow`` (same keyword arguments) on the chosen task runner (local processes, Dask or Ray)."""
    return on_task_runner(simulate_flow, runner, workers, address)(**options)
