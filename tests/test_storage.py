"""Storage roles resolve through profiles; writes are atomic."""

from pathlib import Path

import pytest

from uniflow.config import ConfigError
from uniflow.storage import ROLES, Storage, StorageProfile, atomic_write

PROFILES = Path(__file__).resolve().parents[1] / "storage_config"


def local_storage(root: Path) -> Storage:
    return Storage(StorageProfile(name="t", roles={role: str(root / role) for role in ROLES}))


def test_shipped_profiles_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UNIFLOW_BUCKET", "my-bucket")
    monkeypatch.setenv("UNIFLOW_DATA", str(tmp_path))
    local = Storage.from_file(PROFILES / "local.yaml")
    assert local.path("raw") == tmp_path / "raw"
    s3 = Storage.from_file(PROFILES / "s3.yaml")
    assert s3.url("shards", "tts", "train-000000.tar") == "s3://my-bucket/uniflow/shards/tts/train-000000.tar"
    assert not s3.is_local("shards") and s3.is_local("raw")
    # Accelerate saves training state by path, and reports are files: both stay on the shared filesystem.
    assert s3.is_local("checkpoints") and s3.is_local("reports")
    gcs = Storage.from_file(PROFILES / "gcs.yaml")
    assert gcs.url("features").startswith("gs://my-bucket/")
    demo = Storage.from_file(PROFILES / "demo.yaml")
    assert demo.mirror_url and demo.mirror_url.startswith("http://127.0.0.1:")


def test_profiles_hold_no_credentials() -> None:
    for path in PROFILES.glob("*.yaml"):
        lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        text = "\n".join(lines).lower()
        for word in ("aws_secret", "password", "private_key", "secret:"):
            assert word not in text, f"{path} seems to hold a credential ({word})"


def test_unset_variable_without_default_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIFLOW_BUCKET", raising=False)
    with pytest.raises(ConfigError, match="UNIFLOW_BUCKET is not set"):
        Storage.from_file(PROFILES / "s3.yaml")


def test_remote_raw_role_is_refused() -> None:
    roles = {role: f"s3://b/{role}" for role in ROLES}
    with pytest.raises(ConfigError, match="raw role must be a local or mounted POSIX path"):
        Storage(StorageProfile(name="bad", roles=roles))


def test_missing_role_is_named() -> None:
    with pytest.raises(ConfigError, match="missing checkpoints"):
        Storage(StorageProfile(name="bad", roles={r: "/tmp/x" for r in ROLES if r != "checkpoints"}))


def test_atomic_write_publishes_only_complete_files(tmp_path: Path) -> None:
    storage = local_storage(tmp_path)
    storage.write_text("manifests", "c", "a.txt", text="first")
    with pytest.raises(RuntimeError):
        with storage.open_atomic("manifests", "c", "a.txt", mode="w") as handle:
            handle.write("half written")
            raise RuntimeError("killed midway")
    assert storage.read_text("manifests", "c", "a.txt") == "first"
    assert storage.list("manifests", "c") == ["a.txt"], "no temporary file may be left behind"


def test_atomic_write_through_fsspec_memory() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    with atomic_write("memory://bucket/x.bin", fs=fs) as handle:
        handle.write(b"abc")
    assert fs.cat("memory://bucket/x.bin") == b"abc"


def test_remove_leftovers_deletes_what_killed_writers_left_and_nothing_else(tmp_path: Path) -> None:
    """A writer SIGKILLed inside ``atomic_write`` leaves its temporary; staging folders stay too."""
    import subprocess
    import sys

    from uniflow.storage import remove_leftovers

    killed_writer = (
        "import os, signal, sys\nfrom uniflow.storage import atomic_write\n"
        "with atomic_write(sys.argv[1]) as handle:\n    handle.write(b'half'); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed_writer, str(tmp_path / "ledger.jsonl")], check=False)
    assert [path.name.startswith(".ledger.jsonl.") for path in tmp_path.iterdir()] == [True]
    (tmp_path / ".train-clean-100.partial-4242").mkdir()  # an extraction's staging folder
    (tmp_path / ".fetch-x1y2").mkdir()  # a YouTube fetch's
    kept = ["train-clean-100.completed", "archive.tar.gz.part", ".gitignore", "train-clean-100"]
    for name in kept[:-1]:
        (tmp_path / name).write_text("kept")
    (tmp_path / kept[-1]).mkdir()

    assert remove_leftovers(tmp_path) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
    assert not (tmp_path / "ledger.jsonl").exists()
    assert remove_leftovers(tmp_path / "absent") == 0


def test_build_once_renames_a_whole_build_into_place_and_keeps_what_exists(tmp_path: Path) -> None:
    from uniflow.storage import build_once

    def build(staging: Path) -> Path:
        staging.mkdir()
        (staging / "weights.bin").write_bytes(b"w")
        return staging

    stale = tmp_path / "models" / ".tiny.partial-4242"  # what a killed build left
    stale.mkdir(parents=True)

    def killed(staging: Path) -> Path:
        staging.mkdir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once(tmp_path / "models" / "tiny", killed)
    assert not (tmp_path / "models" / "tiny").exists()  # nothing a rerun could trust
    target = build_once(tmp_path / "models" / "tiny", build)
    assert (target / "weights.bin").read_bytes() == b"w"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny"]  # every staging folder is gone
    (target / "weights.bin").write_bytes(b"kept")
    assert build_once(target, build) == target and (target / "weights.bin").read_bytes() == b"kept"
