"""Pre-launch check that a shard set feeds every rank and every DataLoader worker.

The loader deals shards out round-robin, first across ranks then across each rank's workers
(``uniflow.shards.loader``), so with ``world_size x workers`` readers:

* an evaluation stream (read once, ``resampled=False``) leaves a reader without data as soon as
  there are fewer shards than readers: that rank stalls at the first collective (webdataset #188);
* a training stream (``resampled=True``) never runs dry, but with fewer shards than readers
  several readers stream the same shard at the same time, so batches mix less; that is a warning.

``check_plan`` is pure arithmetic on those rules; ``uniflow plan`` prints its report.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlanReport:
    """What a launch with this plan would read, and what to change when it would not work."""

    num_shards: int
    world_size: int
    workers_per_rank: int
    readers: int
    shards_per_rank: list[int]
    empty_ranks: int
    empty_workers: int
    samples_per_rank: list[int] | None
    ok: bool  # every rank and every worker gets at least one shard (evaluation streams)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Human-readable lines for the command line."""
        lines = [
            f"{self.num_shards} shards for {self.world_size} ranks x {self.workers_per_rank} workers "
            f"= {self.readers} readers: {'OK' if self.ok else 'NOT OK'}",
            f"shards per rank: {min(self.shards_per_rank)}..{max(self.shards_per_rank)}",
        ]
        if self.samples_per_rank is not None:
            lines.append(f"samples per rank (evaluation): {min(self.samples_per_rank)}..{max(self.samples_per_rank)}")
        lines += [f"problem: {line}" for line in self.problems]
        lines += [f"warning: {line}" for line in self.warnings]
        lines += [f"advice: {line}" for line in self.advice]
        return "\n".join(lines)


def _round_robin(count: int, slots: int) -> list[int]:
    """How many of ``count`` items each of ``slots`` gets when dealt out in turn."""
    return [len(range(slot, count, slots)) for slot in range(slots)]


def check_plan(
    num_shards: int,
    world_size: int,
    workers_per_rank: int,
    samples_per_shard: list[int] | None = None,
) -> PlanReport:
    """Check a launch plan; ``samples_per_shard`` (from the ledger) sharpens the resharding advice."""
    if num_shards < 0 or world_size < 1 or workers_per_rank < 0:
        raise ValueError(
            f"need num_shards >= 0, world_size >= 1, workers_per_rank >= 0 (got {num_shards}, {world_size}, {workers_per_rank})"
        )
    if samples_per_shard is not None and len(samples_per_shard) != num_shards:
        raise ValueError(f"samples_per_shard has {len(samples_per_shard)} entries for {num_shards} shards")

    workers = max(workers_per_rank, 1)  # 0 workers means the rank's main process reads
    readers = world_size * workers
    shards_per_rank = _round_robin(num_shards, world_size)
    empty_ranks = sum(1 for count in shards_per_rank if count == 0)
    empty_workers = sum(1 for count in shards_per_rank for worker_count in _round_robin(count, workers) if worker_count == 0)
    samples_per_rank = None
    if samples_per_shard is not None:
        samples_per_rank = [sum(samples_per_shard[rank::world_size]) for rank in range(world_size)]

    summary = f"{num_shards} shards for {world_size} ranks x {workers_per_rank} workers = {readers} readers"
    problems: list[str] = []
    warnings: list[str] = []
    advice: list[str] = []
    if num_shards < readers:
        problems.append(
            f"{summary}: {empty_ranks} ranks and {empty_workers} workers get no shard when reading once "
            "(evaluation); a rank with no data hangs the job at its first collective"
        )
        warnings.append(f"{summary}: resampled training still runs, but readers share shards and batches mix poorly")
        advice.append(f"{summary}: " + ", or ".join(_advice(num_shards, world_size, readers, samples_per_shard)))
    elif samples_per_rank is not None and len(set(samples_per_rank)) > 1:
        warnings.append(
            f"evaluation ranks read {min(samples_per_rank)}..{max(samples_per_rank)} samples: gather "
            "results after the loop instead of running a collective per batch"
        )
    return PlanReport(
        num_shards=num_shards,
        world_size=world_size,
        workers_per_rank=workers_per_rank,
        readers=readers,
        shards_per_rank=shards_per_rank,
        empty_ranks=empty_ranks,
        empty_workers=empty_workers,
        samples_per_rank=samples_per_rank,
        ok=not problems,
        problems=problems,
        warnings=warnings,
        advice=advice,
    )


def _advice(num_shards: int, world_size: int, readers: int, samples_per_shard: list[int] | None) -> list[str]:
    """The concrete changes that make every reader get a shard."""
    options: list[str] = []
    fitting_workers = num_shards // world_size
    if fitting_workers >= 1:
        options.append(f"lower --workers to {fitting_workers}")
    else:
        options.append(f"lower --world-size to {max(num_shards, 1)} (there are fewer shards than ranks)")
    if samples_per_shard is None:
        options.append(f"reshard with a smaller --max-samples to get >= {readers} shards")
    else:
        total = sum(samples_per_shard)
        max_samples = total // readers
        if max_samples >= 1:
            options.append(f"reshard with --max-samples {max_samples} to get >= {readers} shards")
        else:
            options.append(f"only {total} samples in all: fewer than {readers} readers, so lower --world-size or --workers")
    return options
