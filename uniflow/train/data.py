"""Training batches for the UniFlow-Audio model: task-balanced, mixed-task, exactly resumable.

Where the data comes from
    The feature shards of ``uniflow.features.stage`` (``features/<task>/<split>/<task>-<split>-NNNNNN.tar``)
    and the instruction embeddings (``features/instructions/t5_embeddings.safetensors``, keys
    ``{task}_{index}``). Every array arrives as float16 ``.npy``; a batch holds float32 tensors.

Task-balanced sampling (paper section 4; the authors' ``TaskIteratingSampler``)
    A task cycle lists every task once, in ``TASKS`` order, then each task ``weight - 1`` more times
    (T2A 2 and T2M 3 give ``tts svs t2a t2m se sr v2a t2a t2m t2m``). Samples are drawn *per sample* in
    cycle order, each from its task's own stream, so a batch mixes tasks and, over many batches, task
    ``t`` makes up ``weight_t / sum(weights)`` of the samples. A configured task with no shards in the
    split is left out of the cycle with a warning. ``TrainStream.task_counts`` counts what was served.

Per-task streams (built from ``uniflow.shards.loader``'s stages)
    Each task reads an endless, seeded sequence of shard draws with replacement (``ShardSource``),
    dealt out across ranks (``SplitByNode``) and then across the rank's DataLoader workers, so no two
    readers open the same draw. Each shard draw is shuffled through a buffer of its own (seeded by
    seed, epoch, task, rank, worker and draw number), so no randomness crosses a shard boundary.

Fixed epoch length
    Every rank yields exactly ``batches_per_epoch`` batches per epoch, whatever its shards: streams are
    endless, and the rank's workers share the quota (worker ``w`` makes batches ``w, w + W, ...``).

Exact resume (``TrainStream.state_dict`` / ``load_state_dict``)
    A worker's position is a handful of integers: its batches made (which also fix its place in the
    task cycle: batch ``n`` of the rank starts at cycle position ``n * batch_size``) and, per task,
    ``(draw, offset)`` = the shard draw it is in and the samples of that draw already used.
    Each batch carries its worker's position after it; the stream keeps the latest per worker, so the
    state describes exactly the batches the trainer *received* (not those prefetched). On resume:

    * shard draws before ``draw`` are never opened: the draw sequence is re-derived from the seed;
    * the current draw is re-read and its first ``offset`` samples are passed over as raw tar members,
      with no ``.npy`` or json decoding, to rebuild the per-draw shuffle buffer exactly;
    * posterior noise and instruction indices come from a generator seeded by (seed, epoch, rank,
      worker, batch number), so they need no state at all;
    * the DataLoader always asks worker 0 first, so physical worker ``p`` plays logical worker
      ``(p + batches) % W``: the next batch then comes from the worker that would have made it.

    A resumed stream therefore yields exactly the batches the uninterrupted stream would have yielded
    next. Resuming needs the same seed, world size, worker count, batch size and task set (checked).

Validation (``validation_batches``)
    Per task, every shard read once (``make_dataset(resampled=False)``), split across ranks and
    workers; posterior means and instruction 0 by default, so the loss is comparable between runs.

Before launch (``check_data_plan``)
    ``uniflow.shards.plan_check`` arithmetic on the feature ledgers: a task without shards, a rank or
    worker that would read no validation shard, and how to fix it.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import multiprocessing.context
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from itertools import islice
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.utils.data import DataLoader, IterableDataset
from webdataset.tariterators import group_by_keys, tar_file_expander

from uniflow.align.phones import phone_ids as tts_phone_ids
from uniflow.config import StrictModel
from uniflow.model.content import ContentBatch, ContentSample, collate_content
from uniflow.model.tasks import TASKS
from uniflow.shards.loader import (
    FsspecOpener,
    ShardSource,
    SplitByNode,
    buffered_shuffle,
    make_dataset,
    mix_seed,
    shard_urls,
    worker_and_count,
)
from uniflow.shards.plan_check import PlanReport, check_plan
from uniflow.storage import Storage
from uniflow.train.vocab import SvsVocab

log = logging.getLogger(__name__)

STATE_VERSION = 1
ROLE = "features"
INSTRUCTIONS_PATH = ("instructions", "t5_embeddings.safetensors")
# Consecutive empty shard draws after which a task stream gives up (all its shards are empty).
MAX_EMPTY_DRAWS = 1000


# -- configuration ----------------------------------------------------------------------------------------
class TrainDataConfig(StrictModel):
    """What the training stream reads and how it is batched; ``from_plan`` takes the task weights."""

    tasks: list[str] = Field(default_factory=lambda: list(TASKS))
    weights: dict[str, int] = Field(default_factory=dict)  # sampling_weight per task; 1 when absent
    split: str = "train"
    valid_split: str = "valid"
    batch_size: int = Field(default=24, ge=1)  # per rank (the authors': 24 per GPU)
    batches_per_epoch: int = Field(default=2000, ge=1)  # per rank (the authors' epoch_length)
    workers: int = Field(default=2, ge=0)
    seed: int = 0
    shuffle_buffer: int = Field(default=256, ge=0)  # per shard draw; 0 or 1 reads in tar order
    instructions_per_task: int = Field(default=10, ge=1)
    # Latents = mean + std * eps (a fresh posterior sample per step), or the mean (False / no std stored).
    sample_posterior: bool = True
    # The same for SE/SR input latents (the authors' frozen VAE encoder samples its posterior).
    sample_input_posterior: bool = True
    valid_instruction: int = Field(default=0, ge=0)
    pin_memory: bool = True

    @model_validator(mode="after")
    def _check(self) -> TrainDataConfig:
        unknown = sorted((set(self.tasks) | set(self.weights)) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; expected some of {', '.join(TASKS)}")
        if not self.tasks:
            raise ValueError("tasks is empty")
        if any(weight < 1 for weight in self.weights.values()):
            raise ValueError("every sampling weight must be >= 1")
        if self.valid_instruction >= self.instructions_per_task:
            raise ValueError("valid_instruction must be below instructions_per_task")
        return self

    @classmethod
    def from_plan(cls, plan: Any, **settings: Any) -> TrainDataConfig:
        """Tasks and ``sampling_weight`` of a ``uniflow.corpora.recipe.Plan`` (``datasets/plan.yaml``)."""
        tasks = [task for task in TASKS if task in plan.tasks]
        weights = {task: int(plan.tasks[task].sampling_weight) for task in tasks}
        return cls(**{"tasks": tasks, "weights": weights, **settings})


def task_cycle(tasks: Iterable[str], weights: dict[str, int]) -> list[str]:
    """One round of the round-robin: every task once (``TASKS`` order), then each ``weight - 1`` more times."""
    ordered = [task for task in TASKS if task in set(tasks)]
    cycle = list(ordered)
    for task in ordered:
        cycle += [task] * (weights.get(task, 1) - 1)
    return cycle


def target_ratios(cycle: list[str]) -> dict[str, float]:
    """The share of samples each task gets from ``cycle``."""
    return {task: count / len(cycle) for task, count in Counter(cycle).items()}


# -- instructions ---------------------------------------------------------------------------------------
@dataclass
class InstructionTable:
    """Instruction embeddings ``(tokens, dim)`` float32 by ``{task}_{index}``."""

    embeddings: dict[str, np.ndarray]

    @classmethod
    def from_storage(cls, storage: Storage) -> InstructionTable:
        from safetensors.numpy import load

        if not storage.exists(ROLE, *INSTRUCTIONS_PATH):
            raise FileNotFoundError(
                f"{storage.url(ROLE, *INSTRUCTIONS_PATH)} is missing; run `uniflow features` with the instructions file"
            )
        with storage.open(ROLE, *INSTRUCTIONS_PATH) as handle:
            loaded = load(handle.read())
        return cls({name: np.asarray(array, dtype=np.float32) for name, array in loaded.items()})

    @property
    def dim(self) -> int:
        return int(next(iter(self.embeddings.values())).shape[-1])

    def check(self, tasks: Iterable[str], count: int) -> None:
        """Raise naming the missing ``{task}_{index}`` keys."""
        missing = [f"{task}_{index}" for task in tasks for index in range(count) if f"{task}_{index}" not in self.embeddings]
        if missing:
            raise KeyError(f"instruction embeddings lack {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    def get(self, task: str, index: int) -> np.ndarray:
        return self.embeddings[f"{task}_{index}"]


# -- one decoded sample ---------------------------------------------------------------------------------
class SampleError(ValueError):
    """A feature sample that cannot become model input (reason in the message)."""


@dataclass
class FeatureSample:
    """One feature-shard sample, decoded: target latents (frames, 128) float32 and the content input."""

    key: str
    task: str
    latents: np.ndarray
    latents_std: np.ndarray | None
    content: ContentSample
    input_std: np.ndarray | None = None  # SE/SR: std of the input latents held (as mean) in content.features


def _array(files: dict[str, Any], member: str) -> np.ndarray:
    if member not in files:
        raise SampleError(f"{member} is missing")
    return np.load(io.BytesIO(files[member]), allow_pickle=False)


def _optional(files: dict[str, Any], member: str) -> np.ndarray | None:
    return _array(files, member) if member in files else None


def decode_feature_sample(key: str, files: dict[str, Any], vocab: SvsVocab) -> FeatureSample:
    """Raw members of a feature sample (``json`` as bytes or already a dict) -> ``FeatureSample``."""
    meta = files["json"] if isinstance(files.get("json"), dict) else json.loads(files["json"]) if "json" in files else None
    if meta is None:
        raise SampleError("json is missing")
    task = meta.get("task") or key.split("/", 1)[0]
    if task not in TASKS:
        raise SampleError(f"unknown task {task!r}")
    latents = _array(files, "latents.npy")
    if latents.ndim != 2 or latents.shape[0] == 0:
        raise SampleError(f"latents.npy has shape {latents.shape}")
    content = ContentSample(task=task)
    input_std = None
    try:
        if task == "tts":
            content.phones = torch.tensor(tts_phone_ids(meta["phones"]), dtype=torch.long)
            content.frames = torch.tensor(meta["frames"], dtype=torch.long)
            content.speaker = torch.from_numpy(_array(files, "speaker.npy").astype(np.float32))
        elif task == "svs":
            score = meta["score"]
            content.phones = torch.tensor(vocab.phone_ids(score["phones"]), dtype=torch.long)
            content.frames = torch.tensor(score["frames"], dtype=torch.long)
            content.midi = torch.tensor(score["midi"], dtype=torch.long)
            content.note_seconds = torch.tensor(score["note_seconds"], dtype=torch.float32)
            content.slur = torch.tensor(score["slur"], dtype=torch.long)
            content.singer = vocab.singer_id(meta.get("speaker"))
        elif task in ("t2a", "t2m"):
            content.features = torch.from_numpy(_array(files, "text.npy").astype(np.float32))
        elif task in ("se", "sr"):
            content.features = torch.from_numpy(_array(files, "input_latents.npy").astype(np.float32))
            input_std = _optional(files, "input_latents_std.npy")
        else:
            content.features = torch.from_numpy(_array(files, "video.npy").astype(np.float32))
    except (KeyError, TypeError) as exc:
        raise SampleError(f"json lacks or mangles {exc}") from None
    except ValueError as exc:  # UnknownPhone / UnknownSymbol, ragged lists
        raise SampleError(str(exc)) from None
    if content.frames is not None and content.frames.shape != content.phones.shape:
        raise SampleError(f"{len(content.frames)} frame counts for {len(content.phones)} phones")
    if content.features is not None and content.features.shape[0] == 0:
        raise SampleError("empty content features")
    std = _optional(files, "latents_std.npy")
    return FeatureSample(key, task, latents, std, content, input_std)


# -- batches --------------------------------------------------------------------------------------------
def _pin(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.pin_memory()
    if value is None or not hasattr(value, "__dataclass_fields__"):
        return value
    return replace(value, **{item.name: _pin(getattr(value, item.name)) for item in fields(value)})


@dataclass
class TrainBatch:
    """A mixed-task batch. Latents are ``(B, T, 128)`` float32 (``T`` = longest sample), zero-padded,
    with ``latent_mask`` ``(B, T)`` bool, True = valid frame. ``content`` is the model's content input;
    TTS/SVS per-phone latent frame counts (durations) are ``content.phones.frames`` / ``content.score.frames``.
    ``instruction`` is ``(B, M, D)`` float32 with ``instruction_mask`` ``(B, M)`` and the index drawn
    (``instruction_index``, ``(B,)`` long). ``position`` is the data position after this batch (internal:
    ``TrainStream`` keeps it for ``state_dict``)."""

    latents: torch.Tensor
    latent_mask: torch.Tensor
    content: ContentBatch
    instruction: torch.Tensor
    instruction_mask: torch.Tensor
    instruction_index: torch.Tensor
    tasks: list[str]
    keys: list[str]
    position: dict[str, Any] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def latent_lengths(self) -> torch.Tensor:
        return self.latent_mask.sum(dim=1)

    def pin_memory(self) -> TrainBatch:
        """A copy with every tensor in pinned memory (called by the DataLoader when ``pin_memory``)."""
        return replace(
            self,
            latents=self.latents.pin_memory(),
            latent_mask=self.latent_mask.pin_memory(),
            content=_pin(self.content),
            instruction=self.instruction.pin_memory(),
            instruction_mask=self.instruction_mask.pin_memory(),
            instruction_index=self.instruction_index.pin_memory(),
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainBatch:
        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, non_blocking=non_blocking)

        return replace(
            self,
            latents=move(self.latents),
            latent_mask=move(self.latent_mask),
            content=self.content.to(device),
            instruction=move(self.instruction),
            instruction_mask=move(self.instruction_mask),
            instruction_index=move(self.instruction_index),
        )


def _pad_stack(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) zero-padded float32 and its (B, T) bool mask."""
    length, dim = max(array.shape[0] for array in arrays), arrays[0].shape[1]
    padded = np.zeros((len(arrays), length, dim), dtype=np.float32)
    mask = np.zeros((len(arrays), length), dtype=bool)
    for row, array in enumerate(arrays):
        padded[row, : array.shape[0]] = array
        mask[row, : array.shape[0]] = True
    return torch.from_numpy(padded), torch.from_numpy(mask)


