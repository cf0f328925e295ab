"""VAE latents for feature shards: a frozen `UniflowVae` that encodes many clips of different lengths at once.

Batching without changing a single frame
----------------------------------------
Clips are sorted by length and batched with right zero padding up to the longest clip of the batch
(a batch holds at most ``batch_frames`` padded frames and pads no clip by more than ``max_padding``
of its length). The VAE is fully convolutional and has no normalisation layer, so padding can only
change the frames that "see" it: the last ``context_frames`` frames of a padded clip (its receptive
field, computed from the config). Those frames are recomputed from a fixed-length tail window
(the clip's last ``2 * context_frames`` frames, ending where the clip ends, exactly as a solo encode
sees it); all tail windows have the same length, so they batch without padding. Clips shorter than
one tail window are encoded in groups of identical length. The result equals encoding every clip
on its own (up to float summation order), so a sample's latents never depend on its neighbours.

What is stored
--------------
The posterior mean and standard deviation, frame-major ``(frames, latent_dim)``, as float16 (the
posterior of this VAE is O(1) in magnitude; fp16 keeps ~3 significant digits at half the size).
The authors' encoder *samples* a fresh latent every training step; storing one sample would freeze
one noise draw for every epoch, while mean + std lets the trainer draw ``mean + std * eps`` anew
each epoch at the cost of a second array. ``posterior: mean`` (deterministic latents) and
``posterior: sample`` (one draw, seeded by the sample key) are available when that is wanted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from uniflow.config import StrictModel
from uniflow.features.frozen import EncoderIdentity, FrozenEncoderError, freeze, resolve_dtype, start_frozen
from uniflow.model.vae import UniflowVae, VaeConfig

# Bump when what happens to audio before the VAE changes (mono, resampling to the VAE rate with
# soxr HQ, float32 in [-1, 1], no gain normalisation): every feature shard is then recomputed.
LATENT_PREPROCESSING_VERSION = 1
# Half precision must reproduce the fp32 posterior mean on the known input to this relative RMS error.
HALF_PRECISION_TOLERANCE = 0.03

Posterior = Literal["mean_std", "mean", "sample"]


class LatentSettings(StrictModel):
    """Which VAE encodes the audio, in which dtype, what is stored, and how batches are formed."""

    directory: str = Field(description="Folder with config.json + model.safetensors (UniflowVae.save_pretrained)")
    encoder_id: str = "uniflow-vae"
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    posterior: Posterior = "mean_std"
    batch_frames: int = Field(default=8192, ge=1, description="Padded latent frames per forward pass at most")
    max_padding: float = Field(default=0.25, ge=0.0, description="A clip is padded by at most this fraction of its length")
    half_precision_tolerance: float = Field(default=HALF_PRECISION_TOLERANCE, gt=0.0)


@dataclass(frozen=True)
class PosteriorArrays:
    """One clip's posterior, frame-major: mean and std of shape (frames, latent_dim), float32."""

    mean: np.ndarray
    std: np.ndarray


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is cuda when a GPU is visible, else cpu; anything else is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def receptive_field_frames(config: VaeConfig) -> int:
    """Latent frames on either side of a position that can depend on it (an upper bound, plus one).

    Walks the encoder's convolutions: a 'same' conv of kernel k and dilation d at a layer whose
    samples are ``rate`` input samples apart reaches ``(k - 1) // 2 * d * rate`` samples each way;
    a strided conv (kernel 2s) is counted with its whole kernel span, which over-estimates safely.
    """
    reach, rate = (config.io_kernel - 1) // 2, 1
    for stride in config.strides:
        reach += sum((config.residual_kernel - 1) // 2 * dilation * rate for dilation in config.dilations)
        reach += 2 * stride * rate
        rate *= stride
    reach += (config.latent_kernel - 1) // 2 * rate
    return math.ceil(reach / config.downsampling_ratio) + 1


def known_input(sample_rate: int) -> torch.Tensor:
    """One second of a fixed signal (two tones plus seeded noise), the encoder's sanity input."""
    time_axis = torch.arange(sample_rate, dtype=torch.float64) / sample_rate
    tones = 0.3 * torch.sin(2 * math.pi * 220.0 * time_axis) + 0.1 * torch.sin(2 * math.pi * 1870.0 * time_axis)
    noise = torch.randn(sample_rate, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return (tones + 0.02 * noise).float().view(1, 1, -1)


def sample_seed(key: str) -> int:
    """A 63-bit seed from the sample key, for ``posterior: sample``."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> 1


class LatentEncoder:
    """A frozen VAE encoder: loads from a pretrained folder, checks itself, encodes batches of clips."""

    def __init__(self, settings: LatentSettings, device: str | torch.device = "auto") -> None:
        self.settings = settings
        self.device = resolve_device(device) if isinstance(device, str) else device
        dtype = resolve_dtype(settings.dtype, settings.encoder_id)
        directory = Path(settings.directory)
        if not directory.is_dir():
            raise FrozenEncoderError(f"{settings.encoder_id}: VAE folder {directory} not found")
        model = freeze(UniflowVae.from_pretrained(directory))
        if dtype != torch.float32:
            self._check_half_precision(model, dtype)
        self.model = freeze(model.to(device=self.device, dtype=dtype))
        self.dtype = dtype
        self.config = model.config
        self.ratio = self.config.downsampling_ratio
        self.context_frames = receptive_field_frames(self.config)
        probe = known_input(self.config.sample_rate).to(self.device, dtype)
        self.identity: EncoderIdentity = start_frozen(
            self.model,
            settings.encoder_id,
            settings.dtype,
            LATENT_PREPROCESSING_VERSION,
            lambda: self.model.encode(probe, sample=False)[1],
        )

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def _check_half_precision(self, model: UniflowVae, dtype: torch.dtype) -> None:
        """Refuse a half dtype whose posterior mean on the known input strays from fp32's."""
        probe = known_input(model.config.sample_rate)
        half = freeze(UniflowVae(model.config))
        half.load_state_dict(model.state_dict())
        half = half.to(device=self.device, dtype=dtype)
        with torch.inference_mode():
            reference = model.encode(probe, sample=False)[1]
            candidate = half.encode(probe.to(self.device, dtype), sample=False)[1].float().cpu()
        error = ((candidate - reference).norm() / reference.norm().clamp_min(1e-12)).item()
        if not math.isfinite(error) or error > self.settings.half_precision_tolerance:
            raise FrozenEncoderError(
                f"{self.settings.encoder_id}: {self.settings.dtype} is not close to fp32 on the known input "
                f"(relative error {error:.3g} > {self.settings.half_precision_tolerance}); use fp32"
            )

    # -- encoding -----------------------------------------------------------------------------------
    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as float32 (B, frames, latent_dim) for a (B, samples) float32 batch."""
        with torch.inference_mode():
            _, mean, std = self.model.encode(batch.to(self.device, self.dtype).unsqueeze(1), sample=False)
        return mean.float().transpose(1, 2).cpu(), std.float().transpose(1, 2).cpu()

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped by similar length, longest-first within the frame budget and padding limit."""
        order = sorted(range(len(lengths)), key=lambda index: lengths[index])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            blocks = -(-lengths[index] // self.ratio)
            if current:
                shortest = -(-lengths[current[0]] // self.ratio)
                too_padded = blocks > shortest * (1 + self.settings.max_padding)
                if too_padded or blocks * (len(current) + 1) > self.settings.batch_frames:
                    batches.append(current)
                    current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def _run_same_length(self, pieces: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Encode equally long pieces, as many per forward pass as the frame budget allows."""
        if not pieces:
            return []
        per_batch = max(1, self.settings.batch_frames // max(1, pieces[0].numel() // self.ratio))
        results: list[tuple[torch.Tensor, torch.Tensor]] = []
        for start in range(0, len(pieces), per_batch):
            mean, std = self._forward(torch.stack(pieces[start : start + per_batch]))
            results.extend(zip(mean, std, strict=True))
        return results

    def encode(self, clips: list[np.ndarray]) -> list[PosteriorArrays]:
        """Posterior (mean, std) of every clip (mono float32 at the VAE rate), ``len // 480`` frames each."""
        lengths = [int(clip.shape[-1]) for clip in clips]
        for index, length in enumerate(lengths):
            if clips[index].ndim != 1:
                raise ValueError(f"clip {index}: expected mono audio (samples,), got shape {clips[index].shape}")
            if length < self.ratio:
                raise ValueError(f"clip {index}: {length} samples is shorter than one latent frame ({self.ratio})")
        ratio, context = self.ratio, self.context_frames
        window = 2 * context
        blocks = [-(-length // ratio) for length in lengths]
        means: list[torch.Tensor | None] = [None] * len(clips)
        stds: list[torch.Tensor | None] = [None] * len(clips)
        tails: list[int] = []
        short: dict[int, list[int]] = {}
        for batch in self._batches(lengths):
            longest = max(blocks[index] for index in batch)
            padded = torch.zeros(len(batch), longest * ratio)
            for row, index in enumerate(batch):
                padded[row, : lengths[index]] = torch.from_numpy(np.ascontiguousarray(clips[index], dtype=np.float32))
            mean, std = self._forward(padded)
            for row, index in enumerate(batch):
                means[index], stds[index] = mean[row, : blocks[index]].clone(), std[row, : blocks[index]].clone()
                if blocks[index] < longest:  # its last `context` frames saw padding a solo encode never sees
                    (tails if blocks[index] >= window else short.setdefault(blocks[index], [])).append(index)

        def piece(index: int, first_block: int) -> torch.Tensor:
            audio = torch.from_numpy(np.ascontiguousarray(clips[index][first_block * ratio :], dtype=np.float32))
            return F.pad(audio, (0, (blocks[index] - first_block) * ratio - audio.numel()))

        fixed = self._run_same_length([piece(index, blocks[index] - window) for index in tails])
        for index, (mean, std) in zip(tails, fixed, strict=True):
            means[index][-context:], stds[index][-context:] = mean[-context:], std[-context:]  # type: ignore[index]
        for indices in short.values():
            for index, (mean, std) in zip(indices, self._run_same_length([piece(index, 0) for index in indices]), strict=True):
                means[index], stds[index] = mean, std
        results = []
        for index, length in enumerate(lengths):
            frames = length // ratio
            mean, std = means[index], stds[index]
            assert mean is not None and std is not None
            results.append(PosteriorArrays(mean[:frames].numpy(), std[:frames].numpy()))
        return results


def stored_latents(posterior: PosteriorArrays, mode: Posterior, key: str) -> dict[str, np.ndarray]:
    """The arrays a feature sample stores for one posterior, float16, by member stem.

    ``mean_std``: ``latents`` (mean) and ``latents_std``; ``mean``: ``latents`` only; ``sample``:
    ``latents`` = mean + std * eps with eps seeded by ``key``, so a rerun stores the same draw.
    """
    if mode == "sample":
        noise = np.random.default_rng(sample_seed(key)).standard_normal(posterior.mean.shape, dtype=np.float32)
        return {"latents": (posterior.mean + posterior.std * noise).astype(np.float16)}
    arrays = {"latents": posterior.mean.astype(np.float16)}
    if mode == "mean_std":
        arrays["latents_std"] = posterior.std.astype(np.float16)
    return arrays
