"""Durations: per-token frame counts, the length regulator (paper eq. 2), log-domain targets and losses (eq. 9).

Every content token i of a sample gets ``frames[i]`` latent frames (50 per second): the length regulator
repeats it that often, giving time-aligned content C_T (``(B, T, dim)``) that lines up with the latents
``(B, T, 128)``. Where the counts come from, per task:

    tts, svs   the aligner's / score's latent frames per phone (training); the sequence predictor (inference)
    se, sr     fixed: 1 latent per input latent
    v2a        fixed: latent_rate / video_fps latents per video frame (50 / 10 = 5)
    t2a, t2m   dummy: a constant per token (C_T is replaced by a dummy embedding in the backbone anyway)

Targets of the predictors (paper eq. 9, "converted to frame numbers in the logarithmic domain"):

- sequence: log(units + 1) with units = frames counted in steps of `sequence_unit_seconds`. The paper's
  unit is the latent frame (0.02 s); the authors' code counts 5 ms steps, log(round(seconds / 0.005) + 1),
  and inverts with ceil (`DurationConfig.authors()`);
- clip: log(seconds + 1) of the target audio (the paper leaves the unit open; this is the authors').

At inference a TA sample lasts the sum of its frames (`ta_length="sequence"`, the authors'); the paper's
text says the clip duration sets every output length (`ta_length="clip"`), the expansion then trimmed or
padded to it. An NTA sample lasts exp(clip) - 1 seconds.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field, model_validator

from uniflow.config import StrictModel
from uniflow.model.content import ContentBatch
from uniflow.model.tasks import ALIGNED_DURATION_TASKS, FIXED_DURATION_TASKS, NON_TIME_ALIGNED_TASKS


class DurationConfig(StrictModel):
    """How durations are counted, targeted and inverted. `paper()` is the default; `authors()` the code's."""

    latent_rate: float = Field(default=50.0, gt=0)  # latents per second (24 kHz / 480)
    video_fps: float = Field(default=10.0, gt=0)
    sequence_unit_seconds: float = Field(default=0.02, gt=0)
    inverse_rounding: Literal["round", "ceil"] = "round"
    nta_dummy_frames: int = Field(default=1, ge=0)
    # The authors' collate pads NTA's single dummy duration [1.0 s] with zeros: only the first token gets frames.
    nta_dummy_first_token_only: bool = False
    # The paper fixes SE/SR/V2A durations; the authors' final code predicts them at inference too.
    predict_fixed_durations: bool = False
    ta_length: Literal["sequence", "clip"] = "sequence"

    @model_validator(mode="after")
    def _check(self) -> DurationConfig:
        ratio = self.latent_rate / self.video_fps
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f"latent_rate / video_fps must be a whole number of latents per frame, got {ratio}")
        return self

    @property
    def latents_per_video_frame(self) -> int:
        return round(self.latent_rate / self.video_fps)

    @classmethod
    def paper(cls) -> DurationConfig:
        return cls()

    @classmethod
    def authors(cls) -> DurationConfig:
        return cls(
            sequence_unit_seconds=0.005,
            inverse_rounding="ceil",
            nta_dummy_frames=50,
            nta_dummy_first_token_only=True,
            predict_fixed_durations=True,
        )


def fixed_frames_per_token(task: str, config: DurationConfig) -> int:
    """Latents per input token for SE/SR (1 per input latent) and V2A (per video frame)."""
    if task in ("se", "sr"):
        return 1
    if task == "v2a":
        return config.latents_per_video_frame
    raise ValueError(f"{task} has no fixed duration")


def _token_frames(
    batch: ContentBatch,
    content_mask: torch.Tensor,
    config: DurationConfig,
    predicted: torch.Tensor | None,
) -> torch.Tensor:
    """(B, N) long frames per content token; `predicted` (B, N) replaces the aligned ones when given."""
    if content_mask.shape[0] != len(batch):
        raise ValueError(f"content mask has {content_mask.shape[0]} rows for a batch of {len(batch)}")
    device = content_mask.device
    # A constant per sample (fixed and dummy tasks; 0 for aligned ones), spread over its valid tokens.
    constants = [
        config.nta_dummy_frames
        if task in NON_TIME_ALIGNED_TASKS
        else fixed_frames_per_token(task, config)
        if task in FIXED_DURATION_TASKS
        else 0
        for task in batch.tasks
    ]
    frames = content_mask.long() * torch.tensor(constants, dtype=torch.long, device=device)[:, None]
    if config.nta_dummy_first_token_only:
        non_aligned = torch.tensor([task in NON_TIME_ALIGNED_TASKS for task in batch.tasks], device=device)
        frames[:, 1:] = frames[:, 1:] * ~non_aligned[:, None]
    if predicted is not None:
        use_prediction = [
            task in ALIGNED_DURATION_TASKS or (config.predict_fixed_durations and task in FIXED_DURATION_TASKS)
            for task in batch.tasks
        ]
        chosen = torch.tensor(use_prediction, dtype=torch.bool, device=device)[:, None]
        return torch.where(chosen, predicted.long(), frames) * content_mask
    # Aligned (tts/svs) ground truth: one copy per sub-batch.
    for modality, sub_batch in (("phones", batch.phones), ("score", batch.score)):
        rows = batch.rows(modality)
        if not rows:
            continue
        if sub_batch is None or sub_batch.frames is None:
            raise ValueError(f"the batch's {modality} inputs carry no ground-truth frames")
        length = sub_batch.frames.shape[1]
        frames[rows, :length] = sub_batch.frames.to(device) * sub_batch.mask.to(device)
    return frames * content_mask