def _draw(mean: np.ndarray, std: np.ndarray | None, rng: np.random.Generator | None) -> np.ndarray:
    """mean + std * eps with eps from ``rng``, or the mean (no rng, or no std stored)."""
    mean = mean.astype(np.float32)
    if rng is None or std is None:
        return mean
    return mean + std.astype(np.float32) * rng.standard_normal(mean.shape, dtype=np.float32)


def make_batch(
    samples: list[FeatureSample],
    instructions: InstructionTable,
    instruction_indices: list[int],
    latent_rng: np.random.Generator | None,
    input_rng: np.random.Generator | None = None,
) -> TrainBatch:
    """Pad and collate ``samples``; posteriors are sampled with the given generators (None = mean)."""
    targets = [_draw(sample.latents, sample.latents_std, latent_rng) for sample in samples]
    contents = []
    for sample in samples:
        content = sample.content
        if sample.task in ("se", "sr"):
            mean = content.features.numpy()
            content = replace(content, features=torch.from_numpy(_draw(mean, sample.input_std, input_rng)))
        contents.append(content)
    latents, latent_mask = _pad_stack(targets)
    instruction, instruction_mask = _pad_stack(
        [instructions.get(sample.task, index) for sample, index in zip(samples, instruction_indices, strict=True)]
    )
    return TrainBatch(
        latents=latents,
        latent_mask=latent_mask,
        content=collate_content(contents),
        instruction=instruction,
        instruction_mask=instruction_mask,
        instruction_index=torch.tensor(instruction_indices, dtype=torch.long),
        tasks=[sample.task for sample in samples],
        keys=[sample.key for sample in samples],
    )


