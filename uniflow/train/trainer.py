"""Training UniFlow-Audio on Accelerate (paper section 4 and appendix D.3; issue 8).

One code path for one CPU process, ``accelerate launch`` on one or many GPUs and nodes, and
``accelerate.debug_launcher`` in tests. Every process reads its own task-balanced ``TrainStream``
(``uniflow.train.data``); nothing is dispatched by Accelerate.

Optimisation (the paper's setup, the authors' ``configs/train.yaml``)
    AdamW, lr 5e-5, weight decay 0.01, gradient clipping 1.0, a linear warm-up over 10K *optimizer* steps
    and a constant rate afterwards. The scheduler steps once per optimizer step whatever the number of
    processes (``step_scheduler_with_optimizer=False``; Accelerate's default would step it once per
    process). DDP runs with ``find_unused_parameters=True`` because a batch may hold no sample of a
    task and so leave that task's content encoder without gradients. FSDP is chosen by the Accelerate
    config (``configs/accelerate/8gpu_fsdp.yaml``). Mixed precision: bf16 on CUDA, none on the CPU.

Checkpoints (``<checkpoints>/uniflow/<run>/step-<N>/``, ``latest`` points at the newest)
    ``state/`` (Accelerate: model, optimizer, scheduler, RNG states of every process), ``model/``
    (``save_pretrained``: config.json + model.safetensors), ``data/rank-<r>.json`` (each rank's
    ``TrainStream`` position), ``validation.json``, ``samples/`` and, written last so that its presence
    marks a complete checkpoint, ``trainer.json``. The last ``keep_checkpoints`` are kept.

Exact resume
    The global torch RNG drives the model's randomness (flow times, noise, CFG dropout, dropout) and is
    restored from ``state/``. Data loading, validation and generation run inside ``fork_rng`` so they
    never draw from it: a run stopped after step k and resumed gives the same losses from step k + 1 as
    an uninterrupted run (CPU, ``deterministic: true``).

Guards
    The data plan (``require_data_plan``) is checked before the model is built. A step whose loss or
    gradient norm is not finite on any rank is skipped on every rank (no optimizer step, gradients
    zeroed) and counted; ``max_consecutive_nonfinite`` of them in a row stop the run with
    ``NonFiniteLossError``, leaving the last checkpoint as it was.

Logging (rank 0): ``log.jsonl`` in the run folder and every Accelerate tracker configured and installed
(TensorBoard by default): total and per-term losses, the flow loss per task, learning rate, gradient
norm, the task mix achieved so far beside its target, the share of step time spent waiting for data,
and validation losses per task on the held-out shards at the fixed flow time ``valid_sigma`` (0.5, as
the authors) with noise from a generator seeded the same way every time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from uniflow.config import ConfigError, StrictModel, load_yaml
from uniflow.model.content import ContentBatch
from uniflow.model.tasks import TASKS
from uniflow.storage import Storage
from uniflow.train.checkpoints import TRAINER_FILE, latest_checkpoint, point_latest, prune_checkpoints
from uniflow.train.data import (
    InstructionTable,
    TrainBatch,
    TrainDataConfig,
    TrainStream,
    require_data_plan,
    validation_batches,
)
from uniflow.train.vocab import SvsVocab

log = logging.getLogger(__name__)

RUNS_FOLDER = "uniflow"
LOG_FILE = "log.jsonl"
VALIDATION_FILE = "validation.json"
MODEL_PRESETS = ("tiny", "small", "medium", "large")


# -- configuration ----------------------------------------------------------------------------------------
class OptimizerConfig(StrictModel):
    """AdamW with a linear warm-up to ``lr`` and a constant rate afterwards (by optimizer steps)."""

    lr: float = Field(default=5e-5, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=10_000, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)


class TrainConfig(StrictModel):
    """Everything a training run needs. Defaults are the paper's (the ``small`` model); see ``preset``."""

    model: str = "small"  # a UniflowAudioConfig preset: tiny, small, medium or large
    init_from: str | None = None  # a save_pretrained directory to start from instead of a fresh model
    data: TrainDataConfig = Field(default_factory=lambda: TrainDataConfig(batch_size=24, workers=8))
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    steps: int = Field(default=400_000, ge=0)  # the authors: 200 epochs of 2000 steps
    gradient_accumulation: int = Field(default=1, ge=1)
    # auto: what `accelerate launch` was told, else bf16 on CUDA and none on the CPU.
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    checkpoint_every: int = Field(default=10_000, ge=1)
    checkpoint_at_end: bool = True  # False: a throughput or smoke run that leaves nothing behind
    keep_checkpoints: int = Field(default=2, ge=1)  # the authors keep the last 2
    log_every: int = Field(default=1, ge=1)
    validate_every: int | None = Field(default=None, ge=1)  # None: at each checkpoint
    valid_sigma: float = Field(default=0.5, gt=0, lt=1)  # flow time of the validation loss
    valid_max_batches: int = Field(default=20, ge=1)  # per task and rank
    generate_items: int = Field(default=4, ge=0)  # validation items generated at each checkpoint
    generate_steps: int = Field(default=25, ge=1)
    vae_dir: str | None = None  # decode generated latents to audio with this VAE
    # Widths of the frozen features the tiny model reads (the paper sizes take Flan-T5-large's and CLIP's 1024).
    tiny_feature_dims: dict[Literal["text", "video", "instruction"], int] = Field(
        default_factory=lambda: {"text": 16, "video": 16, "instruction": 16}
    )
    max_consecutive_nonfinite: int = Field(default=10, ge=1)
    # How DataLoader workers hand batches over: "file_system" names shared-memory files, which costs the
    # training process about a third of "file_descriptor" (a socket round trip per tensor; ~20 per batch).
    tensor_sharing: Literal["file_system", "file_descriptor"] = "file_system"
    trackers: list[str] = Field(default_factory=lambda: ["tensorboard"])
    seed: int = 42  # the authors' basic.yaml
    deterministic: bool = False  # torch.use_deterministic_algorithms (exact CPU resume; slower on GPU)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.model not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {self.model!r}; choose one of {', '.join(MODEL_PRESETS)}")
        return self

    @classmethod
    def preset(cls, name: str, plan: Any | None = None) -> TrainConfig:
        """``tiny`` (seconds per step on a CPU) or the paper's ``small``/``medium``/``large`` setup.

        With a ``Plan`` (``datasets/plan.yaml``) the tasks and their sampling weights come from it.
        """
        if name not in MODEL_PRESETS:
            raise ConfigError(f"unknown training preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}")
        if name == "tiny":
            data = {"batch_size": 4, "batches_per_epoch": 100, "workers": 0, "shuffle_buffer": 16}
            config = cls(
                model="tiny",
                data=TrainDataConfig(**data),
                optimizer=OptimizerConfig(lr=1e-3, warmup_steps=10),
                steps=200,
                checkpoint_every=100,
                valid_max_batches=2,
                generate_items=2,
                generate_steps=4,
                trackers=["tensorboard"],
            )
        else:
            config = cls(model=name)
        if plan is not None:
            data = TrainDataConfig.from_plan(plan, **config.data.model_dump(exclude={"tasks", "weights"}))
            config = config.model_copy(update={"data": data})
        return config


