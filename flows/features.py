"""Prefect flow: a feature shard for every audio shard (VAE latents, T5, CLIP, speaker), one task per shard.

The flow loads the encoders once to learn their identities, compares every audio shard's cache key
with the feature ledger, and submits only the shards whose key changed or whose output is missing
or damaged; the ledger is rewritten after each finished shard, so a killed run loses only the
shards in flight. It also writes the instruction embeddings file (its own cache key).

GPU-aware: ``device="auto"`` uses CUDA when visible, with one worker process per GPU (each shard
goes to GPU ``index % count``); on CPU the cores are shared out between the worker processes.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from functools import lru_cache
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ProcessPoolTaskRunner

from flows.progress import outcomes_with_progress
from uniflow.corpora.recipe import SPLITS, TASKS
from uniflow.features.config import EncodersConfig, load_encoders_config
from uniflow.features.stage import (
    FeatureEncoders,
    FeatureShardRecord,
    extract_feature_shard,
    feature_set,
    identities_for_task,
    load_feature_encoders,
    plan_features,
    remove_stale,
    write_feature_ledger,
)
from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.shards.writer import ShardRecord
from uniflow.storage import Storage, remove_leftovers


@lru_cache(maxsize=1)
def _worker_encoders(
    config_json: str, tasks: tuple[str, ...], device: str, vae_dtype: str, batch_frames: int | None
) -> FeatureEncoders:
    """Encoders loaded once per worker process and reused by every shard task it runs."""
    config = EncodersConfig.model_validate_json(config_json)
    return load_feature_encoders(config, list(tasks), device, vae_dtype, batch_frames)


@task(retries=1, retry_delay_seconds=10, task_run_name="features {task_name}/{split} {audio.name}")
def feature_shard_task(
    profile: str,
    config_json: str,
    task_name: str,
    split: str,
    audio: ShardRecord,
    device: str,
    vae_dtype: str,
    batch_frames: int | None,
    threads: int,
) -> FeatureShardRecord:
    import torch

    torch.set_num_threads(threads)
    encoders = _worker_encoders(config_json, (task_name,), device, vae_dtype, batch_frames)
    return extract_feature_shard(Storage.from_file(profile), task_name, split, audio, encoders)


def _devices_and_workers(device: str, workers: int | None) -> tuple[list[str], int, int]:
    """(devices to cycle through, worker processes, torch threads per worker)."""
    import torch

    from uniflow.features.latents import resolve_device

    resolved = resolve_device(device)
    cores = os.cpu_count() or 1
    if resolved.type == "cuda":
        if resolved.index is not None:
            return [str(resolved)], 1, max(1, cores // 2)
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {device!r}: no CUDA device is visible")
        return [f"cuda:{index}" for index in range(count)], count, max(1, cores // count)
    workers = max(1, workers or cores)
    return [str(resolved)], workers, max(1, cores // workers)


def _rows_markdown(rows: list[dict[str, Any]], failures: list[str]) -> str:
    lines = [
        "# Feature shards",
        "",
        "| task | split | computed | reused | failed | skipped samples | hours |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in row["skipped"].items()) or "-"
        lines.append(
            f"| {row['task']} | {row['split']} | {row['computed']} | {row['reused']} | {row['failed']} | {skipped} | {row['hours']:.4f} |"
        )
    if failures:
        lines += ["", "## Failed shards", ""] + [f"- {failure}" for failure in failures]
    return "\n".join(lines) + "\n"


@flow(name="features", task_runner=ProcessPoolTaskRunner(max_workers=os.cpu_count()), log_prints=True)
def features_flow(
    tasks: list[str] | None = None,
    splits: list[str] | None = None,
    profile: str = "storage_config/local.yaml",
    encoders_path: str = "datasets/features.yaml",
    instructions_path: str | None = "datasets/instructions.yaml",
    device: str = "auto",
    vae_dtype: str = "fp32",
    batch_frames: int | None = None,
    workers: int | None = None,
    verify: str = "size",
) -> dict[str, Any]:
    """Write the feature shards of ``tasks`` x ``splits`` whose cache key changed, and their ledgers."""
    logger = get_run_logger()
    storage = Storage.from_file(profile)
    config = load_encoders_config(encoders_path)
    config_json = config.model_dump_json()
    sets = [
        (name, split)
        for name in tasks or list(TASKS)
        for split in splits or list(SPLITS)
        if read_ledger(ShardSet(storage, "shards", name, split))
    ]
    devices, worker_count, threads = _devices_and_workers(device, workers)
    outcome: dict[str, Any] = {"sets": [], "device": devices[0], "workers": worker_count}

    # Identities need the loaded weights; they are loaded here once, then released before the fan-out.
    needed = sorted({name for name, _ in sets})
    planning = load_feature_encoders(config, needed + (["t2a"] if instructions_path else []), devices[0], vae_dtype, batch_frames)
    if instructions_path:
        from uniflow.features.instructions import INSTRUCTIONS_FOLDER, write_instruction_embeddings

        if storage.is_local("features"):
            remove_leftovers(storage.path("features", INSTRUCTIONS_FOLDER))  # left by a killed run

        url, written = write_instruction_embeddings(storage, planning.text, instructions_path)
        outcome["instructions"] = {"url": url, "written": written}
        logger.info("instruction embeddings %s: %s", "written" if written else "unchanged", url)
    plans = [
        plan_features(storage, name, split, identities_for_task(planning.for_task(name)), planning.vae.settings.posterior, verify)
        for name, split in sets
    ]  # type: ignore[arg-type]
    del planning
    gc.collect()
    if devices[0].startswith("cuda"):
        import torch

        torch.cuda.empty_cache()  # the workers need the GPU memory the planning copies held

    failures: list[str] = []
    for plan in plans:
        shard_set = feature_set(storage, plan.task, plan.split)
        shard_set.remove_temporaries()  # left by a killed run; no writer of this set runs now
        remove_stale(storage, plan)
        futures = [
            feature_shard_task.submit(
                profile,
                config_json,
                plan.task,
                plan.split,
                work.audio,
                devices[index % len(devices)],
                vae_dtype,
                batch_frames,
                threads,
            )
            for index, work in enumerate(plan.todo)
        ]
        for work in plan.todo:
            logger.info("%s/%s %s: computing (%s)", plan.task, plan.split, work.audio.name, work.why)
        ledger = {record.name: record for record in plan.ledger if record.name in plan.reused}
        skipped: Counter[str] = Counter()
        computed = failed = 0
        progress = outcomes_with_progress(
            futures, f"features-progress-{plan.task}-{plan.split}", f"{plan.task}/{plan.split} feature shards"
        )
        for _, result in progress:
            if isinstance(result, FeatureShardRecord):
                computed += 1
                ledger[result.name] = result
                write_feature_ledger(shard_set, list(ledger.values()))
            else:
                failed += 1
                failures.append(f"{plan.task}/{plan.split}: {result}")
                logger.error("%s/%s: a feature shard failed: %s", plan.task, plan.split, result)
        for name in {work.audio.name for work in plan.todo} - set(ledger):
            storage.remove("features", plan.task, plan.split, name)  # an old shard would be stale now
        write_feature_ledger(shard_set, list(ledger.values()))
        for record in ledger.values():
            skipped.update(sample.reason for sample in record.skipped)
        row = {
            "task": plan.task,
            "split": plan.split,
            "shards": len(plan.audio_names),
            "computed": computed,
            "reused": len(plan.reused),
            "failed": failed,
            "removed": len(plan.stale),
            "why": plan.why_counts,
            "samples": sum(record.samples for record in ledger.values()),
            "skipped": dict(skipped),
            "hours": sum(record.seconds for record in ledger.values()) / 3600.0,
        }
        logger.info(
            "%s/%s: %d computed, %d reused, %d failed; skipped samples %s",
            plan.task,
            plan.split,
            computed,
            len(plan.reused),
            failed,
            dict(skipped) or "none",
        )
        outcome["sets"].append(row)
    rows = outcome["sets"]
    if rows:
        create_table_artifact(
            [{**row, "why": str(row["why"]), "skipped": str(row["skipped"])} for row in rows],
            key="features",
            description="Feature shards computed, reused and failed per task and split",
        )
        create_markdown_artifact(_rows_markdown(rows, failures), key="features-report", description="Feature shards")
    outcome["failures"] = failures
    if failures:
        raise RuntimeError(f"{len(failures)} feature shard(s) failed; rerun to compute only those: {failures[0]}")
    return outcome


def run_features(device: str = "auto", workers: int | None = None, **options: Any) -> dict[str, Any]:
    """``features_flow`` (same keyword arguments) with as many worker processes as the device allows (one per
    GPU on CUDA)."""
    _, worker_count, _ = _devices_and_workers(device, workers)
    configured = features_flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=worker_count))
    return configured(device=device, workers=workers, **options)
