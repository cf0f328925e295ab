"""Re-read a whole shard set and list every fault: checksums, counts, members, audio, json, keys."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import IO, Any

import soundfile

from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.shards.writer import keys_digest
from uniflow.storage import Role, Storage

# Either a fixed set of extensions every sample needs, or a function of the sample's parsed json
# (None when it has none) that returns the set, for sets whose samples differ (e.g. optional video).
RequiredExtensions = Collection[str] | Callable[[dict[str, Any] | None], Collection[str]]
AUDIO_SUFFIXES = ("flac", "wav")


@dataclass(frozen=True)
class Fault:
    shard: str
    reason: str

    def __str__(self) -> str:
        return f"{self.shard}: {self.reason}"


@dataclass
class ValidationReport:
    """What validation found; ``ok`` only when there is no fault at all."""

    shards_checked: int = 0
    samples_checked: int = 0
    faults: list[Fault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults

    def add(self, shard: str, reason: str) -> None:
        self.faults.append(Fault(shard, reason))

    def summary(self) -> str:
        status = "ok" if self.ok else f"NOT OK ({len(self.faults)} fault(s))"
        lines = [f"{self.shards_checked} shard(s), {self.samples_checked} sample(s): {status}"]
        lines.extend(f"  {fault}" for fault in self.faults)
        return "\n".join(lines)


class _HashingReader:
    """A read-only file object that hashes and counts what is read from ``source``."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def split_member_name(name: str) -> tuple[str, str]:
    """(key, extension) the way WebDataset groups members: at the first dot of the last component."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    if not dot:
        return name, ""
    return (f"{folder}/{stem}" if folder else stem), extension


def _required_for(required: RequiredExtensions, meta: dict[str, Any] | None) -> Collection[str]:
    return required(meta) if callable(required) else required


def _check_sample(report: ValidationReport, shard: str, key: str, files: dict[str, bytes], required: RequiredExtensions) -> None:
    meta: dict[str, Any] | None = None
    for extension, data in files.items():
        if extension == "json" or extension.endswith(".json"):
            try:
                parsed = json.loads(data)
            except ValueError as exc:
                report.add(shard, f"sample {key!r}: {extension} does not parse: {exc}")
                continue
            if extension == "json":
                meta = parsed if isinstance(parsed, dict) else None
        elif extension.rsplit(".", 1)[-1] in AUDIO_SUFFIXES:
            try:
                audio, _ = soundfile.read(io.BytesIO(data), dtype="float32")
            except (RuntimeError, soundfile.LibsndfileError) as exc:
                report.add(shard, f"sample {key!r}: {extension} does not decode: {exc}")
                continue
            if audio.size == 0:
                report.add(shard, f"sample {key!r}: {extension} has no audio frames")
    missing = sorted(set(_required_for(required, meta)) - set(files))
    if missing:
        report.add(shard, f"sample {key!r}: missing {', '.join(missing)}")


def _read_shard(
    report: ValidationReport, shard_set: ShardSet, name: str, required: RequiredExtensions
) -> tuple[list[str], str, int] | None:
    """Check one tar's samples; return its keys in order, sha256 and size (None if unreadable)."""
    keys: list[str] = []
    with shard_set.storage.open(shard_set.role, shard_set.task, shard_set.split, name) as handle:
        reader = _HashingReader(handle)
        current_key: str | None = None
        files: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    if not member.isfile():
                        report.add(name, f"member {member.name!r} is not a regular file")
                        continue
                    key, extension = split_member_name(member.name)
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    if len(data) != member.size:
                        raise tarfile.ReadError(f"member {member.name!r} is cut short")
                    if key != current_key:
                        if current_key is not None:
                            _check_sample(report, name, current_key, files, required)
                        if key in keys:
                            report.add(name, f"key {key!r} appears twice (its members are not contiguous)")
                        else:
                            keys.append(key)
                        current_key, files = key, {}
                    if not extension:
                        report.add(name, f"member {member.name!r} has no extension")
                    elif extension in files:
                        report.add(name, f"member {member.name!r} appears twice")
                    files[extension] = data
                if current_key is not None:
                    _check_sample(report, name, current_key, files, required)
                end_of_members = tar.offset
            reader.drain()
            # tarfile stops quietly at a damaged or missing header after the first member; a
            # complete tar always ends with two zero blocks after its last member.
            if reader.bytes < end_of_members + 2 * tarfile.BLOCKSIZE:
                raise tarfile.ReadError("no end-of-archive marker after the last member (truncated)")
        except (tarfile.TarError, EOFError, OSError) as exc:
            report.add(name, f"tar is not readable to the end: {exc}")
            return None
    report.samples_checked += len(keys)
    return keys, reader.sha256.hexdigest(), reader.bytes


def validate_shard_set(
    storage: Storage, role: Role, task: str, split: str, required_extensions: RequiredExtensions
) -> ValidationReport:
    """Re-read every shard in the ledger and every tar present, and report every fault found."""
    shard_set = ShardSet(storage, role, task, split)
    report = ValidationReport()
    try:
        ledger = {record.name: record for record in read_ledger(shard_set)}
    except ValueError as exc:
        report.add("ledger.jsonl", str(exc))
        ledger = {}
    present = shard_set.tar_sizes()
    for name in sorted(set(ledger) - set(present)):
        report.add(name, "listed in the ledger but the tar is missing")
    owner: dict[str, str] = {}
    for name in sorted(present):
        report.shards_checked += 1
        record = ledger.get(name)
        if record is None:
            report.add(name, "tar has no ledger line")
        if not shard_set.is_shard(name):
            report.add(name, f"name does not follow {task}-{split}-NNNNNN.tar")
        result = _read_shard(report, shard_set, name, required_extensions)
        if result is None:
            continue
        keys, digest, size = result
        for key in keys:
            if key in owner:
                report.add(name, f"key {key!r} is also in {owner[key]}")
            else:
                owner[key] = name
        if record is None:
            continue
        if size != record.bytes:
            report.add(name, f"size {size} differs from the ledger's {record.bytes}")
        if digest != record.sha256:
            report.add(name, f"sha256 {digest} differs from the ledger's {record.sha256}")
        if len(keys) != record.samples:
            report.add(name, f"{len(keys)} samples, the ledger says {record.samples}")
        if keys_digest(keys) != record.keys_sha256:
            report.add(name, "key list differs from the ledger's keys_sha256")
    return report
