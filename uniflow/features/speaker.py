"""Frozen 256-d speaker encoders for TTS (the x-vector the phoneme encoder adds after its FFT stack).

Default: resemblyzer's pretrained GE2E `VoiceEncoder` (3-layer LSTM over 40 mel bands at 16 kHz),
whose weights ship inside the registry wheel, so the embedded default needs no download. Where the
`wespeaker` package is installed and a local model directory is configured, a WeSpeaker model
(the authors' x-vector extractor) is used instead. Both take float32 mono audio at any sample rate,
resample it to 16 kHz with soxr and return a unit-norm float32 (256,) vector.
"""

from __future__ import annotations

import importlib
import types
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr
import torch
from torch import nn

from uniflow.features.frozen import EncoderIdentity, FrozenEncoderError, freeze, start_frozen

SPEAKER_SAMPLE_RATE = 16000
SPEAKER_DIM = 256
# Bump when resampling, volume normalisation, silence trimming or windowing changes (part of the cache key).
PREPROCESSING_VERSION = 1
RESEMBLYZER_ID = "resemblyzer/voice-encoder"
# Below this much voiced audio after trimming silences, the untrimmed audio is embedded instead.
_MIN_VOICED_SECONDS = 0.2


class SpeakerEncoder(Protocol):
    """What the feature stage needs from any speaker encoder."""

    identity: EncoderIdentity

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...


def _mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"speaker embedding needs mono 1-D audio (got shape {audio.shape})")
    if audio.size == 0:
        raise ValueError("speaker embedding needs non-empty audio")
    if sample_rate != SPEAKER_SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, SPEAKER_SAMPLE_RATE).astype(np.float32)
    return audio


def _sanity_waveform() -> np.ndarray:
    """1.6 s of a fixed voiced-like signal (a 140 Hz harmonic series with vibrato): the known input."""
    time = np.arange(int(1.6 * SPEAKER_SAMPLE_RATE)) / SPEAKER_SAMPLE_RATE
    phase = 2 * np.pi * (140 * time + 3 * np.sin(2 * np.pi * 5 * time))
    wave = sum(np.sin(harmonic * phase) / harmonic for harmonic in range(1, 20))
    return (0.1 * wave / np.max(np.abs(wave))).astype(np.float32)


def _import_resemblyzer() -> types.ModuleType:
    # resemblyzer imports scipy.ndimage.morphology, a namespace scipy deprecates; the warning is not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("resemblyzer")


class ResemblyzerSpeakerEncoder:
    """resemblyzer's VoiceEncoder, frozen and identified; embeddings are unit-norm float32 (256,)."""

    def __init__(self, model: nn.Module, identity: EncoderIdentity) -> None:
        self.model = model
        self.identity = identity
        self._resemblyzer = _import_resemblyzer()

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str | torch.device = "cpu") -> ResemblyzerSpeakerEncoder:
        """Load the wheel's `pretrained.pt` (or `weights`: a .pt file or a directory holding pretrained.pt)."""
        resemblyzer = _import_resemblyzer()
        if weights is None:
            path = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
        else:
            path = Path(weights)
            if path.is_dir():
                path = path / "pretrained.pt"
        if not path.is_file():
            raise FrozenEncoderError(f"{RESEMBLYZER_ID}: speaker encoder weights not found at {path}")
        model = resemblyzer.VoiceEncoder(device=device, verbose=False, weights_fpath=path)
        # VoiceEncoder loads non-strictly; a checkpoint missing a tensor would leave it random.
        stored = torch.load(path, map_location="cpu", weights_only=False)["model_state"]
        missing = sorted(set(model.state_dict()) - set(stored))
        if missing:
            raise FrozenEncoderError(f"{RESEMBLYZER_ID}: {path} lacks weights for {', '.join(missing[:5])}")
        model = freeze(model)
        mel = resemblyzer.wav_to_mel_spectrogram(_sanity_waveform())
        sanity_input = torch.from_numpy(mel[None]).to(model.device)
        identity = start_frozen(model, RESEMBLYZER_ID, "fp32", PREPROCESSING_VERSION, lambda: model(sanity_input))
        return cls(model, identity)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Unit-norm (256,) float32 embedding of one utterance (mono float audio at `sample_rate`)."""
        wav = _mono_16k(audio, sample_rate)
        if not np.isfinite(wav).all() or float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) < 1e-6:
            raise ValueError(f"{RESEMBLYZER_ID}: audio is silent or not finite; it has no speaker")
        wav = self._resemblyzer.normalize_volume(wav, self._resemblyzer.hparams.audio_norm_target_dBFS, increase_only=True)
        # Shorten pauses as the encoder was trained; keep the audio when the voice detector finds too little.
        voiced = self._resemblyzer.trim_long_silences(wav)
        if voiced.size >= _MIN_VOICED_SECONDS * SPEAKER_SAMPLE_RATE:
            wav = voiced
        embedding = np.asarray(self.model.embed_utterance(wav.astype(np.float32)), dtype=np.float32)
        if embedding.shape != (SPEAKER_DIM,) or not np.isfinite(embedding).all():
            raise ValueError(f"{RESEMBLYZER_ID}: no usable embedding for this audio (silent or too short?)")
        return embedding


WESPEAKER_INSTALL = (
    "the WeSpeaker path needs the `wespeaker` package (pip install git+https://github.com/wenet-e2e/wespeaker) "
    "and `speaker.path` set to a local model directory holding avg_model.pt and config.yaml "
    "(e.g. the voxceleb_resnet221_LM 'english' model); otherwise use speaker.kind: resemblyzer"
)


def _wespeaker_forward(model: nn.Module, device: torch.device, wav: np.ndarray) -> torch.Tensor:
    """Embedding of 16 kHz float audio: Kaldi fbank (80 bins, 25/10 ms) with mean normalisation, as WeSpeaker's CLI."""
    import torchaudio.compliance.kaldi as kaldi

    # WeSpeaker's models were trained on fbanks of 16-bit integer-scaled samples.
    pcm = torch.from_numpy(wav).unsqueeze(0) * (1 << 15)
    feats = kaldi.fbank(
        pcm, num_mel_bins=80, frame_length=25, frame_shift=10, energy_floor=0.0, sample_frequency=SPEAKER_SAMPLE_RATE
    )
    feats = (feats - feats.mean(dim=0)).unsqueeze(0).to(device)
    with torch.inference_mode():
        outputs = model(feats)
    # Models return either the embedding or (intermediate, embedding).
    embedding = outputs[-1] if isinstance(outputs, tuple) else outputs
    return embedding[0].float().cpu()