# -- per-task streams -------------------------------------------------------------------------------------
@dataclass
class _ReaderPosition:
    draw: int = 0  # shard draws of this reader already started
    offset: int = 0  # samples of draw ``draw`` already used


class _TaskReader:
    """One task's endless stream of raw samples for one (rank, worker), resumable at a position."""

    def __init__(
        self,
        stream: _MixedStream,
        task: str,
        worker: int,
        workers: int,
        position: _ReaderPosition,
    ) -> None:
        self.stream, self.task, self.worker, self.workers = stream, task, worker, workers
        self.position = position
        self.task_number = TASKS.index(task)

    def _draws(self) -> Iterator[str]:
        """This reader's shard URLs: the task's seeded draw sequence dealt to ranks, then to workers."""
        config = self.stream.config
        source = ShardSource(self.stream.urls[self.task], resampled=True, seed=mix_seed(config.seed, self.task_number))
        source.epoch = self.stream.epoch
        for_rank = SplitByNode(self.stream.rank, self.stream.world_size)(source.run())
        return (item["url"] for item in islice(for_rank, self.worker, None, self.workers))

    def _shuffled(self, url: str, draw: int) -> Iterator[dict[str, Any]]:
        """The raw samples of one shard draw through its own seeded shuffle buffer."""
        config, stream = self.stream.config, self.stream
        opened = self.stream.opener([{"url": url}])
        raw = group_by_keys(tar_file_expander(opened))
        if config.shuffle_buffer <= 1:
            yield from raw
            return
        rng = random.Random(mix_seed(config.seed, stream.epoch, self.task_number, stream.rank, self.worker, draw, 2))
        yield from buffered_shuffle(raw, config.shuffle_buffer, rng)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        position = self.position
        empty_draws = 0
        # Draws before the position are skipped in the URL sequence only: they are never opened.
        for url in islice(self._draws(), position.draw, None):
            used = 0
            for used, sample in enumerate(self._shuffled(url, position.draw), start=1):
                if used <= position.offset:
                    continue  # already used before a resume: passed over undecoded
                position.offset = used
                empty_draws = 0
                yield sample
            empty_draws += 1 if used == 0 else 0
            if empty_draws >= MAX_EMPTY_DRAWS:
                raise RuntimeError(f"{self.task}: {MAX_EMPTY_DRAWS} shard draws in a row held no samples")
            position.draw, position.offset = position.draw + 1, 0


