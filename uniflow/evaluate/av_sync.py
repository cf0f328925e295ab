"""Audio-visual synchronization of V2A output: Synchformer's offset (the paper's SYNC) and uniflow's own estimator.

The paper (appendix B, following Viertola et al. 2025, V-AURA/VisualSound) reports SYNC: Synchformer
(Iashin et al. 2024) predicts, for each generated audio played with its video, the audio-visual offset as
one of 21 classes on a grid from -2 s to +2 s (0.2 s steps); SYNC is the mean absolute predicted offset
over the test set (the evaluation code of the VisualSound authors averages ``abs(offset_sec)``; Table 1's
922 and 1145 read as milliseconds). Lower is better, 0 means every item was judged in sync.

Synchformer is not a pip package: it runs from a checkout of its repository with its checkpoint, and
:func:`load_synchformer` raises :class:`MetricUnavailable` saying what to fetch and where to put it.

``onset-xcorr`` is uniflow's transparent estimator, NOT Synchformer: it cross-correlates a visual motion
envelope (mean absolute difference of consecutive grey frames) with an audio onset envelope (spectral flux
at the video's frame rate) and reports the lag of the correlation peak. It needs no weights, so it always
runs, but its numbers are not comparable with the paper's SYNC column.

Sign convention everywhere in this module: a positive offset means the audio is late (it lags the picture).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import av
import numpy as np
import soxr

from uniflow.config import StrictModel
from uniflow.evaluate.backbones import BackboneSpec, backbone_card, check_pin, module_digest, require_path
from uniflow.evaluate.cards import own_implementation
from uniflow.evaluate.signal_metrics import MetricUnavailable, Score
from uniflow.hashing import sha256_file

# One generated audio track and the video it was generated for: (video path, mono audio, sample rate).
SyncItem = tuple[str | Path, np.ndarray, int]

# Synchformer's search range (its 21 offset classes span -2..+2 s); the onset estimator searches the same.
SYNCHFORMER_MAX_OFFSET_S = 2.0
SYNCHFORMER_VIDEO_FPS = 25
SYNCHFORMER_AUDIO_RATE = 16000
SYNCHFORMER_SHORT_SIDE = 256
SYNCHFORMER_CLIP_SECONDS = 5.0


# -- decoding ---------------------------------------------------------------------------------------
class DecodedFrames(NamedTuple):
    """Frames of a video (T, H, W) grey or (T, H, W, 3) RGB, uint8, their rate and the first frame's time."""

    frames: np.ndarray
    fps: float
    start_s: float


def read_video_frames(path: str | Path, pixel_format: str = "gray", max_width: int | None = None) -> DecodedFrames:
    """Decode every frame of the first video stream with PyAV ('gray' or 'rgb24'), optionally downscaled."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise ValueError(f"{path}: the video stream has no frame rate")
        frames: list[np.ndarray] = []
        start_s: float | None = None
        for frame in container.decode(stream):
            if start_s is None:
                start_s = float(frame.time or 0.0)
            if max_width is not None and frame.width > max_width:
                height = max(2, int(round(frame.height * max_width / frame.width / 2)) * 2)
                frame = frame.reformat(width=max_width, height=height)
            frames.append(frame.to_ndarray(format=pixel_format))
    if not frames:
        raise ValueError(f"{path}: the video stream has no frames")
    return DecodedFrames(np.stack(frames), float(rate), start_s or 0.0)


def read_video_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The first audio stream of a video file, downmixed to mono float32, with its sample rate."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().astype(np.float32) for frame in container.decode(stream)]
        rate = stream.rate
    if not chunks:
        raise ValueError(f"{path}: the audio stream is empty")
    # Planar formats give (channels, samples); packed ones give (1, samples * channels).
    channels = stream.codec_context.layout.nb_channels or 1
    joined = np.concatenate([c if c.shape[0] == channels else c.reshape(-1, channels).T for c in chunks], axis=1)
    return joined.mean(axis=0), int(rate)


# -- uniflow's onset cross-correlation estimator ------------------------------------------------------
class OnsetSyncSettings(StrictModel):
    """Settings of the ``onset-xcorr`` estimator (defaults used for every number uniflow reports)."""

    max_offset_s: float = SYNCHFORMER_MAX_OFFSET_S  # search ±this, as Synchformer's offset grid does
    max_width: int = 320  # frames are downscaled to at most this width before differencing (speed only)
    motion_floor: float = 0.5  # grey levels: a video whose motion envelope never exceeds this is still
    silence_db: float = -50.0  # dBFS: audio whose loudest frame is below this is silent
    # The strongest flux must stand this many robust standard deviations (1.4826 MAD) above the median flux;
    # steady tones, chords and noise stay under 4, events under a noise bed 14 dB down reach about 20.
    onset_zscore: float = 5.0
    flux_compression: float = 100.0  # log(1 + C |X|) before the flux, so quiet onsets count too
    # Peaks less than this above the median correlation are flagged. On 24 of the mini mirror's 4 s event
    # videos their own audio scored 0.52..0.76, another video's audio (72 pairs) 0.16..0.58, 6 of 72 >= 0.5:
    # with a few sparse events per clip, a chance alignment of two of them cannot always be told apart.
    low_confidence: float = 0.5


@dataclass(frozen=True, slots=True)
class SyncEstimate:
    """One item's offset (ms, positive = audio late), the peak correlation and its confidence.

    ``confidence`` is the peak's height above the median correlation over all searched lags.
    """

    offset_ms: float
    correlation: float
    confidence: float
    fps: float


@dataclass(frozen=True, slots=True)
class NotScorable:
    """An item whose picture does not move or whose audio has no onsets, so no offset can be measured."""

    reason: str


def motion_envelope(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each grey frame to the previous one (0 for the first frame)."""
    stack = frames.astype(np.float32)
    envelope = np.zeros(len(stack), dtype=np.float64)
    if len(stack) > 1:
        envelope[1:] = np.abs(np.diff(stack, axis=0)).mean(axis=tuple(range(1, stack.ndim)))
    return envelope


