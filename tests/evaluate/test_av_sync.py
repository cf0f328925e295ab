"""The onset cross-correlation estimator recovers known offsets on the mirror's event videos; Synchformer says
what it is missing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from uniflow.evaluate.av_sync import (
    NotScorable,
    OnsetSyncSettings,
    SyncEstimate,
    SynchformerSettings,
    SyncSettings,
    estimate_offset,
    load_synchformer,
    onset_xcorr_sync,
    read_video_audio,
)
from uniflow.evaluate.backbones import BackboneSpec
from uniflow.evaluate.signal_metrics import MetricUnavailable
from uniflow.mirror.video import render_event_video

FPS = 25
FRAME_MS = 1000 / FPS


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 4 s VisualSound-style videos: every sound starts on the frame where a shape appears."""
    folder = tmp_path_factory.mktemp("event_videos")
    paths = [folder / "first.mp4", folder / "second.mp4"]
    for seed, path in enumerate(paths):
        events = render_event_video(path, np.random.default_rng(1000 + seed), 4.0, fps=FPS)
        assert len(events) >= 3  # enough events for a cross-correlation to lock on
    return paths


def shifted(audio: np.ndarray, sample_rate: int, offset_ms: float) -> np.ndarray:
    """Delay (positive) or advance (negative) audio, keeping its length: pad silence at one end, cut the other."""
    samples = int(round(abs(offset_ms) / 1000 * sample_rate))
    silence = np.zeros(samples, dtype=audio.dtype)
    if offset_ms > 0:
        return np.concatenate([silence, audio[:-samples]])
    return np.concatenate([audio[samples:], silence])


def test_own_audio_is_in_sync(videos: list[Path]) -> None:
    audio, sample_rate = read_video_audio(videos[0])
    result = estimate_offset(videos[0], audio, sample_rate)
    assert isinstance(result, SyncEstimate)
    assert result.fps == FPS
    # AAC encoder delay and frame quantisation stay well within half a frame period.
    assert abs(result.offset_ms) < FRAME_MS / 2
    assert result.confidence >= OnsetSyncSettings().low_confidence


@pytest.mark.parametrize("offset_ms", [200.0, -300.0])
def test_shifted_audio_offset_is_recovered_within_one_frame(videos: list[Path], offset_ms: float) -> None:
    audio, sample_rate = read_video_audio(videos[0])
    result = estimate_offset(videos[0], shifted(audio, sample_rate, offset_ms), sample_rate)
    assert isinstance(result, SyncEstimate)
    # Positive means the audio is late: the delayed track must come out positive.
    assert abs(result.offset_ms - offset_ms) < FRAME_MS


def test_audio_of_another_video_has_low_confidence(videos: list[Path]) -> None:
    own_audio, sample_rate = read_video_audio(videos[0])
    other_audio, other_rate = read_video_audio(videos[1])
    own = estimate_offset(videos[0], own_audio, sample_rate)
    other = estimate_offset(videos[0], other_audio, other_rate)
    assert isinstance(own, SyncEstimate) and isinstance(other, SyncEstimate)
    assert other.confidence < OnsetSyncSettings().low_confidence <= own.confidence
    assert other.correlation < own.correlation


def write_still_video(path: Path, frames: int = 20) -> None:
    """A video whose picture never changes."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(FPS, 1))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        image = np.full((48, 64, 3), 90, dtype=np.uint8)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_items_without_motion_or_onsets_are_not_scorable(videos: list[Path], tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"
    write_still_video(still)
    audio, sample_rate = read_video_audio(videos[0])
    still_result = estimate_offset(still, audio[:sample_rate], sample_rate)
    assert isinstance(still_result, NotScorable) and still_result.reason.startswith("no motion")

    silent = estimate_offset(videos[0], np.zeros_like(audio), sample_rate)
    assert isinstance(silent, NotScorable) and "silent" in silent.reason

    hum = 0.3 * np.sin(2 * np.pi * 220 * np.arange(len(audio)) / sample_rate)
    stationary = estimate_offset(videos[0], hum, sample_rate)
    assert isinstance(stationary, NotScorable) and stationary.reason.startswith("no onsets")


def test_corpus_score_is_mean_absolute_offset_and_card_names_the_estimator(videos: list[Path], tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"
    write_still_video(still)
    audio, sample_rate = read_video_audio(videos[0])
    items = [
        (videos[0], shifted(audio, sample_rate, 200.0), sample_rate),
        (videos[0], shifted(audio, sample_rate, -200.0), sample_rate),
        (still, audio, sample_rate),
    ]
    score = onset_xcorr_sync(items)
    assert abs(score.value - 200.0) < FRAME_MS
    card = score.card
    assert card["metric"] == "av_offset_onset_xcorr"
    assert card["comparable_with_paper"] is False and "NOT Synchformer" in card["note"]
    assert (card["items"], card["scored"], card["not_scorable"]) == (3, 2, 1)
    assert card["per_item"][0]["offset_ms"] > 0 > card["per_item"][1]["offset_ms"]
    assert card["per_item"][2]["not_scorable"].startswith("no motion")
    assert abs(card["mean_signed_offset_ms"]) < FRAME_MS
    assert card["settings"]["max_offset_s"] == 2.0
    assert len(card["implementation"]["sha256"]) == 64

    with pytest.raises(ValueError, match="no item could be scored"):
        onset_xcorr_sync([(still, audio, sample_rate)])


def test_synchformer_without_checkpoint_names_the_missing_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "24-01-04T16-39-21.pt"
    settings = SynchformerSettings(backbone=BackboneSpec(name="synchformer", path=str(checkpoint)))
    with pytest.raises(MetricUnavailable, match=r"not found at .*24-01-04T16-39-21\.pt"):
        load_synchformer(settings)


def test_synchformer_without_code_says_to_clone_it(tmp_path: Path) -> None:
    checkpoint = tmp_path / "24-01-04T16-39-21.pt"
    checkpoint.write_bytes(b"placeholder weights")
    settings = SynchformerSettings(backbone=BackboneSpec(name="synchformer", path=str(checkpoint)))
    with pytest.raises(MetricUnavailable, match=r"cfg-24-01-04T16-39-21\.yaml is missing"):
        load_synchformer(settings)
    (tmp_path / "cfg-24-01-04T16-39-21.yaml").write_text("data: {}\n")
    settings = SynchformerSettings(
        backbone=BackboneSpec(name="synchformer", path=str(checkpoint)), repo_dir=str(tmp_path / "Synchformer")
    )
    with pytest.raises(MetricUnavailable, match=r"git clone https://github\.com/v-iashin/Synchformer"):
        load_synchformer(settings)


def test_sync_settings_run_both_estimators_by_default() -> None:
    settings = SyncSettings()
    assert settings.estimators == ["synchformer", "onset-xcorr"]
    assert settings.synchformer.backbone.path == "models/eval/synchformer/24-01-04T16-39-21/24-01-04T16-39-21.pt"
    assert settings.onset_xcorr.max_offset_s == 2.0
    with pytest.raises(ValueError, match="estimators"):
        SyncSettings(estimators=["desync"])
