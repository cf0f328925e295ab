"""The ledger of a shard set: ``ledger.jsonl`` beside the shards, one ShardRecord per line.

A shard set lives in ``<task>/<split>/`` under a storage role; its shards are named
``<task>-<split>-000123.tar``. The ledger is rewritten atomically, sorted by shard name, so the
same shards always give the same ledger bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from uniflow.shards.writer import ShardContents, ShardRecord, shard_name
from uniflow.storage import Role, Storage

RecordT = TypeVar("RecordT", bound=ShardContents)

LEDGER_NAME = "ledger.jsonl"


@dataclass(frozen=True)
class ShardSet:
    """Where one task's split lives: ``<role>/<task>/<split>/``."""

    storage: Storage
    role: Role
    task: str
    split: str

    def url(self, *names: str) -> str:
        return self.storage.url(self.role, self.task, self.split, *names)

    def shard_name(self, index: int) -> str:
        return shard_name(self.task, self.split, index)

    def is_shard(self, name: str) -> bool:
        return name.startswith(f"{self.task}-{self.split}-") and name.endswith(".tar")

    def tar_sizes(self) -> dict[str, int]:
        """Size of every finished shard present (one listing; temporary names are not shards)."""
        fs, folder = self.storage.fs(self.role), self.url()
        if not fs.exists(folder):
            return {}
        sizes: dict[str, int] = {}
        for entry in fs.ls(folder, detail=True):
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") != "directory" and name.endswith(".tar") and not name.startswith("."):
                sizes[name] = int(entry["size"])
        return sizes

    def remove_temporaries(self) -> int:
        """Delete temporary files left by killed writers (``.<name>.*.tmp``); returns how many.

        Call it only when no writer of this set is running (e.g. at the start of a build).
        """
        fs, folder = self.storage.fs(self.role), self.url()
        if not fs.exists(folder):
            return 0
        stale = [
            entry
            for entry in fs.ls(folder, detail=False)
            if (name := str(entry).rstrip("/").rsplit("/", 1)[-1]).startswith(".") and name.endswith(".tmp")
        ]
        for entry in stale:
            fs.rm(entry)
        return len(stale)


def read_ledger(shard_set: ShardSet, record_type: type[RecordT] = ShardRecord) -> list[RecordT]:  # type: ignore[assignment]
    """The ledger's records (empty when the set has no ledger yet); `record_type` reads other ledgers
    of the same layout (the feature stage's)."""
    if not shard_set.storage.exists(shard_set.role, shard_set.task, shard_set.split, LEDGER_NAME):
        return []
    text = shard_set.storage.read_text(shard_set.role, shard_set.task, shard_set.split, LEDGER_NAME)
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(record_type.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{shard_set.url(LEDGER_NAME)}: line {number}: {exc}") from None
    return records


def encode_ledger(records: Iterable[RecordT]) -> str:
    ordered = sorted(records, key=lambda record: record.name)
    names = [record.name for record in ordered]
    if len(set(names)) != len(names):
        raise ValueError("ledger has more than one line for a shard")
    return "".join(json.dumps(record.model_dump(), ensure_ascii=False, separators=(",", ":")) + "\n" for record in ordered)


def write_ledger(shard_set: ShardSet, records: Iterable[RecordT]) -> None:
    """Replace the ledger atomically with ``records`` sorted by shard name."""
    shard_set.storage.write_text(shard_set.role, shard_set.task, shard_set.split, LEDGER_NAME, text=encode_ledger(records))


def update_ledger(existing: Iterable[ShardRecord], written: Iterable[ShardRecord], planned: Iterable[str]) -> list[ShardRecord]:
    """Records for the planned shards: freshly written ones replace old lines; unplanned lines go."""
    keep = set(planned)
    merged = {record.name: record for record in existing if record.name in keep}
    merged.update({record.name: record for record in written})
    return sorted(merged.values(), key=lambda record: record.name)


def shards_to_write(planned: Iterable[str], ledger: Iterable[ShardRecord], shard_set: ShardSet) -> list[str]:
    """Planned shards that must be (re)written: missing, without a ledger line, or of the wrong size.

    Only sizes are compared (one directory listing); checking sha256 is ``validate``'s job.
    """
    by_name = {record.name: record for record in ledger}
    sizes = shard_set.tar_sizes()
    todo = []
    for name in planned:
        record = by_name.get(name)
        if record is None or sizes.get(name) != record.bytes:
            todo.append(name)
    return todo


@dataclass(frozen=True)
class LedgerTotals:
    """Hours a ledger holds, in total and per corpus."""

    shards: int
    samples: int
    bytes: int
    hours: float
    hours_by_corpus: dict[str, float] = field(default_factory=dict)


def ledger_totals(records: Iterable[ShardRecord]) -> LedgerTotals:
    shards = samples = size = 0
    seconds = 0.0
    by_corpus: dict[str, float] = {}
    for record in records:
        shards += 1
        samples += record.samples
        size += record.bytes
        seconds += record.seconds
        for corpus, corpus_seconds in record.seconds_by_corpus.items():
            by_corpus[corpus] = by_corpus.get(corpus, 0.0) + corpus_seconds
    return LedgerTotals(
        shards=shards,
        samples=samples,
        bytes=size,
        hours=seconds / 3600.0,
        hours_by_corpus={corpus: by_corpus[corpus] / 3600.0 for corpus in sorted(by_corpus)},
    )