def onset_envelope(
    audio: np.ndarray, sample_rate: int, fps: float, n_frames: int, start_s: float = 0.0, compression: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """Half-wave rectified spectral flux of one window per video frame, and each window's RMS.

    Window ``t`` covers the video frame's period ``[start_s + t / fps, start_s + (t + 1) / fps)``, so a
    sound starting with frame ``t`` raises flux exactly at ``t``. The window is rectangular: a taper
    blurs that timing and, on the mirror's event videos, made other videos' audio correlate more.
    """
    audio = np.asarray(audio, dtype=np.float64)
    length = int(round(sample_rate / fps))
    starts = np.round((start_s + np.arange(n_frames) / fps) * sample_rate).astype(int)
    padded = np.concatenate([audio, np.zeros(length)])
    windows = np.zeros((n_frames, length))
    for index, start in enumerate(starts):
        if 0 <= start < len(audio):
            windows[index] = padded[start : start + length]
    magnitude = np.abs(np.fft.rfft(windows, axis=1)) / length
    compressed = np.log1p(compression * magnitude)
    flux = np.zeros(n_frames)
    flux[1:] = np.maximum(np.diff(compressed, axis=0), 0.0).sum(axis=1)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    return flux, rms


def envelope_xcorr(motion: np.ndarray, onsets: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised cross-correlation r(L) = sum_t onsets[t] motion[t - L] / (|onsets| |motion|) for |L| <= max_lag.

    Both envelopes are zero-mean over their whole length and zero outside it, and the norm is the whole
    envelope's, so a lag supported by only a few overlapping frames cannot score high by chance.
    """
    motion = motion - motion.mean()
    onsets = onsets - onsets.mean()
    norm = np.linalg.norm(motion) * np.linalg.norm(onsets)
    full = np.correlate(onsets, motion, mode="full") / norm  # index k is lag k - (len(motion) - 1)
    lags = np.arange(-(len(motion) - 1), len(onsets))
    keep = np.abs(lags) <= max_lag
    return lags[keep], full[keep]


def estimate_offset(
    video_path: str | Path, audio: np.ndarray, sample_rate: int, settings: OnsetSyncSettings | None = None
) -> SyncEstimate | NotScorable:
    """The offset of ``audio`` (which starts with the video) against the motion in ``video_path``."""
    settings = settings or OnsetSyncSettings()
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or len(audio) == 0 or not np.all(np.isfinite(audio)):
        raise ValueError(f"{video_path}: audio must be mono, non-empty and finite (shape {audio.shape})")
    decoded = read_video_frames(video_path, "gray", settings.max_width)
    if len(decoded.frames) < 3:
        return NotScorable(f"only {len(decoded.frames)} frames: too short to measure an offset")
    motion = motion_envelope(decoded.frames)
    if motion.max() < settings.motion_floor:
        return NotScorable(
            f"no motion: consecutive frames never differ by more than {settings.motion_floor} grey levels on average"
        )
    # Log compression, as for the flux, so one large moving shape does not drown the small ones.
    motion = np.log1p(motion)
    flux, rms = onset_envelope(audio, sample_rate, decoded.fps, len(motion), decoded.start_s, settings.flux_compression)
    loudest_db = 20 * np.log10(rms.max() + 1e-12)
    if loudest_db < settings.silence_db:
        return NotScorable(f"no onsets: the audio is silent (loudest frame {loudest_db:.1f} dBFS)")
    median_flux = float(np.median(flux[1:]))
    spread = 1.4826 * float(np.median(np.abs(flux[1:] - median_flux))) + 1e-12
    strongest = (float(flux.max()) - median_flux) / spread
    if strongest < settings.onset_zscore:
        return NotScorable(
            f"no onsets: the strongest spectral flux is {strongest:.1f} robust deviations above its median, "
            f"under {settings.onset_zscore} (steady or noise-like sound)"
        )
    max_lag = int(np.floor(settings.max_offset_s * decoded.fps))
    lags, correlation = envelope_xcorr(motion, flux, max_lag)
    best = int(np.argmax(correlation))
    lag = float(lags[best])
    if 0 < best < len(correlation) - 1:  # sub-frame refinement: vertex of the parabola through the peak
        before, peak, after = correlation[best - 1 : best + 2]
        curvature = before - 2 * peak + after
        if curvature < 0:
            lag += float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))
    confidence = float(correlation[best] - np.median(correlation))
    return SyncEstimate(1000.0 * lag / decoded.fps, float(correlation[best]), confidence, decoded.fps)


def onset_xcorr_sync(items: list[SyncItem], settings: OnsetSyncSettings | None = None) -> Score:
    """Mean absolute offset (ms) over the scorable items, with every item's estimate or reason in the card."""
    settings = settings or OnsetSyncSettings()
    per_item: list[dict[str, Any]] = []
    offsets: list[float] = []
    for video_path, audio, sample_rate in items:
        result = estimate_offset(video_path, audio, sample_rate, settings)
        if isinstance(result, NotScorable):
            per_item.append({"video": str(video_path), "not_scorable": result.reason})
            continue
        offsets.append(result.offset_ms)
        per_item.append(
            {
                "video": str(video_path),
                "offset_ms": round(result.offset_ms, 3),
                "correlation": round(result.correlation, 6),
                "confidence": round(result.confidence, 3),
                "low_confidence": result.confidence < settings.low_confidence,
            }
        )
    if not offsets:
        reasons = "; ".join(f"{item['video']}: {item['not_scorable']}" for item in per_item) or "no items given"
        raise ValueError(f"onset-xcorr sync: no item could be scored ({reasons})")
    card = {
        "metric": "av_offset_onset_xcorr",
        "unit": "ms, mean of |offset| over scorable items; per-item offsets are signed (+ = audio late)",
        "comparable_with_paper": False,
        "note": "uniflow's own estimator, NOT Synchformer: not comparable with the paper's SYNC (Table 1)",
        "implementation": own_implementation(__name__, __file__, numpy=np.__version__, av=av.__version__),
        "settings": {
            **settings.model_dump(),
            "motion_envelope": "log(1 + mean |grey frame t - grey frame t-1|), PyAV decode at the video's own fps",
            "onset_envelope": "half-wave rectified spectral flux of log(1 + C|rfft|), one rectangular window per frame",
            "correlation": "zero-mean envelopes, whole-envelope norms, peak refined by a parabola",
            "confidence": "peak correlation minus the median correlation over the searched lags",
        },
        "items": len(items),
        "scored": len(offsets),
        "not_scorable": len(items) - len(offsets),
        "low_confidence": sum(1 for item in per_item if item.get("low_confidence")),
        "mean_signed_offset_ms": round(float(np.mean(offsets)), 3),
        "per_item": per_item,
    }
    return Score(float(np.mean(np.abs(offsets))), card)


# -- Synchformer (the paper's SYNC) --------------------------------------------------------------------
class SynchformerSettings(StrictModel):
    """Synchformer as the VisualSound authors ran it: the AudioSet-trained sync model 24-01-04T16-39-21.

    Checkpoint (md5 starts 54037d2, as published in the Synchformer README):
    https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/sync/sync_models/24-01-04T16-39-21/24-01-04T16-39-21.pt
    and its config ``cfg-24-01-04T16-39-21.yaml`` from the same folder, placed side by side. The code is a
    checkout of https://github.com/v-iashin/Synchformer (its requirements: omegaconf, einops, timm).
    """

    backbone: BackboneSpec = BackboneSpec(
        name="synchformer-24-01-04T16-39-21",
        path="models/eval/synchformer/24-01-04T16-39-21/24-01-04T16-39-21.pt",
    )
    repo_dir: str | None = "models/eval/synchformer/Synchformer"
    device: str = "cpu"


class SynchformerBackbone:
    """A loaded Synchformer with its offset grid (seconds, Synchformer's sign: + = audio early)."""

    def __init__(self, model: Any, transforms: Any, prepare_inputs: Any, grid: np.ndarray, config: Any, card: dict):
        self.model = model
        self.transforms = transforms
        self.prepare_inputs = prepare_inputs
        self.grid = grid
        self.config = config
        self.card = card


def load_synchformer(settings: SynchformerSettings | None = None) -> SynchformerBackbone:
    """Load Synchformer from a local repository checkout and checkpoint; never downloads."""
    settings = settings or SynchformerSettings()
    metric = "SYNC (Synchformer)"
    checkpoint = require_path(settings.backbone, metric)
    config_path = checkpoint.with_name(f"cfg-{checkpoint.stem}.yaml")
    if not config_path.is_file():
        raise MetricUnavailable(f"{metric}: the checkpoint's config {config_path} is missing (download it next to it)")
    if settings.repo_dir is None or not (Path(settings.repo_dir) / "model" / "sync_model.py").is_file():
        raise MetricUnavailable(
            f"{metric}: no Synchformer code at {settings.repo_dir!r}: "
            "git clone https://github.com/v-iashin/Synchformer there (it is not a pip package)"
        )
    for package in ("omegaconf", "einops", "timm", "torch"):
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise MetricUnavailable(f"{metric}: Synchformer needs the '{package}' package: pip install {package}") from error
    import torch
    from omegaconf import OmegaConf

    repo = str(Path(settings.repo_dir).resolve())
    if repo not in sys.path:  # the checkout's modules (model, dataset, scripts) import each other top-level
        sys.path.insert(0, repo)
    from dataset.transforms import make_class_grid  # type: ignore[import-not-found]
    from scripts.train_utils import get_model, get_transforms, prepare_inputs  # type: ignore[import-not-found]

    config = OmegaConf.load(config_path)
    # The feature extractors' weights are inside the sync checkpoint; older configs name a moved module.
    config.model.params.afeat_extractor.params.ckpt_path = None
    config.model.params.vfeat_extractor.params.ckpt_path = None
    config.model.params.transformer.target = config.model.params.transformer.target.replace(
        ".modules.feature_selector.", ".sync_model."
    )
    device = torch.device(settings.device)
    _, model = get_model(config, device)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)  # the file also holds its config
    model.load_state_dict(state["model"])
    model.eval()
    digest = module_digest(model)
    check_pin(settings.backbone, digest, metric)
    classes = int(config.model.params.transformer.params.off_head_cfg.params.out_features)
    max_off = float(config.data.max_off_sec)
    grid = np.asarray(make_class_grid(-max_off, max_off, classes), dtype=np.float64)
    card = backbone_card(
        settings.backbone,
        digest,
        repo_dir=settings.repo_dir,
        config_sha256=sha256_file(config_path),
        offset_classes=classes,
        max_offset_s=max_off,
    )
    return SynchformerBackbone(model, get_transforms(config, ["test"])["test"], prepare_inputs, grid, config, card)


def synchformer_sync(backbone: SynchformerBackbone, items: list[SyncItem]) -> Score:
    """SYNC as the VisualSound evaluation computes it: mean |predicted offset| over items, here in ms.

    Each item's video is decoded at 25 fps with its short side scaled to 256 px, the audio resampled to
    16 kHz, both tiled to Synchformer's 5 s clip when shorter, and the argmax class of the offset head read
    off the grid.
    """
    import torch

    per_item: list[dict[str, Any]] = []
    offsets_ms: list[float] = []
    for video_path, audio, sample_rate in items:
        rgb, audio16 = _synchformer_inputs(video_path, audio, sample_rate)
        item = {
            "video": rgb,
            "audio": audio16,
            "meta": {"video": {"fps": [float(SYNCHFORMER_VIDEO_FPS)]}, "audio": {"framerate": [SYNCHFORMER_AUDIO_RATE]}},
            "path": str(video_path),
            "split": "test",
            "targets": {"v_start_i_sec": 0.0, "offset_sec": 0.0, "vggsound_target": 0, "vggsound_label": "unknown"},
        }
        batch = torch.utils.data.default_collate([backbone.transforms(item)])
        device = next(backbone.model.parameters()).device
        aud, vid, _ = backbone.prepare_inputs(batch, device)
        with torch.no_grad():
            _, logits = backbone.model(vid, aud)
        probabilities = torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()
        cls = int(np.argmax(probabilities))
        # Synchformer's + means audio early; uniflow's + means audio late.
        offset_ms = -1000.0 * float(backbone.grid[cls])
        offsets_ms.append(offset_ms)
        per_item.append({"video": str(video_path), "offset_ms": round(offset_ms, 1), "probability": float(probabilities[cls])})
    if not offsets_ms:
        raise ValueError("SYNC (Synchformer): no items given")
    card = {
        "metric": "sync_synchformer",
        "unit": "ms, mean of |predicted offset| (the paper's SYNC); per-item offsets signed (+ = audio late)",
        "comparable_with_paper": True,
        "implementation": {"package": "Synchformer (repository checkout)", "repo_dir": backbone.card.get("repo_dir")},
        "backbone": backbone.card,
        "settings": {
            "video_fps": SYNCHFORMER_VIDEO_FPS,
            "short_side": SYNCHFORMER_SHORT_SIDE,
            "audio_rate": SYNCHFORMER_AUDIO_RATE,
            "clip_seconds": SYNCHFORMER_CLIP_SECONDS,
            "shorter_inputs": "tiled to the clip length, as the VisualSound evaluation does",
            "grid_s": [round(float(value), 3) for value in backbone.grid],
        },
        "items": len(items),
        "in_sync": sum(1 for value in offsets_ms if value == 0.0),
        "per_item": per_item,
    }
    return Score(float(np.mean(np.abs(offsets_ms))), card)


def _synchformer_inputs(video_path: str | Path, audio: np.ndarray, sample_rate: int) -> tuple[Any, Any]:
    """(T, 3, H, W) uint8 frames at 25 fps with a 256 px short side, and 16 kHz mono audio, tiled to 5 s."""
    import torch

    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            scale = SYNCHFORMER_SHORT_SIDE / min(frame.width, frame.height)
            width = int(round(frame.width * scale / 2)) * 2
            height = int(round(frame.height * scale / 2)) * 2
            frames.append(frame.reformat(width=width, height=height).to_ndarray(format="rgb24"))
            times.append(float(frame.time or 0.0))
    if not frames:
        raise ValueError(f"{video_path}: no video frames")
    times_array = np.asarray(times) - times[0]
    duration = len(frames) / (float(stream.average_rate) if stream.average_rate else SYNCHFORMER_VIDEO_FPS)
    targets = np.arange(int(round(duration * SYNCHFORMER_VIDEO_FPS))) / SYNCHFORMER_VIDEO_FPS
    # Resample the frame rate: for each 25 fps instant take the last frame shown at or before it.
    indices = np.clip(np.searchsorted(times_array, targets + 1e-6, side="right") - 1, 0, len(frames) - 1)
    rgb = np.stack([frames[i] for i in indices]).transpose(0, 3, 1, 2)
    audio16 = np.asarray(audio, dtype=np.float64)
    if sample_rate != SYNCHFORMER_AUDIO_RATE:
        audio16 = soxr.resample(audio16, sample_rate, SYNCHFORMER_AUDIO_RATE, quality="VHQ")
    clip_frames = int(np.ceil(SYNCHFORMER_CLIP_SECONDS * SYNCHFORMER_VIDEO_FPS))
    clip_samples = int(np.ceil(SYNCHFORMER_CLIP_SECONDS * SYNCHFORMER_AUDIO_RATE))
    rgb = np.concatenate([rgb] * (clip_frames // len(rgb) + 1))[: max(clip_frames, len(rgb))]
    audio16 = np.tile(audio16, clip_samples // len(audio16) + 1)[: max(clip_samples, len(audio16))]
    return torch.from_numpy(np.ascontiguousarray(rgb)), torch.from_numpy(audio16.astype(np.float32))


class SyncSettings(StrictModel):
    """Which synchronization estimators an evaluation runs, each reported under its own metric name.

    ``synchformer`` is the paper's SYNC (NotComputed where its code or checkpoint is missing);
    ``onset-xcorr`` is uniflow's estimator, which always runs and is never comparable with the paper.
    """

    estimators: list[Literal["synchformer", "onset-xcorr"]] = ["synchformer", "onset-xcorr"]
    synchformer: SynchformerSettings = SynchformerSettings()
    onset_xcorr: OnsetSyncSettings = OnsetSyncSettings()

