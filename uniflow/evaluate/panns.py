"""PANNs CNN14 (Kong et al. 2020), the embedding network behind the Fréchet distance of T2A and T2M.

The network is written here in plain torch so that the public checkpoint loads without the original
repository: the module and parameter names follow that checkpoint's state dict, so
``Cnn14_16k_mAP=0.438.pth`` (Zenodo record 3987831, a file holding ``{'model': state_dict}``) loads with
``strict=True``. Architecture of the 16 kHz variant:

* front end: centred STFT (Hann window 512, hop 160, reflect padding) computed by two fixed 1-D
  convolutions holding the windowed DFT (``spectrogram_extractor.stft.conv_real``/``conv_imag``), power
  spectrum, 64-band Slaney mel filter bank 50-8000 Hz (``logmel_extractor.melW``), ``10 log10`` with floor
  1e-10 and no top-dB clipping;
* batch norm over the mel bands (``bn0``), then six conv blocks (two 3x3 conv + BN + ReLU each) with 2x2
  average pooling after blocks 1-5 and none after block 6, channels 64, 128, 256, 512, 1024, 2048;
* mean over frequency, then max + mean over time, ``fc1`` 2048 -> 2048 with ReLU: the 2048-d embedding
  (AudioLDM's evaluation computes FD on this vector at 16 kHz); ``fc_audioset`` maps it to 527 AudioSet
  logits.

Dropout and SpecAugment exist only in training and are left out: this module is inference only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.dtypes
import torch
from numpy._core.multiarray import scalar as _numpy_scalar
from torch import nn
from torch.nn import functional

# Pooling after blocks 1-5 halves time and frequency five times: 32 frames become 1.
POOLED_BLOCKS = 5
LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class Cnn14Config:
    """Front end and widths of one CNN14 variant; the published 16 kHz checkpoint is :data:`CNN14_16K`."""

    sample_rate: int = 16000
    window_size: int = 512
    hop_size: int = 160
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    channels: tuple[int, int, int, int, int, int] = (64, 128, 256, 512, 1024, 2048)
    classes: int = 527

    @property
    def embedding_dim(self) -> int:
        return self.channels[-1]

    @property
    def min_samples(self) -> int:
        """Shortest input whose time axis survives the five poolings (centred frames: 1 + samples // hop)."""
        return (2**POOLED_BLOCKS - 1) * self.hop_size + 1

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels), "embedding_dim": self.embedding_dim}


CNN14_16K = Cnn14Config()
# Same class and front end with narrow layers, for tests and demos: a 1.3 MB checkpoint, mostly the STFT kernels.
CNN14_TINY = Cnn14Config(channels=(4, 8, 8, 16, 16, 32))
CONFIGS: dict[str, Cnn14Config] = {"cnn14-16k": CNN14_16K, "cnn14-tiny": CNN14_TINY}

CHECKPOINT_NAME = "Cnn14_16k_mAP=0.438.pth"
CHECKPOINT_URL = "https://zenodo.org/records/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1"
# The md5 Zenodo lists for that file (as quoted by projects that verify their download against it).
CHECKPOINT_MD5 = "362fc5ff18f1d6ad2f6d464b45893f2c"

# Numpy scalars and dtypes are plain data; training scripts of 2020 stored e.g. the iteration count as one
# next to the state dict, which weights_only loading refuses unless these reconstructors are allowed.
_NUMPY_DATA_GLOBALS: list[Any] = [
    _numpy_scalar,
    (_numpy_scalar, "numpy.core.multiarray.scalar"),
    np.dtype,
    *(getattr(numpy.dtypes, name) for name in numpy.dtypes.__all__),
]


class Cnn14Output(NamedTuple):
    embedding: torch.Tensor  # (batch, embedding_dim), after ReLU
    logits: torch.Tensor  # (batch, classes), before the sigmoid


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic (27 mels per factor 6.4) above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz < 1000.0, hz / (200.0 / 3.0), log_part)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (np.maximum(mel, 15.0) - 15.0))
    return np.where(mel < 15.0, mel * (200.0 / 3.0), log_part)


