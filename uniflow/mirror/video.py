"""Short videos with synchronized sound for the mirror of YouTube-based corpora.

Each video shows a still background on which shapes appear, flash or move; every visual event
comes with a sound event (``synth.event_sound``) starting on the same frame. That is the signal a
video-to-audio model learns: what moves is what sounds. The file is an MP4 with an H.264 video
stream (MPEG-4 part 2 when PyAV's FFmpeg lacks libx264) and an AAC audio stream, like what
YouTube serves. ``publish_youtube_videos`` puts such videos into a mirror under the ids a recipe
lists; ``audio_onsets`` and ``picture_onsets`` measure the sync of a decoded file.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from uniflow.corpora.youtube import video_encoder_name
from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import event_sound

EVENT_KINDS: tuple[str, ...] = ("knock", "beep", "whoosh", "chirp")
# How long each kind of event stays visible (and sounds), in seconds.
_EVENT_SECONDS = {"knock": 0.16, "beep": 0.32, "whoosh": 0.4, "chirp": 0.28}
# Gap between the end of one event and the start of the next, so events never overlap.
_MIN_GAP_SECONDS = 0.3
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True, slots=True)
class VisualEvent:
    """One audio-visual event: a shape visible, and a sound playing, from ``time`` on."""

    time: float
    kind: str
    seconds: float
    frame: int
    x: int
    y: int


def _plan_events(rng: np.random.Generator, seconds: float, fps: int, size: tuple[int, int]) -> list[VisualEvent]:
    """Frame-aligned, non-overlapping events spread over the video (the first not on frame 0)."""
    width, height = size
    events: list[VisualEvent] = []
    frame = int(rng.integers(2, max(3, int(0.3 * fps))))
    total_frames = int(round(seconds * fps))
    while True:
        kind = EVENT_KINDS[int(rng.integers(len(EVENT_KINDS)))]
        length_frames = max(2, int(round(_EVENT_SECONDS[kind] * fps)))
        if frame + length_frames > total_frames:
            break
        shape = min(width, height) // 3
        x = int(rng.integers(0, width - shape))
        y = int(rng.integers(0, height - shape))
        events.append(VisualEvent(frame / fps, kind, length_frames / fps, frame, x, y))
        frame += length_frames + int(round(_MIN_GAP_SECONDS * fps)) + int(rng.integers(0, fps // 2))
    return events


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A still, smooth two-colour gradient (RGB, uint8)."""
    width, height = size
    start = rng.uniform(20, 90, size=3)
    stop = rng.uniform(20, 90, size=3)
    ramp = np.linspace(0.0, 1.0, width)[None, :, None]
    image = start + (stop - start) * ramp
    return np.broadcast_to(image, (height, width, 3)).astype(np.uint8).copy()


