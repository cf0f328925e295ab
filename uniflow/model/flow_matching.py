"""The flow-matching objective (paper eqs. 7-8) and classifier-free-guidance dropout.

Direction convention (the paper's and the authors'): sigma = 0 is data and sigma = 1 is noise,
z_sigma = (1 - sigma) * z0 + sigma * eps, so dz/dsigma = eps - z0 is the regression target and generation
integrates from sigma = 1 down to sigma = 0 (see uniflow.infer.sampler). Latents are (B, T, 128), masks bool (B, T).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import model_validator

from uniflow.config import StrictModel


class FlowMatchingConfig(StrictModel):
    """Training-time choices: how sigma is drawn and how conditions are dropped for CFG."""

    # Logit-normal: sigma = sigmoid(N(mean, std)), which favours the middle of the path (the authors' choice).
    sigma_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    cfg_drop_prob: float = 0.2
    # "zeros": the authors zero both contents; "dummies": the paper's dummy embeddings stand for a missing input.
    cfg_drop_mode: Literal["zeros", "dummies"] = "zeros"

    @model_validator(mode="after")
    def _check(self) -> FlowMatchingConfig:
        if not 0.0 <= self.cfg_drop_prob <= 1.0:
            raise ValueError(f"cfg_drop_prob must be in [0, 1], got {self.cfg_drop_prob}")
        if self.logit_std <= 0:
            raise ValueError(f"logit_std must be positive, got {self.logit_std}")
        return self


def sample_sigma(
    batch: int, config: FlowMatchingConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) flow times in (0, 1)."""
    if config.sigma_sampling == "uniform":
        return torch.rand(batch, device=device, generator=generator)
    normal = torch.randn(batch, device=device, generator=generator)
    return torch.sigmoid(config.logit_mean + config.logit_std * normal)


def interpolate(z0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """z_sigma = (1 - sigma) z0 + sigma * noise, sigma (B,) broadcast over (B, T, C) (eq. 7)."""
    sigma = sigma.view(-1, *([1] * (z0.dim() - 1))).to(z0.dtype)
    return z0 + sigma * (noise - z0)


def velocity_target(z0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d z_sigma / d sigma = noise - z0 (eq. 8)."""
    return noise - z0


@dataclass(frozen=True)
class FlowMatchingBatch:
    """What the network sees (noisy latents at sigma) and what it must predict (target velocity)."""

    noisy: torch.Tensor
    sigma: torch.Tensor
    target: torch.Tensor


def make_training_batch(
    z0: torch.Tensor,
    config: FlowMatchingConfig,
    latent_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    sigma: float | None = None,
) -> FlowMatchingBatch:
    """Draw sigma (or take the fixed ``sigma``, e.g. 0.5 for validation) and noise for clean latents z0 (B, T, C);
    noise at padded frames is zero (it is never scored)."""
    if sigma is None:
        sigmas = sample_sigma(z0.shape[0], config, z0.device, generator)
    else:
        if not 0.0 <= sigma <= 1.0:
            raise ValueError(f"sigma {sigma} is outside [0, 1]")
        sigmas = torch.full((z0.shape[0],), float(sigma), device=z0.device)
    noise = torch.randn(z0.shape, device=z0.device, dtype=z0.dtype, generator=generator)
    if latent_mask is not None:
        noise = noise * latent_mask[..., None].to(noise.dtype)
    return FlowMatchingBatch(interpolate(z0, noise, sigmas), sigmas, velocity_target(z0, noise))


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample MSE (B,) over valid frames and all channels; padded frames count for nothing."""
    squared = (prediction - target).square()
    if mask is None:
        return squared.flatten(1).mean(dim=1)
    weights = mask[..., None].to(squared.dtype)
    valid = weights.flatten(1).sum(dim=1).clamp_min(1.0) * squared.shape[-1]
    return (squared * weights).flatten(1).sum(dim=1) / valid


def per_task_means(per_sample: torch.Tensor, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
    """Mean of a per-sample quantity (B,) for each task name present in the batch, for logging."""
    if len(tasks) != per_sample.shape[0]:
        raise ValueError(f"{len(tasks)} task names for a batch of {per_sample.shape[0]}")
    means: dict[str, torch.Tensor] = {}
    for task in dict.fromkeys(tasks):
        index = torch.tensor([i for i, name in enumerate(tasks) if name == task], device=per_sample.device)
        means[task] = per_sample.index_select(0, index).mean()
    return means


def flow_matching_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    latent_mask: torch.Tensor | None = None,
    tasks: Sequence[str] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Batch loss (mean of per-sample masked MSEs) and, when task names are given, detached per-task means."""
    per_sample = masked_mse(prediction, target, latent_mask)
    by_task = {name: value.detach() for name, value in per_task_means(per_sample, tasks).items()} if tasks else {}
    return per_sample.mean(), by_task


def cfg_drop_mask(
    batch: int, probability: float, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) bool: True where a sample's conditions are dropped (both streams together, as in v(z, None, None))."""
    return torch.rand(batch, device=device, generator=generator) < probability


def drop_conditions(
    drop: torch.Tensor,
    ta_content: torch.Tensor | None,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    mode: Literal["zeros", "dummies"] = "zeros",
    dummy_ta: torch.Tensor | None = None,
    dummy_context: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Replace the conditions of samples where `drop` (B,) is True by the unconditional input.

    "zeros" (authors): TA content (B, T, D) and context (B, N, D) become zeros, masks unchanged.
    "dummies": TA content becomes `dummy_ta` (D,) at every frame and the context becomes `dummy_context` (D,) at
    position 0 with only that position valid. The same function with drop all True builds the inference-time
    unconditional input, so training and sampling agree.
    """
    keep_rows = (~drop).to(context.dtype)
    if mode == "zeros":
        new_ta = ta_content * keep_rows[:, None, None] if ta_content is not None else None
        return new_ta, context * keep_rows[:, None, None], context_mask
    if dummy_ta is None or dummy_context is None:
        raise ValueError('cfg drop mode "dummies" needs dummy_ta and dummy_context')
    dropped = drop[:, None, None]
    new_ta = torch.where(dropped, dummy_ta.to(ta_content.dtype), ta_content) if ta_content is not None else None
    first = torch.zeros(context.shape[1], dtype=torch.bool, device=context.device)
    first[0] = True
    dummy_rows = torch.where(first[:, None], dummy_context.to(context.dtype), torch.zeros_like(dummy_context))
    new_context = torch.where(dropped, dummy_rows, context)
    new_mask = torch.where(drop[:, None], first, context_mask)
    return new_ta, new_context, new_mask