def load_train_config(path: str | Path) -> TrainConfig:
    """A YAML run config; fields it leaves out take the paper's values."""
    return load_yaml(path, TrainConfig)


def resolve_train_config(config: str, datasets_dir: str | Path = "datasets") -> TrainConfig:
    """A preset name (its tasks and sampling weights from ``<datasets_dir>/plan.yaml``) or a training YAML."""
    if config in MODEL_PRESETS:
        from uniflow.corpora.recipe import load_plan, load_recipes

        return TrainConfig.preset(config, load_plan(f"{datasets_dir}/plan.yaml", load_recipes(datasets_dir)))
    return load_train_config(config)


class NonFiniteLossError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradient; the last checkpoint is intact."""


# -- model --------------------------------------------------------------------------------------------------
ModelFactory = Callable[[TrainConfig], nn.Module]


def build_model(config: TrainConfig) -> nn.Module:
    """``UniflowAudio`` of the configured preset, or loaded from ``init_from``."""
    from uniflow.model.uniflow_audio import UniflowAudio, UniflowAudioConfig

    if config.init_from is not None:
        return UniflowAudio.from_pretrained(config.init_from)
    if config.model == "tiny":
        # Feature shards always hold the paper VAE's 128 latent channels, whatever the model's width.
        dims = {"text": 16, "video": 16, "instruction": 16, **config.tiny_feature_dims}
        return UniflowAudio(
            UniflowAudioConfig.tiny(
                latent_dim=128, text_dim=dims["text"], video_dim=dims["video"], instruction_dim=dims["instruction"]
            )
        )
    return UniflowAudio(UniflowAudioConfig.preset(config.model))


def batch_to(batch: TrainBatch, device: torch.device) -> TrainBatch:
    """A copy of ``batch`` with every tensor (content included) on ``device``."""
    if device.type == "cpu":
        return batch
    moved: dict[str, Any] = {}
    for item in fields(batch):
        value = getattr(batch, item.name)
        if isinstance(value, torch.Tensor):
            moved[item.name] = value.to(device, non_blocking=True)
        elif isinstance(value, ContentBatch):
            moved[item.name] = value.to(device)
    return replace(batch, **moved)


def constant_with_warmup(warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear from 0 over ``warmup_steps`` optimizer steps, then 1 (transformers' schedule)."""
    return _WarmupFactor(warmup_steps)


