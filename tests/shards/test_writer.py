"""Shard writing is deterministic, atomic and resumable: a killed build rerun gives the clean ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from shard_set_builder import build_set, make_samples

from support import make_storage
from uniflow.shards.ledger import (
    LEDGER_NAME,
    ShardSet,
    ledger_totals,
    read_ledger,
)
from uniflow.shards.writer import Sample, assign_shards, shard_name, write_shard


def test_assignment_depends_only_on_the_input() -> None:
    items = [("b/2", 10), ("a/1", 10), ("c/3", 55), ("d/4", 10), ("e/5", 10)]
    expected = [["a/1", "b/2"], ["c/3"], ["d/4", "e/5"]]
    assert assign_shards(items, max_samples=2, max_bytes=60) == expected
    assert assign_shards(list(reversed(items)), max_samples=2, max_bytes=60) == expected
    # A sample larger than max_bytes gets its own shard instead of being dropped.
    assert assign_shards([("a", 5), ("b", 500), ("c", 5)], max_samples=10, max_bytes=100) == [["a"], ["b"], ["c"]]
    assert shard_name("se", "train", 123) == "se-train-000123.tar"


def test_dot_in_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="p001.wav"):
        assign_shards([("vctk/p001.wav", 10)], 10, 100)
    with pytest.raises(ValueError, match="vctk/p001.wav"):
        write_shard([Sample("vctk/p001.wav", {"json": b"{}"})], str(tmp_path / "x-train-000000.tar"))
    with pytest.raises(ValueError, match="twice"):
        assign_shards([("a", 1), ("a", 2)], 10, 100)


def test_same_samples_give_identical_bytes(tmp_path: Path) -> None:
    samples = list(make_samples(4).values())
    first = write_shard(samples, str(tmp_path / "one" / "se-train-000000.tar"), source_hash="h")
    second = write_shard(samples, str(tmp_path / "two" / "se-train-000000.tar"), source_hash="h")
    assert first == second
    assert (tmp_path / "one" / "se-train-000000.tar").read_bytes() == (tmp_path / "two" / "se-train-000000.tar").read_bytes()
    assert first.bytes == (tmp_path / "one" / "se-train-000000.tar").stat().st_size
    assert first.samples == 4
    assert first.seconds == pytest.approx(0.05 + 0.06 + 0.07 + 0.08)
    assert first.seconds_by_corpus == {"dns": pytest.approx(0.12), "vctk": pytest.approx(0.14)}
    with tarfile.open(tmp_path / "one" / "se-train-000000.tar") as tar:
        members = tar.getmembers()
    # Members grouped by key, extensions sorted, reproducible metadata like WebDataset's TarWriter.
    assert [m.name for m in members[:3]] == ["dns/p000.input.flac", "dns/p000.json", "dns/p000.target.flac"]
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o444)}


def test_failure_mid_shard_leaves_nothing_at_the_final_name(tmp_path: Path) -> None:
    samples = list(make_samples(3).values())

    def failing() -> Iterator[Sample]:
        yield samples[0]
        raise RuntimeError("source went away")

    target = tmp_path / "se" / "train" / "se-train-000000.tar"
    with pytest.raises(RuntimeError, match="source went away"):
        write_shard(failing(), str(target))
    assert list(target.parent.iterdir()) == []


def test_rerun_rewrites_missing_and_wrong_sized_shards_only(tmp_path: Path) -> None:
    assert build_set(tmp_path) == [f"se-train-00000{i}.tar" for i in range(4)]
    assert build_set(tmp_path) == []
    folder = tmp_path / "shards" / "se" / "train"
    (folder / "se-train-000001.tar").unlink()
    with open(folder / "se-train-000003.tar", "ab") as handle:
        handle.write(b"\0" * 512)
    assert build_set(tmp_path) == ["se-train-000001.tar", "se-train-000003.tar"]
    totals = ledger_totals(read_ledger(ShardSet(make_storage(tmp_path), "shards", "se", "train")))
    assert (totals.shards, totals.samples) == (4, 10)
    assert totals.hours == pytest.approx(sum(0.05 + 0.01 * i for i in range(10)) / 3600)
    assert totals.hours_by_corpus["vctk"] == pytest.approx(sum(0.05 + 0.01 * i for i in range(1, 10, 2)) / 3600)


def test_killed_build_rerun_gives_the_uninterrupted_ledger(tmp_path: Path) -> None:
    clean_root, killed_root = tmp_path / "clean", tmp_path / "killed"
    build_set(clean_root)
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("shard_set_builder.py")), str(killed_root), "2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.strip())
        if line.strip() == "paused":
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert lines == ["wrote se-train-000000.tar", "wrote se-train-000001.tar", "paused"]
    folder = killed_root / "shards" / "se" / "train"
    assert not (folder / "se-train-000002.tar").exists()
    # The killed write leaves only its temporary file, which a rerun clears before writing.
    assert [path.name.startswith(".se-train-000002.tar.") for path in folder.glob(".*.tmp")] == [True]
    assert ShardSet(make_storage(killed_root), "shards", "se", "train").remove_temporaries() == 1
    assert list(folder.glob(".*.tmp")) == []
    assert [r.name for r in read_ledger(ShardSet(make_storage(killed_root), "shards", "se", "train"))] == [
        "se-train-000000.tar",
        "se-train-000001.tar",
    ]
    assert build_set(killed_root) == ["se-train-000002.tar", "se-train-000003.tar"]
    clean_ledger = (clean_root / "shards" / "se" / "train" / LEDGER_NAME).read_bytes()
    assert (folder / LEDGER_NAME).read_bytes() == clean_ledger
    for name in ("se-train-000000.tar", "se-train-000003.tar"):
        assert (folder / name).read_bytes() == (clean_root / "shards" / "se" / "train" / name).read_bytes()

