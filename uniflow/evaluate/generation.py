"""Generate the audio under evaluation: each test item of a task's feature shards, batched, decoded by the VAE.

The content inputs come from the feature shards (what training validates on), so an evaluation needs no frozen
text, video or speaker encoder: the model, its VAE and the shards are enough. Generated audio is written as
24 kHz WAV under the evaluation's output folder, one file per item key, so every score can be listened to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from uniflow.evaluate.config import InferenceSettings
from uniflow.model.uniflow_audio import UniflowAudio
from uniflow.model.vae import UniflowVae
from uniflow.storage import Storage
from uniflow.train.data import TrainDataConfig, validation_batches


@dataclass
class GeneratedItem:
    """One generated test item: mono float32 audio at `sample_rate`, and where it was written."""

    key: str
    task: str
    audio: np.ndarray
    sample_rate: int
    path: Path


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def item_path(directory: Path, key: str) -> Path:
    """``<directory>/<key with / as __>.wav``: flat, and the key stays readable."""
    return directory / f"{key.replace('/', '__')}.wav"


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def generate_task(
    model: UniflowAudio,
    vae: UniflowVae,
    storage: Storage,
    task: str,
    split: str,
    settings: InferenceSettings,
    directory: Path,
    max_items: int | None = None,
) -> Iterator[GeneratedItem]:
    """Generate every ``split`` item of ``task`` (the first ``max_items``) in batches; yields as they are written."""
    device = next(model.parameters()).device
    data = TrainDataConfig(
        tasks=[task], valid_split=split, batch_size=settings.batch_size, workers=0,
        valid_instruction=settings.instruction_index, instructions_per_task=max(10, settings.instruction_index + 1),
    )
    directory.mkdir(parents=True, exist_ok=True)
    done = 0
    for batch in validation_batches(storage, data, task):
        if max_items is not None and done >= max_items:
            return
        batch = batch.to(device)
        with torch.inference_mode(), _autocast(device, settings.dtype):
            output = model.generate(
                batch.content,
                batch.instruction,
                batch.instruction_mask,
                guidance_scale=settings.guidance_scale,
                steps=settings.steps,
                sway_coefficient=settings.sway_coefficient,
                seed=settings.seed + done,
                use_given_durations=task in settings.reference_durations,
            )
        vae_dtype = next(vae.parameters()).dtype
        for row, key in enumerate(batch.keys):
            if max_items is not None and done >= max_items:
                return
            frames = int(output.lengths[row])
            latents = output.latents[row : row + 1, :frames].transpose(1, 2).to(vae_dtype)
            with torch.inference_mode():
                audio = vae.decode(latents)[0].mean(dim=0).float().cpu().numpy()
            path = item_path(directory, key)
            sf.write(path, audio, vae.config.sample_rate, subtype="FLOAT")
            done += 1
            yield GeneratedItem(key, task, audio, vae.config.sample_rate, path)