@dataclass
class _WarmupFactor:
    # A dataclass, not a lambda, so LambdaLR's state_dict can hold it.
    warmup_steps: int

    def __call__(self, step: int) -> float:
        return 1.0 if step >= self.warmup_steps else step / max(1, self.warmup_steps)


# -- run folder ---------------------------------------------------------------------------------------------
def run_dir(storage: Storage, run_name: str) -> Path:
    """``<checkpoints>/uniflow/<run name>`` (Accelerate's save_state needs a local or mounted path)."""
    return storage.path("checkpoints", RUNS_FOLDER, run_name)


def read_log(run: Path) -> list[dict[str, Any]]:
    """The rows of ``log.jsonl`` (one per logged step, validation rows included)."""
    path = run / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class TrainResult:
    """What a training call did."""

    step: int
    start_step: int
    checkpoint: Path | None
    nonfinite_steps: int = 0
    losses: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)


# -- per-step statistics -------------------------------------------------------------------------------------
def _step_statistics(output: Any, batch: TrainBatch, device: torch.device) -> torch.Tensor:
    """A micro-batch's share of the vector all-reduced each step: [loss, non-finite, per-task loss sums,
    per-task counts, (served samples per task, filled once per step)]; sums, so ranks add up exactly."""
    loss = output.loss.detach().float()
    counts = [batch.tasks.count(task) for task in TASKS]
    sums = []
    for task, count in zip(TASKS, counts, strict=True):
        value = output.per_task.get(task)
        sums.append(float(value.detach().float()) * count if value is not None and count else 0.0)
    finite = bool(torch.isfinite(loss))
    values = [float(loss) if finite else 0.0, 0.0 if finite else 1.0, *sums, *counts]
    values += [0.0] * len(TASKS)
    return torch.tensor(values, dtype=torch.float64, device=device)


# -- validation and samples -----------------------------------------------------------------------------------
def _validation_forward(model: nn.Module, batch: TrainBatch, sigma: float, seed: int) -> Any:
    """The model's loss at flow time ``sigma`` for every sample, with noise from a generator seeded by ``seed``."""
    generator = torch.Generator(device=batch.latents.device).manual_seed(seed)
    return model(batch, generator=generator, sigma=sigma)


