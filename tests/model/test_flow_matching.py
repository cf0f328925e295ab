"""The flow-matching objective: path direction, sigma sampling, masked per-sample loss and CFG dropout."""

from __future__ import annotations

import pytest
import torch

from uniflow.model.flow_matching import (
    FlowMatchingConfig,
    cfg_drop_mask,
    drop_conditions,
    flow_matching_loss,
    interpolate,
    make_training_batch,
    masked_mse,
    per_task_means,
    sample_sigma,
    velocity_target,
)


def test_sigma_zero_is_data_and_one_is_noise_and_target_points_to_noise() -> None:
    data, noise = torch.full((2, 4, 3), 2.0), torch.full((2, 4, 3), -1.0)
    assert torch.equal(interpolate(data, noise, torch.zeros(2)), data)
    assert torch.equal(interpolate(data, noise, torch.ones(2)), noise)
    halfway = interpolate(data, noise, torch.tensor([0.5, 0.25]))
    assert torch.allclose(halfway[0], torch.full((4, 3), 0.5)) and torch.allclose(halfway[1], torch.full((4, 3), 1.25))
    assert torch.equal(velocity_target(data, noise), noise - data)


def test_training_batch_is_consistent_and_silent_on_padding() -> None:
    z0 = torch.randn(3, 6, 4)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    batch = make_training_batch(z0, FlowMatchingConfig(), mask, torch.Generator().manual_seed(0))
    sigma = batch.sigma.view(-1, 1, 1)
    # Moving back along the target velocity by sigma returns the data.
    assert torch.allclose(batch.noisy - sigma * batch.target, z0, atol=1e-6)
    assert torch.equal(batch.target[2, 4:], -z0[2, 4:])


def test_logit_normal_sigma_centres_on_one_half_and_uniform_spreads() -> None:
    generator = torch.Generator().manual_seed(0)
    logit = sample_sigma(20000, FlowMatchingConfig(), generator=generator)
    uniform = sample_sigma(20000, FlowMatchingConfig(sigma_sampling="uniform"), generator=generator)
    assert ((logit > 0) & (logit < 1)).all()
    assert abs(logit.median().item() - 0.5) < 0.02
    # Logit-normal(0, 1) puts about 13% of its mass in the outer fifths, uniform puts 40%.
    outer = lambda s: ((s < 0.2) | (s > 0.8)).float().mean().item()  # noqa: E731
    assert 0.10 < outer(logit) < 0.17 and 0.37 < outer(uniform) < 0.43


def test_masked_mse_ignores_padded_frames() -> None:
    target = torch.zeros(2, 5, 3)
    prediction = torch.ones(2, 5, 3)
    prediction[1, 3:] = 1000.0
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    assert torch.allclose(masked_mse(prediction, target, mask), torch.tensor([1.0, 1.0]))
    assert masked_mse(prediction, target)[1] > 100


def test_loss_dict_averages_per_task_and_total_is_mean_of_samples() -> None:
    target = torch.zeros(4, 2, 1)
    prediction = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1).expand(4, 2, 1)
    loss, by_task = flow_matching_loss(prediction, target, None, ["tts", "t2a", "tts", "se"])
    assert loss.item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert {k: v.item() for k, v in by_task.items()} == {"tts": 5.0, "t2a": 4.0, "se": 16.0}
    with pytest.raises(ValueError, match="2 task names for a batch of 4"):
        per_task_means(torch.zeros(4), ["tts", "se"])


def test_cfg_drop_rate_is_the_configured_probability() -> None:
    drops = cfg_drop_mask(20000, 0.2, generator=torch.Generator().manual_seed(0))
    assert 0.19 < drops.float().mean().item() < 0.21


def test_dropping_zeros_both_streams_of_dropped_samples_only() -> None:
    ta, context = torch.ones(3, 4, 2), torch.ones(3, 5, 2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    drop = torch.tensor([False, True, False])
    new_ta, new_context, new_mask = drop_conditions(drop, ta, context, mask)
    assert (new_ta[1] == 0).all() and (new_context[1] == 0).all() and (new_ta[[0, 2]] == 1).all()
    assert torch.equal(new_mask, mask)


def test_dropping_to_dummies_puts_one_valid_dummy_context_token() -> None:
    ta, context = torch.ones(2, 4, 2), torch.ones(2, 5, 2)
    mask = torch.ones(2, 5, dtype=torch.bool)
    dummy_ta, dummy_context = torch.tensor([7.0, 8.0]), torch.tensor([-3.0, -4.0])
    drop = torch.tensor([True, False])
    new_ta, new_context, new_mask = drop_conditions(drop, ta, context, mask, "dummies", dummy_ta, dummy_context)
    assert torch.equal(new_ta[0], dummy_ta.expand(4, 2)) and (new_ta[1] == 1).all()
    assert torch.equal(new_context[0, 0], dummy_context) and (new_context[0, 1:] == 0).all()
    assert new_mask[0].tolist() == [True, False, False, False, False] and new_mask[1].all()
    with pytest.raises(ValueError, match="needs dummy_ta"):
        drop_conditions(drop, ta, context, mask, "dummies")


def test_a_fixed_sigma_replaces_the_drawn_flow_times() -> None:
    """Validation scores every sample at one flow time (0.5): z = (z0 + noise) / 2 there."""
    z0 = torch.randn(3, 5, 4)
    batch = make_training_batch(z0, FlowMatchingConfig(), generator=torch.Generator().manual_seed(0), sigma=0.5)
    assert torch.equal(batch.sigma, torch.full((3,), 0.5))
    noise = batch.target + z0
    torch.testing.assert_close(batch.noisy, (z0 + noise) / 2)
    with pytest.raises(ValueError, match="outside"):
        make_training_batch(z0, FlowMatchingConfig(), sigma=1.5)
