"""Mirror videos: an MP4 whose sound events start on the frames where shapes appear (the V2A signal)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import av
import numpy as np
import pytest

from uniflow.mirror.video import audio_onsets, picture_onsets, render_event_video, youtube_video_id

FPS = 25
SAMPLE_RATE = 44100


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    return frames, audio


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sound_events_start_on_the_frames_where_the_picture_changes(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "video.mp4"
    events = render_event_video(path, np.random.default_rng(seed), 3.0, fps=FPS, sample_rate=SAMPLE_RATE)
    frames, audio = _decode(path)

    pictures = picture_onsets(frames, FPS)
    sounds = audio_onsets(audio, SAMPLE_RATE)
    assert len(events) >= 3
    # What appears on screen appears exactly on the planned frames ...
    assert pictures == pytest.approx([event.time for event in events], abs=1e-9)
    # ... and every sound starts within two frames of it (AAC, envelopes of soft onsets).
    assert len(sounds) == len(pictures)
    for picture, sound in zip(pictures, sounds, strict=True):
        assert abs(sound - picture) <= 2 / FPS, (pictures, sounds)


def test_decoded_streams_have_the_requested_duration_size_and_rate(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    render_event_video(path, np.random.default_rng(7), 2.0, fps=FPS, size=(160, 120), sample_rate=SAMPLE_RATE)
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name in ("h264", "mpeg4")
        assert (video.codec_context.width, video.codec_context.height) == (160, 120)
        assert video.average_rate == FPS
        assert sound.codec_context.name == "aac" and sound.codec_context.sample_rate == SAMPLE_RATE
        assert float(video.duration * video.time_base) == pytest.approx(2.0, abs=1 / FPS)
        assert float(sound.duration * sound.time_base) == pytest.approx(2.0, abs=0.03)
    frames, audio = _decode(path)
    assert len(frames) == 2 * FPS
    # The decoder may add the encoder's final padding, never lose samples.
    assert 2.0 * SAMPLE_RATE <= len(audio) <= 2.0 * SAMPLE_RATE + 2048


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    digests = []
    for name in ("a.mp4", "b.mp4"):
        render_event_video(tmp_path / name, np.random.default_rng(3), 1.5)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_video_ids_look_like_youtube_ids() -> None:
    rng = np.random.default_rng(0)
    ids = [youtube_video_id(rng) for _ in range(50)] + [youtube_video_id(rng, leading_dash=True)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", video_id) for video_id in ids)
    assert ids[-1].startswith("-") and not any(video_id.startswith("-") for video_id in ids[:-1])
