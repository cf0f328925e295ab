"""Prefect flow: pack each task's split into WebDataset shards, one task per shard, with a ledger.

The shard boundaries depend only on the sorted sample keys and their size estimates, so a rerun
(after a crash, or with new inputs) writes only the shards that are missing or changed; the
ledger is rewritten after each finished shard, so a killed run loses at most the shards in flight.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ProcessPoolTaskRunner

from flows.progress import outcomes_with_progress
from uniflow.corpora.recipe import SPLITS, TASKS, load_plan, load_recipes
from uniflow.orchestration import on_task_runner
from uniflow.shards.ledger import ShardSet, read_ledger, shards_to_write, update_ledger, write_ledger
from uniflow.shards.report import publish_report
from uniflow.shards.samples import SampleSource, build_sample, sample_sources
from uniflow.shards.writer import ShardRecord, assign_shards, write_shard
from uniflow.storage import Storage

DEFAULT_MAX_SAMPLES = 1000
DEFAULT_MAX_BYTES = 1_000_000_000  # ~1 GB shards, the common WebDataset choice


@task(retries=1, retry_delay_seconds=10, task_run_name="shard {name}")
def write_shard_task(profile: str, name: str, sources: list[SampleSource], source_hash: str) -> ShardRecord:
    storage = Storage.from_file(profile)
    first = sources[0]
    shard_set = ShardSet(storage, "shards", first.task, first.split)
    samples = (build_sample(storage, source) for source in sources)
    return write_shard(samples, shard_set.url(name), storage.fs("shards"), source_hash=source_hash)


@flow(name="shard", task_runner=ProcessPoolTaskRunner(max_workers=os.cpu_count()), log_prints=True)
def shard_flow(
    tasks: list[str] | None = None,
    splits: list[str] | None = None,
    profile: str = "storage_config/local.yaml",
    datasets_dir: str = "datasets",
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Write the shards of ``tasks`` x ``splits`` that are missing or stale, and their ledgers."""
    logger = get_run_logger()
    storage = Storage.from_file(profile)
    plan = load_plan(f"{datasets_dir}/plan.yaml", load_recipes(datasets_dir))
    outcome: dict[str, Any] = {"sets": []}
    for task_name in tasks or list(TASKS):
        for split in splits or list(SPLITS):
            sources = sample_sources(storage, plan, task_name, split)
            if not sources:
                continue
            shard_set = ShardSet(storage, "shards", task_name, split)
            shard_set.remove_temporaries()  # left by a killed run; no writer of this set runs now
            by_key = {source.key: source for source in sources}
            groups = assign_shards(((s.key, s.bytes) for s in sources), max_samples, max_bytes)
            names = [shard_set.shard_name(index) for index in range(len(groups))]
            ledger = read_ledger(shard_set)
            todo = set(shards_to_write(names, ledger, shard_set))
            # A shard whose inputs changed is stale even when its tar looks whole.
            todo |= {record.name for record in ledger if record.name in names and record.source_hash != sources.source_hash}
            futures = [
                write_shard_task.submit(profile, name, [by_key[key] for key in group], sources.source_hash)
                for name, group in zip(names, groups, strict=True)
                if name in todo
            ]
            written: list[ShardRecord] = []
            failed = 0
            for _, result in outcomes_with_progress(futures, f"shard-progress-{task_name}-{split}", f"{task_name}/{split} shards"):
                if isinstance(result, ShardRecord):
                    written.append(result)
                    ledger = update_ledger(ledger, [result], names)
                    write_ledger(shard_set, ledger)
                else:
                    failed += 1
                    logger.error("%s/%s: a shard failed: %s", task_name, split, result)
            ledger = update_ledger(ledger, [], names)  # drop lines of shards no longer planned
            write_ledger(shard_set, ledger)
            logger.info("%s/%s: %d shards (%d written), %d samples; skipped %s",
                        task_name, split, len(names), len(written), len(sources), dict(sources.skipped) or "nothing")
            outcome["sets"].append({"task": task_name, "split": split, "shards": len(names), "written": len(written),
                                    "samples": len(sources), "skipped": dict(sources.skipped), "failed": failed})
            if failed:
                raise RuntimeError(f"{task_name}/{split}: {failed} shard(s) failed; rerun to write only those")
    outcome["table"] = publish_report(storage, plan)
    outcome["report"] = storage.url("reports", "corpus.md")
    return outcome


def run_sharding(runner: str = "processes", workers: int | None = None, address: str | None = None, **options: Any) -> dict[str, Any]:
    """``shard_flow`` (same keyword arguments) on the chosen task runner (local processes, Dask or Ray)."""
    return on_task_runner(shard_flow, runner, workers, address)(**options)
