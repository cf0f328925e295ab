"""Frozen CLIP image encoder for V2A: one CLIP ViT-L/14 `pooler_output` per video frame at 10 fps.

Frames are decoded with PyAV and sampled by timestamp: output frame i is the picture on screen at
t = i / fps (the last decoded frame whose presentation time is <= t), counted from the container's
start, the same origin the sound track uses. So the features stay aligned with the audio whatever
the source frame rate, including variable frame rate. Each frame is resized (shorter side to the
CLIP input size, bicubic with antialiasing), centre-cropped and normalised with CLIP's mean and
std, as CLIP's own image processor does, without needing torchvision or PIL.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from uniflow.features.config import PAPER_FPS, PAPER_VIDEO_ENCODER
from uniflow.features.frozen import EncoderIdentity, FrozenEncoderError, freeze, resolve_dtype, start_frozen
from uniflow.features.text import require_weights

# Bump when decoding, sampling, resizing or normalisation changes: it is part of the cache key.
PREPROCESSING_VERSION = 1
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Frames that differ by less than this in time are the same instant (container timestamps are rounded).
_TIME_EPSILON = 1e-4

VideoSource = str | Path | bytes


class VideoDecodeError(ValueError):
    """A video cannot be opened, has no video stream, or yields no frames."""


@dataclass(frozen=True)
class SampledFrames:
    """RGB frames sampled at a fixed rate: `frames` (T, H, W, 3) uint8, `times` (T,) seconds."""

    frames: np.ndarray
    times: np.ndarray
    fps: float


def _describe(source: VideoSource, name: str | None) -> str:
    if name is not None:
        return name
    return "<video bytes>" if isinstance(source, bytes) else str(source)


def _stream_end(stream: av.video.stream.VideoStream, last_time: float, origin: float) -> float:
    """End of the video stream in seconds from `origin`: its declared duration, else last frame + one frame."""
    if stream.duration is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
        return start + float(stream.duration * stream.time_base) - origin
    rate = stream.average_rate or stream.guessed_rate
    frame_seconds = 1.0 / float(rate) if rate else 0.0
    return last_time + frame_seconds - origin


def sample_frames(source: VideoSource, fps: float = PAPER_FPS, name: str | None = None) -> SampledFrames:
    """Decode `source` (path or bytes) and return the frames shown at t = i / fps for every t in the video.

    `name` is used in error messages when `source` is bytes (e.g. the shard member's key).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive (got {fps})")
    label = _describe(source, name)
    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        container = av.open(handle, mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise VideoDecodeError(f"{label}: cannot open video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise VideoDecodeError(f"{label}: has no video stream")
        stream = container.streams.video[0]
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        picked: list[np.ndarray] = []
        # The frame on screen so far, converted to RGB only once it is picked (most frames of a 25-60 fps
        # source are skipped at 10 fps).
        previous: av.VideoFrame | None = None
        previous_rgb: np.ndarray | None = None
        last_time = origin
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                time = float(frame.time)
                # Every target instant before this frame's presentation time shows the previous frame
                # (or this one, for instants before the first frame).
                while origin + len(picked) / fps < time - _TIME_EPSILON:
                    if previous_rgb is None:
                        previous_rgb = (previous if previous is not None else frame).to_ndarray(format="rgb24")
                    picked.append(previous_rgb)
                previous, previous_rgb, last_time = frame, None, time
            if previous is None:
                raise VideoDecodeError(f"{label}: the video stream has no decodable frames")
            end = _stream_end(stream, last_time, origin)
            total = max(1, math.floor(end * fps + _TIME_EPSILON))
            if len(picked) < total:
                last_rgb = previous.to_ndarray(format="rgb24")
                picked.extend([last_rgb] * (total - len(picked)))
        except (av.FFmpegError, OSError) as exc:
            raise VideoDecodeError(f"{label}: cannot decode video: {exc}") from exc
    picked = picked[:total]
    return SampledFrames(np.stack(picked), np.arange(total, dtype=np.float64) / fps, fps)


def preprocess_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, size, size) float32: shorter side resized to `size`, centre crop, CLIP normalisation."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    height, width = pixels.shape[-2:]
    scale = size / min(height, width)
    resized_height, resized_width = max(size, round(height * scale)), max(size, round(width * scale))
    pixels = F.interpolate(pixels, size=(resized_height, resized_width), mode="bicubic", antialias=True, align_corners=False)
    top, left = (resized_height - size) // 2, (resized_width - size) // 2
    pixels = pixels[:, :, top : top + size, left : left + size].clamp(0.0, 1.0)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _sanity_pixels(size: int) -> torch.Tensor:
    """A fixed colour-gradient picture, already normalised: the known input of the start-up check."""
    ramp = torch.linspace(0.0, 1.0, size)
    picture = torch.stack(
        [ramp.view(1, -1).expand(size, size), ramp.view(-1, 1).expand(size, size), 1.0 - ramp.view(1, -1).expand(size, size)]
    )
    frame = (picture * 255).round().to(torch.uint8).permute(1, 2, 0).unsqueeze(0).numpy()
    return preprocess_frames(frame, size)


class VideoEncoder:
    """A frozen CLIP vision tower: `encode(video)` gives (frames, hidden) float32 pooled features."""

    def __init__(
        self,
        model: CLIPVisionModel,
        identity: EncoderIdentity,
        device: torch.device,
        fps: float = PAPER_FPS,
        batch_size: int = 32,
    ) -> None:
        self.model = model
        self.identity = identity
        self.device = device
        self.fps = fps
        self.batch_size = batch_size
        self.size = int(model.config.image_size)
        self.dtype = next(model.parameters()).dtype

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        encoder_id: str = PAPER_VIDEO_ENCODER,
        dtype: str = "fp32",
        device: str | torch.device = "cpu",
        fps: float = PAPER_FPS,
        size: int | None = None,
        batch_size: int = 32,
    ) -> VideoEncoder:
        """Load the CLIP vision tower from `directory` (no network), freeze it and run the start-up check.

        `size` is the frame size fed to CLIP; it must equal the model's input size (None: take it from the model).
        The identity's encoder id carries fps and size, since both change the features.
        """
        torch_dtype = resolve_dtype(dtype, encoder_id)
        if fps <= 0:
            raise ValueError(f"{encoder_id}: fps must be positive (got {fps})")
        directory = Path(directory)
        require_weights(directory, encoder_id)
        try:
            model = CLIPVisionModel.from_pretrained(directory, local_files_only=True, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise FrozenEncoderError(f"{encoder_id}: cannot load CLIP vision model from {directory}: {exc}") from exc
        model_size = int(model.config.image_size)
        if size is not None and size != model_size:
            raise FrozenEncoderError(
                f"{encoder_id}: configured frame size {size} differs from the model's input size {model_size}"
            )
        device = torch.device(device)
        model = freeze(model.to(device))
        pixels = _sanity_pixels(model_size)
        identity = start_frozen(
            model,
            f"{encoder_id}@{fps:g}fps/{model_size}px",
            dtype,
            PREPROCESSING_VERSION,
            lambda: model(pixel_values=pixels.to(device, torch_dtype)).pooler_output,
        )
        return cls(model, identity, device, fps, batch_size)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB frames -> (T, hidden) float32 pooled CLIP features."""
        outputs = []
        for start in range(0, len(frames), self.batch_size):
            pixels = preprocess_frames(frames[start : start + self.batch_size], self.size)
            with torch.inference_mode():
                pooled = self.model(pixel_values=pixels.to(self.device, self.dtype)).pooler_output
            outputs.append(pooled.float().cpu().numpy())
        return np.concatenate(outputs, axis=0)

    def encode(self, video: VideoSource, name: str | None = None) -> np.ndarray:
        """Features of the frames at t = i / fps of a video file or its bytes: (frames, hidden) float32."""
        return self.encode_frames(sample_frames(video, self.fps, name).frames)


def save_tiny_video_encoder(directory: str | Path, seed: int = 0) -> Path:
    """Save a tiny random CLIP vision tower (32 px input, 32-d) for tests and demos."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPVisionModel(config)
    model.save_pretrained(directory)
    return directory
