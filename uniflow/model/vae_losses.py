"""Losses for training the waveform VAE: multi-resolution STFT, waveform L1, KL, and the GAN terms.

Every function takes waveforms shaped (B, C, L) or (B, L) and returns a scalar tensor, so the trainer
can weight and sum them. The KL term is ``uniflow.model.vae.kl_loss`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from uniflow.model.vae import kl_loss

__all__ = [
    "MultiResolutionStftLoss",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "kl_loss",
    "log_magnitude_loss",
    "spectral_convergence",
    "stft_magnitude",
    "waveform_l1",
]

AdversarialKind = Literal["hinge", "least_squares"]
_EPS = 1e-7


def _flatten_channels(audio: torch.Tensor) -> torch.Tensor:
    """(B, C, L) or (B, L) -> (B * C, L): every channel is a signal of its own for the STFT."""
    if audio.dim() == 3:
        return audio.reshape(-1, audio.shape[-1])
    if audio.dim() == 2:
        return audio
    raise ValueError(f"expected audio (B, C, L) or (B, L), got {tuple(audio.shape)}")


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """|STFT| (B * C, n_fft // 2 + 1, frames) with a Hann window of n_fft samples, floored at 1e-7."""
    signals = _flatten_channels(audio)
    if signals.shape[-1] <= n_fft // 2:
        raise ValueError(f"audio of {signals.shape[-1]} samples is too short for an FFT of {n_fft}")
    window = torch.hann_window(n_fft, device=signals.device, dtype=signals.dtype)
    spectrum = torch.stft(signals, n_fft, hop_length=hop_length, window=window, center=True, return_complex=True)
    return spectrum.abs().clamp(min=_EPS)


def spectral_convergence(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||target - predicted||_F / ||target||_F over magnitude spectrograms: weighs the loud bins."""
    return torch.linalg.vector_norm(target - predicted) / torch.linalg.vector_norm(target).clamp(min=_EPS)


def log_magnitude_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |log target - log predicted| over magnitude spectrograms: weighs quiet bins as much as loud ones."""
    return F.l1_loss(predicted.log(), target.log())


def _pre_emphasis(audio: torch.Tensor, coefficient: float) -> torch.Tensor:
    """y[n] = x[n] - coefficient * x[n-1]: a first-order high-pass that tilts the loss towards high frequencies,
    where the ear hears detail that a plain magnitude loss underweights."""
    signals = _flatten_channels(audio).unsqueeze(1)
    kernel = torch.tensor([[[-coefficient, 1.0]]], device=signals.device, dtype=signals.dtype)
    return F.conv1d(F.pad(signals, (1, 0)), kernel).squeeze(1)


class MultiResolutionStftLoss(nn.Module):
    """Spectral convergence plus log magnitude, averaged over several FFT sizes (hop = n_fft * hop_fraction).

    Small FFTs judge timing, large ones judge pitch; together they keep the decoder from trading one for the
    other. ``pre_emphasis`` (e.g. 0.85) applies a high-pass to both signals first: a simple perceptual weighting.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128),
        hop_fraction: float = 0.25,
        pre_emphasis: float | None = None,
    ) -> None:
        super().__init__()
        if not fft_sizes or any(size < 8 for size in fft_sizes):
            raise ValueError(f"fft_sizes must be FFT lengths of at least 8, got {tuple(fft_sizes)}")
        if not 0 < hop_fraction <= 1:
            raise ValueError(f"hop_fraction must be in (0, 1], got {hop_fraction}")
        self.fft_sizes = tuple(fft_sizes)
        self.hop_fraction = hop_fraction
        self.pre_emphasis = pre_emphasis

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if predicted.shape != target.shape:
            raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} differ in shape")
        if self.pre_emphasis is not None:
            predicted, target = _pre_emphasis(predicted, self.pre_emphasis), _pre_emphasis(target, self.pre_emphasis)
        total = predicted.new_zeros(())
        for n_fft in self.fft_sizes:
            hop = max(1, int(n_fft * self.hop_fraction))
            predicted_mag = stft_magnitude(predicted, n_fft, hop)
            target_mag = stft_magnitude(target, n_fft, hop)
            total = total + spectral_convergence(predicted_mag, target_mag) + log_magnitude_loss(predicted_mag, target_mag)
        return total / len(self.fft_sizes)


def waveform_l1(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample difference: the only term here that sees phase, so it drives SNR."""
    return F.l1_loss(predicted, target)


def feature_matching_loss(real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over discriminator layers of L1(real, fake) / mean |real|: the generator matches the discriminator's
    view of real audio layer by layer; dividing by the real activations keeps every layer's share comparable."""
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"need matching, non-empty feature lists, got {len(real_features)} and {len(fake_features)}")
    total = fake_features[0].new_zeros(())
    for real, fake in zip(real_features, fake_features, strict=True):
        real = real.detach()
        total = total + F.l1_loss(fake, real) / real.abs().mean().clamp(min=_EPS)
    return total / len(real_features)


def discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor], kind: AdversarialKind = "hinge"
) -> torch.Tensor:
    """Discriminator loss summed over sub-discriminators (averaged over their logits).

    hinge: relu(1 - real) + relu(1 + fake); least_squares: (real - 1)^2 + fake^2.
    """
    total = real_logits[0].new_zeros(())
    for real, fake in zip(real_logits, fake_logits, strict=True):
        if kind == "hinge":
            total = total + F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        elif kind == "least_squares":
            total = total + (real - 1).pow(2).mean() + fake.pow(2).mean()
        else:
            raise ValueError(f"unknown adversarial loss {kind!r}; use hinge or least_squares")
    return total / len(real_logits)


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor], kind: AdversarialKind = "hinge") -> torch.Tensor:
    """Generator side of the GAN loss. hinge: relu(1 - fake); least_squares: (fake - 1)^2."""
    total = fake_logits[0].new_zeros(())
    for fake in fake_logits:
        if kind == "hinge":
            total = total + F.relu(1 - fake).mean()
        elif kind == "least_squares":
            total = total + (fake - 1).pow(2).mean()
        else:
            raise ValueError(f"unknown adversarial loss {kind!r}; use hinge or least_squares")
    return total / len(fake_logits)