def _draw(image: np.ndarray, event: VisualEvent, frame_index: int, fps: int, color: np.ndarray) -> None:
    """Draw ``event`` as it looks on ``frame_index`` (the frame lies inside the event)."""
    height, width = image.shape[:2]
    shape = min(width, height) // 3
    progress = (frame_index - event.frame) / max(1, round(event.seconds * fps) - 1)
    if event.kind == "knock":  # a square flashes
        image[event.y : event.y + shape, event.x : event.x + shape] = color
    elif event.kind == "beep":  # a disc lights up
        yy, xx = np.mgrid[0:height, 0:width]
        radius = shape / 2
        inside = (yy - event.y - radius) ** 2 + (xx - event.x - radius) ** 2 <= radius**2
        image[inside] = color
    elif event.kind == "whoosh":  # a bar sweeps across the frame
        bar = max(4, width // 10)
        left = int(min(1.0, progress) * (width - bar))
        image[:, left : left + bar] = color
    else:  # chirp: a triangle pops up
        for row in range(shape):
            half = row // 2
            centre = event.x + shape // 2
            image[event.y + row, max(0, centre - half) : centre + half + 1] = color


def render_event_video(
    path: str | Path,
    rng: np.random.Generator,
    seconds: float,
    fps: int = 25,
    size: tuple[int, int] = (160, 120),
    sample_rate: int = 44100,
    bed: np.ndarray | None = None,
) -> list[VisualEvent]:
    """Write an MP4 whose sound events start exactly when shapes appear; return the events.

    ``bed`` (mono, at ``sample_rate``) is mixed under the events, e.g. music for a music corpus.
    """
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"video size {size} must be even in both dimensions (yuv420p)")
    total_frames = int(round(seconds * fps))
    events = _plan_events(rng, seconds, fps, size)
    colors = {event.frame: rng.integers(150, 256, size=3).astype(np.uint8) for event in events}

    samples = int(round(total_frames / fps * sample_rate))
    # A quiet noise floor, as in any real recording, under the events.
    audio = (0.002 * rng.standard_normal(samples)).astype(np.float32)
    if bed is not None:
        audio[: min(samples, len(bed))] += bed[:samples]
    for event in events:
        sound = event_sound(rng, event.kind, event.seconds, sample_rate)
        onset = int(round(event.time * sample_rate))
        audio[onset : onset + len(sound)] += sound[: samples - onset]
    peak = float(np.abs(audio).max())
    if peak > 0.95:  # a loud bed plus an event must not clip in the encoder
        audio *= 0.95 / peak

    background = _background(rng, size)
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream(video_encoder_name(), rate=Fraction(fps, 1))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # One keyframe a second, so a clip cut anywhere decodes quickly.
        video.codec_context.gop_size = fps
        if video.codec_context.name == "libx264":
            video.codec_context.options = {"preset": "veryfast", "crf": "20", "threads": "1"}
        sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for index in range(total_frames):
            image = background.copy()
            for event in events:
                if event.frame <= index < event.frame + round(event.seconds * fps):
                    _draw(image, event, index, fps, colors[event.frame])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        audio_frame = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
        audio_frame.sample_rate = sample_rate
        audio_frame.pts = 0
        audio_frame.time_base = Fraction(1, sample_rate)
        container.mux(sound.encode(audio_frame))
        container.mux(sound.encode(None))
    return events


def youtube_video_id(rng: np.random.Generator, leading_dash: bool = False) -> str:
    """A random 11-character id in YouTube's alphabet (real ids may start with '-')."""
    chars = [_ID_ALPHABET[int(i)] for i in rng.integers(0, len(_ID_ALPHABET), size=11)]
    if leading_dash:
        chars[0] = "-"
    elif chars[0] == "-":
        chars[0] = "Q"  # only the ids that ask for it start with '-', so tests can tell them apart
    return "".join(chars)


def publish_youtube_videos(
    ctx: MirrorContext, video_ids: list[str], seconds: float = 3.0, bed: dict[str, np.ndarray] | None = None
) -> dict[str, list[VisualEvent]]:
    """Render one event video per id into the mirror's ``youtube/`` folder; return each one's events."""
    events: dict[str, list[VisualEvent]] = {}
    for video_id in video_ids:
        path = ctx.path("youtube", f"{video_id}.mp4")
        events[video_id] = render_event_video(path, ctx.rng, seconds, bed=(bed or {}).get(video_id))
        ctx.add_youtube_video(video_id, path)
    return events


# -- checking audio-visual sync ----------------------------------------------------------------------
def audio_onsets(
    audio: np.ndarray, sample_rate: int, threshold: float = 0.01, hop_seconds: float = 0.005
) -> list[float]:
    """Times (s) where the RMS level of mono ``audio`` rises above ``threshold`` (sound events start)."""
    hop = max(1, int(hop_seconds * sample_rate))
    frames = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1))
    active = rms > threshold
    return [index * hop / sample_rate for index in range(1, frames) if active[index] and not active[index - 1]]


def picture_onsets(frames: list[np.ndarray], fps: float, min_changed: float = 0.01) -> list[float]:
    """Times (s) of the frames where something appears on the otherwise still picture.

    The still background is the per-pixel median over all frames (events cover a small part of the
    time); a frame is active when more than ``min_changed`` of its pixels differ from it clearly.
    """
    stack = np.stack([frame.astype(np.int16) for frame in frames])
    background = np.median(stack, axis=0)
    changed = np.abs(stack - background)
    if changed.ndim == 4:  # colour: a pixel changes when any channel does
        changed = changed.max(axis=3)
    active = (changed > 40).mean(axis=(1, 2)) > min_changed
    return [index / fps for index in range(1, len(frames)) if active[index] and not active[index - 1]]
