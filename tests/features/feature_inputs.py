"""Audio shard sets of real recorded speech (24 kHz FLAC, as the shard stage writes them) and tiny VAEs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from uniflow.audio import encode_flac
from uniflow.model.vae import UniflowVae, VaeConfig
from uniflow.shards.ledger import ShardSet, write_ledger
from uniflow.shards.writer import Sample, ShardRecord, write_shard
from uniflow.storage import Storage

SPEECH = sorted(Path("/usr/share/pocketsphinx/test/data/librivox").glob("*.wav"))
RATE = 24_000
# 128 latent channels as in the paper, at a toy width so it loads and runs in milliseconds.
TINY_128 = VaeConfig(channels=4, latent_dim=128)


def speech(index: int, seconds: float) -> np.ndarray:
    """``seconds`` of a real LibriVox recording, resampled to 24 kHz."""
    audio, rate = soundfile.read(SPEECH[index % len(SPEECH)], dtype="float32")
    return soxr.resample(audio, rate, RATE)[: round(seconds * RATE)].astype(np.float32)


def save_vae(directory: Path, seed: int = 0, config: VaeConfig = TINY_128) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UniflowVae(config).save_pretrained(directory)


def sample(task: str, key: str, audio: np.ndarray, **fields: object) -> Sample:
    meta = {"key": key, "task": task, "corpus": key.split("/")[1], "seconds": audio.size / RATE, "sample_rate": RATE, **fields}
    files = {"target.flac": encode_flac(audio, RATE), "json": json.dumps(meta, sort_keys=True).encode()}
    if task in ("se", "sr"):
        files["input.flac"] = encode_flac(0.5 * audio + 0.01 * np.sin(np.arange(audio.size, dtype=np.float32)), RATE)
    return Sample(key, files)


def write_set(storage: Storage, task: str, split: str, shards: list[list[Sample]]) -> list[ShardRecord]:
    """Write ``shards`` as the audio shard set ``task/split`` with its ledger; returns the ledger."""
    shard_set = ShardSet(storage, "shards", task, split)
    records = [
        write_shard(samples, shard_set.url(shard_set.shard_name(index)), storage.fs("shards"), source_hash="test")
        for index, samples in enumerate(shards)
    ]
    write_ledger(shard_set, records)
    return records