class WeSpeakerEncoder:
    """A WeSpeaker model from a local directory, with Kaldi fbank features (80 bins, 25/10 ms, mean-normalised)."""

    def __init__(self, model: nn.Module, identity: EncoderIdentity, device: torch.device) -> None:
        self.model = model
        self.identity = identity
        self.device = device

    @classmethod
    def load(cls, model_dir: str | Path | None, device: str | torch.device = "cpu") -> WeSpeakerEncoder:
        try:
            wespeaker = importlib.import_module("wespeaker")
        except ImportError:
            raise FrozenEncoderError(f"wespeaker is not installed: {WESPEAKER_INSTALL}") from None
        if model_dir is None:
            raise FrozenEncoderError(f"wespeaker: no model directory configured: {WESPEAKER_INSTALL}")
        model_dir = Path(model_dir)
        if not (model_dir / "avg_model.pt").is_file() or not (model_dir / "config.yaml").is_file():
            raise FrozenEncoderError(f"wespeaker: {model_dir} must hold avg_model.pt and config.yaml")
        # Newer releases expose load_model_local; older ones only the Speaker class it wraps.
        load_local = getattr(wespeaker, "load_model_local", None)
        if load_local is None:
            load_local = importlib.import_module("wespeaker.cli.speaker").Speaker
        speaker = load_local(str(model_dir))
        device = torch.device(device)
        model = freeze(speaker.model.to(device))
        encoder_id = f"wespeaker/{model_dir.name}"
        sanity = _sanity_waveform()
        identity = start_frozen(
            model, encoder_id, "fp32", PREPROCESSING_VERSION, lambda: _wespeaker_forward(model, device, sanity)
        )
        return cls(model, identity, device)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Unit-norm (256,) float32 embedding of one utterance (mono float audio at `sample_rate`)."""
        embedding = _wespeaker_forward(self.model, self.device, _mono_16k(audio, sample_rate)).numpy()
        if embedding.shape != (SPEAKER_DIM,) or not np.isfinite(embedding).all():
            raise ValueError(f"{self.identity.encoder_id}: expected a finite ({SPEAKER_DIM},) embedding, got {embedding.shape}")
        return (embedding / max(float(np.linalg.norm(embedding)), 1e-12)).astype(np.float32)


def load_speaker_encoder(
    kind: str = "resemblyzer", path: str | Path | None = None, device: str | torch.device = "cpu"
) -> SpeakerEncoder:
    """The configured speaker encoder: `resemblyzer` (weights from the wheel unless `path`) or `wespeaker`."""
    if kind == "resemblyzer":
        return ResemblyzerSpeakerEncoder.load(path, device)
    if kind == "wespeaker":
        return WeSpeakerEncoder.load(path, device)
    raise ValueError(f"unknown speaker encoder kind {kind!r}; use 'resemblyzer' or 'wespeaker'")
