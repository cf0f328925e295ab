"""Training-side reader of uniflow's WebDataset shards.

Two modes, chosen by ``resampled``:

* Training (``resampled=True``): one endless, seeded sequence of shard draws (with replacement)
  is dealt out like a deck of cards, first across ranks (``split_by_node``) then across the
  DataLoader workers of a rank, so no two readers open the same draw and the stream never runs
  dry. Each rank then yields exactly ``epoch_samples // batch_size`` batches per epoch, shared
  out between its workers, so every rank reaches the end of an epoch after the same number of
  steps and no DDP collective waits for a rank that has nothing left (webdataset #188, #225).
* Evaluation (``resampled=False``): the shard list is split once across ranks and workers and
  read exactly once; every shard goes to exactly one reader, partial last batches are kept.

Shards are opened as fsspec streams, not ``pipe:`` commands: the filesystem is built from the
storage profile's ``storage_options`` (endpoint, credentials from the environment), so s3://
(s3fs), gs:// (gcsfs) and local paths all work without any command-line tool on the node. The
filesystem is created inside each DataLoader worker, because async filesystems such as s3fs
must not be shared across a fork.

Everything random is seeded from ``(seed, epoch)`` and the reader's ``(rank, worker)``, so a run
reads the same batches in the same order when restarted with the same settings; call
``set_epoch`` before each epoch to draw different shards per epoch.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import fsspec
import webdataset as wds
from webdataset.tariterators import group_by_keys, tar_file_expander
from webdataset.utils import PipelineStage

from uniflow.audio import read_audio
from uniflow.storage import Role, Storage

Sample = dict[str, Any]


# -- shard discovery --------------------------------------------------------------------------------
def shard_urls(storage: Storage, role: Role, task: str, split: str) -> list[str]:
    """Every ``<task>-<split>-*.tar`` anywhere under ``role``, sorted, as URLs fsspec can open.

    Local roles give plain paths; remote roles give full URLs (``s3://bucket/...``). Temporary
    files of an unfinished write (``.<name>.<random>.tmp``) never match.
    """
    fs, root = storage.fs(role), storage.url(role)
    if not fs.exists(root):
        return []
    pattern = f"{task}-{split}-*.tar"
    found = [path for path in fs.find(root) if fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)]
    if storage.is_local(role):
        return sorted(found)
    return sorted(fs.unstrip_protocol(path) for path in found)


# -- decoding ---------------------------------------------------------------------------------------
def decode_sample(sample: Sample) -> Sample:
    """Decode one raw WebDataset sample.

    ``<name>.flac`` becomes ``<name>`` (float32, shape (frames,) for mono, (frames, channels)
    otherwise) and ``<name>_sample_rate``; ``json`` becomes ``meta`` (a dict); ``txt`` members
    become str; any other member stays bytes. ``key`` and ``url`` trace the sample to its shard.
    """
    decoded: Sample = {"key": sample["__key__"], "url": sample.get("__url__")}
    for member, data in sample.items():
        if member.startswith("__"):
            continue
        if member == "json":
            decoded["meta"] = json.loads(data)
        elif member.endswith(".flac") or member == "flac":
            name = member.removesuffix(".flac") if member != "flac" else "audio"
            audio, sample_rate = read_audio(io.BytesIO(data))
            decoded[name] = audio.reshape(-1) if audio.shape[1] == 1 else audio  # a view: C-ordered
            decoded[f"{name}_sample_rate"] = int(sample_rate)
        elif member.endswith("txt"):
            decoded[member.removesuffix(".txt")] = data.decode("utf-8")
        else:
            decoded[member] = data
    return decoded


def collate_lists(samples: list[Sample]) -> dict[str, list[Any]]:
    """A batch as a dict of lists: variable-length audio stays a list (padding is the model's job).

    Samples of different tasks may carry different fields; a field a sample lacks is None.
    """
    fields: dict[str, None] = {}
    for sample in samples:
        fields.update(dict.fromkeys(sample))
    return {field: [sample.get(field) for sample in samples] for field in fields}


# -- rank and worker ------------------------------------------------------------------------------
def distributed_rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when initialised, else env RANK/WORLD_SIZE, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def worker_and_count() -> tuple[int, int]:
    """(this DataLoader worker's index, the number of workers); (0, 1) in the main process."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def mix_seed(*numbers: int) -> int:
    """A seed from integers that is the same in every process (unlike hash() of a tuple of str)."""
    seed = 0
    for number in numbers:
        seed = (seed * 1_000_003 + number) & 0x7FFFFFFFFFFF
    return seed


# -- pipeline stages ------------------------------------------------------------------------------
class ShardSource(PipelineStage):
    """Yields ``{"url": ...}``: the list once, or endless seeded draws with replacement."""

    def __init__(self, urls: list[str], resampled: bool, seed: int) -> None:
        self.urls, self.resampled, self.seed, self.epoch = list(urls), resampled, seed, 0

    def run(self) -> Iterator[dict[str, str]]:
        if not self.resampled:
            yield from ({"url": url} for url in self.urls)
            return
        # The same sequence in every rank and worker; the splitters below deal it out.
        rng = random.Random(mix_seed(self.seed, self.epoch))
        while True:
            yield {"url": self.urls[rng.randrange(len(self.urls))]}


@dataclass(frozen=True)
class SplitByNode:
    """webdataset's split_by_node with an explicit rank instead of one read from the environment.

    Pipeline stages are small classes rather than closures so the dataset pickles into spawned workers.
    """

    rank: int
    world_size: int

    def __call__(self, source: Iterable[Any]) -> Iterator[Any]:
        yield from islice(source, self.rank, None, self.world_size)


def _split_by_worker(source: Iterable[Any]) -> Iterator[Any]:
    worker, workers = worker_and_count()
    yield from islice(source, worker, None, workers)


class FsspecOpener:
    """Opens each shard URL as a streaming file, with the storage profile's filesystem options."""

    def __init__(self, storage: Storage | None, role: Role) -> None:
        self.storage, self.role = storage, role

    def _filesystem(self, url: str) -> fsspec.AbstractFileSystem:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if self.storage is not None:
            root = self.storage.roots[self.role]
            if (root.split("://", 1)[0] if "://" in root else "file") == protocol:
                return self.storage.fs(self.role)
        return fsspec.filesystem(protocol)

    def __call__(self, source: Iterable[dict[str, str]]) -> Iterator[dict[str, Any]]:
        for item in source:
            url = item["url"]
            stream = self._filesystem(url).open(url, "rb")
            try:
                yield {"url": url, "stream": stream}
            finally:
                stream.close()


class _SeededShuffle:
    """A shuffle buffer whose order depends only on (seed, epoch, rank, worker)."""

    def __init__(self, source_stage: ShardSource, rank: int, buffer: int) -> None:
        self.source_stage, self.rank, self.buffer = source_stage, rank, buffer

    def __call__(self, source: Iterable[Sample]) -> Iterator[Sample]:
        worker, _ = worker_and_count()
        rng = random.Random(mix_seed(self.source_stage.seed, self.source_stage.epoch, self.rank, worker, 1))
        yield from buffered_shuffle(source, self.buffer, rng)


def buffered_shuffle(source: Iterable[Sample], buffer: int, rng: random.Random) -> Iterator[Sample]:
    """Shuffle a stream through a pool of ``buffer`` samples: each new sample lets a random one out; the
    remainder leaves in random order. The same ``rng`` state gives the same order."""
    pool: list[Sample] = []
    for sample in source:
        pool.append(sample)
        if len(pool) >= buffer:
            index = rng.randrange(len(pool))
            pool[index], pool[-1] = pool[-1], pool[index]
            yield pool.pop()
    rng.shuffle(pool)
    yield from pool


@dataclass(frozen=True)
class _Batches:
    batch_size: int
    keep_partial: bool

    def __call__(self, source: Iterable[Sample]) -> Iterator[dict[str, list[Any]]]:
        source = iter(source)
        while chunk := list(islice(source, self.batch_size)):
            if len(chunk) < self.batch_size and not self.keep_partial:
                return
            yield collate_lists(chunk)


@dataclass(frozen=True)
class _WorkerQuota:
    """Cut a worker's endless stream so that the rank's workers together yield ``batches_per_rank``.

    Done inside the worker (rather than ``with_epoch`` on the loader) so each epoch ends cleanly:
    the DataLoader sees every worker finish, and the count does not depend on worker timing.
    """

    batches_per_rank: int

    def __call__(self, source: Iterable[Any]) -> Iterator[Any]:
        worker, workers = worker_and_count()
        quota = self.batches_per_rank // workers + (1 if worker < self.batches_per_rank % workers else 0)
        yield from islice(source, quota)


class ShardDataset(wds.DataPipeline):
    """A webdataset pipeline over uniflow shards; ``set_epoch`` reseeds shard draws and shuffling."""

    def __init__(self, source: ShardSource, *stages: Any, batches_per_epoch: int | None) -> None:
        super().__init__(source, *stages)
        self.source = source
        self.batches_per_epoch = batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.source.epoch = epoch


def make_dataset(
    urls: list[str],
    *,
    epoch_samples: int,
    batch_size: int,
    rank: int | None = None,
    world_size: int | None = None,
    seed: int,
    shuffle_buffer: int,
    resampled: bool = True,
    storage: Storage | None = None,
    role: Role = "shards",
) -> ShardDataset:
    """A pipeline yielding decoded batches (dicts of lists, see ``collate_lists``).

    ``resampled=True`` (training): each rank yields exactly ``epoch_samples // batch_size``
    full batches per epoch, whatever its number of workers. ``resampled=False`` (evaluation):
    every shard is read once by exactly one (rank, worker); ``epoch_samples`` is ignored and the
    last batch may be short. ``rank``/``world_size`` default to ``distributed_rank_and_world_size()``.
    ``storage`` gives the filesystem options (endpoint, credentials) for URLs of ``role``.
    """
    if not urls:
        raise ValueError("no shard URLs given; check the task, split and storage role")
    if batch_size < 1 or shuffle_buffer < 0:
        raise ValueError(f"batch_size must be >= 1 and shuffle_buffer >= 0 (got {batch_size}, {shuffle_buffer})")
    if rank is None or world_size is None:
        rank, world_size = distributed_rank_and_world_size()
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    batches_per_epoch = epoch_samples // batch_size if resampled else None
    if resampled and not batches_per_epoch:
        raise ValueError(f"epoch_samples {epoch_samples} gives no full batch of {batch_size}")

    source = ShardSource(urls, resampled, seed)
    stages: list[Any] = [
        SplitByNode(rank, world_size),
        _split_by_worker,
        FsspecOpener(storage, role),
        wds.filters.pipelinefilter(tar_file_expander)(),
        wds.filters.pipelinefilter(group_by_keys)(),
    ]
    if shuffle_buffer > 1:
        stages.append(_SeededShuffle(source, rank, shuffle_buffer))
    stages.append(wds.filters.map(decode_sample))
    stages.append(_Batches(batch_size, keep_partial=not resampled))
    if batches_per_epoch is not None:
        stages.append(_WorkerQuota(batches_per_epoch))
    return ShardDataset(source, *stages, batches_per_epoch=batches_per_epoch)


def make_loader(dataset: ShardDataset, num_workers: int, multiprocessing_context: str | None = None) -> wds.WebLoader:
    """A WebLoader over ``dataset``; batching already happened in the workers (batch_size=None).

    ``multiprocessing_context="spawn"`` starts workers fresh instead of forking: safer for remote
    (async fsspec) storage in a process that already runs event loops or threads, at the cost of
    a slower start.
    """
    return wds.WebLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,  # workers are re-created per epoch so set_epoch reaches them
        multiprocessing_context=multiprocessing_context if num_workers else None,
    )
