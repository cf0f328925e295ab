"""Manifests: one JSON line per recording, per corpus and split, gzip-compressed.

``prepare_manifests`` runs a corpus's reader over its acquired files, probes every audio file once,
and writes ``<manifests>/<corpus>/<split>.jsonl.gz``. Recordings that cannot be used go to
``quarantine.jsonl`` with the reason; ``summary.json`` holds the counts and hours. All three are
written atomically, so an interrupted run leaves the previous manifests intact.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.probe import AudioProblem, probe_audio
from uniflow.corpora.recipe import Recipe
from uniflow.jsonl import encode_line, iter_jsonl_gz
from uniflow.storage import Storage

MANIFEST_VERSION = 1
SUMMARY_NAME = "summary.json"
QUARANTINE_NAME = "quarantine.jsonl"
_CHUNK = 512


def manifest_name(split: str) -> str:
    return f"{split}.jsonl.gz"


@dataclass
class ManifestSummary:
    """What a manifest preparation produced, per split, and what it skipped and why."""

    corpus: str
    recordings: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    version: int = MANIFEST_VERSION

    @property
    def hours(self) -> dict[str, float]:
        return {split: seconds / 3600 for split, seconds in self.seconds.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "version": self.version,
            "recordings": self.recordings,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "hours": {k: round(v, 4) for k, v in self.hours.items()},
            "quarantined": self.quarantined,
            "quarantine_reasons": self.quarantine_reasons,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def reader_for(recipe: Recipe) -> Callable[[Path, Recipe], Iterable[Entry | Problem]]:
    """The ``entries`` function of the recipe's reader module."""
    module = importlib.import_module(f"uniflow.corpora.readers.{recipe.reader_name}")
    return module.entries


def _relative(path: Path, raw_root: Path) -> str:
    try:
        return path.relative_to(raw_root).as_posix()
    except ValueError:
        return str(path)


def entry_to_record(entry: Entry, recipe: Recipe, raw_root: Path) -> dict[str, Any]:
    """Probe the entry's audio and build its manifest line (raises AudioProblem)."""
    if "." in entry.key:
        raise AudioProblem(entry.audio, f"reader produced key {entry.key!r} with a dot (dots split WebDataset keys)")
    info = probe_audio(entry.audio)
    seconds = info.seconds
    if entry.start is not None or entry.end is not None:
        start = entry.start or 0.0
        end = min(entry.end if entry.end is not None else seconds, seconds)
        if end <= start:
            raise AudioProblem(entry.audio, f"segment [{start}, {end}] is empty or beyond the {seconds:.3f} s file")
        seconds = end - start
    record: dict[str, Any] = {
        "id": f"{recipe.name}/{entry.key}",
        "corpus": recipe.name,
        "split": entry.split,
        "audio": _relative(entry.audio, raw_root),
        "sample_rate": info.sample_rate,
        "seconds": round(seconds, 6),
        "num_frames": info.num_frames,
        "channels": info.channels,
        "license": recipe.license,
    }
    optional = {
        "subset": entry.subset,
        "start": entry.start,
        "end": entry.end,
        "text": entry.text,
        "speaker": entry.speaker,
        "caption": entry.caption,
        "score": entry.score,
        "gender": entry.gender,
        "language": entry.language,
        "video": _relative(entry.video, raw_root) if entry.video is not None else None,
    }
    record.update({key: value for key, value in optional.items() if value is not None})
    if entry.extra:
        record["extra"] = entry.extra
    return record


def _probe_chunk(args: tuple[list[Entry], Recipe, Path]) -> list[tuple[str, Any]]:
    """Probe a chunk of entries: ("ok", record) or ("bad", quarantine line) each."""
    entries, recipe, raw_root = args
    results: list[tuple[str, Any]] = []
    for entry in entries:
        try:
            results.append(("ok", entry_to_record(entry, recipe, raw_root)))
        except AudioProblem as problem:
            results.append(("bad", _quarantine_line(recipe, entry.key, problem.path, problem.reason, raw_root)))
    return results


def _quarantine_line(recipe: Recipe, key: str | None, path: str | Path, reason: str, raw_root: Path) -> dict[str, Any]:
    return {
        "id": f"{recipe.name}/{key}" if key else None,
        "corpus": recipe.name,
        "path": _relative(Path(path), raw_root),
        "reason": reason,
    }


