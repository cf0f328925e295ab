"""The corpus table's hours are exactly the seconds that went into the shards, beside Table 4's hours."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from support import DATASETS, latest_artifact, make_storage
from uniflow.corpora.recipe import Plan, load_plan
from uniflow.shards.ledger import ShardSet, write_ledger
from uniflow.shards.report import ARTIFACT_KEY, corpus_table, corpus_table_markdown, publish_report
from uniflow.shards.writer import Sample, write_shard
from uniflow.storage import Storage

SAMPLE_RATE = 24000

# (task, split) -> shards -> (corpus, seconds) per sample. The SE valid set mixes two corpora in one
# shard, so per-corpus hours must come from seconds_by_corpus, not from whole shards.
SETS: dict[tuple[str, str], list[list[tuple[str, float]]]] = {
    ("tts", "train"): [[("libritts", 0.125), ("libritts", 0.3)], [("libritts", 0.21)]],
    ("se", "valid"): [[("vctk", 0.11), ("libritts", 0.07), ("vctk", 0.19)]],
}


def flac_bytes(seconds: float) -> bytes:
    rng = np.random.default_rng(int(seconds * 1000))
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE)), SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def build_sets(storage: Storage) -> dict[tuple[str, str, str], float]:
    """Write every shard set of SETS with its ledger; returns input seconds per (task, corpus, split)."""
    expected: dict[tuple[str, str, str], float] = {}
    for (task, split), shards in SETS.items():
        shard_set = ShardSet(storage, "shards", task, split)
        records = []
        for index, shard in enumerate(shards):
            samples = []
            for position, (corpus, seconds) in enumerate(shard):
                meta = {"corpus": corpus, "seconds": seconds}
                key = f"{corpus}/s{index}_{position}"
                samples.append(Sample(key, {"target.flac": flac_bytes(seconds), "json": json.dumps(meta).encode()}))
                expected[(task, corpus, split)] = expected.get((task, corpus, split), 0.0) + seconds
            samples.sort(key=lambda sample: sample.key)
            records.append(write_shard(samples, shard_set.url(shard_set.shard_name(index)), source_hash="h"))
        write_ledger(shard_set, records)
    return expected


@pytest.fixture(scope="module")
def plan(recipes) -> Plan:
    return load_plan(DATASETS / "plan.yaml", recipes)


def test_hours_equal_the_input_seconds(tmp_path: Path, plan: Plan) -> None:
    storage = make_storage(tmp_path)
    expected = build_sets(storage)
    rows = corpus_table(storage, plan)
    by_key = {(row["task"], row["corpus"], row["split"]): row for row in rows if row["level"] == "corpus"}
    measured = {key: row for key, row in by_key.items() if row["shards"]}
    assert set(measured) == set(expected)
    for key, seconds in expected.items():
        assert measured[key]["hours"] == pytest.approx(seconds / 3600, abs=1e-6), key

    tts = by_key[("tts", "libritts", "train")]
    assert (tts["paper_hours"], tts["shards"], tts["samples"]) == (555, 2, 3)
    # vctk shares its only shard with libritts: its sample count cannot come from the ledger.
    assert by_key[("se", "vctk", "valid")]["samples"] is None
    assert by_key[("se", "vctk", "valid")]["paper_hours"] is None, "Table 4 hours are training hours"
    # A plan corpus without shards is still listed, with 0 h next to its paper hours.
    assert (by_key[("t2m", "msd", "train")]["hours"], by_key[("t2m", "msd", "train")]["paper_hours"]) == (0.0, 5789)

    totals = {(row["level"], row["task"], row["split"]): row for row in rows if row["level"] != "corpus"}
    assert totals[("task", "se", "valid")]["samples"] == 3
    assert totals[("task", "se", "valid")]["hours"] == pytest.approx((0.11 + 0.07 + 0.19) / 3600, abs=1e-9)
    assert totals[("task", "tts", "train")]["paper_hours"] == 555
    grand = totals[("total", "all", "train")]
    assert grand["paper_hours"] == 7717 and grand["shards"] == 2 and grand["samples"] == 3
    assert grand["hours"] == pytest.approx((0.125 + 0.3 + 0.21) / 3600, abs=1e-9)

    markdown = corpus_table_markdown(rows)
    assert "Hours (paper, Table 4)" in markdown.splitlines()[0]
    assert "| libritts | train |" in markdown and "| 555.00 |" in markdown and "7,717.00" in markdown


def test_publish_outside_a_run_writes_the_files(tmp_path: Path, plan: Plan) -> None:
    storage = make_storage(tmp_path)
    build_sets(storage)
    rows = publish_report(storage, plan)
    document = json.loads((tmp_path / "reports" / "corpus.json").read_text())
    assert document["rows"] == rows and document["paper_total_hours"] == 7717
    assert "| tts | libritts | train |" in (tmp_path / "reports" / "corpus.md").read_text()


@pytest.mark.prefect
def test_publish_inside_a_flow_creates_the_artifact(prefect_harness, tmp_path: Path, plan: Plan) -> None:
    from prefect import flow

    storage = make_storage(tmp_path)
    build_sets(storage)

    @flow
    def report_flow() -> None:
        publish_report(storage, plan)

    report_flow()
    artifact = latest_artifact(ARTIFACT_KEY)
    assert artifact is not None and artifact["type"] == "table"
    assert "libritts" in str(artifact["data"]) and "7717" in str(artifact["data"])
