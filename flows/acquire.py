"""Prefect flow: acquire corpora (download, verify, extract) and write their manifests.

Fans out one task per corpus part (an archive of up to tens of GB) with retries, then one task per
corpus for its Hugging Face or YouTube collection and one for its manifests. Publishes a table of
hours per corpus and split, and a markdown list of what was quarantined or needs a manual step.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.progress import outcomes_with_progress
from uniflow.corpora.acquire import (
    PartResult,
    acquire_part,
    acquire_remote_collection,
    part_is_complete,
    remove_interrupted_writes,
)
from uniflow.corpora.errors import ManualStepNeeded
from uniflow.corpora.manifest import ManifestSummary, prepare_manifests
from uniflow.corpora.recipe import HttpSource, ManualSource, Recipe, load_recipes
from uniflow.storage import Storage


def _select(recipes: dict[str, Recipe], corpora: list[str] | None) -> list[Recipe]:
    """The named recipes plus the corpora they require, in a stable order."""
    if not corpora:
        return [recipes[name] for name in sorted(recipes)]
    unknown = [name for name in corpora if name not in recipes]
    if unknown:
        raise ValueError(f"unknown corpora: {', '.join(unknown)} (known: {', '.join(sorted(recipes))})")
    selected: list[str] = []
    for name in corpora:
        for needed in [*recipes[name].requires, name]:
            if needed not in selected:
                selected.append(needed)
    return [recipes[name] for name in selected]


@task(retries=2, retry_delay_seconds=[10, 60], task_run_name="download {recipe.name}/{part_name}")
def download_part(profile: str, recipe: Recipe, part_name: str, progress: bool = False) -> PartResult:
    """Download, verify and extract one part; a missing manual file is a result, not a failure."""
    storage = Storage.from_file(profile)
    part = next(p for p in recipe.parts if p.name == part_name)
    try:
        return acquire_part(storage, recipe, part, progress=progress)
    except ManualStepNeeded as exc:
        return PartResult(recipe.name, part.name, "manual", str(exc))


@task(retries=1, retry_delay_seconds=30, task_run_name="collect {recipe.name}")
def collect_remote(profile: str, recipe: Recipe, progress: bool = False) -> dict[str, Any] | PartResult:
    """Fetch a corpus's Hugging Face snapshot or YouTube clips (a gated repo is a manual step)."""
    try:
        return acquire_remote_collection(Storage.from_file(profile), recipe, progress=progress)
    except ManualStepNeeded as exc:
        return PartResult(recipe.name, "remote", "manual", str(exc))


@task(task_run_name="manifest {recipe.name}")
def write_manifests(profile: str, recipe: Recipe, num_workers: int) -> ManifestSummary:
    return prepare_manifests(recipe, Storage.from_file(profile), num_workers=num_workers, progress=False)


def _hours_table(summaries: list[ManifestSummary], recipes: dict[str, Recipe]) -> list[dict[str, Any]]:
    rows = []
    for summary in summaries:
        recipe = recipes[summary.corpus]
        for split in sorted(summary.recordings):
            rows.append(
                {
                    "corpus": summary.corpus,
                    "split": split,
                    "recordings": summary.recordings[split],
                    "hours": round(summary.hours[split], 4),
                    "paper_hours": ", ".join(f"{task} {hours:g}" for task, hours in recipe.paper_hours.items()) or "-",
                    "quarantined": summary.quarantined,
                }
            )
    return rows


def _actions_markdown(manual: list[PartResult], failed: list[PartResult], summaries: list[ManifestSummary], profile: str) -> str:
    storage = Storage.from_file(profile)
    lines = ["# Acquisition: actions and quarantine", ""]
    if manual:
        lines += ["## Manual action required", ""]
        for corpus in sorted({result.corpus for result in manual}):
            message = next(result.message for result in manual if result.corpus == corpus)
            lines += [f"### {corpus}", "", "```", message, "```", ""]
    if failed:
        lines += ["## Failed", "", "| corpus | part | error |", "|---|---|---|"]
        lines += [f"| {r.corpus} | {r.part} | {r.message.replace('|', '/')} |" for r in failed]
        lines.append("")
    quarantined = [s for s in summaries if s.quarantined]
    lines += ["## Quarantine", ""]
    if not quarantined:
        lines.append("Nothing was quarantined.")
    for summary in quarantined:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in summary.quarantine_reasons.items())
        location = storage.url("manifests", summary.corpus, "quarantine.jsonl")
        lines.append(f"- **{summary.corpus}**: {summary.quarantined} recording(s) ({reasons}); list: `{location}`")
    return "\n".join(lines) + "\n"