@torch.no_grad()
def validation_losses(
    accelerator: Any,
    model: nn.Module,
    storage: Storage,
    config: TrainConfig,
    tasks: list[str],
    instructions: InstructionTable,
    vocab: SvsVocab,
) -> tuple[dict[str, float], dict[str, TrainBatch]]:
    """Flow loss per task on the held-out shards at flow time ``valid_sigma`` (fixed noise seed), averaged
    over samples of all ranks; and each task's first validation batch on this rank (for samples)."""
    from accelerate.utils import DistributedType

    fsdp = accelerator.distributed_type == DistributedType.FSDP
    # DDP's forward may broadcast buffers, so ranks that run different numbers of batches use the plain module;
    # FSDP needs its wrapper, so there every rank runs the same number of forwards.
    runner = model if fsdp else accelerator.unwrap_model(model)
    was_training = runner.training
    runner.eval()
    device = accelerator.device
    totals = torch.zeros(2 * len(TASKS), dtype=torch.float64, device=device)
    first: dict[str, TrainBatch] = {}
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            for index, task in enumerate(TASKS):
                if task not in tasks:
                    continue
                batches = list(
                    islice(
                        validation_batches(
                            storage,
                            config.data,
                            task,
                            rank=accelerator.process_index,
                            world_size=accelerator.num_processes,
                            instructions=instructions,
                            vocab=vocab,
                        ),
                        config.valid_max_batches,
                    )
                )
                runs = len(batches)
                if fsdp:
                    runs = int(accelerator.gather(torch.tensor([runs], device=device)).max())
                    if runs and not batches:
                        raise RuntimeError(f"rank {accelerator.process_index} has no {task} validation batch under FSDP")
                for number in range(runs):
                    batch = batches[min(number, len(batches) - 1)]
                    weight = 1.0 if number < len(batches) else 0.0
                    output = _validation_forward(runner, batch_to(batch, device), config.valid_sigma, config.seed + number)
                    value = output.per_task.get(task)
                    if value is not None:
                        totals[index] += weight * float(value.float()) * len(batch)
                        totals[len(TASKS) + index] += weight * len(batch)
                if batches:
                    first[task] = batches[0]
    finally:
        runner.train(was_training)
    totals = accelerator.reduce(totals, reduction="sum")
    losses = {
        task: float(totals[index] / totals[len(TASKS) + index])
        for index, task in enumerate(TASKS)
        if totals[len(TASKS) + index] > 0
    }
    return losses, first


def _take_rows(batch: TrainBatch, row: int) -> TrainBatch:
    """The one-sample batch of ``batch``'s row ``row`` (content rebuilt from the sub-batch rows)."""
    from uniflow.model.content import MODALITY_OF_TASK

    content = batch.content
    modality = MODALITY_OF_TASK[batch.tasks[row]]
    sub_row = content.rows(modality).index(row)
    sub = content.inputs(modality)
    picked = replace(
        sub,
        **{
            item.name: getattr(sub, item.name)[sub_row : sub_row + 1]
            for item in fields(sub)
            if getattr(sub, item.name) is not None
        },
    )
    single = ContentBatch(tasks=(batch.tasks[row],), **{modality: picked})
    return TrainBatch(
        latents=batch.latents[row : row + 1],
        latent_mask=batch.latent_mask[row : row + 1],
        content=single,
        instruction=batch.instruction[row : row + 1],
        instruction_mask=batch.instruction_mask[row : row + 1],
        instruction_index=batch.instruction_index[row : row + 1],
        tasks=[batch.tasks[row]],
        keys=[batch.keys[row]],
    )


def _generate_latents(model: nn.Module, item: TrainBatch, config: TrainConfig) -> tuple[torch.Tensor, int]:
    """(T, 128) latents generated for a one-sample batch, and their valid length."""
    result = model.generate(
        item.content, item.instruction, item.instruction_mask, steps=config.generate_steps, seed=config.seed
    )
    return result.latents[0].detach().float().cpu(), int(result.lengths[0])


