"""Speaker similarity: one real speaker resembles himself more than synthetic voices; a clip matches itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from support import tiny_wav2vec2_config
from uniflow.evaluate.backbones import BackbonePinError, BackboneSpec
from uniflow.evaluate.signal_metrics import MetricUnavailable
from uniflow.evaluate.speaker_similarity import (
    DEFAULT_BACKBONES,
    SpeakerSimilaritySettings,
    cosine_similarity,
    embed,
    load_speaker_backbone,
    speaker_similarity,
)
from uniflow.mirror.synth import SENTENCES, speak

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ESPEAK_RATE = 22050


@pytest.fixture(scope="module")
def librivox() -> list[np.ndarray]:
    """Five utterances of one LibriVox reader (16 kHz)."""
    files = sorted(LIBRIVOX.glob("*.wav"))
    if len(files) != 5:
        pytest.skip("Debian package pocketsphinx-testdata is not installed")
    return [sf.read(file, dtype="float32")[0] for file in files]


@pytest.fixture(scope="module")
def resemblyzer():
    return load_speaker_backbone(SpeakerSimilaritySettings())


def test_same_reader_scores_higher_than_synthetic_voices(resemblyzer, librivox) -> None:
    # Different utterances of the reader against each other, and four espeak-ng/flite voices against him.
    same = speaker_similarity(resemblyzer, [(librivox[i], librivox[i + 1], 16000) for i in range(4)])
    synthetic = [speak(SENTENCES[voice], voice, ESPEAK_RATE) for voice in range(4)]
    # Each clip at its own rate: the generated one is resampled from 22.05 kHz, the reference is 16 kHz.
    other_rate = [
        speaker_similarity(resemblyzer, [(voice, reference, ESPEAK_RATE)])
        for voice, reference in zip(synthetic, [_at(librivox[i], ESPEAK_RATE) for i in range(4)], strict=True)
    ]
    different = [score.value for score in other_rate]
    assert same.value > 0.75
    assert min(same.card["per_pair"]) > max(different) + 0.05
    assert same.value > np.mean(different) + 0.2
    assert same.card["pairs"] == 4 and len(same.card["per_pair"]) == 4
    assert same.value == pytest.approx(np.mean(same.card["per_pair"]))
    assert other_rate[0].card["input_sample_rate"] == ESPEAK_RATE
    assert other_rate[0].card["resampler"]["package"] == "soxr"


def test_a_clip_is_most_similar_to_itself(resemblyzer, librivox) -> None:
    score = speaker_similarity(resemblyzer, [(librivox[1], librivox[1], 16000)])
    assert score.value == pytest.approx(1.0, abs=1e-5)
    embedding = embed(resemblyzer, librivox[1], 16000)
    assert embedding.shape == (256,) and np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


def test_card_names_the_pinned_encoder(resemblyzer) -> None:
    card = resemblyzer.card
    assert card["encoder"] == "resemblyzer" and card["name"] == "resemblyzer/voice-encoder"
    assert card["package"] == {"name": "resemblyzer", "version": "0.1.4"}
    assert len(card["sha256"]) == 64 and card["pinned"] is False
    wrong = DEFAULT_BACKBONES["resemblyzer"].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(BackbonePinError):
        load_speaker_backbone(SpeakerSimilaritySettings(backbone=wrong))


def test_cosine_similarity_known_answers() -> None:
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([3.0, 0.0])) == pytest.approx(1.0)
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(0.0)
    assert cosine_similarity(np.array([1.0, 1.0]), np.array([-1.0, -1.0])) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cosine_similarity(np.zeros(3), np.ones(3))


def save_tiny_xvector_model(directory: Path) -> None:
    """A tiny random Wav2Vec2ForXVector with its feature extractor, as save_pretrained writes them."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForXVector

    torch.manual_seed(0)
    config = tiny_wav2vec2_config(
        tdnn_dim=(8, 8),
        tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1),
        xvector_output_dim=12,
        num_labels=2,
    )
    Wav2Vec2ForXVector(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True).save_pretrained(directory)


def test_transformers_xvector_from_disk(tmp_path: Path, librivox) -> None:
    model_dir = tmp_path / "tiny-xvector"
    save_tiny_xvector_model(model_dir)
    settings = SpeakerSimilaritySettings(encoder="transformers-xvector", backbone=BackboneSpec(name="tiny", path=str(model_dir)))
    backbone = load_speaker_backbone(settings)
    clip = librivox[1]
    itself = speaker_similarity(backbone, [(clip, clip.copy(), 16000)])
    assert itself.value == pytest.approx(1.0, abs=1e-5)
    other = speaker_similarity(backbone, [(clip, librivox[4], 16000)])
    assert -1.0 <= other.value <= 1.0
    assert embed(backbone, clip, 16000).shape == (12,)
    assert backbone.card["architecture"] == "Wav2Vec2ForXVector" and backbone.card["embedding_dim"] == 12


def test_missing_weights_are_unavailable(tmp_path: Path) -> None:
    absent = BackboneSpec(name="wavlm", path=str(tmp_path / "absent"))
    with pytest.raises(MetricUnavailable, match="not found"):
        load_speaker_backbone(SpeakerSimilaritySettings(encoder="transformers-xvector", backbone=absent))
    with pytest.raises(MetricUnavailable, match="not found"):
        load_speaker_backbone(SpeakerSimilaritySettings(backbone=absent))
    try:
        import nemo  # noqa: F401
    except ImportError:
        with pytest.raises(MetricUnavailable, match="needs NVIDIA NeMo"):
            load_speaker_backbone(SpeakerSimilaritySettings(encoder="nemo"))
    assert SpeakerSimilaritySettings(encoder="nemo").backbone.name == "nvidia/speakerverification_en_titanet_large"


def _at(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """16 kHz audio at another rate (soxr), so a pair shares one sample rate."""
    import soxr

    return soxr.resample(audio, 16000, sample_rate).astype(np.float32)
