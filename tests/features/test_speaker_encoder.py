"""Speaker embeddings from resemblyzer's pretrained encoder separate real speakers; WeSpeaker fails clearly when absent."""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from uniflow.features.frozen import FrozenEncoderError, check_frozen
from uniflow.features.speaker import ResemblyzerSpeakerEncoder, load_speaker_encoder

# One LibriVox reader (16 kHz) and the one ALSA announcer (48 kHz): two real speakers.
LIBRIVOX = sorted(Path("/usr/share/pocketsphinx/test/data/librivox").glob("*.wav"))
ALSA = sorted(path for path in Path("/usr/share/sounds/alsa").glob("*.wav") if path.name != "Noise.wav")


@pytest.fixture(scope="module")
def encoder() -> ResemblyzerSpeakerEncoder:
    return load_speaker_encoder("resemblyzer")


def _embed_all(encoder: ResemblyzerSpeakerEncoder, paths: list[Path]) -> list[np.ndarray]:
    embeddings = []
    for path in paths:
        audio, rate = sf.read(path, dtype="float32")
        embeddings.append(encoder.embed(audio, rate))
    return embeddings


def test_same_speaker_is_closer_than_different_speakers(encoder: ResemblyzerSpeakerEncoder) -> None:
    assert len(LIBRIVOX) >= 4 and len(ALSA) >= 4
    reader = _embed_all(encoder, LIBRIVOX[:4])
    announcer = _embed_all(encoder, ALSA[:4])
    for embedding in reader + announcer:
        assert embedding.shape == (256,) and embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-4
    same_reader = [float(a @ b) for a, b in itertools.combinations(reader, 2)]
    same_announcer = [float(a @ b) for a, b in itertools.combinations(announcer, 2)]
    different = [float(a @ b) for a, b in itertools.product(reader, announcer)]
    # Every pair of the reader's utterances is closer than any reader/announcer pair.
    assert min(same_reader) > max(different)
    assert np.mean(same_announcer) > np.mean(different) + 0.1


def test_sample_rate_is_handled(encoder: ResemblyzerSpeakerEncoder) -> None:
    import soxr

    audio, rate = sf.read(LIBRIVOX[0], dtype="float32")
    at_24k = soxr.resample(audio, rate, 24000).astype(np.float32)
    assert float(encoder.embed(audio, rate) @ encoder.embed(at_24k, 24000)) > 0.98


def test_encoder_is_frozen_and_identified(encoder: ResemblyzerSpeakerEncoder) -> None:
    check_frozen(encoder.model, encoder.identity.encoder_id)
    identity = encoder.identity
    assert identity.encoder_id == "resemblyzer/voice-encoder"
    assert identity.dtype == "fp32" and identity.preprocessing_version == 1
    assert len(identity.weights_hash) == 64
    # The wheel's weights are fixed: a second load gives the same identity.
    assert load_speaker_encoder("resemblyzer").identity == identity


def test_bad_input_is_refused(encoder: ResemblyzerSpeakerEncoder) -> None:
    with pytest.raises(ValueError, match="mono"):
        encoder.embed(np.zeros((2, 16000), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="non-empty"):
        encoder.embed(np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="silent"):
        encoder.embed(np.zeros(16000, dtype=np.float32), 16000)


class _PooledFbankModel(nn.Module):
    """A stand-in WeSpeaker network: mean-pooled fbank frames projected to 256-d, returned as (None, embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.projection = nn.Linear(80, 256)

    def forward(self, feats: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, self.projection(feats.std(dim=1))


def test_wespeaker_path_loads_a_local_model_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The wrapper's own part: local directory check, freezing, identity, fbank input and a unit 256-d output."""
    (tmp_path / "avg_model.pt").write_bytes(b"weights")
    (tmp_path / "config.yaml").write_text("model: stand-in\n")
    loaded_from: list[str] = []

    def load_model_local(model_dir: str) -> types.SimpleNamespace:
        loaded_from.append(model_dir)
        torch.manual_seed(0)
        return types.SimpleNamespace(model=_PooledFbankModel())

    monkeypatch.setitem(sys.modules, "wespeaker", types.SimpleNamespace(load_model_local=load_model_local))
    encoder = load_speaker_encoder("wespeaker", tmp_path)
    assert loaded_from == [str(tmp_path)]
    assert encoder.identity.encoder_id == f"wespeaker/{tmp_path.name}"
    check_frozen(encoder.model, encoder.identity.encoder_id)
    audio, rate = sf.read(LIBRIVOX[0], dtype="float32")
    embedding = encoder.embed(audio, rate)
    assert embedding.shape == (256,) and embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-5
    with pytest.raises(FrozenEncoderError, match="must hold avg_model.pt and config.yaml"):
        load_speaker_encoder("wespeaker", tmp_path / "empty")


def test_wespeaker_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # None in sys.modules makes `import wespeaker` fail even where the package is installed.
    monkeypatch.setitem(sys.modules, "wespeaker", None)
    with pytest.raises(FrozenEncoderError, match="wespeaker is not installed: .*pip install"):
        load_speaker_encoder("wespeaker", tmp_path)
    with pytest.raises(ValueError, match="unknown speaker encoder kind"):
        load_speaker_encoder("xvector")
