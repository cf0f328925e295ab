"""The shard loader: disjoint rank splits, equal batch counts, workers, FLAC decoding, S3 streaming."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from uniflow.shards.loader import decode_sample, make_dataset, make_loader, shard_urls
from uniflow.storage import Storage, StorageProfile

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 24000


def flac_bytes(values: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, values, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def write_shard(path: Path, keys: list[str]) -> None:
    """A shard in the writer's layout: <key>.target.flac, <key>.input.flac, <key>.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for index, key in enumerate(keys):
            # Each sample has its own length so a mix-up between samples would show.
            frames = 2400 + 100 * index
            target = (0.1 * np.sin(np.arange(frames) / 10.0)).astype(np.float32)
            members = {
                f"{key}.target.flac": flac_bytes(target),
                f"{key}.input.flac": flac_bytes(target * 0.5, 16000),
                f"{key}.json": json.dumps({"key": key, "frames": frames}).encode(),
            }
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def make_shards(root: Path, count: int, per_shard: int = 3) -> dict[str, list[str]]:
    """``count`` shards tts-train-000000.tar... under root/tts; returns keys by shard path."""
    layout = {}
    for shard in range(count):
        keys = [f"libritts/s{shard}/utt{item}" for item in range(per_shard)]
        path = root / "tts" / f"tts-train-{shard:06d}.tar"
        write_shard(path, keys)
        layout[str(path)] = keys
    return layout


def local_storage(root: Path) -> Storage:
    roles = {role: str(root / role) for role in ("raw", "work", "manifests", "features", "checkpoints", "reports")}
    return Storage(StorageProfile(name="test", roles={**roles, "shards": str(root / "shards")}))


READER = """
import json, sys
from uniflow.shards.loader import make_dataset, make_loader
urls, rank, resampled = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
dataset = make_dataset(urls, epoch_samples=10, batch_size=2, rank=rank, world_size=2, seed=7,
                       shuffle_buffer=4, resampled=resampled)
batches = [[key for key in batch["key"]] for batch in make_loader(dataset, num_workers=2)]
print(json.dumps({"batches": batches, "urls": sorted({u for b in make_loader(dataset, 0) for u in b["url"]})}))
"""


