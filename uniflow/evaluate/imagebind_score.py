"""ImageBind score (the paper's IB for V2A): cosine similarity of ImageBind's vision and audio embeddings, x100.

Following Viertola et al. (2025, VisualSound), each generated audio is embedded with ImageBind-Huge's audio
tower and its video with the vision tower, and the cosine similarity of the two embeddings is averaged over
the test set; Table 1 reports it x100 (28.6 for UniFlow-Audio, 22.7 for Diff-Foley). Higher is better.

The video goes through ImageBind's own ``imagebind.data.load_and_transform_video_data`` (5 clips of 2 s,
2 frames each, short side 224, CLIP normalisation, 3 spatial crops). The audio is an array here, not a
file, so ImageBind's audio loader (which reads files with torchaudio) is replayed on the array with
ImageBind's own pieces: its clip sampler (3 clips of 2 s) and ``waveform2melspec`` (128 Kaldi mel bins,
204 frames), normalised with its mean -4.268 and std 9.138, at 16 kHz (resampled with soxr).

ImageBind is not on PyPI and its weights are a separate download; :func:`load_imagebind` raises
:class:`MetricUnavailable` naming what is missing and never downloads anything.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from uniflow.config import StrictModel
from uniflow.evaluate.backbones import BackboneSpec, backbone_card, check_pin, module_digest, require_path
from uniflow.evaluate.signal_metrics import MetricUnavailable, Score

IMAGEBIND_SAMPLE_RATE = 16000
IMAGEBIND_AUDIO = {"clip_duration_s": 2, "clips_per_video": 3, "num_mel_bins": 128, "target_length": 204}
IMAGEBIND_AUDIO_MEAN = -4.268
IMAGEBIND_AUDIO_STD = 9.138
IMAGEBIND_VIDEO = {
    "clip_duration_s": 2,
    "clips_per_video": 5,
    "frames_per_clip": 2,
    "short_side": 224,
    "spatial_crops": 3,
}
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
INSTALL_HINT = (
    "pip install git+https://github.com/facebookresearch/ImageBind "
    "(the 'imagebind' package is not on PyPI; it brings pytorchvideo and decord, which its video loader uses)"
)

# One generated audio track and the video it was generated for: (video path, mono audio, sample rate).
ImageBindItem = tuple[str | Path, np.ndarray, int]


class ImageBindSettings(StrictModel):
    """ImageBind-Huge, loaded from a local copy of the public checkpoint.

    Download https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth (a plain state dict, about 4.5 GB;
    no checksum is published by Meta) to ``models/eval/imagebind/imagebind_huge.pth`` or set ``backbone.path``;
    pin it with ``backbone.sha256`` (the module digest the first card records).
    """

    backbone: BackboneSpec = BackboneSpec(name="imagebind_huge", path="models/eval/imagebind/imagebind_huge.pth")
    device: str = "cpu"


class ImageBindBackbone:
    """A loaded ImageBind model, the package modules it runs with, and its backbone card."""

    def __init__(self, model: Any, modality: Any, data: Any, device: str, card: dict[str, Any]):
        self.model = model
        self.modality = modality
        self.data = data
        self.device = device
        self.card = card


def load_imagebind(settings: ImageBindSettings | None = None) -> ImageBindBackbone:
    """ImageBind-Huge from the local checkpoint; :class:`MetricUnavailable` lists everything that is missing."""
    settings = settings or ImageBindSettings()
    metric = "IB (ImageBind score)"
    missing: list[str] = []
    checkpoint: Path | None = None
    try:
        checkpoint = require_path(settings.backbone, metric)
    except MetricUnavailable as error:
        missing.append(f"{error}; download {CHECKPOINT_URL} there")
    modules: dict[str, Any] = {}
    for name in ("imagebind.models.imagebind_model", "imagebind.data"):
        try:
            modules[name] = importlib.import_module(name)
        except ImportError as error:
            missing.append(f"{metric}: the 'imagebind' package cannot be imported ({error}): {INSTALL_HINT}")
            break
    if missing or checkpoint is None:
        raise MetricUnavailable("; ".join(missing))

    import torch

    imagebind_model = modules["imagebind.models.imagebind_model"]
    # pretrained=False builds the architecture only; pretrained=True would download into .checkpoints/.
    model = imagebind_model.imagebind_huge(pretrained=False)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    model.eval()
    model.to(settings.device)
    digest = module_digest(model)
    check_pin(settings.backbone, digest, metric)
    card = backbone_card(
        settings.backbone,
        digest,
        source=CHECKPOINT_URL,
        package={"name": "imagebind", "version": _version("imagebind")},
    )
    return ImageBindBackbone(model, imagebind_model.ModalityType, modules["imagebind.data"], settings.device, card)


def cosine_x100(vision: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (items, dim) embedding matrices, x100 as the paper's table prints it."""
    vision = np.asarray(vision, dtype=np.float64)
    audio = np.asarray(audio, dtype=np.float64)
    if vision.shape != audio.shape or vision.ndim != 2:
        raise ValueError(f"embeddings must be two (items, dim) matrices of one shape, got {vision.shape} and {audio.shape}")
    norms = np.linalg.norm(vision, axis=1) * np.linalg.norm(audio, axis=1)
    if np.any(norms == 0):
        raise ValueError("an embedding is all zeros, so its cosine similarity is undefined")
    return 100.0 * np.sum(vision * audio, axis=1) / norms


