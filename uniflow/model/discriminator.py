"""Multi-scale STFT discriminator for VAE training (the EnCodec design, as Stable Audio's VAE trainer uses it).

Each sub-discriminator looks at the complex STFT of the waveform at one resolution, real and imaginary parts
as two input channels laid out (time, frequency), through 2-D convolutions that are dilated along time and
stride by 2 along frequency. It returns its logits and every intermediate activation (for feature matching).
"""

from __future__ import annotations

import torch
from pydantic import model_validator
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from uniflow.config import StrictModel


class DiscriminatorConfig(StrictModel):
    """Widths and resolutions of the multi-scale STFT discriminator."""

    fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128)
    hop_fraction: float = 0.25
    filters: int = 64
    max_filters: int = 1024
    filters_scale: int = 1
    kernel_size: tuple[int, int] = (3, 9)
    dilations: tuple[int, ...] = (1, 2, 4)
    negative_slope: float = 0.2

    @model_validator(mode="after")
    def _check(self) -> DiscriminatorConfig:
        if not self.fft_sizes or any(size < 16 for size in self.fft_sizes):
            raise ValueError(f"fft_sizes must be at least 16, got {self.fft_sizes}")
        if not 0 < self.hop_fraction <= 1:
            raise ValueError(f"hop_fraction must be in (0, 1], got {self.hop_fraction}")
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"kernel_size must be odd so padding keeps the size, got {self.kernel_size}")
        if min(self.filters, self.max_filters, self.filters_scale) < 1 or not self.dilations:
            raise ValueError("filters, max_filters, filters_scale must be positive and dilations non-empty")
        return self

    @classmethod
    def paper(cls) -> DiscriminatorConfig:
        """The width Stable Audio's VAE recipe gives its EnCodec-style discriminator, at five resolutions."""
        return cls()

    @classmethod
    def tiny(cls) -> DiscriminatorConfig:
        """A toy width and three small resolutions: trains alongside the tiny VAE on a CPU."""
        return cls(fft_sizes=(512, 256, 128), filters=8, max_filters=32)


def _padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class StftDiscriminator(nn.Module):
    """One resolution: complex STFT (B, 2, frames, bins) -> conv stack -> logits (B, 1, frames, bins')."""

    def __init__(self, n_fft: int, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = max(1, int(n_fft * config.hop_fraction))
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        kernel = config.kernel_size
        layers: list[nn.Module] = [nn.Conv2d(2, config.filters, kernel, padding=_padding(kernel))]
        width = config.filters
        for index, dilation in enumerate(config.dilations):
            out = min(config.filters_scale ** (index + 1) * config.filters, config.max_filters)
            layers.append(
                nn.Conv2d(width, out, kernel, stride=(1, 2), dilation=(dilation, 1), padding=_padding(kernel, (dilation, 1)))
            )
            width = out
        layers.append(nn.Conv2d(width, width, (3, 3), padding=(1, 1)))
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.post = weight_norm(nn.Conv2d(width, 1, (3, 3), padding=(1, 1)))
        self.activation = nn.LeakyReLU(config.negative_slope)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, 1, L) -> (B, 2, frames, bins): real and imaginary parts of the normalised STFT."""
        signals = audio.reshape(audio.shape[0], -1)
        spectrum = torch.stft(
            signals,
            self.n_fft,
            hop_length=self.hop_length,
            window=self.window.to(signals.dtype),
            normalized=True,
            center=True,
            return_complex=True,
        )
        return torch.stack([spectrum.real, spectrum.imag], dim=1).transpose(2, 3)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.spectrogram(audio)
        features: list[torch.Tensor] = []
        for layer in self.layers:
            x = self.activation(layer(x))
            features.append(x)
        return self.post(x), features


class MultiScaleStftDiscriminator(nn.Module):
    """One StftDiscriminator per FFT size; forward gives a list of (logits, features), one per resolution."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.discriminators = nn.ModuleList(StftDiscriminator(n_fft, config) for n_fft in config.fft_sizes)

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        if audio.dim() == 2:
            audio = audio.unsqueeze(1)
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"expected mono audio (B, 1, L), got {tuple(audio.shape)}")
        return [discriminator(audio) for discriminator in self.discriminators]