def _quota(batches_per_epoch: int, worker: int, workers: int) -> int:
    """Batches of an epoch made by logical worker ``worker`` (it makes batches worker, worker + W, ...)."""
    return batches_per_epoch // workers + (1 if worker < batches_per_epoch % workers else 0)


def _fresh_position(tasks: Iterable[str]) -> dict[str, Any]:
    return {"batches": 0, "skipped": 0, "readers": {task: [0, 0] for task in tasks}}


class _MixedStream(IterableDataset):
    """One epoch of one rank: each DataLoader worker makes its share of task-balanced batches."""

    def __init__(
        self,
        config: TrainDataConfig,
        urls: dict[str, list[str]],
        cycle: list[str],
        instructions: InstructionTable,
        vocab: SvsVocab,
        storage: Storage | None,
        rank: int,
        world_size: int,
    ) -> None:
        super().__init__()
        self.config, self.urls, self.cycle = config, urls, cycle
        self.instructions, self.vocab = instructions, vocab
        self.opener = FsspecOpener(storage, ROLE)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.worker_offset = 0
        self.positions: dict[int, dict[str, Any]] = {}

    def _next_sample(self, reader: Iterator[dict[str, Any]], position: dict[str, Any]) -> FeatureSample:
        while True:
            raw = next(reader)
            key = raw["__key__"]
            files = {name: value for name, value in raw.items() if not name.startswith("__")}
            try:
                return decode_feature_sample(key, files, self.vocab)
            except SampleError as exc:
                # The next sample of the same task takes its place, so the task mix is kept.
                position["skipped"] += 1
                log.warning("feature sample %s (%s) skipped: %s", key, raw.get("__url__"), exc)

    def __iter__(self) -> Iterator[TrainBatch]:
        physical, workers = worker_and_count()
        worker = (physical + self.worker_offset) % workers
        position = json.loads(json.dumps(self.positions.get(worker) or _fresh_position(self.urls)))
        readers_at = {task: _ReaderPosition(*position["readers"][task]) for task in self.urls}
        readers = {task: iter(_TaskReader(self, task, worker, workers, at)) for task, at in readers_at.items()}
        config, cycle = self.config, self.cycle
        for _ in range(_quota(config.batches_per_epoch, worker, workers) - position["batches"]):
            # The rank's batch number over all epochs fixes where in the task cycle this batch starts, so the
            # rank as a whole walks the cycle without gaps whatever its number of workers.
            number = self.epoch * config.batches_per_epoch + worker + workers * position["batches"]
            samples = []
            for index in range(config.batch_size):
                task = cycle[(number * config.batch_size + index) % len(cycle)]
                samples.append(self._next_sample(readers[task], position))
            # Noise and instruction choices of a batch depend only on where it is, not on what came before.
            rng = np.random.default_rng([config.seed, self.epoch, self.rank, worker, position["batches"]])
            indices = rng.integers(0, config.instructions_per_task, size=len(samples)).tolist()
            latent_rng, input_rng = rng.spawn(2)
            batch = make_batch(
                samples,
                self.instructions,
                indices,
                latent_rng if config.sample_posterior else None,
                input_rng if config.sample_input_posterior else None,
            )
            position["batches"] += 1
            position["readers"] = {task: [at.draw, at.offset] for task, at in readers_at.items()}
            batch.position = {"worker": worker, **json.loads(json.dumps(position))}
            yield batch