def read_in_processes(urls: list[str], resampled: bool) -> list[dict]:
    """Ranks 0 and 1 of world size 2, each a separate Python process with 2 DataLoader workers."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", READER, json.dumps(urls), str(rank), "1" if resampled else "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_shard_urls_lists_only_the_task_and_split(tmp_path: Path) -> None:
    storage = local_storage(tmp_path)
    layout = make_shards(tmp_path / "shards", 3)
    write_shard(tmp_path / "shards" / "tts" / "tts-valid-000000.tar", ["libritts/v/utt0"])
    write_shard(tmp_path / "shards" / "se" / "se-train-000000.tar", ["dns/a/b"])
    (tmp_path / "shards" / "tts" / ".tts-train-000003.tar.x1y2.tmp").write_bytes(b"partial")
    assert shard_urls(storage, "shards", "tts", "train") == sorted(layout)
    assert shard_urls(storage, "shards", "svs", "train") == []


def test_decode_sample_decodes_flac_and_json(tmp_path: Path) -> None:
    path = tmp_path / "tts-train-000000.tar"
    write_shard(path, ["vctk/p225/p225_001"])
    with tarfile.open(path) as tar:
        raw = {member.name.split(".", 1)[1]: tar.extractfile(member).read() for member in tar}
    sample = decode_sample({"__key__": "vctk/p225/p225_001", "__url__": str(path), **raw})
    assert sample["key"] == "vctk/p225/p225_001"
    assert sample["meta"] == {"key": "vctk/p225/p225_001", "frames": 2400}
    assert sample["target"].dtype == np.float32 and sample["target"].shape == (2400,)
    assert sample["target_sample_rate"] == 24000 and sample["input_sample_rate"] == 16000
    expected = (0.1 * np.sin(np.arange(2400) / 10.0)).astype(np.float32)
    assert np.allclose(sample["target"], expected, atol=1e-4)


def test_evaluation_split_by_node_is_disjoint_and_complete(tmp_path: Path) -> None:
    layout = make_shards(tmp_path, 5)
    rank0, rank1 = read_in_processes(sorted(layout), resampled=False)
    assert set(rank0["urls"]).isdisjoint(rank1["urls"])
    assert sorted(rank0["urls"] + rank1["urls"]) == sorted(layout)
    keys0 = [key for batch in rank0["batches"] for key in batch]
    keys1 = [key for batch in rank1["batches"] for key in batch]
    # Two workers per rank read every key of the rank's shards exactly once.
    assert sorted(keys0 + keys1) == sorted(key for keys in layout.values() for key in keys)
    assert sorted(keys0) == sorted(key for url in rank0["urls"] for key in layout[url])


def test_training_ranks_yield_the_same_number_of_batches(tmp_path: Path) -> None:
    # 3 shards of unequal size across 2 ranks: reading once would give the ranks unequal data.
    layout = make_shards(tmp_path, 2) | {str(tmp_path / "tts" / "tts-train-000009.tar"): ["a/b"]}
    write_shard(tmp_path / "tts" / "tts-train-000009.tar", ["a/b"])
    rank0, rank1 = read_in_processes(sorted(layout), resampled=True)
    assert len(rank0["batches"]) == len(rank1["batches"]) == 5  # epoch_samples 10 // batch_size 2
    assert all(len(batch) == 2 for batch in rank0["batches"] + rank1["batches"])


def test_training_stream_is_deterministic_and_batches_keep_variable_lengths(tmp_path: Path) -> None:
    urls = sorted(make_shards(tmp_path, 4))

    def keys_of_epoch(epoch: int) -> list[str]:
        dataset = make_dataset(urls, epoch_samples=12, batch_size=3, rank=1, world_size=2, seed=3, shuffle_buffer=5)
        dataset.set_epoch(epoch)
        batches = list(make_loader(dataset, num_workers=0))
        assert [len(b["target"]) for b in batches] == [3, 3, 3, 3]
        assert all(isinstance(b["target"], list) for b in batches)
        assert len({a.shape for b in batches for a in b["target"]}) > 1  # not padded
        return [key for batch in batches for key in batch["key"]]

    assert keys_of_epoch(0) == keys_of_epoch(0)
    assert keys_of_epoch(0) != keys_of_epoch(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_streams_shards_from_s3_compatible_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "UNIFLOW_BUCKET": "uniflow-test",
            "UNIFLOW_SCRATCH": str(tmp_path / "scratch"),
        }.items():
            monkeypatch.setenv(name, value)
        storage = Storage.from_file(REPO / "storage_config" / "s3.yaml")
        fs = storage.fs("shards")
        fs.mkdir("uniflow-test")
        layout = make_shards(tmp_path / "local", 2)
        for path in layout:
            fs.put_file(path, storage.url("shards", "tts", Path(path).name))
        fs.invalidate_cache()

        urls = shard_urls(storage, "shards", "tts", "train")
        assert urls == [
            "s3://uniflow-test/uniflow/shards/tts/tts-train-000000.tar",
            "s3://uniflow-test/uniflow/shards/tts/tts-train-000001.tar",
        ]
        dataset = make_dataset(
            urls,
            epoch_samples=0,
            batch_size=4,
            rank=0,
            world_size=1,
            seed=0,
            shuffle_buffer=0,
            resampled=False,
            storage=storage,
        )
        # Spawned workers: this test process has run event loops and thread pools of earlier tests,
        # and forking it with a live s3fs session is what fsspec warns against.
        batches = list(make_loader(dataset, num_workers=2, multiprocessing_context="spawn"))
        keys = sorted(key for batch in batches for key in batch["key"])
        assert keys == sorted(key for keys in layout.values() for key in keys)
        assert all(audio.shape[0] >= 2400 for batch in batches for audio in batch["target"])
    finally:
        server.stop()
