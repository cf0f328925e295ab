"""Which frozen encoders the feature stage runs, where their weights are, and how to load them.

`datasets/features.yaml` holds the paper's choices: Flan-T5-large for captions and instructions,
CLIP ViT-L/14 at 10 fps for video, a 256-d speaker embedding, and the trained UniFlow VAE. Model
paths may use ``${VAR}`` / ``${VAR:-default}`` (e.g. ``${UNIFLOW_MODELS:-./models}/flan-t5-large``);
they are expanded when the file is loaded, so an unset variable is reported with the file's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from uniflow.config import ConfigError, StrictModel, read_yaml, validate_data
from uniflow.storage import expand_env

if TYPE_CHECKING:
    import torch

    from uniflow.features.speaker import SpeakerEncoder
    from uniflow.features.text import TextEncoder
    from uniflow.features.video import VideoEncoder

# The paper's encoders (section 3.2): Flan-T5-large hidden states, CLIP ViT-L/14 pooled features at 10 fps.
PAPER_TEXT_ENCODER = "google/flan-t5-large"
PAPER_VIDEO_ENCODER = "openai/clip-vit-large-patch14"
PAPER_FPS = 10.0

EncoderName = Literal["text", "video", "speaker"]
ENCODER_NAMES: tuple[str, ...] = ("text", "video", "speaker")
# The frozen encoders each task's features need (instructions are embedded once, separately).
TASK_ENCODERS: dict[str, tuple[str, ...]] = {
    "tts": ("speaker",),
    "svs": (),
    "t2a": ("text",),
    "t2m": ("text",),
    "se": (),
    "sr": (),
    "v2a": ("video",),
}
_MODELS = "${UNIFLOW_MODELS:-./models}"


class TextEncoderConfig(StrictModel):
    """Flan-T5 for captions and instructions; fp16 is not offered (T5 overflows in it)."""

    name: str = PAPER_TEXT_ENCODER
    path: str = f"{_MODELS}/flan-t5-large"
    dtype: Literal["fp32", "bf16"] = "fp32"
    batch_size: int = Field(default=16, ge=1)


class VideoEncoderConfig(StrictModel):
    """CLIP vision tower; `size` None takes the model's own input size (224 for ViT-L/14)."""

    name: str = PAPER_VIDEO_ENCODER
    path: str = f"{_MODELS}/clip-vit-large-patch14"
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    fps: float = Field(default=PAPER_FPS, gt=0)
    size: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)


class SpeakerEncoderConfig(StrictModel):
    """`resemblyzer` (weights from its wheel unless `path`) or `wespeaker` (needs `path`: a model directory)."""

    kind: Literal["resemblyzer", "wespeaker"] = "resemblyzer"
    path: str | None = None


class VaeFeaturesConfig(StrictModel):
    """The trained VAE whose latents are the targets (and SE/SR inputs); `sample` draws z instead of the mean."""

    path: str = f"{_MODELS}/uniflow-vae"
    sample: bool = False


class EncodersConfig(StrictModel):
    """Every frozen model the feature stage may need."""

    text: TextEncoderConfig = TextEncoderConfig()
    video: VideoEncoderConfig = VideoEncoderConfig()
    speaker: SpeakerEncoderConfig = SpeakerEncoderConfig()
    vae: VaeFeaturesConfig = VaeFeaturesConfig()


def _expand_paths(data: object, source: str) -> object:
    """Expand ${ENV} in every `path` value of the parsed file."""
    if not isinstance(data, dict):
        return data
    expanded: dict[str, object] = {}
    for section, value in data.items():
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            value = {**value, "path": expand_env(value["path"], f"{source}: {section}.path")}
        expanded[section] = value
    return expanded


def load_encoders_config(path: str | Path = "datasets/features.yaml") -> EncodersConfig:
    """Load the encoders file, expanding ${ENV} in model paths; errors name the file and field."""
    data = _expand_paths(read_yaml(path), str(path))
    return validate_data(data, EncodersConfig, str(path))


def encoders_for_tasks(tasks: Iterable[str]) -> set[str]:
    """The frozen encoders (text, video, speaker) the given tasks need."""
    needed: set[str] = set()
    for task in tasks:
        if task not in TASK_ENCODERS:
            raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASK_ENCODERS)}")
        needed.update(TASK_ENCODERS[task])
    return needed


@dataclass
class Encoders:
    """The loaded frozen encoders; one is None when no requested task needs it."""

    text: TextEncoder | None = None
    video: VideoEncoder | None = None
    speaker: SpeakerEncoder | None = None

    def identities(self) -> dict[str, dict[str, str | int]]:
        """Identity of every loaded encoder, by role: the encoder part of a feature cache key."""
        return {name: encoder.identity.as_dict() for name in ENCODER_NAMES if (encoder := getattr(self, name)) is not None}


def load_encoders(
    config: EncodersConfig,
    needed: Iterable[str] = ENCODER_NAMES,
    device: str | torch.device = "cpu",
) -> Encoders:
    """Load (frozen, checked, identified) the encoders named in `needed`; see `encoders_for_tasks`."""
    from uniflow.features.speaker import load_speaker_encoder
    from uniflow.features.text import TextEncoder
    from uniflow.features.video import VideoEncoder

    needed = set(needed)
    unknown = needed - set(ENCODER_NAMES)
    if unknown:
        raise ConfigError(f"unknown encoder(s) {', '.join(sorted(unknown))}; choose from {', '.join(ENCODER_NAMES)}")
    encoders = Encoders()
    if "text" in needed:
        text = config.text
        encoders.text = TextEncoder.from_pretrained(text.path, text.name, text.dtype, device, text.batch_size)
    if "video" in needed:
        video = config.video
        encoders.video = VideoEncoder.from_pretrained(
            video.path, video.name, video.dtype, device, video.fps, video.size, video.batch_size
        )
    if "speaker" in needed:
        encoders.speaker = load_speaker_encoder(config.speaker.kind, config.speaker.path, device)
    return encoders
