"""A small SE shard set built the way the shard flow builds one, for the shard tests.

Run as a script (``python shard_set_builder.py ROOT PAUSE_IN_SHARD``) it builds the set and pauses
midway through one shard, so a test can kill it there.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support, when run as a script

from support import make_storage  # noqa: E402
from uniflow.shards.ledger import ShardSet, read_ledger, shards_to_write, update_ledger, write_ledger  # noqa: E402
from uniflow.shards.writer import Sample, assign_shards, write_shard  # noqa: E402

SAMPLE_RATE = 16000
MAX_SAMPLES = 3


def flac_bytes(seconds: float, frequency: float) -> bytes:
    time_axis = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * frequency * time_axis), SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def make_samples(count: int = 10) -> dict[str, Sample]:
    """Tiny SE-like samples from two corpora; keys carry '/' namespaces but never dots."""
    samples = {}
    for index in range(count):
        corpus = "vctk" if index % 2 else "dns"
        seconds = 0.05 + 0.01 * index
        key = f"{corpus}/p{index:03d}"
        meta = {"corpus": corpus, "seconds": seconds, "source": key}
        samples[key] = Sample(
            key,
            {
                "target.flac": flac_bytes(seconds, 220.0 + 10 * index),
                "input.flac": flac_bytes(seconds, 440.0 + 10 * index),
                "json": json.dumps(meta, sort_keys=True).encode(),
            },
        )
    return samples


def build_set(root: Path, pause_in_shard: int | None = None) -> list[str]:
    """Plan, write the shards still to write, and update the ledger after each one (as the flow will).

    With ``pause_in_shard`` the build prints "paused" midway through that shard and sleeps, so a
    test can kill it there. Returns the names it wrote.
    """
    samples = make_samples()
    shard_set = ShardSet(make_storage(root), "shards", "se", "train")
    plan = assign_shards(((key, sum(map(len, sample.files.values()))) for key, sample in samples.items()), MAX_SAMPLES, 1 << 30)
    names = [shard_set.shard_name(index) for index in range(len(plan))]
    ledger = read_ledger(shard_set)
    todo = shards_to_write(names, ledger, shard_set)
    for index, name in enumerate(names):
        if name not in todo:
            continue

        def stream(keys: list[str] = plan[index], index: int = index) -> Iterator[Sample]:
            for position, key in enumerate(keys):
                if index == pause_in_shard and position == 1:
                    print("paused", flush=True)
                    time.sleep(60)
                yield samples[key]

        record = write_shard(stream(), shard_set.url(name), shard_set.storage.fs("shards"), source_hash="abc123")
        ledger = update_ledger(ledger, [record], names)
        write_ledger(shard_set, ledger)
        print(f"wrote {name}", flush=True)
    return todo




if __name__ == "__main__":
    build_set(Path(sys.argv[1]), pause_in_shard=int(sys.argv[2]))
