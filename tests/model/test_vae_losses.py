"""The VAE's reconstruction and GAN losses: zero on identical audio, shrinking as audio gets closer, differentiable."""

from __future__ import annotations

import pytest
import torch

from uniflow.model.vae_losses import (
    MultiResolutionStftLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    kl_loss,
    waveform_l1,
)


@pytest.fixture
def speechlike() -> torch.Tensor:
    """Two 0.25 s signals: harmonics with a moving pitch plus a little noise, at 24 kHz."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(6000) / 24000
    pitch = 120 + 40 * t
    voiced = sum(torch.sin(2 * torch.pi * k * pitch * t) / k for k in range(1, 6))
    return (0.3 * voiced + 0.01 * torch.randn(2, 1, 6000, generator=generator)).float()


@pytest.mark.parametrize("pre_emphasis", [None, 0.85])
def test_stft_loss_is_zero_for_identical_and_shrinks_as_signals_converge(speechlike, pre_emphasis) -> None:
    loss = MultiResolutionStftLoss((512, 256, 128), pre_emphasis=pre_emphasis)
    noise = torch.randn(speechlike.shape, generator=torch.Generator().manual_seed(1))
    assert loss(speechlike, speechlike).item() == pytest.approx(0.0, abs=1e-6)
    values = [loss(speechlike + scale * noise, speechlike).item() for scale in (0.3, 0.1, 0.03, 0.01)]
    assert values[-1] > 0
    assert values == sorted(values, reverse=True)


def test_waveform_l1_is_zero_for_identical_and_shrinks(speechlike) -> None:
    assert waveform_l1(speechlike, speechlike).item() == 0.0
    values = [waveform_l1(speechlike * (1 + scale), speechlike).item() for scale in (0.5, 0.1, 0.01)]
    assert values == sorted(values, reverse=True) and values[-1] > 0


def test_reconstruction_losses_pass_gradients_to_the_prediction(speechlike) -> None:
    predicted = (speechlike * 0.5).requires_grad_()
    total = MultiResolutionStftLoss((256, 128))(predicted, speechlike) + waveform_l1(predicted, speechlike)
    total.backward()
    assert predicted.grad is not None and predicted.grad.abs().sum() > 0


def test_stft_loss_rejects_mismatched_shapes_and_too_short_audio(speechlike) -> None:
    loss = MultiResolutionStftLoss((2048,))
    with pytest.raises(ValueError, match="differ in shape"):
        loss(speechlike[..., :100], speechlike)
    with pytest.raises(ValueError, match="too short for an FFT of 2048"):
        loss(speechlike[..., :800], speechlike[..., :800])


def test_kl_is_zero_at_the_prior_and_grows_away_from_it() -> None:
    zeros, ones = torch.zeros(2, 4, 10), torch.ones(2, 4, 10)
    assert kl_loss(zeros, ones).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_loss(zeros + 0.5, ones).item() < kl_loss(zeros + 1.0, ones).item()
    assert kl_loss(zeros, ones * 0.5).item() > 0


def test_feature_matching_is_zero_for_equal_features_and_reaches_the_fake_ones() -> None:
    real = [torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    assert feature_matching_loss(real, [r.clone() for r in real]).item() == 0.0
    fake = [(r + 0.5).requires_grad_() for r in real]
    loss = feature_matching_loss(real, fake)
    loss.backward()
    assert loss.item() > 0 and all(f.grad is not None for f in fake)
    closer = feature_matching_loss(real, [r + 0.1 for r in real]).item()
    assert closer < loss.item()


@pytest.mark.parametrize("kind", ["hinge", "least_squares"])
def test_adversarial_losses_reward_the_right_side(kind) -> None:
    # Each loss's targets: real 1; fake -1 for hinge, 0 for least squares. "Fooled" rates fakes as real.
    fake_target = -1.0 if kind == "hinge" else 0.0
    confident_real, confident_fake = [torch.ones(2, 1, 4, 4)], [torch.full((2, 1, 4, 4), fake_target)]
    fooled = [torch.ones(2, 1, 4, 4)]
    # A discriminator that separates real from fake scores better than one that is fooled.
    assert discriminator_loss(confident_real, confident_fake, kind).item() == 0.0
    assert discriminator_loss(confident_real, fooled, kind).item() > 0
    # The generator's loss falls as the discriminator rates its output as real.
    assert generator_adversarial_loss(confident_real, kind) < generator_adversarial_loss(confident_fake, kind)
    logits = [torch.zeros(2, 1, 4, 4, requires_grad=True)]
    generator_adversarial_loss(logits, kind).backward()
    assert logits[0].grad.abs().sum() > 0