def slaney_mel_filters(sample_rate: int, n_fft: int, mel_bins: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters of unit area (Slaney normalisation), shape (mel_bins, n_fft // 2 + 1).

    The filter bank of librosa.filters.mel with its defaults (htk=False, norm="slaney"), which is what the
    PANNs front end was built with.
    """
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(fmin), _hz_to_slaney_mel(fmax), mel_bins + 2))
    widths = np.diff(edges_hz)
    offsets = edges_hz[:, None] - bin_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]


class _WindowedDft(nn.Module):
    """One-sided DFT of Hann-windowed frames as two strided convolutions (real and imaginary part)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop, bias=False)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
        phase = 2 * np.pi * np.outer(np.arange(bins), np.arange(n_fft)) / n_fft
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.cos(phase) * window)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(-np.sin(phase) * window)[:, None, :])
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, samples) -> real and imaginary parts, each (batch, 1, frames, bins)."""
        padded = functional.pad(waveform[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = self.conv_real(padded).transpose(1, 2)[:, None]
        imag = self.conv_imag(padded).transpose(1, 2)[:, None]
        return real, imag


class _PowerSpectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.stft = _WindowedDft(n_fft, hop)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(waveform)
        return real**2 + imag**2


class _LogMel(nn.Module):
    def __init__(self, config: Cnn14Config) -> None:
        super().__init__()
        filters = slaney_mel_filters(config.sample_rate, config.window_size, config.mel_bins, config.fmin, config.fmax)
        self.melW = nn.Parameter(torch.from_numpy(filters.T.astype(np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """(..., bins) power -> (..., mel_bins) in dB relative to 1.0, floored at -100 dB."""
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=LOG_FLOOR))


class _ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, features: torch.Tensor, pool: int) -> torch.Tensor:
        features = functional.relu(self.bn1(self.conv1(features)))
        features = functional.relu(self.bn2(self.conv2(features)))
        return functional.avg_pool2d(features, kernel_size=pool) if pool > 1 else features


class Cnn14(nn.Module):
    """CNN14 audio tagger; :meth:`forward` takes mono waveforms at ``config.sample_rate``."""

    def __init__(self, config: Cnn14Config = CNN14_16K) -> None:
        super().__init__()
        self.config = config
        self.spectrogram_extractor = _PowerSpectrogram(config.window_size, config.hop_size)
        self.logmel_extractor = _LogMel(config)
        self.bn0 = nn.BatchNorm2d(config.mel_bins)
        widths = (1, *config.channels)
        for index in range(6):
            self.add_module(f"conv_block{index + 1}", _ConvBlock(widths[index], widths[index + 1]))
        self.fc1 = nn.Linear(config.embedding_dim, config.embedding_dim)
        self.fc_audioset = nn.Linear(config.embedding_dim, config.classes)

    def forward(self, waveform: torch.Tensor) -> Cnn14Output:
        """(batch, samples) -> embedding and AudioSet logits."""
        if waveform.shape[-1] < self.config.min_samples:
            raise ValueError(
                f"CNN14 needs at least {self.config.min_samples} samples "
                f"({self.config.min_samples / self.config.sample_rate:.3f} s), got {waveform.shape[-1]}"
            )
        features = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (batch, 1, frames, mels)
        # bn0 normalises each mel band: move the bands onto the channel axis and back.
        features = self.bn0(features.transpose(1, 3)).transpose(1, 3)
        for index in range(6):
            block = getattr(self, f"conv_block{index + 1}")
            features = block(features, pool=2 if index < POOLED_BLOCKS else 1)
        features = features.mean(dim=3)  # over frequency: (batch, channels, frames)
        pooled = features.max(dim=2).values + features.mean(dim=2)
        embedding = functional.relu(self.fc1(pooled))
        return Cnn14Output(embedding, self.fc_audioset(embedding))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a PANNs checkpoint file (``{'model': state_dict, ...}``), read with weights_only."""
    try:
        with torch.serialization.safe_globals(_NUMPY_DATA_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError for a bad file
        raise ValueError(f"{path}: not a readable PANNs checkpoint ({type(error).__name__}: {error})") from error
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: expected a dict with the state dict under 'model' (as {CHECKPOINT_NAME}), got {keys}")
    return state


def load_cnn14(path: Path, config: Cnn14Config = CNN14_16K, device: str = "cpu") -> Cnn14:
    """CNN14 in eval mode with the checkpoint's weights, every parameter and buffer matched by name and shape."""
    state = read_state_dict(path)
    model = Cnn14(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: does not match the CNN14 architecture {config.as_dict()}: {error}") from error
    model.requires_grad_(False)
    return model.eval().to(device)


def save_tiny_cnn14(path: str | Path, seed: int = 0) -> Path:
    """Write a random :data:`CNN14_TINY` checkpoint in the published file layout, for tests and demos."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Cnn14(CNN14_TINY)
        # With default batch-norm statistics a random network's activations shrink block by block until the
        # embedding no longer depends on the input. Estimating the statistics from a batch of noise at
        # different levels and of tones (as training would) keeps every block near unit scale.
        seconds = torch.arange(CNN14_TINY.sample_rate) / CNN14_TINY.sample_rate
        levels = torch.logspace(-3, 0, 4)[:, None]
        tones = torch.sin(2 * torch.pi * torch.tensor([[110.0], [440.0], [1760.0], [3520.0]]) * seconds)
        calibration = torch.cat([levels * torch.randn(4, len(seconds)), levels * tones])
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # cumulative average over the calibration pass
        model.train()
        with torch.no_grad():
            model(calibration)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
        model.eval()
    torch.save({"model": model.state_dict()}, path)
    return path
