"""Clips of YouTube videos named by id lists (AudioCaps, MusicCaps, VisualSound, AudioSet).

A YouTube-based recipe lists its clips in CSV files: a video id, a start time and either an end
time or a fixed clip length. ``fetch_youtube_clips`` downloads each listed video once with yt-dlp
(the optional ``youtube`` extra), cuts every clip of it with PyAV and writes, atomically::

    clips/<key>.flac      the clip's audio at the stream's native rate and channel count
    clips/<key>.mp4       the same time range as video (H.264 + AAC) when the recipe keeps video
    clips/failed.jsonl    one line per clip that could not be fetched: id, start, key, reason

``<key>`` is ``<video id>_<start in ms>`` (no dots, stable across runs). Videos that are gone
(private, removed, HTTP 404) are recorded as permanent failures and not retried by default; the
run always goes on. The readers of these corpora use ``ClipIndex`` to see which clips are on disk.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf

from uniflow.corpora.entry import Problem
from uniflow.corpora.recipe import Recipe, YoutubeSource
from uniflow.storage import atomic_write

CLIPS_DIR = "clips"
FAILED_LOG = "failed.jsonl"
# YouTube video ids are 11 characters of the URL-safe base64 alphabet.
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
# Reasons that will not change on a retry: the video or its account is gone, private or blocked.
_PERMANENT = re.compile(
    r"video unavailable|private video|has been removed|no longer available|account .*terminated|"
    r"copyright|does not exist|not available in your country|members[- ]only|"
    r"confirm your age|http error (?:404|410)|beyond the end of the video|has no (?:audio|video) stream",
    re.IGNORECASE,
)
# ... unless YouTube says it is throttling: "This content isn't available, try again later" is its
# session rate limit (yt-dlp wiki, Extractors), and 403/429 and bot checks pass with time.
_TRANSIENT = re.compile(
    r"try again later|rate[- ]limit|content isn.t available|not a bot|http error (?:403|429)|timed out|"
    r"temporar|downloaded file is empty",
    re.IGNORECASE,
)
# yt-dlp's "-t sleep" preset: a guest session is limited to about 300 videos an hour.
POLITE_YOUTUBE_OPTIONS: dict[str, Any] = {
    "sleep_interval_requests": 0.75,
    "sleep_interval": 10,
    "max_sleep_interval": 20,
}


class YoutubeDependencyMissing(RuntimeError):
    """yt-dlp is not installed; it comes with the ``youtube`` extra."""


class ClipOutOfRange(ValueError):
    """The listed time range lies outside the downloaded video."""


# -- id lists -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClipRequest:
    """One clip an id list asks for."""

    video_id: str
    start: float
    end: float

    @property
    def key(self) -> str:
        return clip_key(self.video_id, self.start)


@dataclass(frozen=True, slots=True)
class ClipRow:
    """One data row of an id list: its fields by column name, and the clip or why it is invalid."""

    row: int
    fields: dict[str, str]
    clip: ClipRequest | None
    error: str | None = None


def clip_key(video_id: str, start: float) -> str:
    """The stable, dot-free name of a clip: ``<video id>_<start in milliseconds>``."""
    return f"{video_id}_{int(round(start * 1000))}"


def _data_lines(path: Path) -> Iterator[str]:
    """The lines of an id list without '#' comment lines (AudioSet starts with three)."""
    with open(path, encoding="utf-8", newline="") as handle:
        for line in handle:
            if not line.startswith("#") and line.strip():
                yield line


def _column_names(path: Path, source: YoutubeSource, rows: Iterator[list[str]]) -> list[str] | None:
    if source.csv_header:
        header = next(rows, None)
        return [name.strip() for name in header] if header else None
    return list(source.column_names)


def is_clip_list(path: str | Path, source: YoutubeSource) -> bool:
    """Whether ``path`` lists clips (split files and label tables beside the lists do not)."""
    path = Path(path)
    if not path.is_file():
        return False
    rows = csv.reader(_data_lines(path), skipinitialspace=True)
    names = _column_names(path, source, rows)
    if not names or source.id_column not in names:
        return False
    if source.start_column and source.start_column not in names:
        return False
    if source.csv_header:
        return True
    # Header-less lists: the first data row must have every named column and a numeric start.
    first = next(rows, None)
    if first is None or len(first) < len(names):
        return False
    if source.start_column:
        try:
            float(first[names.index(source.start_column)])
        except ValueError:
            return False
    return True


def read_clip_rows(path: str | Path, source: YoutubeSource) -> Iterator[ClipRow]:
    """Every data row of an id list, parsed into the clip it names (or the reason it is invalid)."""
    path = Path(path)
    rows = csv.reader(_data_lines(path), skipinitialspace=True)
    names = _column_names(path, source, rows) or []
    id_index = names.index(source.id_column)
    start_index = names.index(source.start_column) if source.start_column else None
    end_index = names.index(source.end_column) if source.end_column and source.end_column in names else None
    for number, values in enumerate(rows, 1):
        fields = {name: value.strip() for name, value in zip(names, values, strict=False)}
        if len(values) < len(names):
            reason = f"{path.name}: row {number}: {len(values)} columns, expected {len(names)}"
            yield ClipRow(number, fields, None, reason)
            continue
        video_id = values[id_index].strip()
        if not _VIDEO_ID.match(video_id):
            yield ClipRow(number, fields, None, f"{path.name}: row {number}: {video_id!r} is not a YouTube video id")
            continue
        try:
            start = float(values[start_index]) if start_index is not None else 0.0
            end = float(values[end_index]) if end_index is not None else start + source.clip_seconds
        except ValueError:
            yield ClipRow(number, fields, None, f"{path.name}: row {number}: start/end are not numbers")
            continue
        if start < 0 or end <= start:
            yield ClipRow(number, fields, None, f"{path.name}: row {number}: empty time range [{start}, {end}]")
            continue
        yield ClipRow(number, fields, ClipRequest(video_id, start, end))


# -- what is on disk --------------------------------------------------------------------------------
def read_failures(clips_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The last recorded failure per clip key from ``failed.jsonl`` (unreadable lines skipped)."""
    path = Path(clips_dir) / FAILED_LOG
    failures: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return failures
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                key = record.get("key") or clip_key(record["id"], float(record["start"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            failures[key] = record
    return failures


def _clip_names(clips_dir: Path) -> set[str]:
    if not clips_dir.is_dir():
        return set()
    with os.scandir(clips_dir) as entries:
        return {entry.name for entry in entries if entry.is_file()}


class ClipIndex:
    """The clips of a corpus on disk and their recorded failures, read once (for readers)."""

    def __init__(self, corpus_dir: str | Path, keep_video: bool) -> None:
        self.clips_dir = Path(corpus_dir) / CLIPS_DIR
        self.keep_video = keep_video
        self.names = _clip_names(self.clips_dir)
        self.failures = read_failures(self.clips_dir)

    def audio(self, key: str) -> Path:
        return self.clips_dir / f"{key}.flac"

    def video(self, key: str) -> Path | None:
        return self.clips_dir / f"{key}.mp4" if self.keep_video else None

    def is_ready(self, key: str) -> bool:
        return f"{key}.flac" in self.names and (not self.keep_video or f"{key}.mp4" in self.names)

    def problem(self, key: str) -> Problem | None:
        """Why clip ``key`` has no usable files (None when it is ready)."""
        if self.is_ready(key):
            return None
        record = self.failures.get(key)
        if record is not None:
            return Problem(self.audio(key), f"unavailable on YouTube: {record.get('reason', 'unknown reason')}", key)
        return Problem(self.audio(key), "clip not downloaded yet (run the download stage)", key)


# -- fetching -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClipFailure:
    video_id: str
    start: float
    key: str
    reason: str
    permanent: bool


@dataclass
class YoutubeReport:
    """What a fetch did: clips asked for, fetched now, already there, skipped and failed."""

    requested: int = 0
    downloaded: int = 0
    skipped_existing: int = 0
    skipped_failed: int = 0
    failed: list[ClipFailure] = field(default_factory=list)
    invalid_rows: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)


def _youtube_dl_class():
    try:
        from yt_dlp import YoutubeDL
    except ImportError:
        raise YoutubeDependencyMissing(
            "fetching YouTube clips needs yt-dlp; install it with: pip install 'uniflow[youtube]'"
        ) from None
    return YoutubeDL


class _SilentLogger:
    """yt-dlp logger that keeps its messages out of the progress bar (errors become failures)."""

    def debug(self, message: str) -> None:
        pass

    info = warning = error = debug


def _failure_reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.removeprefix("ERROR: ")


def is_permanent_failure(reason: str) -> bool:
    """Whether a failure reason means the video will not come back on a retry."""
    return bool(_PERMANENT.search(reason)) and not _TRANSIENT.search(reason)


def _download_video(url: str, folder: Path, keep_video: bool, options: dict[str, Any], youtube_dl) -> Path:
    """Download one video (or its best audio) into ``folder``; return the file."""
    settings = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        # Pre-muxed formats only: no ffmpeg merge or post-processing, PyAV does the cutting.
        "format": "best" if keep_video else "bestaudio/best",
        "outtmpl": str(folder / "source.%(ext)s"),
        "noplaylist": True,
        "cachedir": False,
        "fixup": "never",
        "overwrites": True,
        "retries": 3,
        "socket_timeout": 30,
        "logger": _SilentLogger(),
    }
    settings.update(options)
    with youtube_dl(settings) as downloader:
        info = downloader.extract_info(url, download=True)
    for download in (info or {}).get("requested_downloads") or []:
        path = download.get("filepath")
        if path and Path(path).is_file():
            return Path(path)
    candidates = sorted(p for p in folder.iterdir() if p.name.startswith("source.") and not p.name.endswith(".part"))
    if not candidates:
        raise RuntimeError(f"yt-dlp reported success for {url} but wrote no file")
    return candidates[0]


def _as_float_planes(frame) -> np.ndarray:
    """An audio frame as float32 samples, shape (channels, samples), whatever its sample format."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32)


def _decode_audio(container, start: float, end: float) -> tuple[np.ndarray, int]:
    """Samples of the first audio stream in [start, end), shape (channels, samples)."""
    if not container.streams.audio:
        raise ClipOutOfRange("the video has no audio stream")
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    first, last = int(round(start * rate)), int(round(end * rate))
    if start > 1.0:
        # Seek a second early: seeking lands on a packet boundary at or before the target.
        container.seek(int((start - 1.0) * 1_000_000), backward=True)
    pieces: list[np.ndarray] = []
    position: int | None = None
    for frame in container.decode(stream):
        if frame.time is not None:
            position = int(round(frame.time * rate))
        elif position is None:
            position = 0
        samples = _as_float_planes(frame)
        frame_end = position + samples.shape[1]
        if frame_end > first:
            pieces.append(samples[:, max(0, first - position) : max(0, last - position)])
        position = frame_end
        if position >= last:
            break
    if not pieces or sum(piece.shape[1] for piece in pieces) == 0:
        raise ClipOutOfRange(f"start {start:.3f} s lies beyond the end of the video")
    return np.concatenate(pieces, axis=1), rate


def video_encoder_name() -> str:
    """H.264 when PyAV's FFmpeg has an encoder for it, otherwise MPEG-4 part 2."""
    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        return name
    raise RuntimeError("PyAV's FFmpeg has neither an H.264 nor an MPEG-4 encoder")


def _write_video_clip(source: Path, target: Path, start: float, end: float, audio: np.ndarray, rate: int) -> None:
    """Re-encode [start, end) of ``source`` (same frame rate) with ``audio`` as its sound track."""
    with av.open(str(source)) as container:
        if not container.streams.video:
            raise ClipOutOfRange("the video has no video stream")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25, 1)
        fps = Fraction(fps).limit_denominator(1001)
        width, height = stream.codec_context.width, stream.codec_context.height
        width, height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        if start > 1.0:
            container.seek(int((start - 1.0) * 1_000_000), backward=True)
        with atomic_write(target, mode="wb") as handle, av.open(handle, mode="w", format="mp4") as output:
            video = output.add_stream(video_encoder_name(), rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            if video.codec_context.name == "libx264":
                video.codec_context.options = {"preset": "veryfast", "crf": "20"}
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            sound = output.add_stream("aac", rate=rate, layout=layout)
            last_pts = -1
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start - 0.5 / float(fps):
                    continue
                if frame.time >= end:
                    break
                # Timestamps relative to the clip start keep picture and sound aligned.
                pts = max(last_pts + 1, int(round((frame.time - start) * fps)))
                image = frame.reformat(width=width, height=height, format="yuv420p")
                image.pts, image.time_base = pts, 1 / fps
                output.mux(video.encode(image))
                last_pts = pts
            if last_pts < 0:
                raise ClipOutOfRange(f"start {start:.3f} s lies beyond the end of the video")
            output.mux(video.encode(None))
            planes = audio if audio.shape[0] <= 2 else audio[:2]
            planes = np.ascontiguousarray(planes, dtype=np.float32)
            sound_frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            sound_frame.sample_rate, sound_frame.pts, sound_frame.time_base = rate, 0, Fraction(1, rate)
            output.mux(sound.encode(sound_frame))
            output.mux(sound.encode(None))


def cut_clip(source: str | Path, clip: ClipRequest, clips_dir: str | Path, keep_video: bool) -> None:
    """Write ``clips/<key>.flac`` (and ``<key>.mp4`` when keeping video) for [start, end) of ``source``."""
    clips_dir = Path(clips_dir)
    with av.open(str(source)) as container:
        audio, rate = _decode_audio(container, clip.start, clip.end)
    if keep_video:
        _write_video_clip(Path(source), clips_dir / f"{clip.key}.mp4", clip.start, clip.end, audio, rate)
    with atomic_write(clips_dir / f"{clip.key}.flac", mode="wb") as handle:
        sf.write(handle, audio.T, rate, format="FLAC", subtype="PCM_16")


def _fetch_video(
    video_id: str,
    clips: list[ClipRequest],
    url: str,
    clips_dir: Path,
    keep_video: bool,
    options: dict[str, Any],
    youtube_dl,
) -> list[tuple[ClipRequest, ClipFailure | None]]:
    """Download one video once and cut every clip listed for it."""
    folder = Path(tempfile.mkdtemp(prefix=".fetch-", dir=clips_dir))
    try:
        try:
            source = _download_video(url, folder, keep_video, options, youtube_dl)
        except Exception as exc:  # yt-dlp raises many types; every one is a recorded failure
            reason = _failure_reason(exc)
            permanent = is_permanent_failure(reason)
            return [(clip, ClipFailure(video_id, clip.start, clip.key, reason, permanent)) for clip in clips]
        results: list[tuple[ClipRequest, ClipFailure | None]] = []
        for clip in clips:
            try:
                cut_clip(source, clip, clips_dir, keep_video)
                results.append((clip, None))
            except Exception as exc:  # a broken stream must not stop the other clips
                reason = f"cutting failed: {_failure_reason(exc)}"
                permanent = isinstance(exc, ClipOutOfRange)
                results.append((clip, ClipFailure(video_id, clip.start, clip.key, reason, permanent)))
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def requested_clips(
    source: YoutubeSource, id_list_paths: Iterable[str | Path], report: YoutubeReport
) -> list[ClipRequest]:
    """The distinct clips of every id list (first listing wins), noting invalid rows and non-lists."""
    clips: dict[str, ClipRequest] = {}
    for path in map(Path, id_list_paths):
        if not is_clip_list(path, source):
            report.ignored_files.append(str(path))
            continue
        for row in read_clip_rows(path, source):
            if row.clip is None:
                report.invalid_rows.append(row.error or f"{path.name}: row {row.row}: invalid")
            else:
                clips.setdefault(row.clip.key, row.clip)
    return list(clips.values())


def _write_failures(clips_dir: Path, failures: dict[str, dict[str, Any]]) -> None:
    with atomic_write(clips_dir / FAILED_LOG, mode="w") as handle:
        for key in sorted(failures):
            handle.write(json.dumps(failures[key], sort_keys=True) + "\n")


def fetch_youtube_clips(
    source: YoutubeSource,
    id_list_paths: list[Path],
    corpus_dir: Path,
    *,
    url_template: str | None = None,
    progress: bool = True,
    max_workers: int = 4,
    retry_failed: bool = False,
    ydl_options: dict[str, Any] | None = None,
) -> YoutubeReport:
    """Fetch every clip the id lists name into ``corpus_dir/clips``; failures are recorded, not raised.

    ``url_template`` (default: the recipe's) is formatted with ``id=<video id>``; a mirror passes
    ``<mirror>/youtube/{id}.mp4``. Finished clips are skipped; clips recorded as permanently
    unavailable are skipped unless ``retry_failed``. ``ydl_options`` adds or overrides yt-dlp
    options (cookies, proxy, sleeps); fetching from youtube.com itself sleeps between requests as
    yt-dlp recommends (``POLITE_YOUTUBE_OPTIONS``), since YouTube throttles fast sessions.
    """
    from tqdm import tqdm

    clips_dir = Path(corpus_dir) / CLIPS_DIR
    clips_dir.mkdir(parents=True, exist_ok=True)
    report = YoutubeReport()
    clips = requested_clips(source, id_list_paths, report)
    report.requested = len(clips)

    present = _clip_names(clips_dir)
    failures = read_failures(clips_dir)
    pending: dict[str, list[ClipRequest]] = {}
    for clip in clips:
        if f"{clip.key}.flac" in present and (not source.keep_video or f"{clip.key}.mp4" in present):
            report.skipped_existing += 1
        elif not retry_failed and failures.get(clip.key, {}).get("permanent"):
            report.skipped_failed += 1
        else:
            pending.setdefault(clip.video_id, []).append(clip)

    if pending:
        youtube_dl = _youtube_dl_class()
        template = url_template or source.url_template
        polite = "youtube.com/" in template or "youtu.be/" in template
        options = {**(POLITE_YOUTUBE_OPTIONS if polite else {}), **(ydl_options or {})}
        bar = tqdm(total=sum(map(len, pending.values())), desc="youtube clips", unit="clip", disable=not progress)
        workers = max(1, max_workers)
        videos = iter(pending.items())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures: set[Future] = set()
            while True:
                # A bounded window of submitted videos: AudioSet lists about two million clips.
                for video_id, video_clips in videos:
                    url = template.format(id=video_id)
                    futures.add(
                        pool.submit(
                            _fetch_video, video_id, video_clips, url, clips_dir, source.keep_video, options, youtube_dl
                        )
                    )
                    if len(futures) >= 4 * workers:
                        break
                if not futures:
                    break
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    for clip, failure in future.result():
                        bar.update(1)
                        if failure is None:
                            report.downloaded += 1
                            failures.pop(clip.key, None)
                            continue
                        report.failed.append(failure)
                        record = asdict(failure)
                        record["id"] = record.pop("video_id")
                        failures[clip.key] = record
                        # Appended at once, so an interrupted run still leaves its failures behind.
                        with open(clips_dir / FAILED_LOG, "a", encoding="utf-8") as handle:
                            handle.write(json.dumps(record, sort_keys=True) + "\n")
        bar.close()

    # Rewrite the log compactly: one line per clip that still has no files.
    present = _clip_names(clips_dir)
    failures = {key: record for key, record in failures.items() if f"{key}.flac" not in present}
    if failures or (clips_dir / FAILED_LOG).exists():
        _write_failures(clips_dir, failures)
    return report


# -- helpers for readers -----------------------------------------------------------------------------
def id_list_path(corpus_dir: str | Path, recipe: Recipe, part_name: str) -> Path:
    """Where an id-list part lies after acquisition: ``parts/<part>/<file>``."""
    for part in recipe.parts:
        if part.name == part_name:
            return Path(corpus_dir) / "parts" / part.name / part.local_name
    raise KeyError(f"recipe {recipe.name} has no part named {part_name!r}")


@dataclass(frozen=True, slots=True)
class ListedClip:
    """A valid id-list row at the first listing of its clip."""

    part: str  # the id-list part that lists it
    path: Path  # that part's id list
    row: int  # data row number in the list
    fields: dict[str, str]
    clip: ClipRequest


def id_list_rows(
    corpus_dir: str | Path, recipe: Recipe, part_name: str, *, list_name: str = "id list"
) -> Iterator[ClipRow | Problem]:
    """The valid rows of one id-list part; a missing list and every invalid row are Problems."""
    source = recipe.source
    assert isinstance(source, YoutubeSource), f"{recipe.name}: id lists belong to a youtube source"
    path = id_list_path(corpus_dir, recipe, part_name)
    if not path.is_file():
        yield Problem(path, f"{list_name} of part {part_name!r} is missing (run the download stage)")
        return
    for row in read_clip_rows(path, source):
        yield row if row.clip is not None else Problem(path, row.error or "invalid row")


def listed_clips(
    corpus_dir: str | Path,
    recipe: Recipe,
    part_names: Iterable[str],
    clips: ClipIndex,
    *,
    list_name: str = "id list",
    report_duplicates: bool = True,
) -> Iterator[ListedClip | Problem]:
    """Every clip the named id-list parts list, in part and row order, each key once.

    A missing list and an invalid row are Problems. The first listing of a clip wins; a later one
    is a Problem, or is dropped silently when ``report_duplicates`` is false. Whether the clip's
    files are on disk is left to the reader (``clips.problem``), after its own row checks.
    """
    seen: set[str] = set()
    for part_name in part_names:
        path = id_list_path(corpus_dir, recipe, part_name)
        for row in id_list_rows(corpus_dir, recipe, part_name, list_name=list_name):
            if isinstance(row, Problem):
                yield row
                continue
            assert row.clip is not None  # id_list_rows turns rows without a clip into Problems
            key = row.clip.key
            if key in seen:
                if report_duplicates:
                    yield Problem(clips.audio(key), f"{path.name}: row {row.row}: clip listed twice", key)
                continue
            seen.add(key)
            yield ListedClip(part_name, path, row.row, row.fields, row.clip)
