"""The alignment stage: a manifest in, phone frame counts per utterance out, in resumable chunks.

``plan_chunks`` cuts a manifest split into chunks of utterances (their inputs written to the work
role), ``align_chunk`` aligns one chunk and marks it ``.done``, and ``merge_chunks`` gathers the
chunks into ``<manifests>/<corpus>/<split>.align.jsonl.gz`` with a failure list and a summary. A
rerun, or a run after a crash, aligns only the chunks without a ``.done`` marker. Chunks are the
unit of parallelism: one Prefect task, and for MFA one ``mfa align`` call, per chunk.

Work layout, per corpus and split::

    <work>/align/<corpus>/<split>/plan.json               manifest hash, aligner, chunk size, count
    <work>/align/<corpus>/<split>/chunk_00012.items.jsonl  the utterances of chunk 12
    <work>/align/<corpus>/<split>/chunk_00012.jsonl.gz     their alignments and frame counts
    <work>/align/<corpus>/<split>/chunk_00012.failures.jsonl
    <work>/align/<corpus>/<split>/chunk_00012.done         written last: the chunk is complete

A line of ``<split>.align.jsonl.gz``: the alignment (``id``, ``duration``, ``aligner``, ``words`` and
``phones`` as [label, start, end]) plus ``durations``: the phone sequence the model reads (gaps
filled with ``sil``) with its latent frame counts, which sum to ``latent_frames``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from uniflow.align.alignment import AlignFailure, AlignItem, Alignment, AlignmentError, Interval
from uniflow.align.durations import latent_frames, phone_frame_counts
from uniflow.align.phones import UnknownPhone, normalize_phone
from uniflow.corpora.manifest import manifest_name, read_manifest
from uniflow.hashing import sha256_file
from uniflow.jsonl import encode_jsonl_gz, encode_line, iter_jsonl_gz
from uniflow.storage import Storage, atomic_write

ALIGNMENT_VERSION = 1
DEFAULT_CHUNK_SIZE = 200


@dataclass
class ChunkPlan:
    corpus: str
    split: str
    aligner: str
    chunk_size: int
    chunks: int
    utterances: int
    skipped_without_text: int
    manifest_sha256: str
    version: int = ALIGNMENT_VERSION


@dataclass
class ChunkResult:
    index: int
    aligned: int
    failed: int
    seconds: float
    skipped: bool = False


@dataclass
class AlignSummary:
    corpus: str
    split: str
    aligner: str
    aligned: int = 0
    failed: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    hours_aligned: float = 0.0
    skipped_without_text: int = 0
    chunks: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def work_dir(storage: Storage, corpus: str, split: str) -> Path:
    return storage.path("work", "align", corpus, split)


def _chunk_name(index: int) -> str:
    return f"chunk_{index:05d}"


def _item_record(record: dict[str, Any], raw_root: Path) -> dict[str, Any]:
    return {
        "id": record["id"],
        "audio": str(raw_root / record["audio"]),
        "text": record["text"],
        "speaker": record.get("speaker") or record["corpus"],
        "start": record.get("start"),
        "end": record.get("end"),
        "seconds": record["seconds"],
    }


def plan_chunks(
    storage: Storage, corpus: str, split: str, aligner: str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> ChunkPlan:
    """Cut the split's manifest into chunks; keep an existing plan when nothing it depends on changed."""
    manifest_path = storage.path("manifests", corpus, manifest_name(split))
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: no manifest; run `uniflow prepare {corpus}` first")
    digest = sha256_file(manifest_path)
    folder = work_dir(storage, corpus, split)
    plan_path = folder / "plan.json"
    if plan_path.exists():
        existing = ChunkPlan(**json.loads(plan_path.read_text()))
        if (existing.manifest_sha256, existing.aligner, existing.chunk_size, existing.version) == (
            digest, aligner, chunk_size, ALIGNMENT_VERSION
        ):
            return existing
        shutil.rmtree(folder)  # the manifest, aligner or chunking changed: old chunks are stale
    folder.mkdir(parents=True, exist_ok=True)
    raw_root = storage.path("raw")
    chunk: list[dict[str, Any]] = []
    chunks = utterances = without_text = 0

    def flush() -> None:
        nonlocal chunks
        with atomic_write(folder / f"{_chunk_name(chunks)}.items.jsonl", mode="wb") as handle:
            handle.writelines(encode_line(item) for item in chunk)
        chunks += 1
        chunk.clear()

    for record in read_manifest(storage, corpus, split):
        if not (record.get("text") or "").strip():
            without_text += 1
            continue
        chunk.append(_item_record(record, raw_root))
        utterances += 1
        if len(chunk) == chunk_size:
            flush()
    if chunk:
        flush()
    plan = ChunkPlan(corpus, split, aligner, chunk_size, chunks, utterances, without_text, digest)
    with atomic_write(plan_path, mode="w") as handle:
        json.dump(asdict(plan), handle, indent=1)
    return plan