def target_token_frames(batch: ContentBatch, content_mask: torch.Tensor, config: DurationConfig) -> torch.Tensor:
    """Training durations (B, N): ground truth for tts/svs, fixed for se/sr/v2a, dummy for t2a/t2m."""
    return _token_frames(batch, content_mask, config, None)


def inference_token_frames(
    batch: ContentBatch, content_mask: torch.Tensor, sequence_log_duration: torch.Tensor, config: DurationConfig
) -> torch.Tensor:
    """Inference durations (B, N): predicted for tts/svs (and se/sr/v2a if `predict_fixed_durations`)."""
    predicted = frames_from_log(sequence_log_duration, content_mask, config)
    return _token_frames(batch, content_mask, config, predicted)


def sequence_targets(frames: torch.Tensor, config: DurationConfig) -> torch.Tensor:
    """log(units + 1) of latent frame counts, units of `sequence_unit_seconds`."""
    units = torch.round(frames.float() * (1.0 / config.latent_rate / config.sequence_unit_seconds))
    return torch.log1p(units)


def clip_targets(latent_lengths: torch.Tensor, config: DurationConfig) -> torch.Tensor:
    """log(seconds + 1) of each sample's target latent length."""
    return torch.log1p(latent_lengths.float() / config.latent_rate)


def frames_from_log(sequence_log_duration: torch.Tensor, mask: torch.Tensor, config: DurationConfig) -> torch.Tensor:
    """Invert `sequence_targets`: (B, N) predicted log durations -> latent frames per token (long, >= 0)."""
    expanded = torch.exp(sequence_log_duration.float())
    units = torch.ceil(expanded) - 1 if config.inverse_rounding == "ceil" else torch.round(expanded - 1)
    seconds = units.clamp(min=0) * config.sequence_unit_seconds
    return torch.round(seconds * config.latent_rate).long() * mask


def clip_latents(clip_log_duration: torch.Tensor, config: DurationConfig) -> torch.Tensor:
    """(B,) predicted clip durations -> latent counts (at least 1)."""
    seconds = torch.expm1(clip_log_duration.float()).clamp(min=0)
    return torch.round(seconds * config.latent_rate).long().clamp(min=1)


def output_lengths(
    token_frames: torch.Tensor, clip_log_duration: torch.Tensor, time_aligned: torch.Tensor, config: DurationConfig
) -> torch.Tensor:
    """(B,) latent lengths to generate: TA = sum of frames (or the clip duration), NTA = clip duration."""
    from_clip = clip_latents(clip_log_duration, config)
    if config.ta_length == "clip":
        return from_clip
    return torch.where(time_aligned, token_frames.sum(dim=1).clamp(min=1), from_clip)


def length_regulate(
    content: torch.Tensor, token_frames: torch.Tensor, latent_lengths: torch.Tensor, max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper eq. 2: repeat token i of (B, N, D) `content` token_frames[:, i] times, trimmed/padded per sample to
    `latent_lengths` (B,). Returns C_T (B, T, D), zero past a sample's frames or length, and the latent mask
    (B, T) (True below latent_lengths); T = `max_length` or the longest latent length."""
    batch, _, dim = content.shape
    length = int(latent_lengths.max()) if max_length is None else max_length
    ends = token_frames.long().cumsum(dim=1)  # (B, N) end frame of each token
    positions = torch.arange(length, device=content.device).expand(batch, length).contiguous()
    # The token covering frame t is the number of tokens that end at or before t.
    token = torch.searchsorted(ends, positions, right=True)
    latent_mask = positions < latent_lengths[:, None].to(positions.device)
    covered = (token < ends.shape[1]) & latent_mask
    gather = token.clamp(max=ends.shape[1] - 1)[..., None].expand(batch, length, dim)
    expanded = content.gather(1, gather) * covered[..., None].to(content.dtype)
    return expanded, latent_mask


class DurationLosses(NamedTuple):
    clip: torch.Tensor  # scalar: mean over the samples it applies to
    sequence: torch.Tensor  # scalar: mean over valid tokens of TA samples
    clip_per_sample: torch.Tensor  # (B,) squared error (0 where not counted)
    sequence_per_sample: torch.Tensor  # (B,) mean squared error over the sample's tokens (0 for NTA)


def duration_losses(
    clip_log_duration: torch.Tensor,
    sequence_log_duration: torch.Tensor,
    latent_lengths: torch.Tensor,
    token_frames: torch.Tensor,
    content_mask: torch.Tensor,
    time_aligned: torch.Tensor,
    config: DurationConfig,
    clip_mask: torch.Tensor | None = None,
) -> DurationLosses:
    """Paper eq. 9 in the log domain. The sequence loss counts only tokens of time-aligned samples (it is
    omitted for NTA tasks); the clip loss counts every sample, or those in `clip_mask` (B,) when given.
    An empty selection gives a zero loss that still depends on the predictions (so every parameter is used)."""
    clip_weight = torch.ones_like(time_aligned, dtype=torch.bool) if clip_mask is None else clip_mask
    clip_weight = clip_weight.to(clip_log_duration.dtype)
    clip_error = (clip_log_duration - clip_targets(latent_lengths, config).to(clip_log_duration.dtype)).pow(2) * clip_weight
    clip = clip_error.sum() / clip_weight.sum().clamp(min=1.0)

    token_weight = (content_mask & time_aligned[:, None]).to(sequence_log_duration.dtype)
    targets = sequence_targets(token_frames, config).to(sequence_log_duration.dtype)
    sequence_error = (sequence_log_duration - targets).pow(2) * token_weight
    sequence = sequence_error.sum() / token_weight.sum().clamp(min=1.0)
    per_sample = sequence_error.sum(dim=1) / token_weight.sum(dim=1).clamp(min=1.0)
    return DurationLosses(clip, sequence, clip_error, per_sample)
