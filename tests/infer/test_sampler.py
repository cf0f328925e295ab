"""The Euler sampler: sway schedule, exact endpoint on an analytic field, CFG rules, seeding and masks."""

from __future__ import annotations

import math

import pytest
import torch

from uniflow.infer.sampler import EulerSampler, guidance_scales, sway_sigmas
from uniflow.model.dit import DitConfig, DualFusionDit


def test_sway_schedule_runs_from_noise_to_data_and_never_goes_back() -> None:
    for coefficient in (-1.0, -0.5, 0.0, None):
        sigmas = sway_sigmas(25, coefficient)
        assert sigmas.shape == (26,) and sigmas[0] == 1.0 and sigmas[-1] == 0.0
        assert (sigmas[1:] < sigmas[:-1]).all()
    t = torch.linspace(0, 1, 26)
    assert torch.allclose(sway_sigmas(25, -1.0), torch.cos(math.pi / 2 * t), atol=1e-6)
    assert torch.allclose(sway_sigmas(25, None), 1 - t, atol=1e-6)
    # s = -1 takes smaller steps near the noise end than the uniform schedule.
    assert (1 - sway_sigmas(25, -1.0)[1]) < (1 - sway_sigmas(25, None)[1])


def test_euler_reaches_a_constant_data_point_exactly() -> None:
    """For data = c the exact field is v = (x - c) / sigma; Euler on it lands on c whatever the schedule."""
    target = torch.tensor([0.5, -2.0, 3.0])
    calls = []

    def velocity(x: torch.Tensor, sigma: torch.Tensor, cond: object) -> torch.Tensor:
        calls.append(sigma[0].item())
        return (x - target) / sigma.view(-1, 1, 1)

    noise = EulerSampler.initial_noise((2, 4, 3), torch.Generator().manual_seed(0))
    out = EulerSampler(steps=25).sample(velocity, noise, cond=None)
    assert torch.allclose(out, target.expand(2, 4, 3), atol=1e-5)
    assert len(calls) == 25 and calls[0] == 1.0  # one evaluation per step, none wasted at sigma = 0


def _affine_field(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    return 0.1 * x + cond.view(-1, 1, 1)


def test_guidance_scale_one_is_the_conditional_output_and_never_runs_unconditional() -> None:
    noise = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(1))
    cond, uncond = torch.tensor([1.0, -1.0, 2.0]), torch.zeros(3)
    seen = []

    def counting(x: torch.Tensor, sigma: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen.append(c is uncond)
        return _affine_field(x, sigma, c)

    sampler = EulerSampler(steps=10)
    guided_off = sampler.sample(counting, noise, cond, uncond, guidance_scale=1.0)
    assert not any(seen)
    assert torch.equal(guided_off, sampler.sample(_affine_field, noise, cond))


def test_per_sample_scales_guide_only_the_samples_above_one() -> None:
    noise = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(2))
    cond, uncond = torch.tensor([1.0, 1.0]), torch.zeros(2)
    sampler = EulerSampler(steps=8)
    mixed = sampler.sample(_affine_field, noise, cond, uncond, guidance_scale=torch.tensor([1.0, 3.0]))
    plain = sampler.sample(_affine_field, noise, cond)
    # v_u + 3 (v_c - v_u) for the affine field is the field with the condition tripled.
    tripled = sampler.sample(_affine_field, noise, 3 * cond)
    assert torch.allclose(mixed[0], plain[0]) and torch.allclose(mixed[1], tripled[1], atol=1e-6)
    assert not torch.allclose(mixed[1], plain[1])


def test_default_scales_are_five_except_se_and_sr() -> None:
    assert guidance_scales(["tts", "se", "t2m", "sr", "v2a"]).tolist() == [5.0, 1.0, 5.0, 1.0, 5.0]
    with pytest.raises(ValueError, match="unknown task"):
        guidance_scales(["tts", "asr"])


def test_seeded_generation_with_the_tiny_backbone_is_reproducible_and_masked() -> None:
    torch.manual_seed(0)
    config = DitConfig.tiny()
    model = DualFusionDit(config).eval()
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    cond = (torch.randn(2, 9, config.content_dim), torch.randn(2, 3, config.content_dim))
    uncond = (torch.zeros_like(cond[0]), torch.zeros_like(cond[1]))

    def velocity(x: torch.Tensor, sigma: torch.Tensor, c: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return model(x, sigma, mask, c[0], c[1], None)

    def generate(seed: int) -> torch.Tensor:
        noise = EulerSampler.initial_noise((2, 9, config.latent_dim), torch.Generator().manual_seed(seed))
        return EulerSampler(steps=5).sample(velocity, noise, cond, uncond, torch.tensor([5.0, 1.0]), mask)

    first, again, other = generate(7), generate(7), generate(8)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert (first[1, 6:] == 0).all() and (first[1, :6] != 0).any()
