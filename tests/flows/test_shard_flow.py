"""The shard flow: ledgers, validation, reruns that write nothing, and hours that add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS, latest_artifact, make_storage, write_profile
from uniflow.align.score import prepare_scores
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests, read_manifest
from uniflow.shards.ledger import ShardSet, ledger_totals, read_ledger
from uniflow.shards.samples import required_files
from uniflow.shards.validate import validate_shard_set

pytestmark = pytest.mark.prefect


def test_shard_flow_writes_validates_and_resumes(prefect_harness, recipes, mirror_url: str, tmp_path: Path) -> None:
    from flows.shard import shard_flow

    storage = make_storage(tmp_path, mirror_url)
    for name in ("audiocaps", "m4singer"):
        assert acquire_corpus(storage, recipes[name], progress=False).status == "done"
        prepare_manifests(recipes[name], storage, progress=False)
    for split in ("train", "test"):
        prepare_scores(storage, "m4singer", split)
    profile = write_profile(tmp_path, mirror_url)

    first = shard_flow(tasks=["t2a", "svs"], profile=profile, datasets_dir=str(DATASETS), max_samples=2)
    assert all(row["written"] == row["shards"] > 0 for row in first["sets"])
    for task, split in (("t2a", "train"), ("svs", "train")):
        report = validate_shard_set(storage, "shards", task, split, required_files(task))
        assert report.ok, report.faults

    ledger = read_ledger(ShardSet(storage, "shards", "t2a", "train"))
    manifest_hours = sum(record["seconds"] for record in read_manifest(storage, "audiocaps", "train")) / 3600
    assert ledger_totals(ledger).hours == pytest.approx(manifest_hours, abs=1e-6), "the ledger's hours are the manifests'"
    assert "audiocaps" in str(latest_artifact("corpus-hours-ledger")["data"])

    again = shard_flow(tasks=["t2a", "svs"], profile=profile, datasets_dir=str(DATASETS), max_samples=2)
    assert all(row["written"] == 0 for row in again["sets"]), "a rerun with unchanged inputs writes nothing"
    assert read_ledger(ShardSet(storage, "shards", "t2a", "train")) == ledger