@flow(name="acquire-corpora", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def acquire_flow(
    corpora: list[str] | None = None,
    profile: str = "storage_config/local.yaml",
    datasets_dir: str = "datasets",
    download: bool = True,
    manifests: bool = True,
    num_workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Acquire ``corpora`` (all recipes when empty) and write their manifests.

    ``progress`` shows byte-level progress bars on the terminal (the CLI turns it on for a TTY);
    the dashboard always gets the ``acquisition-progress`` artifact.
    """
    logger = get_run_logger()
    recipes = load_recipes(datasets_dir)
    selected = _select(recipes, corpora)
    storage = Storage.from_file(profile)
    logger.info("acquiring %d corpora into %s", len(selected), storage.url("raw"))

    for recipe in selected:  # left by a killed run; nothing writes into these folders yet
        remove_interrupted_writes(storage, recipe)
    part_futures: dict[str, list[PrefectFuture]] = {recipe.name: [] for recipe in selected}
    if download:
        for recipe in selected:
            for part in recipe.parts:
                part_futures[recipe.name].append(download_part.submit(profile, recipe, part.name, progress))
    all_parts = [future for futures in part_futures.values() for future in futures]
    results: list[PartResult] = []
    for future, outcome in outcomes_with_progress(all_parts, "acquisition-progress", "Parts downloaded and extracted"):
        if isinstance(outcome, PartResult):
            results.append(outcome)
        else:  # the task failed after its retries; ``outcome`` is the exception
            recipe_name, part_name = _names_of(future, part_futures, selected)
            results.append(PartResult(recipe_name, part_name, "failed", f"{type(outcome).__name__}: {outcome}"))

    blocked = {result.corpus for result in results if result.status in ("manual", "failed")}
    remote: dict[str, PrefectFuture] = {}
    if download:
        for recipe in selected:
            if recipe.name not in blocked and not isinstance(recipe.source, (HttpSource, ManualSource)):
                remote[recipe.name] = collect_remote.submit(profile, recipe, progress)
    for name, future in remote.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, PartResult):
            results.append(outcome)
            blocked.add(name)
        elif isinstance(outcome, BaseException):
            results.append(PartResult(name, "remote", "failed", f"{type(outcome).__name__}: {outcome}"))
            blocked.add(name)

    # A corpus whose reader reads another corpus's files waits for that corpus too.
    blocked |= {recipe.name for recipe in selected if any(name in blocked for name in recipe.requires)}
    summaries: list[ManifestSummary] = []
    if manifests:
        ready = [r for r in selected if r.name not in blocked and all(part_is_complete(storage, r, p) for p in r.parts)]
        manifest_futures = [write_manifests.submit(profile, recipe, num_workers) for recipe in ready]
        for recipe, future in zip(ready, manifest_futures, strict=True):
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, ManifestSummary):
                summaries.append(outcome)
            else:
                results.append(PartResult(recipe.name, "manifest", "failed", f"{type(outcome).__name__}: {outcome}"))

    manual = [r for r in results if r.status == "manual"]
    failed = [r for r in results if r.status == "failed"]
    table = _hours_table(summaries, recipes)
    if table:
        create_table_artifact(table, key="corpus-hours", description="Hours per corpus and split, measured from manifests")
    create_markdown_artifact(_actions_markdown(manual, failed, summaries, profile), key="acquisition-actions",
                             description="Quarantined recordings and corpora needing a manual step")
    for result in failed:
        logger.error("%s/%s failed: %s", result.corpus, result.part, result.message)
    for result in manual:
        logger.warning("%s needs a manual step (see the acquisition-actions artifact)", result.corpus)
    return {
        "parts": [asdict(result) for result in results],
        "manifests": [summary.to_json() for summary in summaries],
        "manual": sorted({r.corpus for r in manual}),
        "failed": sorted({f"{r.corpus}/{r.part}" for r in failed}),
        "raw": str(Path(storage.url("raw"))),
    }


def _names_of(future: PrefectFuture, part_futures: dict[str, list[PrefectFuture]], recipes: list[Recipe]) -> tuple[str, str]:
    by_name = {recipe.name: recipe for recipe in recipes}
    for name, futures in part_futures.items():
        if future in futures:
            return name, by_name[name].parts[futures.index(future)].name
    return "?", "?"
