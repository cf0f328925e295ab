"""Prefect flow: align the TTS corpora (one task per chunk) and convert the SVS scores.

Chunks are planned from the manifests, aligned in parallel with retries (a chunk already marked
``.done`` returns at once, so a rerun redoes nothing finished), then merged per split. Publishes
a table artifact: utterances aligned and failed (by reason) and hours covered, per corpus and split.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.task_runners import ProcessPoolTaskRunner

from flows.progress import outcomes_with_progress
from uniflow.align.aligners import AlignerName, make_aligner, resolve_aligner_name
from uniflow.align.score import ScoreSummary, prepare_scores
from uniflow.align.stage import (
    DEFAULT_CHUNK_SIZE,
    AlignSummary,
    ChunkPlan,
    ChunkResult,
    align_chunk,
    merge_chunks,
    plan_chunks,
    work_dir,
)
from uniflow.corpora.recipe import SPLITS, load_plan, load_recipes
from uniflow.orchestration import on_task_runner
from uniflow.storage import Storage, remove_leftovers


@task(task_run_name="plan {corpus}/{split}")
def plan_task(profile: str, corpus: str, split: str, aligner: str, chunk_size: int) -> ChunkPlan:
    return plan_chunks(Storage.from_file(profile), corpus, split, aligner, chunk_size)


@task(retries=1, retry_delay_seconds=30, task_run_name="align {corpus}/{split} chunk {index}")
def align_chunk_task(profile: str, corpus: str, split: str, index: int, aligner: str, mfa_settings_json: str | None) -> ChunkResult:
    return align_chunk(Storage.from_file(profile), corpus, split, index, make_aligner(aligner, mfa_settings_json))


@task(task_run_name="merge {corpus}/{split}")
def merge_task(profile: str, corpus: str, split: str) -> AlignSummary:
    return merge_chunks(Storage.from_file(profile), corpus, split)


@task(task_run_name="scores {corpus}/{split}")
def scores_task(profile: str, corpus: str, split: str) -> ScoreSummary:
    return prepare_scores(Storage.from_file(profile), corpus, split)


def _default_corpora(datasets_dir: str, task_name: str) -> list[str]:
    plan = load_plan(f"{datasets_dir}/plan.yaml", load_recipes(datasets_dir))
    return [source.corpus for source in plan.tasks[task_name].sources if source.role == "target"]


def _splits_with_manifests(storage: Storage, corpus: str) -> list[str]:
    return [split for split in SPLITS if storage.exists("manifests", corpus, f"{split}.jsonl.gz")]


# Processes, not threads: the offline aligner holds the GIL while decoding (measured: two threads
# take as long as one), and each worker process keeps its own decoder.
@flow(name="align", task_runner=ProcessPoolTaskRunner(max_workers=os.cpu_count()), log_prints=True)
def align_flow(
    tts_corpora: list[str] | None = None,
    svs_corpora: list[str] | None = None,
    profile: str = "storage_config/local.yaml",
    datasets_dir: str = "datasets",
    aligner: AlignerName = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    mfa_settings_json: str | None = None,
) -> dict[str, Any]:
    """Align ``tts_corpora`` (default: the plan's TTS sources) and score ``svs_corpora`` (the plan's SVS)."""
    logger = get_run_logger()
    storage = Storage.from_file(profile)
    tts = tts_corpora if tts_corpora is not None else _default_corpora(datasets_dir, "tts")
    svs = svs_corpora if svs_corpora is not None else _default_corpora(datasets_dir, "svs")
    chosen = resolve_aligner_name(aligner, mfa_settings_json)
    logger.info("aligning %s with %s; scores for %s", tts or "nothing", chosen, svs or "nothing")

    # Left by a killed run (chunk files, merged alignments, scores); no writer of these corpora runs now.
    for corpus in tts + svs:
        for split in SPLITS:
            remove_leftovers(work_dir(storage, corpus, split))
        if storage.is_local("manifests"):
            remove_leftovers(storage.path("manifests", corpus))
    splits = [(corpus, split) for corpus in tts for split in _splits_with_manifests(storage, corpus)]
    missing = [corpus for corpus in tts + svs if not _splits_with_manifests(storage, corpus)]
    for corpus in missing:
        logger.warning("%s has no manifests yet: run `uniflow acquire %s` first", corpus, corpus)
    plans = [plan_task(profile, corpus, split, chosen, chunk_size) for corpus, split in splits]
    futures = [
        align_chunk_task.submit(profile, plan.corpus, plan.split, index, chosen, mfa_settings_json)
        for plan in plans
        for index in range(plan.chunks)
    ]
    outcomes = outcomes_with_progress(futures, "alignment-progress", "Chunks aligned")
    failed_chunks = sum(isinstance(outcome, BaseException) for _, outcome in outcomes)
    if failed_chunks:
        raise RuntimeError(f"{failed_chunks} chunk(s) failed after retries; rerun to resume from the finished ones")

    summaries = [merge_task(profile, corpus, split) for corpus, split in splits]
    scores = [scores_task(profile, corpus, split) for corpus in svs for split in _splits_with_manifests(storage, corpus)]
    rows = [
        {
            "corpus": s.corpus, "split": s.split, "kind": f"alignment ({s.aligner})", "done": s.aligned, "failed": s.failed,
            "failures": ", ".join(f"{reason}: {n}" for reason, n in s.failures_by_reason.items()) or "-",
            "hours": s.hours_aligned,
        }
        for s in summaries
    ] + [
        {
            "corpus": s.corpus, "split": s.split, "kind": "singing score", "done": s.scores, "failed": s.quarantined,
            "failures": ", ".join(f"{reason}: {n}" for reason, n in s.quarantine_reasons.items()) or "-",
            "hours": s.hours,
        }
        for s in scores
    ]
    if rows:
        create_table_artifact(rows, key="alignment", description="Utterances aligned / scored, failures by reason, hours covered")
    return {"aligner": chosen, "alignments": [s.to_json() for s in summaries], "scores": [vars(s) for s in scores],
            "missing": missing}


def run_alignment(runner: str = "processes", workers: int | None = None, address: str | None = None, **options: Any) -> dict[str, Any]:
    """``align_flow`` (same keyword arguments) on the chosen task runner (local processes, Dask or Ray)."""
    return on_task_runner(align_flow, runner, workers, address)(**options)
