"""The latent encoder: 50 frames of 128 per second, batching that changes no frame, and half precision checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from feature_inputs import save_vae, speech
from uniflow.features.frozen import FrozenEncoderError
from uniflow.features.latents import LatentEncoder, LatentSettings, receptive_field_frames, stored_latents
from uniflow.model.vae import VaeConfig


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> LatentEncoder:
    # A small frame budget so the clips below are spread over several padded batches.
    directory = save_vae(tmp_path_factory.mktemp("vae"))
    return LatentEncoder(LatentSettings(directory=str(directory), batch_frames=300, max_padding=0.6), "cpu")


def _solo(encoder: LatentEncoder, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        _, mean, std = encoder.model.encode(torch.from_numpy(clip).view(1, 1, -1), sample=False)
    return mean[0].T.numpy(), std[0].T.numpy()


def test_one_second_of_speech_gives_50_frames_of_128(encoder: LatentEncoder) -> None:
    (posterior,) = encoder.encode([speech(0, 1.0)])
    assert posterior.mean.shape == posterior.std.shape == (50, 128)
    assert encoder.identity.encoder_id == "uniflow-vae" and len(encoder.identity.weights_hash) == 64
    assert (posterior.std > 0).all()


def test_batched_encoding_equals_encoding_each_clip_alone(encoder: LatentEncoder) -> None:
    """Clips of many lengths (a partial last frame, shorter than a tail window, longer than a batch's budget)."""
    lengths = [700, 480 * 3 + 7, 24_000, 24_300, 26_000, 30_000, 480 * 25 + 479, 61_000, 140_000]
    clips = [speech(index, length / 24_000 + 0.01)[:length] for index, length in enumerate(lengths)]
    assert [clip.size for clip in clips] == lengths
    for clip, posterior in zip(clips, encoder.encode(clips), strict=True):
        mean, std = _solo(encoder, clip)
        assert posterior.mean.shape == (clip.size // 480, 128)
        np.testing.assert_allclose(posterior.mean, mean, atol=2e-5)
        np.testing.assert_allclose(posterior.std, std, atol=2e-5)


def test_naive_padding_would_change_the_last_frames(encoder: LatentEncoder) -> None:
    """Why the tail windows exist: zero padding after a clip moves its last frames."""
    clip = speech(1, 1.0)
    padded = np.concatenate([clip, np.zeros(20_000, np.float32)])
    alone, with_padding = _solo(encoder, clip)[0], _solo(encoder, padded)[0][:50]
    assert np.abs(alone[-3:] - with_padding[-3:]).max() > 1e-3
    np.testing.assert_allclose(
        alone[: -receptive_field_frames(encoder.config)], with_padding[: -receptive_field_frames(encoder.config)], atol=2e-5
    )


def test_receptive_field_bounds_the_frames_an_impulse_reaches(encoder: LatentEncoder) -> None:
    clip = speech(2, 3.0)
    bumped = clip.copy()
    bumped[480 * 60 + 123] += 1.0
    changed = np.nonzero(np.abs(_solo(encoder, clip)[0] - _solo(encoder, bumped)[0]).max(axis=1) > 0)[0]
    context = receptive_field_frames(encoder.config)
    assert changed.size and 60 - context <= changed.min() and changed.max() <= 60 + context
    assert receptive_field_frames(VaeConfig.paper()) == context  # same kernels and strides at any width


def test_half_precision_is_checked_against_fp32(tmp_path: Path) -> None:
    directory = str(save_vae(tmp_path / "vae"))
    accepted = LatentEncoder(LatentSettings(directory=directory, dtype="fp16"), "cpu")
    assert accepted.identity.dtype == "fp16" and accepted.model.encoder.layers[0].weight.dtype == torch.float16
    with pytest.raises(FrozenEncoderError, match="fp16 is not close to fp32"):
        LatentEncoder(LatentSettings(directory=directory, dtype="fp16", half_precision_tolerance=1e-9), "cpu")


def test_missing_vae_folder_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FrozenEncoderError, match="not found"):
        LatentEncoder(LatentSettings(directory=str(tmp_path / "nowhere")), "cpu")


def test_stored_arrays_per_posterior_mode(encoder: LatentEncoder) -> None:
    (posterior,) = encoder.encode([speech(3, 0.5)])
    both = stored_latents(posterior, "mean_std", "tts/x/1")
    assert set(both) == {"latents", "latents_std"} and both["latents"].dtype == np.float16
    np.testing.assert_array_equal(both["latents"], posterior.mean.astype(np.float16))
    draw = stored_latents(posterior, "sample", "tts/x/1")["latents"]
    assert set(stored_latents(posterior, "mean", "k")) == {"latents"}
    np.testing.assert_array_equal(draw, stored_latents(posterior, "sample", "tts/x/1")["latents"])  # seeded by key
    assert not np.array_equal(draw, stored_latents(posterior, "sample", "tts/x/2")["latents"])