# -- the training stream of one rank ----------------------------------------------------------------------
class _SharingStrategy:
    """Worker start-up: use the trainer's tensor sharing strategy (``file_system`` hands a batch over about
    three times faster than the default); forkserver workers do not inherit it as forked ones do."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy

    def __call__(self, worker_id: int) -> None:
        torch.multiprocessing.set_sharing_strategy(self.strategy)


def worker_context(name: str) -> multiprocessing.context.BaseContext:
    """How DataLoader workers start. ``forkserver`` (the default) forks them from a clean single-threaded
    server that has this module preloaded: forking the trainer itself copies whatever threads it runs
    (Prefect's API and log threads, Accelerate, CUDA), and a worker forked next to Prefect's threads
    dies at exit with code 1. ``fork`` is the fastest start where none of that runs; ``spawn`` the
    slowest and safest."""
    context = multiprocessing.get_context(name)
    if name == "forkserver":
        # takes effect when the server starts (the first loader); later calls change nothing
        context.set_forkserver_preload([__name__])
    return context


class TrainStream:
    """Endless training batches of one rank, epoch after epoch, with an exact-resume state.

    Iterate it for batches; ``state_dict()`` after any batch, ``load_state_dict()`` before iterating
    to continue from there. ``task_counts`` / ``achieved_ratios()`` report the task mix served.
    """

    def __init__(
        self,
        storage: Storage,
        config: TrainDataConfig,
        *,
        rank: int = 0,
        world_size: int = 1,
        instructions: InstructionTable | None = None,
        vocab: SvsVocab | None = None,
        multiprocessing_context: str = "forkserver",
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.config, self.rank, self.world_size = config, rank, world_size
        self.urls: dict[str, list[str]] = {}
        self.missing_tasks: list[str] = []
        for task in config.tasks:
            found = shard_urls(storage, ROLE, task, config.split)
            if found:
                self.urls[task] = found
            else:
                self.missing_tasks.append(task)
        if self.missing_tasks:
            log.warning(
                "no %s feature shards for %s under %s: left out of the task cycle",
                config.split,
                ", ".join(self.missing_tasks),
                storage.url(ROLE),
            )
        if not self.urls:
            raise FileNotFoundError(
                f"no {config.split} feature shards for any of {', '.join(config.tasks)} under {storage.url(ROLE)}"
            )
        self.cycle = task_cycle(self.urls, config.weights)
        self.instructions = instructions or InstructionTable.from_storage(storage)
        self.instructions.check(self.urls, config.instructions_per_task)
        self.vocab = vocab or SvsVocab()
        self.dataset = _MixedStream(config, self.urls, self.cycle, self.instructions, self.vocab, storage, rank, world_size)
        self.multiprocessing_context = worker_context(multiprocessing_context)
        self.epoch = 0
        self.batches = 0  # batches received in this epoch
        self.positions: dict[int, dict[str, Any]] = {}
        self.task_counts: Counter[str] = Counter()
        self.skipped = 0

    @property
    def tasks(self) -> list[str]:
        return list(self.urls)

    @property
    def batches_per_epoch(self) -> int:
        return self.config.batches_per_epoch

    def target_ratios(self) -> dict[str, float]:
        return target_ratios(self.cycle)

    def achieved_ratios(self) -> dict[str, float]:
        """Share of served samples per task so far (for logging beside ``target_ratios``)."""
        total = sum(self.task_counts.values())
        return {task: self.task_counts[task] / total if total else 0.0 for task in self.urls}

    def _loader(self) -> DataLoader:
        workers = self.config.workers
        self.dataset.epoch = self.epoch
        self.dataset.positions = self.positions
        self.dataset.worker_offset = self.batches % max(workers, 1)
        return DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=workers,
            pin_memory=self.config.pin_memory and torch.cuda.is_available(),
            multiprocessing_context=self.multiprocessing_context if workers else None,
            worker_init_fn=_SharingStrategy(torch.multiprocessing.get_sharing_strategy()) if workers else None,
        )

    def epoch_batches(self) -> Iterator[TrainBatch]:
        """The rest of the current epoch (all of it when fresh); the epoch then advances."""
        for batch in self._loader():
            position = batch.position or {}
            self.positions[int(position.pop("worker"))] = position
            self.batches += 1
            self.task_counts.update(batch.tasks)
            self.skipped = sum(worker["skipped"] for worker in self.positions.values())
            yield batch
        if self.batches != self.config.batches_per_epoch:
            raise RuntimeError(
                f"rank {self.rank} got {self.batches} batches in epoch {self.epoch}, not {self.config.batches_per_epoch}"
            )
        self.epoch, self.batches, self.positions = self.epoch + 1, 0, {}

    def __iter__(self) -> Iterator[TrainBatch]:
        while True:
            yield from self.epoch_batches()

    # -- exact resume --------------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        config = self.config
        return {
            "seed": config.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "workers": config.workers,
            "batch_size": config.batch_size,
            "batches_per_epoch": config.batches_per_epoch,
            "cycle": list(self.cycle),
            "shuffle_buffer": config.shuffle_buffer,
        }

    def state_dict(self) -> dict[str, Any]:
        """This rank's data position (small, JSON-serialisable): save one per rank with the checkpoint."""
        return {
            "version": STATE_VERSION,
            **self._identity(),
            "epoch": self.epoch,
            "batches": self.batches,
            "positions": {str(worker): json.loads(json.dumps(position)) for worker, position in self.positions.items()},
            "task_counts": dict(self.task_counts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where ``state`` was taken; the settings it depends on must not have changed."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"data state version {state.get('version')!r} is not {STATE_VERSION}")
        changed = [name for name, value in self._identity().items() if state.get(name) != value]
        if changed:
            details = ", ".join(f"{name}: saved {state.get(name)!r}, now {self._identity()[name]!r}" for name in changed)
            raise ValueError(f"cannot resume the data stream exactly; changed since the checkpoint: {details}")
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])
        self.positions = {int(worker): dict(position) for worker, position in state["positions"].items()}
        self.task_counts = Counter(state.get("task_counts", {}))
        self.skipped = sum(worker.get("skipped", 0) for worker in self.positions.values())


# -- validation ---------------------------------------------------------------------------------------
def validation_batches(
    storage: Storage,
    config: TrainDataConfig,
    task: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    instructions: InstructionTable | None = None,
    vocab: SvsVocab | None = None,
) -> Iterator[TrainBatch]:
    """Every ``valid_split`` sample of ``task`` once, split over ranks and workers (a rank may get fewer
    batches than another: gather after the loop). Posterior means, instruction ``valid_instruction``."""
    urls = shard_urls(storage, ROLE, task, config.valid_split)
    if not urls:
        log.warning("no %s feature shards for %s: no validation loss for it", config.valid_split, task)
        return
    instructions = instructions or InstructionTable.from_storage(storage)
    vocab = vocab or SvsVocab()
    dataset = make_dataset(
        urls,
        epoch_samples=0,
        batch_size=config.batch_size,
        rank=rank,
        world_size=world_size,
        seed=config.seed,
        shuffle_buffer=0,
        resampled=False,
        storage=storage,
        role=ROLE,
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=config.workers)
    for listed in loader:
        samples = []
        for index, key in enumerate(listed["key"]):
            files = {name: values[index] for name, values in listed.items() if name not in ("key", "url")}
            files["json"] = files.pop("meta")
            try:
                samples.append(decode_feature_sample(key, {n: v for n, v in files.items() if v is not None}, vocab))
            except SampleError as exc:
                log.warning("validation sample %s skipped: %s", key, exc)
        if samples:
            yield make_batch(samples, instructions, [config.valid_instruction] * len(samples), None)


# -- before launch ----------------------------------------------------------------------------------------
@dataclass
class DataPlanReport:
    """Per task, what a launch would read; ``ok`` is False when a rank would have nothing to train on or
    a rank/worker would read no validation shard."""

    train: dict[str, PlanReport]
    valid: dict[str, PlanReport]
    missing_train: list[str]
    missing_valid: list[str]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"{task}/train: {report.text()}" for task, report in self.train.items()]
        lines += [f"{task}/valid: {report.text()}" for task, report in self.valid.items()]
        lines += [f"problem: {line}" for line in self.problems]
        lines += [f"warning: {line}" for line in self.warnings]
        lines += [f"advice: {line}" for line in self.advice]
        return "\n".join(lines)


