"""Feature shard sets of every task for the training-data tests, in the feature stage's exact format.

Target latents are real: a tiny 128-channel VAE's posteriors of LibriVox speech (``feature_inputs``).
The frozen-encoder arrays (T5 text, CLIP video, speaker) are small seeded arrays of the stored shapes;
the members, dtypes, json fields and the ledger are those ``uniflow.features.stage`` writes.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))

from feature_inputs import sample, save_vae, speech, write_set  # noqa: E402
from uniflow.features.latents import LatentEncoder, PosteriorArrays  # noqa: E402
from uniflow.features.stage import FeatureShardRecord, feature_set, write_feature_ledger  # noqa: E402
from uniflow.shards.writer import Sample, write_shard  # noqa: E402
from uniflow.storage import Storage  # noqa: E402

# Re-exported: the audio-shard helpers of tests/features, for tests that run the real feature stage.
__all__ = [
    "sample",
    "save_vae",
    "speech",
    "write_set",
    "feature_sample",
    "posteriors",
    "write_feature_set",
    "write_task_sets",
    "write_instructions",
]
TEXT_DIM, VIDEO_DIM, INSTRUCTION_DIM = 16, 16, 16
TTS_PHONES = ["sil", "HH", "AH0", "L", "OW1", "sil"]
SVS_PHONES = ["SP", "n", "i", "h", "ao", "AP"]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _split_frames(total: int, parts: int) -> list[int]:
    """``parts`` positive counts summing to ``total`` (per-phone frames, as the aligner writes them)."""
    base = [total // parts] * parts
    base[-1] += total - sum(base)
    return base


def posteriors(encoder: LatentEncoder, count: int) -> list[PosteriorArrays]:
    """Posteriors of ``count`` speech clips of 0.3-0.9 s (15-45 latent frames)."""
    return encoder.encode([speech(index, 0.3 + 0.1 * (index % 7)) for index in range(count)])


def feature_sample(task: str, key: str, posterior: PosteriorArrays, rng: np.random.Generator) -> Sample:
    """One feature sample of ``task`` around a target posterior, with the members the stage writes."""
    frames = int(posterior.mean.shape[0])
    files = {"latents.npy": _npy(posterior.mean.astype(np.float16)), "latents_std.npy": _npy(posterior.std.astype(np.float16))}
    meta: dict = {"key": key, "task": task, "corpus": key.split("/")[1], "seconds": frames / 50, "sample_rate": 24000}
    features: dict = {"version": 1, "posterior": "mean_std", "latent_rate": 50, "latent_frames": frames}
    if task == "tts":
        meta.update(
            text="hello", speaker="19", phones=TTS_PHONES, frames=_split_frames(frames, len(TTS_PHONES)), latent_frames=frames
        )
        files["speaker.npy"] = _npy(rng.standard_normal(256).astype(np.float32))
    elif task == "svs":
        count = len(SVS_PHONES)
        score = {
            "phones": SVS_PHONES,
            "frames": _split_frames(frames, count),
            "midi": [0, 60, 60, 62, 62, 0],
            "note_seconds": [0.1] * count,
            "slur": [0, 0, 0, 0, 1, 0],
        }
        meta.update(speaker="Tenor-1", text="你好", score=score)
    elif task in ("t2a", "t2m"):
        tokens = int(rng.integers(3, 9))
        meta["caption"] = f"a sound number {key[-1]}"
        files["text.npy"] = _npy(rng.standard_normal((tokens, TEXT_DIM)).astype(np.float16))
        features["text_tokens"] = tokens
    elif task in ("se", "sr"):
        files["input_latents.npy"] = _npy((0.5 * posterior.mean).astype(np.float16))
        files["input_latents_std.npy"] = _npy(posterior.std.astype(np.float16))
        features["input_latent_frames"] = frames
        meta["simulation"] = {"seed": 1}
    else:
        video_frames = max(1, frames // 5)
        files["video.npy"] = _npy(rng.standard_normal((video_frames, VIDEO_DIM)).astype(np.float16))
        features["video_frames"] = video_frames
        meta["video"] = f"visualsound/{key[-3:]}.mp4"
    meta["features"] = features
    files["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return Sample(key, files)


def write_feature_set(storage: Storage, task: str, split: str, shards: list[list[Sample]]) -> list[FeatureShardRecord]:
    """Write ``shards`` as the feature set ``task/split`` with its ledger, as the feature stage does."""
    shard_set = feature_set(storage, task, split)
    records = []
    for index, samples in enumerate(shards):
        written = write_shard(samples, shard_set.url(shard_set.shard_name(index)), storage.fs("features"), source_hash="test")
        records.append(
            FeatureShardRecord(
                name=written.name, sha256=written.sha256, bytes=written.bytes, samples=written.samples,
                seconds=written.seconds, keys_sha256=written.keys_sha256, cache_key="test", input_sha256="test",
                input_samples=written.samples, encoders={},
            )
        )  # fmt: skip
    write_feature_ledger(shard_set, records)
    return records


def write_task_sets(
    storage: Storage,
    arrays: list[PosteriorArrays],
    shards: dict[str, int],
    split: str = "train",
    per_shard: int = 3,
) -> dict[str, list[str]]:
    """``shards[task]`` shards of ``per_shard`` samples for each task; returns the keys per task."""
    rng = np.random.default_rng(0)
    keys: dict[str, list[str]] = {}
    for task, count in shards.items():
        shard_samples = []
        for shard in range(count):
            samples = []
            for index in range(per_shard):
                number = shard * per_shard + index
                key = f"{task}/corpus/{split}_{shard:02d}_{index:02d}"
                samples.append(feature_sample(task, key, arrays[(number + len(keys)) % len(arrays)], rng))
            shard_samples.append(samples)
        write_feature_set(storage, task, split, shard_samples)
        keys[task] = [sample.key for samples in shard_samples for sample in samples]
    return keys


def write_instructions(storage: Storage, tasks: tuple[str, ...], count: int = 10) -> None:
    """``features/instructions/t5_embeddings.safetensors`` with ``{task}_{index}`` of 4-7 tokens."""
    rng = np.random.default_rng(1)
    embeddings = {
        f"{task}_{index}": rng.standard_normal((4 + index % 4, INSTRUCTION_DIM)).astype(np.float32)
        for task in tasks
        for index in range(count)
    }
    storage.write_bytes("features", "instructions", "t5_embeddings.safetensors", data=save(embeddings))