def write_samples(model: nn.Module, batches: dict[str, TrainBatch], config: TrainConfig, directory: Path) -> list[Path]:
    """Generate ``generate_items`` validation items (one task after another) into ``directory``: latents as
    ``.npy`` and, with ``vae_dir``, 24 kHz audio decoded by that VAE as ``.wav``. Returns the files written."""
    if not config.generate_items or not batches:
        return []
    import soundfile as sf

    from uniflow.model.vae import UniflowVae

    vae = UniflowVae.from_pretrained(config.vae_dir).eval() if config.vae_dir else None
    order = [(task, row) for row in range(max(len(b) for b in batches.values())) for task, b in batches.items() if row < len(b)]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            for task, row in order[: config.generate_items]:
                item = _take_rows(batches[task], row)
                device = next(model.parameters()).device
                latents, length = _generate_latents(model, batch_to(item, device), config)
                name = item.keys[0].replace("/", "_")
                path = directory / f"{name}.npy"
                np.save(path, latents[:length].numpy())
                written.append(path)
                if vae is not None:
                    audio = vae.decode(latents[:length].T.unsqueeze(0).to(next(vae.parameters()).dtype))
                    wav = directory / f"{name}.wav"
                    sf.write(wav, audio[0].T.numpy(), vae.config.sample_rate)
                    written.append(wav)
    finally:
        model.train(was_training)
    return written