class DataPlanError(RuntimeError):
    """The launch would leave a rank without data; the message says what to change."""


def _shard_samples(storage: Storage, task: str, split: str) -> list[int] | None:
    """Samples per feature shard from the ledger, or None when there is no ledger (only tar files)."""
    from uniflow.features.stage import feature_set, read_feature_ledger

    ledger = read_feature_ledger(feature_set(storage, task, split))
    return [record.samples for record in ledger] if ledger else None


def check_data_plan(storage: Storage, config: TrainDataConfig, world_size: int) -> DataPlanReport:
    """``uniflow plan``'s check on the feature shards of every configured task (train and valid)."""
    report = DataPlanReport({}, {}, [], [])
    for split, reports, missing in (
        (config.split, report.train, report.missing_train),
        (config.valid_split, report.valid, report.missing_valid),
    ):
        for task in config.tasks:
            count = len(shard_urls(storage, ROLE, task, split))
            if not count:
                missing.append(task)
                continue
            samples = _shard_samples(storage, task, split)
            reports[task] = check_plan(count, world_size, config.workers, samples if samples and len(samples) == count else None)
    if report.missing_train:
        report.warnings.append(f"no {config.split} feature shards for {', '.join(report.missing_train)}: left out of training")
    if not report.train:
        report.problems.append(f"no {config.split} feature shards for any task: every rank would have no data")
        report.advice.append("run `uniflow shards` and `uniflow features` for the training split first")
    for task, plan in report.train.items():
        report.warnings += [f"{task}/{config.split}: {line}" for line in plan.warnings]
    if report.missing_valid:
        report.warnings.append(
            f"no {config.valid_split} feature shards for {', '.join(report.missing_valid)}: no validation loss"
        )
    for task, plan in report.valid.items():
        report.problems += [f"{task}/{config.valid_split}: {line}" for line in plan.problems]
        report.advice += [f"{task}/{config.valid_split}: {line}" for line in plan.advice]
    return report


def require_data_plan(storage: Storage, config: TrainDataConfig, world_size: int) -> DataPlanReport:
    """``check_data_plan``, raising ``DataPlanError`` (with the advice) when it is not ok."""
    report = check_data_plan(storage, config, world_size)
    for line in report.warnings:
        log.warning("data plan: %s", line)
    if not report.ok:
        raise DataPlanError(f"the data cannot feed {world_size} rank(s) x {config.workers} worker(s):\n{report.text()}")
    return report