def _chunks(items: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    while chunk := list(islice(items, size)):
        yield chunk


class _ManifestWriter:
    """Gzip JSONL per split, written to memory buffers and published atomically at the end."""

    def __init__(self) -> None:
        self.buffers: dict[str, io.BytesIO] = {}
        self.streams: dict[str, gzip.GzipFile] = {}
        self.seen: set[str] = set()

    def write(self, record: dict[str, Any]) -> None:
        split = record["split"]
        if split not in self.streams:
            self.buffers[split] = io.BytesIO()
            # mtime=0 keeps the bytes of a manifest identical across rebuilds of the same data.
            self.streams[split] = gzip.GzipFile(fileobj=self.buffers[split], mode="wb", compresslevel=6, mtime=0)
        self.streams[split].write(encode_line(record))

    def finish(self) -> dict[str, bytes]:
        for stream in self.streams.values():
            stream.close()
        return {split: buffer.getvalue() for split, buffer in self.buffers.items()}


def prepare_manifests(
    recipe: Recipe,
    storage: Storage,
    *,
    num_workers: int = 1,
    progress: bool = True,
) -> ManifestSummary:
    """Read, probe and write the manifests of one acquired corpus."""
    from tqdm import tqdm

    started = time.perf_counter()
    raw_root = storage.path("raw")
    corpus_dir = raw_root / recipe.name
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"{corpus_dir}: corpus not acquired; run `uniflow download {recipe.name}` first")
    summary = ManifestSummary(corpus=recipe.name)
    writer = _ManifestWriter()
    quarantine: list[dict[str, Any]] = []
    seconds: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    def entries_only() -> Iterator[Entry]:
        for item in reader_for(recipe)(corpus_dir, recipe):
            if isinstance(item, Problem):
                quarantine.append(_quarantine_line(recipe, item.key, item.path, item.reason, raw_root))
            else:
                yield item

    def absorb(results: list[tuple[str, Any]]) -> None:
        for status, payload in results:
            if status == "bad":
                quarantine.append(payload)
                continue
            if payload["id"] in writer.seen:
                quarantine.append(
                    _quarantine_line(recipe, payload["id"].split("/", 1)[1], payload["audio"], "duplicate id", raw_root)
                )
                continue
            writer.seen.add(payload["id"])
            writer.write(payload)
            counts[payload["split"]] += 1
            seconds[payload["split"]] += payload["seconds"]

    bar = tqdm(desc=f"manifest {recipe.name}", unit="rec", disable=not progress)
    chunks = ((chunk, recipe, raw_root) for chunk in _chunks(entries_only(), _CHUNK))
    if num_workers > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            for results in pool.map(_probe_chunk, chunks):
                absorb(results)
                bar.update(len(results))
    else:
        for args in chunks:
            results = _probe_chunk(args)
            absorb(results)
            bar.update(len(results))
    bar.close()

    for line in quarantine:
        reasons[_reason_class(line["reason"])] += 1
    summary.recordings = dict(sorted(counts.items()))
    summary.seconds = dict(sorted(seconds.items()))
    summary.quarantined = len(quarantine)
    summary.quarantine_reasons = dict(sorted(reasons.items()))
    _publish(storage, recipe.name, writer.finish(), quarantine, summary, started)
    return summary


def _reason_class(reason: str) -> str:
    """The reason's kind ("truncated", "empty audio"...) for counting, without file specifics."""
    return reason.split(":", 1)[0].split(" (", 1)[0]


def _publish(
    storage: Storage,
    corpus: str,
    manifests: dict[str, bytes],
    quarantine: list[dict[str, Any]],
    summary: ManifestSummary,
    started: float,
) -> None:
    stale = {name for name in storage.list("manifests", corpus) if name.endswith(".jsonl.gz")}
    for split, data in manifests.items():
        storage.write_bytes("manifests", corpus, manifest_name(split), data=data)
        stale.discard(manifest_name(split))
    for name in stale:  # a split that no longer has recordings must not keep old lines
        storage.remove("manifests", corpus, name)
    lines = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in quarantine)
    storage.write_text("manifests", corpus, QUARANTINE_NAME, text=lines)
    summary.elapsed_seconds = time.perf_counter() - started
    # The summary is written last: its presence means the manifests beside it are complete.
    storage.write_text("manifests", corpus, SUMMARY_NAME, text=json.dumps(summary.to_json(), indent=1) + "\n")


def read_manifest(storage: Storage, corpus: str, split: str) -> Iterator[dict[str, Any]]:
    """Stream the records of one manifest."""
    with storage.open("manifests", corpus, manifest_name(split)) as handle:
        yield from iter_jsonl_gz(handle)


def read_summary(storage: Storage, corpus: str) -> dict[str, Any] | None:
    if not storage.exists("manifests", corpus, SUMMARY_NAME):
        return None
    return json.loads(storage.read_text("manifests", corpus, SUMMARY_NAME))