# -- launching ---------------------------------------------------------------------------------------------
def accelerate_command(
    train_args: list[str],
    *,
    num_processes: int = 1,
    accelerate_config: str | Path | None = None,
    python: str | None = None,
) -> list[str]:
    """``accelerate launch ... -m uniflow.cli train <train_args>``.

    With an Accelerate config file its settings apply (``configs/accelerate/*.yaml``); without one the launch
    is ``num_processes`` local processes: ``--multi_gpu`` with NCCL on GPUs and, on a host without CUDA, the
    same flag with ``Accelerator(cpu=True)`` gives gloo (``--cpu --num_processes N`` would start one process).
    """
    import sys

    command = [python or sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config is not None:
        command += ["--config_file", str(accelerate_config)]
    else:
        command += ["--num_machines", "1", "--num_processes", str(num_processes), "--dynamo_backend", "no"]
        command += ["--mixed_precision", "bf16" if torch.cuda.is_available() else "no"]
        if num_processes > 1:
            command.append("--multi_gpu")
    return [*command, "-m", "uniflow.cli", "train", *train_args]


def launch_world_size(num_processes: int = 1, accelerate_config: str | Path | None = None) -> int:
    """How many training processes a launch will start: the Accelerate config's ``num_processes`` (all
    machines together) or ``num_processes``."""
    if accelerate_config is None:
        return num_processes
    from accelerate.commands.config.config_args import ClusterConfig

    return int(ClusterConfig.from_yaml_file(str(accelerate_config)).num_processes)


# -- the training loop ----------------------------------------------------------------------------------------
def _mixed_precision(config: TrainConfig) -> str | None:
    if config.mixed_precision != "auto":
        return config.mixed_precision
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # what `accelerate launch` (its config file or flags) was told
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def _trackers(config: TrainConfig) -> list[str]:
    """The configured trackers that are installed (a missing one is named in a warning, not fatal)."""
    from accelerate.utils import is_tensorboard_available

    available = []
    for name in config.trackers:
        if name == "tensorboard" and not is_tensorboard_available():
            log.warning("tensorboard is not installed: no TensorBoard logs (log.jsonl is written anyway)")
            continue
        available.append(name)
    return available


def _hyperparameters(config: TrainConfig, world_size: int) -> dict[str, Any]:
    """Scalars for the trackers' run config (TensorBoard's hparams take no nested values)."""
    return {
        "model": config.model,
        "lr": config.optimizer.lr,
        "warmup_steps": config.optimizer.warmup_steps,
        "batch_size_per_rank": config.data.batch_size,
        "gradient_accumulation": config.gradient_accumulation,
        "world_size": world_size,
        "steps": config.steps,
        "seed": config.seed,
    }


def train(
    config: TrainConfig,
    storage: Storage,
    run_name: str,
    *,
    resume: bool = False,
    progress: bool = True,
    model_factory: ModelFactory | None = None,
) -> TrainResult:
    """Train (or continue training) up to ``config.steps`` optimizer steps; see the module docstring.

    ``model_factory`` builds the module (default ``build_model``): anything with ``forward(batch) ->
    ModelOutput(.loss, .losses, .per_task)``, ``generate`` and ``save_pretrained``/``config``.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, DistributedType, gather_object, set_seed
    from tqdm import tqdm

    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if config.data.workers:
        torch.multiprocessing.set_sharing_strategy(config.tensor_sharing)
    run = run_dir(storage, run_name)
    trackers = _trackers(config)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=_mixed_precision(config),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        step_scheduler_with_optimizer=False,
        log_with=trackers or None,
        project_dir=str(run / "logs"),
    )
    rank, world_size = accelerator.process_index, accelerator.num_processes
    # A rank without data fails here, before any model is built, with the plan's advice.
    require_data_plan(storage, config.data, world_size)

    resume_from = latest_checkpoint(run) if resume else None
    if resume and resume_from is None:
        log.info("run %s has no checkpoint yet; starting from step 0", run_name)
    if not resume and latest_checkpoint(run) is not None:
        raise ConfigError(f"{run}: run {run_name!r} already has checkpoints; pass resume or choose another run name")
    trainer_state = json.loads((resume_from / TRAINER_FILE).read_text()) if resume_from else {}
    start_step = int(trainer_state.get("step", 0))

    set_seed(config.seed)  # the same initial weights on every rank
    model = (model_factory or build_model)(config)
    optimizer = torch.optim.AdamW(
        (p for p in model.parameters() if p.requires_grad),
        lr=config.optimizer.lr,
        betas=config.optimizer.betas,
        weight_decay=config.optimizer.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, constant_with_warmup(config.optimizer.warmup_steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    fsdp = accelerator.distributed_type == DistributedType.FSDP

    instructions = InstructionTable.from_storage(storage)
    vocab = SvsVocab()
    stream = TrainStream(storage, config.data, rank=rank, world_size=world_size, instructions=instructions, vocab=vocab)
    if resume_from is not None:
        accelerator.load_state(str(resume_from / "state"))
        stream.load_state_dict(json.loads((resume_from / "data" / f"rank-{rank}.json").read_text()))
        log.info("resumed run %s from %s (step %d)", run_name, resume_from, start_step)
    else:
        set_seed(config.seed, device_specific=True)  # each rank its own flow times and noise
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        accelerator.init_trackers(run_name, config=_hyperparameters(config, world_size))
    targets = stream.target_ratios()

    result = TrainResult(step=start_step, start_step=start_step, checkpoint=resume_from)
    result.nonfinite_steps = int(trainer_state.get("nonfinite_steps", 0))
    consecutive = int(trainer_state.get("consecutive_nonfinite", 0))

    def log_row(row: dict[str, Any]) -> None:
        if not accelerator.is_main_process:
            return
        result.losses.append(row)
        with open(run / LOG_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        accelerator.log({name: value for name, value in row.items() if name != "step"}, step=row["step"])

    def validate(step: int) -> tuple[dict[str, float], dict[str, TrainBatch]]:
        losses, first = validation_losses(accelerator, model, storage, config, stream.tasks, instructions, vocab)
        log_row({"step": step, **{f"valid/{task}": value for task, value in losses.items()}})
        result.validation = losses
        return losses, first

    def save_checkpoint(step: int) -> Path:
        target = run / f"step-{step}"
        losses, first = validate(step)
        accelerator.save_state(str(target / "state"))
        (target / "data").mkdir(parents=True, exist_ok=True)
        (target / "data" / f"rank-{rank}.json").write_text(json.dumps(stream.state_dict()) + "\n", encoding="utf-8")
        full_state = accelerator.get_state_dict(model) if fsdp else None  # every rank takes part in the gather
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            if fsdp:
                with torch.device("meta"):
                    copy = type(unwrapped)(unwrapped.config)
                copy.load_state_dict(full_state, assign=True)
                copy.save_pretrained(target / "model")
            else:
                unwrapped.save_pretrained(target / "model")
                write_samples(unwrapped, first, config, target / "samples")
            (target / VALIDATION_FILE).write_text(json.dumps({"step": step, "losses": losses}, indent=1) + "\n", encoding="utf-8")
            trainer = {
                "step": step,
                "run_name": run_name,
                "world_size": world_size,
                "nonfinite_steps": result.nonfinite_steps,
                "consecutive_nonfinite": consecutive,
                "config": json.loads(config.model_dump_json()),
            }
            (target / TRAINER_FILE).write_text(json.dumps(trainer, indent=1) + "\n", encoding="utf-8")
            point_latest(run, target)
            prune_checkpoints(run, config.keep_checkpoints)
        accelerator.wait_for_everyone()
        result.checkpoint = target
        return target

    model.train()
    step = start_step
    bar = tqdm(
        total=config.steps, initial=start_step, desc=f"train {run_name}", disable=not (progress and accelerator.is_main_process)
    )
    batches: Iterator[TrainBatch] = iter(stream)
    device = accelerator.device
    try:
        while step < config.steps:
            started = time.perf_counter()
            waited = 0.0
            samples = frames = 0
            statistics = torch.zeros(2 + 3 * len(TASKS), dtype=torch.float64, device=device)
            terms: dict[str, float] = {}
            for micro in range(config.gradient_accumulation):
                before = time.perf_counter()
                # Loading never touches the training RNG, so where a run resumes cannot change its randomness.
                with torch.random.fork_rng(devices=[]):
                    batch = next(batches)
                waited += time.perf_counter() - before
                samples += len(batch)
                frames += int(batch.latent_mask.sum())
                batch = batch_to(batch, device)
                last = micro == config.gradient_accumulation - 1
                with nullcontext() if last else accelerator.no_sync(model):
                    with accelerator.autocast():
                        output = model(batch)
                    # Backward even for a non-finite loss: every DDP rank must join the gradient all-reduce.
                    accelerator.backward(output.loss / config.gradient_accumulation)
                statistics += _step_statistics(output, batch, device)
                for name, value in output.losses.items():
                    terms[name] = terms.get(name, 0.0) + float(value.detach().float()) / config.gradient_accumulation
            served_at = 2 + 2 * len(TASKS)
            statistics[served_at:] = torch.tensor([stream.task_counts.get(task, 0) for task in TASKS], dtype=torch.float64)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.optimizer.grad_clip)
            grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
            statistics[1] += 0.0 if math.isfinite(grad_norm) else 1.0
            statistics = accelerator.reduce(statistics, reduction="sum")
            skipped = bool(statistics[1] > 0)
            if skipped:
                optimizer.zero_grad(set_to_none=True)
                result.nonfinite_steps += 1
                consecutive += 1
                log.warning("step %d: non-finite loss or gradient on some rank; skipped (%d in a row)", step + 1, consecutive)
            else:
                optimizer.step()
                consecutive = 0
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if consecutive >= config.max_consecutive_nonfinite:
                raise NonFiniteLossError(
                    f"{consecutive} steps in a row had a non-finite loss or gradient (up to step {step}); "
                    f"the last checkpoint is {result.checkpoint or 'none'}"
                )

            if step % config.log_every == 0 or step == config.steps:
                micro_batches = config.gradient_accumulation * world_size
                count_at = 2 + len(TASKS)
                served = statistics[served_at:]
                row: dict[str, Any] = {
                    "step": step,
                    "loss": float("nan") if skipped else float(statistics[0]) / micro_batches,
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    "nonfinite_steps": result.nonfinite_steps,
                    "samples": samples * world_size,
                    "latent_frames": frames * world_size,
                    "step_seconds": time.perf_counter() - started,
                    "data_wait_fraction": waited / max(time.perf_counter() - started, 1e-9),
                }
                gathered = gather_object([terms])
                names = sorted({name for item in gathered for name in item})
                for name in names:
                    row[f"loss/{name}"] = sum(item.get(name, 0.0) for item in gathered) / len(gathered)
                total_served = float(served.sum())
                for index, task in enumerate(TASKS):
                    count = float(statistics[count_at + index])
                    if count:
                        row[f"task_loss/{task}"] = float(statistics[2 + index]) / count
                    if task in targets and total_served:
                        row[f"ratio/{task}"] = float(served[index]) / total_served
                        row[f"target_ratio/{task}"] = targets[task]
                if accelerator.is_main_process:
                    bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.2e}")
                log_row(row)
            if step % config.checkpoint_every == 0 or (step == config.steps and config.checkpoint_at_end):
                save_checkpoint(step)
            elif config.validate_every and step % config.validate_every == 0:
                validate(step)
    finally:
        bar.close()
        accelerator.end_training()
    result.step = step
    return result
