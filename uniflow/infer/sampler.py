"""Euler ODE sampler for the flow-matching backbone, kept apart from the network (as diffusers keeps schedulers).

Convention (uniflow.model.flow_matching): sigma = 1 is noise, sigma = 0 is data and the network predicts
v = d z / d sigma, so one step is z <- z + (sigma_next - sigma) * v with sigma falling from 1 to 0.
Latents are (B, T, C); the network is reached only through `velocity_fn(x, sigma, cond) -> v`, where `cond` is
whatever the caller's model needs (the sampler never looks inside it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from uniflow.model.tasks import check_tasks

VelocityFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]

# Paper appendix D.3: CFG 5.0 for every task except SE and SR, which get no guidance (scale 1).
DEFAULT_GUIDANCE_SCALE = 5.0
UNGUIDED_TASKS = frozenset({"se", "sr"})


def guidance_scales(tasks: Sequence[str], scale: float = DEFAULT_GUIDANCE_SCALE) -> torch.Tensor:
    """(B,) per-sample CFG scales: `scale` for guided tasks, 1.0 (no guidance) for SE and SR."""
    check_tasks(tasks)
    return torch.tensor([1.0 if task in UNGUIDED_TASKS else scale for task in tasks])


def sway_sigmas(steps: int, sway_coefficient: float | None = -1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """steps + 1 noise levels from 1 to 0: t = linspace(0, 1), t += s (cos(pi t / 2) - 1 + t), sigma = 1 - t.

    Sway sampling (F5-TTS) with s < 0 spends more steps near the noise end; s = -1 gives sigma = cos(pi t / 2).
    None (or 0) is the plain uniform schedule.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t = torch.linspace(0.0, 1.0, steps + 1, device=device, dtype=torch.float64)
    if sway_coefficient:
        t = t + sway_coefficient * (torch.cos(math.pi / 2 * t) - 1 + t)
    sigmas = (1.0 - t).clamp(0.0, 1.0).float()
    # The endpoints are 1 and 0 for every s; pin them so cos(pi / 2) rounding cannot leave noise behind.
    sigmas[0], sigmas[-1] = 1.0, 0.0
    return sigmas


def guided_velocity(
    velocity_fn: VelocityFn,
    x: torch.Tensor,
    sigma: torch.Tensor,
    cond: Any,
    uncond: Any,
    scale: torch.Tensor,
) -> torch.Tensor:
    """v_u + w (v_c - v_u) for samples with w > 1, the conditional velocity elsewhere (no unconditional pass
    at all when no sample in the batch is guided)."""
    conditional = velocity_fn(x, sigma, cond)
    guided = scale > 1.0
    if uncond is None or not bool(guided.any()):
        return conditional
    unconditional = velocity_fn(x, sigma, uncond)
    weight = scale.to(conditional.dtype).view(-1, *([1] * (conditional.dim() - 1)))
    combined = unconditional + weight * (conditional - unconditional)
    return torch.where(guided.view_as(weight), combined, conditional)


class EulerSampler:
    """Fixed-step Euler integration with sway sampling; 25 steps by default (paper appendix D.3)."""

    def __init__(self, steps: int = 25, sway_coefficient: float | None = -1.0) -> None:
        self.steps = steps
        self.sway_coefficient = sway_coefficient

    def sigmas(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return sway_sigmas(self.steps, self.sway_coefficient, device)

    @staticmethod
    def initial_noise(
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Standard normal start point; a seeded generator makes generation reproducible."""
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)

    @torch.no_grad()
    def sample(
        self,
        velocity_fn: VelocityFn,
        noise: torch.Tensor,
        cond: Any,
        uncond: Any = None,
        guidance_scale: float | torch.Tensor = 1.0,
        latent_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Integrate from `noise` (B, T, C) at sigma = 1 to latents at sigma = 0; `steps` network evaluations
        (twice that for a batch with a guided sample). Padded frames (latent_mask False) come out as zeros."""
        batch = noise.shape[0]
        scale = torch.as_tensor(guidance_scale, dtype=torch.float32, device=noise.device)
        scale = scale.expand(batch) if scale.dim() == 0 else scale
        if scale.shape != (batch,):
            raise ValueError(f"guidance_scale must be a number or shape ({batch},), got {tuple(scale.shape)}")
        sigmas = self.sigmas(noise.device)
        x = noise
        for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
            level = torch.full((batch,), sigma, device=noise.device, dtype=noise.dtype)
            velocity = guided_velocity(velocity_fn, x, level, cond, uncond, scale)
            x = x + (sigma_next - sigma) * velocity
        if latent_mask is not None:
            x = x * latent_mask[..., None].to(x.dtype)
        return x
