"""Validation re-reads a shard set and names each corrupted shard with the reason."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from shard_set_builder import build_set, make_samples

from support import make_storage
from uniflow.shards.ledger import LEDGER_NAME, ShardSet, read_ledger, write_ledger
from uniflow.shards.validate import ValidationReport, validate_shard_set
from uniflow.shards.writer import Sample, write_shard
from uniflow.storage import ROLES, Storage, StorageProfile

SE_FILES = ("input.flac", "target.flac", "json")


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    build_set(root)
    return root


@pytest.fixture
def shard_root(clean_set: Path, tmp_path: Path) -> Path:
    """A private copy of the clean set to damage."""
    shutil.copytree(clean_set, tmp_path / "set")
    return tmp_path / "set"


def folder(root: Path) -> Path:
    return root / "shards" / "se" / "train"


def validate(root: Path) -> ValidationReport:
    return validate_shard_set(make_storage(root), "shards", "se", "train", SE_FILES)


def reasons(report: ValidationReport) -> list[str]:
    return [str(fault) for fault in report.faults]


def test_clean_set_is_ok(clean_set: Path) -> None:
    report = validate(clean_set)
    assert report.ok, report.summary()
    assert (report.shards_checked, report.samples_checked) == (4, 10)


def test_flipped_byte_is_caught(shard_root: Path) -> None:
    path = folder(shard_root) / "se-train-000001.tar"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    report = validate(shard_root)
    assert not report.ok
    assert {fault.shard for fault in report.faults} == {"se-train-000001.tar"}
    assert any("sha256" in reason for reason in reasons(report))


def test_truncated_tar_is_caught(shard_root: Path) -> None:
    path = folder(shard_root) / "se-train-000002.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert any("se-train-000002.tar: tar is not readable to the end" in reason for reason in reasons(validate(shard_root)))
    # Cut exactly at a header boundary, tarfile itself stops quietly: the missing end marker is caught.
    path.write_bytes(data[:1536])
    assert any("se-train-000002.tar: tar is not readable to the end" in reason for reason in reasons(validate(shard_root)))


def test_missing_member_is_caught(shard_root: Path) -> None:
    samples = [sample for _, sample in sorted(make_samples().items())]
    shard_set = ShardSet(make_storage(shard_root), "shards", "se", "train")
    broken = Sample(samples[0].key, {ext: data for ext, data in samples[0].files.items() if ext != "input.flac"})
    record = write_shard([broken, *samples[1:3]], shard_set.url("se-train-000000.tar"), source_hash="abc123")
    # The ledger agrees with the tar, so only the sample check can find the fault.
    write_ledger(shard_set, [record, *read_ledger(shard_set)[1:]])
    assert reasons(validate(shard_root)) == ["se-train-000000.tar: sample 'dns/p000': missing input.flac"]


def test_undecodable_audio_and_bad_json_are_caught(shard_root: Path) -> None:
    shard_set = ShardSet(make_storage(shard_root), "shards", "se", "train")
    sample = make_samples()["dns/p000"]
    # Written with tarfile directly: write_shard itself refuses a sample whose json does not parse.
    files = {**sample.files, "target.flac": b"fLaC not really", "json": b"{broken"}
    with tarfile.open(shard_set.url("se-train-000000.tar"), "w") as tar:
        for extension, data in files.items():
            member = tarfile.TarInfo(f"dns/p000.{extension}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    found = reasons(validate(shard_root))
    assert any("'dns/p000': target.flac does not decode" in reason for reason in found)
    assert any("'dns/p000': json does not parse" in reason for reason in found)


def test_extra_tar_and_missing_tar_are_caught(shard_root: Path) -> None:
    shutil.copy(folder(shard_root) / "se-train-000003.tar", folder(shard_root) / "se-train-000004.tar")
    (folder(shard_root) / "se-train-000001.tar").unlink()
    found = reasons(validate(shard_root))
    assert "se-train-000004.tar: tar has no ledger line" in found
    assert "se-train-000001.tar: listed in the ledger but the tar is missing" in found
    # The copy also repeats every key of shard 3.
    assert "se-train-000004.tar: key 'vctk/p009' is also in se-train-000003.tar" in found


def test_duplicate_key_across_shards_is_caught(shard_root: Path) -> None:
    shard_set = ShardSet(make_storage(shard_root), "shards", "se", "train")
    samples = make_samples()
    ledger = read_ledger(shard_set)
    # Shard 1 holds shard 0's dns/p004 too (with a matching ledger line), so the set has one key twice.
    keys = ["dns/p004", "dns/p006", "dns/p008", "vctk/p001"]
    record = write_shard([samples[key] for key in keys], shard_set.url("se-train-000001.tar"), source_hash="abc123")
    write_ledger(shard_set, [ledger[0], record, *ledger[2:]])
    assert reasons(validate(shard_root)) == [
        "se-train-000001.tar: key 'dns/p004' is also in se-train-000000.tar",
    ]


def test_required_files_may_depend_on_the_sample(clean_set: Path) -> None:
    """A callable decides per sample (here: vctk samples must also carry a transcript)."""

    def required(meta: dict | None) -> tuple[str, ...]:
        return (*SE_FILES, "txt") if meta and meta["corpus"] == "vctk" else SE_FILES

    report = validate_shard_set(make_storage(clean_set), "shards", "se", "train", required)
    assert len(report.faults) == 5 and all("missing txt" in str(fault) for fault in report.faults)
    assert json.loads((folder(clean_set) / LEDGER_NAME).read_text().splitlines()[0])["name"] == "se-train-000000.tar"


def test_shard_set_on_an_fsspec_url_validates(clean_set: Path, tmp_path: Path) -> None:
    """The same code writes and checks a set behind a URL (fsspec's in-memory filesystem here)."""
    # raw and work must stay POSIX paths; every other role is remote.
    roles = {role: str(tmp_path / role) if role in ("raw", "work") else f"memory://uniflow-test/{role}" for role in ROLES}
    storage = Storage(StorageProfile(name="memory", roles=roles))
    shard_set = ShardSet(storage, "shards", "se", "train")
    samples = [sample for _, sample in sorted(make_samples().items())]
    records = [
        write_shard(samples[start : start + 3], shard_set.url(shard_set.shard_name(index)), storage.fs("shards"), "abc123")
        for index, start in enumerate(range(0, len(samples), 3))
    ]
    write_ledger(shard_set, records)
    try:
        assert validate_shard_set(storage, "shards", "se", "train", SE_FILES).ok
        # Same samples, same bytes: the remote ledger equals the local one.
        assert storage.read_text("shards", "se", "train", LEDGER_NAME) == (folder(clean_set) / LEDGER_NAME).read_text()
    finally:
        storage.remove("shards")
