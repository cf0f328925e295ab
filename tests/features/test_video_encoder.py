"""CLIP video features: frames sampled by timestamp at 10 fps, one pooled vector per frame, clear decode errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from uniflow.features.frozen import FrozenEncoderError
from uniflow.features.video import VideoDecodeError, VideoEncoder, preprocess_frames, sample_frames

WIDTH, HEIGHT = 64, 48


def _write_video(path: Path, frames: np.ndarray, rate: int) -> Path:
    """Encode RGB frames with ffmpeg (lossless H.264, so grey levels survive to within rounding)."""
    command = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(rate), "-i", "-",
        "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(command, input=frames.tobytes(), check=True)
    return path


def _grey_ramp_video(path: Path, rate: int, seconds: int) -> Path:
    """Frame k is uniformly grey at level 5 * k: a decoded frame's level tells which source frame it is."""
    count = rate * seconds
    levels = (5 * np.arange(count)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (count, HEIGHT, WIDTH, 3))
    return _write_video(path, np.ascontiguousarray(frames), rate)


def test_two_seconds_at_10_fps_picks_the_frame_on_screen_at_each_instant(tmp_path: Path) -> None:
    video = _grey_ramp_video(tmp_path / "ramp.mp4", rate=25, seconds=2)
    sampled = sample_frames(video, fps=10)
    assert sampled.frames.shape == (20, HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(sampled.times, np.arange(20) / 10)
    # At t = i / 10 the 25 fps source shows frame floor(2.5 i), not every k-th frame.
    expected = 5 * np.floor(np.arange(20) * 2.5)
    np.testing.assert_allclose(sampled.frames[:, HEIGHT // 2, WIDTH // 2, 0], expected, atol=2)


def test_colour_changing_each_second_is_followed(tmp_path: Path) -> None:
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    frames = np.repeat(colours, 30, axis=0)[:, None, None, :].repeat(HEIGHT, 1).repeat(WIDTH, 2)
    video = _write_video(tmp_path / "colours.mp4", np.ascontiguousarray(frames), rate=30)
    sampled = sample_frames(video.read_bytes(), fps=10, name="colours")
    assert len(sampled.frames) == 30
    dominant = sampled.frames[:, HEIGHT // 2, WIDTH // 2].argmax(axis=1)
    assert dominant.tolist() == [0] * 10 + [1] * 10 + [2] * 10


def test_encoder_gives_one_pooled_vector_per_sampled_frame(tiny_video_dir: Path, tmp_path: Path) -> None:
    video = _grey_ramp_video(tmp_path / "ramp.mp4", rate=25, seconds=2)
    encoder = VideoEncoder.from_pretrained(tiny_video_dir, encoder_id="tiny-clip", fps=10)
    # fps and input size change the features, so they are part of the identity.
    assert encoder.identity.encoder_id == "tiny-clip@10fps/32px"
    features = encoder.encode(video)
    assert features.shape == (20, 32) and features.dtype == np.float32
    assert np.array_equal(features, encoder.encode(video.read_bytes()))
    # Different pictures give different features.
    assert not np.allclose(features[0], features[-1], atol=1e-3)
    at_5_fps = VideoEncoder.from_pretrained(tiny_video_dir, encoder_id="tiny-clip", fps=5).encode(video)
    # At 5 fps the frames are those at t = 0, 0.2, ...: every second row of the 10 fps features.
    np.testing.assert_allclose(at_5_fps, features[::2], atol=1e-5)


def test_frames_are_resized_cropped_and_normalised_like_clip() -> None:
    white = np.full((1, 48, 64, 3), 255, dtype=np.uint8)
    pixels = preprocess_frames(white, 32)
    assert tuple(pixels.shape) == (1, 3, 32, 32)
    expected = (1.0 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    np.testing.assert_allclose(pixels[0, :, 16, 16].numpy(), expected, rtol=1e-4)


def test_wrong_frame_size_is_refused(tiny_video_dir: Path) -> None:
    with pytest.raises(FrozenEncoderError, match="frame size 224 differs from the model's input size 32"):
        VideoEncoder.from_pretrained(tiny_video_dir, encoder_id="tiny-clip", size=224)


def test_undecodable_files_are_named(tmp_path: Path) -> None:
    garbage = tmp_path / "clip_0001.mp4"
    garbage.write_bytes(b"this is not a video" * 10)
    with pytest.raises(VideoDecodeError, match="clip_0001.mp4"):
        sample_frames(garbage)
    with pytest.raises(VideoDecodeError, match="Noise.wav: has no video stream"):
        sample_frames("/usr/share/sounds/alsa/Noise.wav")
    with pytest.raises(VideoDecodeError, match="shard-07/abc"):
        sample_frames(b"\x00" * 64, name="shard-07/abc")


def test_loads_the_vision_tower_of_a_full_clip_checkpoint(tmp_path: Path) -> None:
    """openai/clip-vit-large-patch14 is published as a whole CLIPModel: the vision tower's pooled output is used."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config={**tower, "vocab_size": 100}, vision_config={**tower, "image_size": 32, "patch_size": 8}, projection_dim=16
    )
    torch.manual_seed(0)
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path)
    encoder = VideoEncoder.from_pretrained(tmp_path, encoder_id="tiny-clip-full")
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 40, 40, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = full.vision_model(pixel_values=preprocess_frames(frames, 32)).pooler_output.numpy()
    np.testing.assert_allclose(encoder.encode_frames(frames), expected, atol=1e-5)