def imagebind_score(backbone: ImageBindBackbone, items: list[ImageBindItem]) -> Score:
    """Mean over items of 100 x cos(ImageBind vision embedding of the video, audio embedding of the audio)."""
    import torch

    if not items:
        raise ValueError("IB (ImageBind score): no items given")
    vision_embeddings, audio_embeddings = [], []
    for video_path, audio, sample_rate in items:
        inputs = {
            backbone.modality.VISION: backbone.data.load_and_transform_video_data([str(video_path)], backbone.device),
            backbone.modality.AUDIO: _audio_clips(backbone.data, audio, sample_rate).to(backbone.device),
        }
        with torch.no_grad():
            embeddings = backbone.model(inputs)
        vision_embeddings.append(embeddings[backbone.modality.VISION][0].float().cpu().numpy())
        audio_embeddings.append(embeddings[backbone.modality.AUDIO][0].float().cpu().numpy())
    scores = cosine_x100(np.stack(vision_embeddings), np.stack(audio_embeddings))
    card = {
        "metric": "imagebind_score",
        "unit": "100 x cosine similarity, mean over items",
        "implementation": {"package": "imagebind", "version": _version("imagebind")},
        "backbone": backbone.card,
        "sample_rate": IMAGEBIND_SAMPLE_RATE,
        "resampler": {"package": "soxr", "version": importlib.metadata.version("soxr"), "quality": "VHQ"},
        "settings": {
            "video": {**IMAGEBIND_VIDEO, "loader": "imagebind.data.load_and_transform_video_data"},
            "audio": {
                **IMAGEBIND_AUDIO,
                "mean": IMAGEBIND_AUDIO_MEAN,
                "std": IMAGEBIND_AUDIO_STD,
                "loader": "imagebind.data clip sampler + waveform2melspec on the array",
            },
        },
        "items": len(items),
        "per_item": [
            {"video": str(video_path), "score": round(float(score), 4)}
            for (video_path, _, _), score in zip(items, scores, strict=True)
        ],
    }
    return Score(float(np.mean(scores)), card)


def _audio_clips(data: Any, audio: np.ndarray, sample_rate: int) -> Any:
    """(1, clips, 1, mel bins, frames): ImageBind's audio loader applied to an array instead of a file."""
    import torch

    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or len(audio) == 0 or not np.all(np.isfinite(audio)):
        raise ValueError(f"audio must be mono, non-empty and finite (shape {audio.shape})")
    if sample_rate != IMAGEBIND_SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, IMAGEBIND_SAMPLE_RATE, quality="VHQ")
    waveform = torch.from_numpy(audio.astype(np.float32))[None, :]
    sampler = data.ConstantClipsPerVideoSampler(
        clip_duration=IMAGEBIND_AUDIO["clip_duration_s"], clips_per_video=IMAGEBIND_AUDIO["clips_per_video"]
    )
    clips = []
    for start, end in data.get_clip_timepoints(sampler, waveform.size(1) / IMAGEBIND_SAMPLE_RATE):
        segment = waveform[:, int(start * IMAGEBIND_SAMPLE_RATE) : int(end * IMAGEBIND_SAMPLE_RATE)]
        melspec = data.waveform2melspec(
            segment, IMAGEBIND_SAMPLE_RATE, IMAGEBIND_AUDIO["num_mel_bins"], IMAGEBIND_AUDIO["target_length"]
        )
        clips.append((melspec - IMAGEBIND_AUDIO_MEAN) / IMAGEBIND_AUDIO_STD)
    return torch.stack(clips)[None]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
