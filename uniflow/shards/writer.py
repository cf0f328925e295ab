"""Deterministic WebDataset shard writing: a planner that fixes shard boundaries, and a tar writer.

Shard ``i`` of a set always holds the same keys for the same inputs (the planner depends only on
the sorted keys and their sizes), and a shard's bytes depend only on its samples (fixed member
order, mtime 0, uid/gid 0, mode 0o444). That is what lets a rerun skip shards that are already
written and makes an interrupted-then-resumed build produce the same ledger as a clean one.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import fsspec
from pydantic import Field

from uniflow.config import StrictModel
from uniflow.storage import atomic_write

SHARD_INDEX_DIGITS = 6
UNKNOWN_CORPUS = "unknown"


@dataclass(frozen=True)
class Sample:
    """One WebDataset sample: its key and its files (extension -> bytes, e.g. ``"target.flac"``)."""

    key: str
    files: dict[str, bytes]


class ShardContents(StrictModel):
    """What a finished shard holds and how to check it: the part every ledger line shares."""

    name: str
    sha256: str
    bytes: int
    samples: int
    seconds: float
    seconds_by_corpus: dict[str, float] = Field(default_factory=dict)
    keys_sha256: str


class ShardRecord(ShardContents):
    """One audio-shard ledger line: the contents and the hash of the inputs it was made from."""

    source_hash: str


def check_key(key: str) -> None:
    """Refuse keys WebDataset would split wrongly: it groups members by the name up to the first dot."""
    if not key:
        raise ValueError("sample key is empty")
    if "." in key:
        raise ValueError(f"sample key {key!r} contains a dot; WebDataset would split it into another sample")
    if key.startswith("/") or key.endswith("/") or "//" in key:
        raise ValueError(f"sample key {key!r} has an empty path component")


def check_extension(key: str, extension: str) -> None:
    if not extension or "/" in extension or extension.startswith(".") or extension.endswith("."):
        raise ValueError(f"sample {key!r}: invalid file extension {extension!r}")


def shard_name(task: str, split: str, index: int) -> str:
    """``<task>-<split>-000123.tar``."""
    return f"{task}-{split}-{index:0{SHARD_INDEX_DIGITS}d}.tar"


def keys_digest(keys: Iterable[str]) -> str:
    """sha256 of the key list in shard order (one key per line)."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode("utf-8") + b"\n")
    return digest.hexdigest()


def assign_shards(keys_with_sizes: Iterable[tuple[str, int]], max_samples: int, max_bytes: int) -> list[list[str]]:
    """Split keys (sorted here) into shards of at most ``max_samples`` samples and about ``max_bytes``.

    Sizes must themselves be deterministic (e.g. estimated from manifest durations), so the same
    inputs always give the same boundaries. A shard closes before a sample that would push it past
    ``max_bytes``; a single sample larger than ``max_bytes`` gets a shard of its own.
    """
    if max_samples < 1 or max_bytes < 1:
        raise ValueError(f"max_samples ({max_samples}) and max_bytes ({max_bytes}) must be positive")
    items = sorted(keys_with_sizes)
    shards: list[list[str]] = []
    current: list[str] = []
    current_bytes = 0
    previous: str | None = None
    for key, size in items:
        check_key(key)
        if key == previous:
            raise ValueError(f"sample key {key!r} appears twice")
        previous = key
        if current and (len(current) >= max_samples or current_bytes + size > max_bytes):
            shards.append(current)
            current, current_bytes = [], 0
        current.append(key)
        current_bytes += size
    if current:
        shards.append(current)
    return shards


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def _sample_seconds(sample: Sample) -> tuple[float, str]:
    """Seconds and corpus from the sample's ``json`` file (0 and "unknown" when absent)."""
    raw = sample.files.get("json")
    if raw is None:
        return 0.0, UNKNOWN_CORPUS
    try:
        meta: Any = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"sample {sample.key!r}: json does not parse: {exc}") from None
    if not isinstance(meta, dict):
        return 0.0, UNKNOWN_CORPUS
    seconds = float(meta.get("seconds") or 0.0)
    corpus = str(meta.get("corpus") or UNKNOWN_CORPUS)
    return seconds, corpus


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_shard(
    samples: Iterable[Sample],
    target: str,
    storage_fs: fsspec.AbstractFileSystem | None = None,
    source_hash: str = "",
) -> ShardRecord:
    """Write ``samples`` as one tar at ``target`` (path or URL), atomically; return its ledger record.

    Members of a sample are written in sorted extension order. The sha256 and size are computed on
    the bytes as they are written, so the shard is never read back.
    """
    name = str(target).rstrip("/").rsplit("/", 1)[-1]
    keys: list[str] = []
    seen: set[str] = set()
    seconds_total = 0.0
    by_corpus: dict[str, float] = {}
    with atomic_write(target, mode="wb", fs=storage_fs) as handle:
        sink = _HashingWriter(handle)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for sample in samples:
                check_key(sample.key)
                if sample.key in seen:
                    raise ValueError(f"sample key {sample.key!r} appears twice in shard {name}")
                if not sample.files:
                    raise ValueError(f"sample {sample.key!r} has no files")
                seen.add(sample.key)
                keys.append(sample.key)
                for extension in sorted(sample.files):
                    check_extension(sample.key, extension)
                    data = sample.files[extension]
                    tar.addfile(_member(f"{sample.key}.{extension}", len(data)), _BytesReader(data))
                seconds, corpus = _sample_seconds(sample)
                seconds_total += seconds
                by_corpus[corpus] = by_corpus.get(corpus, 0.0) + seconds
        digest, size = sink.sha256.hexdigest(), sink.bytes
    return ShardRecord(
        name=name,
        sha256=digest,
        bytes=size,
        samples=len(keys),
        seconds=round(seconds_total, 6),
        seconds_by_corpus={corpus: round(by_corpus[corpus], 6) for corpus in sorted(by_corpus)},
        keys_sha256=keys_digest(keys),
        source_hash=source_hash,
    )


class _BytesReader:
    """Minimal file object over bytes for ``TarFile.addfile`` (avoids a BytesIO copy per member)."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size < 0 else min(len(self.view), self.position + size)
        chunk = self.view[self.position : end].tobytes()
        self.position = end
        return chunk
