"""The waveform VAE (paper section 3.1, appendix D.1): a fully convolutional encoder/decoder with SnakeBeta
activations that turns 24 kHz mono audio into 128-channel latents at 1/480 of the sample rate, and back."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import model_validator
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from uniflow.config import StrictModel
from uniflow.model.pretrained import load_weights, read_config, save_config_and_weights


class VaeConfig(StrictModel):
    """Sizes of the VAE. `paper()` is the authors' model; `tiny()` keeps the 480 ratio at a toy width."""

    sample_rate: int = 24000
    audio_channels: int = 1
    channels: int = 128
    c_mults: tuple[int, ...] = (1, 2, 4, 8)
    strides: tuple[int, ...] = (2, 4, 6, 10)
    latent_dim: int = 128
    dilations: tuple[int, ...] = (1, 3, 9)
    residual_kernel: int = 7
    io_kernel: int = 7
    latent_kernel: int = 3

    @model_validator(mode="after")
    def _check_sizes(self) -> VaeConfig:
        if len(self.c_mults) != len(self.strides):
            raise ValueError(f"c_mults {self.c_mults} and strides {self.strides} must have the same length")
        sizes = {
            "sample_rate": (self.sample_rate,),
            "audio_channels": (self.audio_channels,),
            "channels": (self.channels,),
            "c_mults": self.c_mults,
            "strides": self.strides,
            "latent_dim": (self.latent_dim,),
            "dilations": self.dilations,
        }
        for name, values in sizes.items():
            if not values or any(value < 1 for value in values):
                raise ValueError(f"{name} must be positive integers, got {values}")
        for name in ("residual_kernel", "io_kernel", "latent_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd so convolutions keep the length")
        return self

    @property
    def downsampling_ratio(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.downsampling_ratio

    @classmethod
    def paper(cls) -> VaeConfig:
        return cls()

    @classmethod
    def tiny(cls) -> VaeConfig:
        # the paper's 128 latent channels (what every later stage expects), at a toy width
        return cls(channels=8, latent_dim=128)


def _conv(in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, dilation: int = 1, bias: bool = True) -> nn.Module:
    """Weight-normalised Conv1d: 'same' padding at stride 1 (odd kernels); at stride s the kernel is 2s, so
    padding ceil(s/2) gives exactly len / s frames for a length that s divides."""
    padding = dilation * (kernel - 1) // 2 if stride == 1 else math.ceil(stride / 2)
    return weight_norm(nn.Conv1d(in_ch, out_ch, kernel, stride=stride, dilation=dilation, padding=padding, bias=bias))


class SnakeBeta(nn.Module):
    """x + sin^2(alpha * x) / beta with per-channel alpha and beta kept as logarithms (both start at 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))
        self.log_beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        beta = self.log_beta.exp()
        return x + torch.sin(alpha * x).pow(2) / (beta + 1e-9)


class ResidualUnit(nn.Module):
    """SnakeBeta -> dilated conv -> SnakeBeta -> 1x1 conv, added to the input."""

    def __init__(self, channels: int, dilation: int, kernel: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            SnakeBeta(channels),
            _conv(channels, channels, kernel, dilation=dilation),
            SnakeBeta(channels),
            _conv(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class EncoderBlock(nn.Module):
    """Residual units at the input width, then a strided conv (kernel 2*stride) that divides the length by stride."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, config: VaeConfig) -> None:
        super().__init__()
        units = [ResidualUnit(in_ch, d, config.residual_kernel) for d in config.dilations]
        self.block = nn.Sequential(*units, SnakeBeta(in_ch), _conv(in_ch, out_ch, 2 * stride, stride=stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    """A transposed conv (kernel 2*stride) that multiplies the length by stride, then residual units."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, config: VaeConfig) -> None:
        super().__init__()
        # output_padding makes the output exactly stride * input for odd strides too.
        upsample = nn.ConvTranspose1d(
            in_ch, out_ch, 2 * stride, stride=stride, padding=math.ceil(stride / 2), output_padding=stride % 2
        )
        units = [ResidualUnit(out_ch, d, config.residual_kernel) for d in config.dilations]
        self.block = nn.Sequential(SnakeBeta(in_ch), weight_norm(upsample), *units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _widths(config: VaeConfig) -> list[int]:
    """Channel width at each resolution, finest first: the input conv's width, then one per block."""
    return [config.channels * m for m in (1, *config.c_mults)]


class Encoder(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        widths = _widths(config)
        layers: list[nn.Module] = [_conv(config.audio_channels, widths[0], config.io_kernel)]
        for index, stride in enumerate(config.strides):
            layers.append(EncoderBlock(widths[index], widths[index + 1], stride, config))
        layers += [SnakeBeta(widths[-1]), _conv(widths[-1], 2 * config.latent_dim, config.latent_kernel)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        widths = _widths(config)[::-1]
        layers: list[nn.Module] = [_conv(config.latent_dim, widths[0], config.io_kernel)]
        for index, stride in enumerate(reversed(config.strides)):
            layers.append(DecoderBlock(widths[index], widths[index + 1], stride, config))
        # No tanh at the end: the output is the waveform itself.
        layers += [SnakeBeta(widths[-1]), _conv(widths[-1], config.audio_channels, config.io_kernel, bias=False)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


def kl_loss(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) summed over latent channels, averaged over batch and frames."""
    var = std.pow(2)
    return 0.5 * (mean.pow(2) + var - var.log() - 1).sum(dim=1).mean()


class UniflowVae(nn.Module):
    """Waveform (B, 1, L) -> latents (B, latent_dim, L // ratio) -> waveform (B, 1, T * ratio)."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, audio: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (latents, mean, std), each (B, latent_dim, L // ratio); sample=False gives latents == mean."""
        if audio.dim() == 2:
            audio = audio.unsqueeze(1)
        if audio.dim() != 3 or audio.shape[1] != self.config.audio_channels:
            raise ValueError(f"expected audio (B, {self.config.audio_channels}, L), got {tuple(audio.shape)}")
        ratio = self.config.downsampling_ratio
        length = audio.shape[-1]
        frames = length // ratio
        if frames == 0:
            raise ValueError(f"audio of {length} samples is shorter than one latent frame ({ratio} samples)")
        # Pad the tail up to a whole frame so the strided convs see it, then keep exactly len // ratio frames.
        padded = F.pad(audio, (0, -length % ratio))
        mean, scale = self.encoder(padded).chunk(2, dim=1)
        mean, scale = mean[..., :frames], scale[..., :frames]
        std = F.softplus(scale) + 1e-4
        latents = mean + std * torch.randn_like(std) if sample else mean
        return latents, mean, std

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim, T) -> waveform (B, audio_channels, T * ratio)."""
        if latents.dim() != 3 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(f"expected latents (B, {self.config.latent_dim}, T), got {tuple(latents.shape)}")
        return self.decoder(latents)

    def forward(self, audio: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction plus the posterior (mean, std) for the KL term."""
        latents, mean, std = self.encode(audio, sample=sample)
        return self.decode(latents), mean, std

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `config.json` and `model.safetensors` into `directory` (created if needed)."""
        return save_config_and_weights(self, self.config, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> UniflowVae:
        """Rebuild from `config.json` and load `model.safetensors` strictly; errors name the offending file."""
        model = cls(read_config(directory, VaeConfig, "a pretrained VAE"))
        load_weights(model, directory, map_location)
        return model.to(map_location)

    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())
