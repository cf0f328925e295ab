"""Feature storage and models for the trainer tests, the two-rank script and the Prefect flow test.

``feature_storage`` writes real feature shards (tiny-VAE posteriors of LibriVox speech) for every task,
train and valid, plus the instruction table; ``tiny_model`` builds the tiny ``UniflowAudio`` for them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from feature_sets import posteriors, save_vae, write_instructions, write_task_sets
from torch import nn

from support import make_storage
from uniflow.features.latents import LatentEncoder, LatentSettings
from uniflow.model.tasks import TASKS
from uniflow.storage import Storage
from uniflow.train.data import TrainDataConfig
from uniflow.train.trainer import OptimizerConfig, TrainConfig, build_model


def feature_storage(root: Path) -> Storage:
    """Every task: 3 train shards and 2 valid shards of 3 samples each; instructions of 16 dims."""
    storage = make_storage(root)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny VAE's convolutions are faster on one thread on a busy 2-core machine
    try:
        encoder = LatentEncoder(LatentSettings(directory=str(save_vae(root / "vae"))), "cpu")
        arrays = posteriors(encoder, 6)
    finally:
        torch.set_num_threads(previous)
    write_task_sets(storage, arrays, dict.fromkeys(TASKS, 3))
    write_task_sets(storage, arrays, dict.fromkeys(TASKS, 2), split="valid")
    write_instructions(storage, TASKS)
    return storage


def quick_config(steps: int, **overrides: object) -> TrainConfig:
    """The tiny preset on 4-sample batches (T2A x2, T2M x3), deterministic, no TensorBoard needed."""
    data = TrainDataConfig(weights={"t2a": 2, "t2m": 3}, batch_size=4, batches_per_epoch=5, workers=0, seed=3, shuffle_buffer=4)
    settings = {
        "model": "tiny",
        "data": data,
        "optimizer": OptimizerConfig(lr=1e-3, warmup_steps=2),
        "steps": steps,
        "checkpoint_every": 1000,
        "valid_max_batches": 1,
        "generate_items": 2,
        "generate_steps": 2,
        "trackers": [],
        "seed": 5,
        "deterministic": True,
    }
    return TrainConfig(**{**settings, **overrides})


def tiny_model(config: TrainConfig) -> nn.Module:
    """The real tiny UniflowAudio (128 latent channels, 16-dim text, video and instruction inputs)."""
    return build_model(config)