def chunk_is_done(storage: Storage, corpus: str, split: str, index: int) -> bool:
    return (work_dir(storage, corpus, split) / f"{_chunk_name(index)}.done").exists()


def _result_record(alignment: Alignment, seconds: float) -> dict[str, Any]:
    """Validate an aligner's output and add the frame counts the model trains on."""
    alignment.validate()
    alignment.phones = [Interval(normalize_phone(p.label), p.start, p.end) for p in alignment.phones]
    counts = phone_frame_counts(alignment.phones, latent_frames(seconds))
    return {**alignment.to_json(), "durations": {"phones": counts.phones, "frames": counts.frames, "latent_frames": counts.total}}


def align_chunk(storage: Storage, corpus: str, split: str, index: int, aligner) -> ChunkResult:
    """Align one chunk (skipped when already done); failures are recorded, never raised."""
    folder = work_dir(storage, corpus, split)
    name = _chunk_name(index)
    done = folder / f"{name}.done"
    if done.exists():
        counts = json.loads(done.read_text())
        return ChunkResult(index, counts["aligned"], counts["failed"], counts["seconds"], skipped=True)
    items_path = folder / f"{name}.items.jsonl"
    rows = [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seconds_by_id = {row["id"]: row["seconds"] for row in rows}
    items = [
        AlignItem(row["id"], Path(row["audio"]), row["text"], row["speaker"], row.get("start"), row.get("end"))
        for row in rows
    ]
    results: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    scratch = storage.path("work", "align-scratch", corpus, split, name)
    scratch.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    try:
        for outcome in aligner.align_batch(items, scratch):
            seen.add(outcome.id)
            if isinstance(outcome, AlignFailure):
                failures.append(asdict(outcome))
                continue
            try:
                results.append(_result_record(outcome, seconds_by_id[outcome.id]))
            except (AlignmentError, UnknownPhone, ValueError) as exc:
                failures.append(asdict(AlignFailure(outcome.id, "invalid alignment", str(exc))))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failures += [asdict(AlignFailure(item.id, "aligner returned nothing")) for item in items if item.id not in seen]
    aligned_seconds = sum(seconds_by_id[record["id"]] for record in results)
    with atomic_write(folder / f"{name}.jsonl.gz", mode="wb") as handle:
        handle.write(encode_jsonl_gz(results))
    with atomic_write(folder / f"{name}.failures.jsonl", mode="wb") as handle:
        handle.writelines(encode_line(failure) for failure in failures)
    with atomic_write(done, mode="w") as handle:  # last: its presence means the chunk is complete
        json.dump({"aligned": len(results), "failed": len(failures), "seconds": aligned_seconds, "at": time.time()}, handle)
    return ChunkResult(index, len(results), len(failures), aligned_seconds)


def merge_chunks(storage: Storage, corpus: str, split: str) -> AlignSummary:
    """Gather finished chunks into the split's alignment file, failure list and summary."""
    folder = work_dir(storage, corpus, split)
    plan = ChunkPlan(**json.loads((folder / "plan.json").read_text()))
    missing = [index for index in range(plan.chunks) if not chunk_is_done(storage, corpus, split, index)]
    if missing:
        raise RuntimeError(f"{folder}: {len(missing)} of {plan.chunks} chunks are not aligned yet (first: {missing[0]})")
    summary = AlignSummary(corpus, split, plan.aligner, skipped_without_text=plan.skipped_without_text, chunks=plan.chunks)
    reasons: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    failures: list[bytes] = []
    seconds = 0.0
    for index in range(plan.chunks):
        name = _chunk_name(index)
        with open(folder / f"{name}.jsonl.gz", "rb") as handle:
            for record in iter_jsonl_gz(handle):
                records.append(record)
                seconds += record["duration"]
        for line in (folder / f"{name}.failures.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                reasons[json.loads(line)["reason"]] += 1
                failures.append((line + "\n").encode("utf-8"))
    summary.aligned, summary.failed = len(records), sum(reasons.values())
    summary.failures_by_reason = dict(sorted(reasons.items()))
    summary.hours_aligned = round(seconds / 3600, 4)
    storage.write_bytes("manifests", corpus, f"{split}.align.jsonl.gz", data=encode_jsonl_gz(records))
    storage.write_bytes("manifests", corpus, f"{split}.align_failures.jsonl", data=b"".join(failures))
    storage.write_text("manifests", corpus, f"{split}.align_summary.json", text=json.dumps(summary.to_json(), indent=1) + "\n")
    return summary


def align_split(storage: Storage, corpus: str, split: str, aligner, chunk_size: int = DEFAULT_CHUNK_SIZE,
                progress: bool = True) -> AlignSummary:
    """Plan, align every chunk not yet done, and merge: the whole stage for one split, in one process."""
    from tqdm import tqdm

    plan = plan_chunks(storage, corpus, split, aligner.name, chunk_size)
    for index in tqdm(range(plan.chunks), desc=f"align {corpus}/{split}", unit="chunk", disable=not progress):
        align_chunk(storage, corpus, split, index, aligner)
    return merge_chunks(storage, corpus, split)
