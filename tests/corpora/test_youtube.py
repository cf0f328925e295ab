"""Fetching YouTube clips with yt-dlp from a loopback mirror: cut, recorded failures, resumable reruns."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from uniflow.corpora.recipe import Part, YoutubeSource
from uniflow.corpora.youtube import (
    ClipIndex,
    YoutubeDependencyMissing,
    fetch_youtube_clips,
    is_clip_list,
    is_permanent_failure,
    read_clip_rows,
)
from uniflow.mirror.serve import serve_in_background
from uniflow.mirror.video import VisualEvent, audio_onsets, picture_onsets, render_event_video

FIRST, SECOND, GONE = "-aBcDeFgH_1", "Zyx987_-AbC", "noSuchVid00"
SAMPLE_RATE, FPS, CLIP_SECONDS = 44100, 25, 1.5


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, list[VisualEvent]]]]:
    """A mirror publishing two 3-s event videos (GONE is not published); yields (url, events)."""
    root = tmp_path_factory.mktemp("youtube-mirror")
    (root / "youtube").mkdir()
    rng = np.random.default_rng(11)
    events = {vid: render_event_video(root / "youtube" / f"{vid}.mp4", rng, 3.0, fps=FPS) for vid in (FIRST, SECOND)}
    (root / "index.json").write_text('{"files": {}, "corpora": {}}')
    server = serve_in_background(root)
    yield server.url, events
    server.shutdown()


def _source(keep_video: bool = False) -> YoutubeSource:
    return YoutubeSource(
        kind="youtube",
        id_lists=[Part(name="train", url="https://example.org/train.csv", extract=False)],
        id_column="youtube_id",
        start_column="start_time",
        clip_seconds=CLIP_SECONDS,
        keep_video=keep_video,
    )


def _id_list(folder: Path) -> Path:
    path = folder / "train.csv"
    path.write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        f"1,{FIRST},0,a whoosh\n"
        f"2,{SECOND},1,\"a knock, then a beep\"\n"
        f"3,{SECOND},1,the same clip listed twice\n"
        f"4,{GONE},0,a video removed from YouTube\n"
        "5,not an id,0,a broken row\n"
    )
    return path


def _fetch(url: str, corpus: Path, keep_video: bool = False, **kwargs):
    template = f"{url}/youtube/{{id}}.mp4"
    return fetch_youtube_clips(
        _source(keep_video), [_id_list(corpus)], corpus, url_template=template, progress=False, **kwargs
    )


def _expected_onsets(events: list[VisualEvent], start: float) -> list[float]:
    """Event times inside the clip, away from its edges, relative to the clip start."""
    return [e.time - start for e in events if start + 0.05 < e.time < start + CLIP_SECONDS - 0.1]


def test_clips_are_cut_to_the_listed_range(mirror, tmp_path: Path) -> None:
    url, events = mirror
    report = _fetch(url, tmp_path)
    assert (report.requested, report.downloaded) == (3, 2)
    assert report.invalid_rows and "not a YouTube video id" in report.invalid_rows[0]
    for video_id, start in ((FIRST, 0.0), (SECOND, 1.0)):
        path = tmp_path / "clips" / f"{video_id}_{int(start * 1000)}.flac"
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert info.frames == round(CLIP_SECONDS * SAMPLE_RATE)
        # The sound events sit where the source had them, shifted by the clip start.
        audio, _ = sf.read(path, dtype="float32")
        onsets = [t for t in audio_onsets(audio, SAMPLE_RATE) if 0.05 < t < CLIP_SECONDS - 0.1]
        expected = _expected_onsets(events[video_id], start)
        assert len(onsets) == len(expected) >= 1
        assert np.allclose(onsets, expected, atol=2 / FPS)


def test_missing_video_is_recorded_and_the_others_go_on(mirror, tmp_path: Path) -> None:
    url, _ = mirror
    report = _fetch(url, tmp_path)
    assert [failure.video_id for failure in report.failed] == [GONE]
    records = [json.loads(line) for line in (tmp_path / "clips" / "failed.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["id"] == GONE and records[0]["start"] == 0.0 and records[0]["key"] == f"{GONE}_0"
    assert "404" in records[0]["reason"] and records[0]["permanent"] is True
    index = ClipIndex(tmp_path, keep_video=False)
    assert index.is_ready(f"{FIRST}_0") and index.is_ready(f"{SECOND}_1000")
    assert index.problem(f"{GONE}_0").reason.startswith("unavailable on YouTube: ")
    assert not list((tmp_path / "clips").glob(".fetch-*")), "temporary download folders are removed"


def test_rerun_skips_finished_clips_and_known_unavailable_videos(mirror, tmp_path: Path) -> None:
    url, _ = mirror
    _fetch(url, tmp_path)
    finished = tmp_path / "clips" / f"{FIRST}_0.flac"
    mtime = finished.stat().st_mtime_ns
    again = _fetch(url, tmp_path)
    assert (again.downloaded, again.skipped_existing, again.skipped_failed, again.failed) == (0, 2, 1, [])
    assert finished.stat().st_mtime_ns == mtime
    retried = _fetch(url, tmp_path, retry_failed=True)
    assert (retried.downloaded, retried.skipped_failed, len(retried.failed)) == (0, 0, 1)
    assert len((tmp_path / "clips" / "failed.jsonl").read_text().splitlines()) == 1


def test_a_deleted_clip_is_fetched_again(mirror, tmp_path: Path) -> None:
    url, _ = mirror
    _fetch(url, tmp_path)
    (tmp_path / "clips" / f"{SECOND}_1000.flac").unlink()
    report = _fetch(url, tmp_path)
    assert (report.downloaded, report.skipped_existing) == (1, 1)


def test_kept_video_covers_the_same_range_with_the_same_frame_rate(mirror, tmp_path: Path) -> None:
    url, events = mirror
    report = _fetch(url, tmp_path, keep_video=True)
    assert report.downloaded == 2
    video_path = tmp_path / "clips" / f"{SECOND}_1000.mp4"
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == FPS
        assert stream.codec_context.name in ("h264", "mpeg4")
        assert float(stream.duration * stream.time_base) == pytest.approx(CLIP_SECONDS, abs=1.5 / FPS)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    # Picture and sound of the clip stay in step: shapes appear when the clip's sound events start.
    pictures = [t for t in picture_onsets(frames, FPS) if 0.05 < t < CLIP_SECONDS - 0.1]
    assert np.allclose(pictures, _expected_onsets(events[SECOND], 1.0), atol=1e-6)
    audio, _ = sf.read(tmp_path / "clips" / f"{SECOND}_1000.flac", dtype="float32")
    sounds = [t for t in audio_onsets(audio, SAMPLE_RATE) if 0.05 < t < CLIP_SECONDS - 0.1]
    assert np.allclose(sounds, pictures, atol=2 / FPS)


def test_clip_beyond_the_end_of_the_video_is_a_permanent_failure(mirror, tmp_path: Path) -> None:
    url, _ = mirror
    (tmp_path / "late.csv").write_text(f"audiocap_id,youtube_id,start_time,caption\n1,{FIRST},30,too late\n")
    report = fetch_youtube_clips(
        _source(), [tmp_path / "late.csv"], tmp_path, url_template=f"{url}/youtube/{{id}}.mp4", progress=False
    )
    assert report.downloaded == 0 and len(report.failed) == 1
    assert report.failed[0].permanent and "beyond the end" in report.failed[0].reason


def test_header_less_lists_with_comment_lines_and_non_lists(tmp_path: Path) -> None:
    source = YoutubeSource(
        kind="youtube",
        id_lists=[Part(name="eval", url="https://example.org/eval_segments.csv", extract=False)],
        id_column="YTID",
        start_column="start_seconds",
        end_column="end_seconds",
        csv_header=False,
        column_names=["YTID", "start_seconds", "end_seconds", "positive_labels"],
    )
    segments = tmp_path / "eval_segments.csv"
    segments.write_text(
        "# Segments csv created Sun Mar  5 10:54:25 2017\n"
        "# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=3\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
        'AbCdEfGhIjK, 0.000, 8.500, "/m/04rlf"\n'
    )
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n')
    assert is_clip_list(segments, source) and not is_clip_list(labels, source)
    rows = list(read_clip_rows(segments, source))
    assert [(r.clip.key, r.clip.end) for r in rows] == [("--PJHxphWEs_30000", 40.0), ("AbCdEfGhIjK_0", 8.5)]
    assert rows[0].fields["positive_labels"] == "/m/09x0r,/t/dd00088"


def test_yt_dlp_is_needed_only_when_something_must_be_fetched(mirror, tmp_path: Path, monkeypatch) -> None:
    url, _ = mirror
    _fetch(url, tmp_path)
    monkeypatch.setitem(sys.modules, "yt_dlp", None)  # makes `import yt_dlp` fail
    report = _fetch(url, tmp_path)  # everything is done or known unavailable: no yt-dlp needed
    assert report.skipped_existing == 2
    (tmp_path / "clips" / f"{FIRST}_0.flac").unlink()
    with pytest.raises(YoutubeDependencyMissing, match=r"pip install 'uniflow\[youtube\]'"):
        _fetch(url, tmp_path)


def test_importing_the_module_does_not_import_yt_dlp() -> None:
    code = "import sys, uniflow.corpora.youtube; assert 'yt_dlp' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("reason", "permanent"),
    [
        ("[youtube] x: Video unavailable. This video has been removed by the uploader", True),
        ("[youtube] x: Private video. Sign in if you've been granted access to this video", True),
        ("[generic] x: Unable to download webpage: HTTP Error 404: Not Found", True),
        # YouTube's session rate limit also starts with "Video unavailable": it must be retried.
        ("[youtube] x: Video unavailable. This content isn't available, try again later.", False),
        ("[youtube] x: Sign in to confirm you're not a bot", False),
        ("unable to download video data: HTTP Error 403: Forbidden", False),
    ],
)
def test_only_lasting_unavailability_is_permanent(reason: str, permanent: bool) -> None:
    assert is_permanent_failure(reason) is permanent
