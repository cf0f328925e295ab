"""A small build in a temporary folder for the data card tests: shards, manifest and alignment
summaries, and simulation parameter manifests, in the layouts the stages write."""

from __future__ import annotations

import json
from pathlib import Path

from shards.shard_set_builder import flac_bytes

from support import DATASETS, make_storage
from uniflow.corpora.recipe import Plan, load_plan, load_recipes
from uniflow.shards.ledger import ShardSet, write_ledger
from uniflow.shards.writer import Sample, write_shard
from uniflow.storage import Storage

# (task, split) -> shards -> (corpus, seconds) per sample. The SE shard mixes two corpora.
FIRST_BUILD: dict[tuple[str, str], list[list[tuple[str, float]]]] = {
    ("tts", "train"): [[("libritts", 4.0), ("libritts", 6.5)], [("libritts", 9.0)]],
    ("tts", "test"): [[("libritts", 3.75)]],
    ("se", "train"): [[("libritts", 6.0), ("vctk", 8.0)]],
}
SECOND_BUILD: dict[tuple[str, str], list[list[tuple[str, float]]]] = {
    **FIRST_BUILD,
    ("tts", "train"): [[("libritts", 4.0), ("libritts", 6.5)], [("libritts", 9.0), ("libritts", 5.5)]],
    ("t2a", "train"): [[("audiocaps", 5.0), ("audiocaps", 7.25)]],
}
SE_PAIRS = [  # (key, snr_db, augmentations); the last is quarantined when rendered
    ("se/libritts/a/r0", 2.5, ["codec"]),
    ("se/libritts/b/r0", 7.5, []),
    ("se/vctk/c/r0", 12.0, ["codec", "clipping"]),
    ("se/vctk/d/r0", 30.0, ["packet_loss"]),
]
SR_CUTOFFS = {"sr/hq_tts/a/c0": 2000.0, "sr/hq_tts/b/c0": 4000.0, "sr/hq_tts/c/c0": 4100.0}


def write_shard_sets(storage: Storage, sets: dict[tuple[str, str], list[list[tuple[str, float]]]]) -> None:
    """Every shard set of ``sets`` with its ledger, replacing what was there."""
    for (task, split), shards in sets.items():
        shard_set = ShardSet(storage, "shards", task, split)
        storage.remove("shards", task, split)
        records = []
        for index, shard in enumerate(shards):
            samples = [
                Sample(f"{corpus}/s{index}_{position}",
                       {"target.flac": flac_bytes(seconds, 220.0), "json": json.dumps({"corpus": corpus, "seconds": seconds}).encode()})
                for position, (corpus, seconds) in enumerate(shard)
            ]
            records.append(write_shard(samples, shard_set.url(shard_set.shard_name(index)), source_hash="h"))
        write_ledger(shard_set, records)


def _write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def _write_lines(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def write_stage_outputs(storage: Storage) -> None:
    """LibriTTS's manifest summary and alignment summaries, and one rendered SE and SR batch."""
    manifests = storage.path("manifests", "libritts")
    _write_json(manifests / "summary.json", {
        "corpus": "libritts", "recordings": {"train": 4, "test": 2}, "seconds": {"train": 25.0, "test": 7.0},
        "quarantined": 1, "quarantine_reasons": {"known corrupt recording": 1},
    })
    for split, aligned, failed in (("train", 4, 0), ("test", 1, 1)):
        _write_json(manifests / f"{split}.align_summary.json", {
            "corpus": "libritts", "split": split, "aligner": "pocketsphinx", "aligned": aligned, "failed": failed,
            "failures_by_reason": {"aligner produced no output": failed} if failed else {}, "hours_aligned": 0.005, "chunks": 1,
        })
    se = storage.path("work", "simulate", "se", "train")
    _write_json(se / "plan.json", {"task": "se", "split": "train", "batches": 1, "pairs": 5, "skipped": 0})
    params = [{"key": key, "snr_db": snr, "augmentations": [{"name": name} for name in names]} for key, snr, names in SE_PAIRS]
    params.append({"key": "se-paired/voicebank_demand/p232_001", "record": {"id": "voicebank_demand/p232_001"}})
    _write_lines(se / "batch_00000.params.jsonl", params)
    _write_lines(se / "batch_00000.quarantine.jsonl", [{"key": SE_PAIRS[-1][0], "source": "x.wav", "reason": "silent clean"}])
    _write_json(se / "batch_00000.done", {"pairs": 4, "quarantined": 1, "seconds": 14.0})
    sr = storage.path("work", "simulate", "sr", "train")
    _write_json(sr / "plan.json", {"task": "sr", "split": "train", "batches": 1, "pairs": 3, "skipped": 0})
    _write_lines(sr / "batch_00000.params.jsonl", [{"key": key, "cutoff_hz": cutoff} for key, cutoff in SR_CUTOFFS.items()])
    _write_lines(sr / "batch_00000.quarantine.jsonl", [])
    _write_json(sr / "batch_00000.done", {"pairs": 3, "quarantined": 0, "seconds": 9.0})


def make_build(root: Path) -> tuple[Storage, Plan]:
    """The first build under ``root``, and the real plan."""
    storage = make_storage(root)
    write_shard_sets(storage, FIRST_BUILD)
    write_stage_outputs(storage)
    return storage, load_plan(DATASETS / "plan.yaml", load_recipes(DATASETS))
