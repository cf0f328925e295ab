"""Feature shards: one per audio shard, same keys in the same order, with a cache-keyed ledger.

For an audio shard ``shards/<task>/<split>/<task>-<split>-000123.tar`` the stage writes
``features/<task>/<split>/<task>-<split>-000123.tar`` holding, per sample (arrays are ``.npy``)::

    member                    dtype    shape                 tasks
    ------------------------  -------  --------------------  -----------------------------
    latents.npy               float16  (frames, latent_dim)  all (target audio; posterior mean,
                                                             or one seeded draw with posterior: sample)
    latents_std.npy           float16  (frames, latent_dim)  all, with posterior: mean_std (default)
    input_latents.npy         float16  (frames, latent_dim)  se, sr (the degraded input)
    input_latents_std.npy     float16  (frames, latent_dim)  se, sr, with posterior: mean_std
    text.npy                  float16  (tokens, text_dim)    t2a, t2m (T5 of the caption)
    video.npy                 float16  (frames, video_dim)   v2a (CLIP per video frame)
    speaker.npy               float32  (256,)                tts (of the target utterance)
    json                      -                              all: the audio sample's json (phones,
                                                             frames, score... as they were) plus
                                                             ``features`` (encoders, frame counts)

``frames`` is ``len(audio) // 480`` at 24 kHz (50 per second). A sample whose audio, video or
metadata cannot be used is left out and listed in the ledger line with its reason, so the keys of
a feature shard are the audio shard's keys, in the same order, minus the listed ones.

The ledger (``features/<task>/<split>/ledger.jsonl``) has one ``FeatureShardRecord`` per shard.
Its ``cache_key`` hashes everything the shard's bytes depend on: the feature format version, the
identities (id, weights hash, dtype, preprocessing version) of the encoders this task uses, how
latents are stored, and the input audio shard's sha256 from the audio ledger. A rerun recomputes a
shard only when that key changed or the shard is missing or damaged.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import numpy as np
import soundfile as sf
import soxr
from pydantic import Field

from uniflow.config import StrictModel
from uniflow.features.config import TASK_ENCODERS as FROZEN_TASK_ENCODERS
from uniflow.features.config import EncodersConfig, encoders_for_tasks, load_encoders
from uniflow.features.latents import LatentEncoder, LatentSettings, Posterior, stored_latents
from uniflow.shards.ledger import ShardSet, read_ledger, write_ledger
from uniflow.shards.writer import Sample, ShardContents, ShardRecord, write_shard
from uniflow.storage import Storage

FEATURES_VERSION = 1
# Which encoders each task's features need (the VAE for all); only their identities enter the task's cache keys.
TASK_ENCODERS: dict[str, tuple[str, ...]] = {task: ("vae", *names) for task, names in FROZEN_TASK_ENCODERS.items()}
PAIR_TASKS = frozenset({"se", "sr"})
Verify = Literal["size", "sha256"]


class SkippedSample(StrictModel):
    """A sample left out of a feature shard: its key, a short reason, and the error it came from."""

    key: str
    reason: str
    detail: str = ""


class FeatureShardRecord(ShardContents):
    """One feature-ledger line: what the feature shard holds, what it was made from and by what."""

    cache_key: str
    input_sha256: str
    input_samples: int
    encoders: dict[str, dict[str, str | int]]
    skipped: list[SkippedSample] = Field(default_factory=list)


@dataclass
class FeatureEncoders:
    """The loaded encoders; a task only needs those ``TASK_ENCODERS`` names (the others may be None)."""

    vae: LatentEncoder
    text: Any = None  # uniflow.features.text.TextEncoder
    video: Any = None  # uniflow.features.video.VideoEncoder
    speaker: Any = None  # uniflow.features.speaker.SpeakerEncoder

    def for_task(self, task: str) -> dict[str, Any]:
        """Name -> encoder for what ``task`` uses; a missing one is an error naming it."""
        chosen = {name: getattr(self, name) for name in TASK_ENCODERS[task]}
        missing = [name for name, encoder in chosen.items() if encoder is None]
        if missing:
            raise ValueError(f"{task} features need the {', '.join(missing)} encoder(s), which are not loaded")
        return chosen


def latent_settings(config: EncodersConfig, dtype: str = "fp32", batch_frames: int | None = None) -> LatentSettings:
    """The VAE settings of an encoders file: ``sample: true`` stores one draw, otherwise mean and std."""
    extra: dict[str, Any] = {} if batch_frames is None else {"batch_frames": batch_frames}
    posterior: Posterior = "sample" if config.vae.sample else "mean_std"
    return LatentSettings(directory=config.vae.path, dtype=dtype, posterior=posterior, **extra)  # type: ignore[arg-type]


def load_feature_encoders(
    config: EncodersConfig, tasks: list[str], device: str = "auto", vae_dtype: str = "fp32", batch_frames: int | None = None
) -> FeatureEncoders:
    """Load the VAE and the frozen encoders ``tasks`` need (frozen, checked, identified)."""
    from uniflow.features.latents import resolve_device

    resolved = str(resolve_device(device))
    vae = LatentEncoder(latent_settings(config, vae_dtype, batch_frames), resolved)
    loaded = load_encoders(config, encoders_for_tasks(tasks), resolved)
    return FeatureEncoders(vae=vae, text=loaded.text, video=loaded.video, speaker=loaded.speaker)


def identities_for_task(encoders: dict[str, Any]) -> dict[str, dict[str, str | int]]:
    return {name: encoder.identity.as_dict() for name, encoder in sorted(encoders.items())}


def cache_key(task: str, identities: dict[str, dict[str, str | int]], posterior: Posterior, input_sha256: str) -> str:
    """sha256 of everything a feature shard's bytes depend on (canonical JSON)."""
    payload = {
        "features_version": FEATURES_VERSION,
        "task": task,
        "encoders": identities,
        "posterior": posterior,
        "input_sha256": input_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


# -- reading an audio shard -----------------------------------------------------------------------
class _HashingReader:
    """A read-only stream that hashes what is read through it (the audio shard is checked as it streams)."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.sha256.hexdigest()


def _split_member(name: str) -> tuple[str, str]:
    """``tts/libritts/a_b.target.flac`` -> (``tts/libritts/a_b``, ``target.flac``)."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension


def iter_shard_samples(storage: Storage, task: str, split: str, record: ShardRecord) -> Iterator[Sample]:
    """The samples of an audio shard in tar order; raises at the end if its sha256 is not the ledger's."""
    with storage.open("shards", task, split, record.name) as handle:
        reader = _HashingReader(handle)
        current: Sample | None = None
        with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                if not member.isfile():
                    continue
                key, extension = _split_member(member.name)
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                if current is None or current.key != key:
                    if current is not None:
                        yield current
                    current = Sample(key, {})
                current.files[extension] = data
        if current is not None:
            yield current
        digest = reader.drain()
    if digest != record.sha256:
        raise ValueError(
            f"{storage.url('shards', task, split, record.name)}: sha256 {digest} differs from the ledger's {record.sha256}"
        )


# -- building feature samples ---------------------------------------------------------------------
class _SkipSample(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _half(name: str, array: np.ndarray) -> np.ndarray:
    half = np.asarray(array, dtype=np.float32).astype(np.float16)
    if not np.isfinite(half).all():
        raise _SkipSample(f"{name}: not finite in float16")
    return half


def _decode_mono(files: dict[str, bytes], member: str, sample_rate: int) -> np.ndarray:
    """A member's audio as mono float32 at ``sample_rate`` (resampled with soxr HQ when it differs)."""
    if member not in files:
        raise _SkipSample(f"{member}: missing")
    try:
        audio, rate = sf.read(io.BytesIO(files[member]), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or ValueError
        raise _SkipSample(f"{member}: undecodable", str(exc)) from None
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    if not np.isfinite(mono).all():
        raise _SkipSample(f"{member}: not finite")
    return mono


@dataclass
class _Pending:
    """A sample whose per-sample features are done and whose batched ones (latents, text) are not yet."""

    key: str
    meta: dict[str, Any]
    target: np.ndarray
    input: np.ndarray | None = None
    caption: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)


class FeatureShardBuilder:
    """Turns the samples of one audio shard into feature samples, a chunk at a time."""

    def __init__(self, task: str, encoders: FeatureEncoders, chunk_samples: int = 256) -> None:
        self.task = task
        self.chunk_samples = chunk_samples
        self.posterior: Posterior = encoders.vae.settings.posterior
        self.encoders = encoders.for_task(task)
        self.identities = identities_for_task(self.encoders)
        self.vae: LatentEncoder = self.encoders["vae"]
        self.skipped: list[SkippedSample] = []

    def _prepare(self, sample: Sample) -> _Pending:
        """Decode and check one sample; run its per-sample encoders (video, speaker)."""
        try:
            meta = json.loads(sample.files["json"])
        except KeyError:
            raise _SkipSample("json: missing") from None
        except ValueError as exc:
            raise _SkipSample("json: unreadable", str(exc)) from None
        rate, ratio = self.vae.sample_rate, self.vae.ratio
        pending = _Pending(sample.key, meta, _decode_mono(sample.files, "target.flac", rate))
        if pending.target.size < ratio:
            raise _SkipSample("target.flac: shorter than one latent frame", f"{pending.target.size} samples < {ratio}")
        if self.task in PAIR_TASKS:
            pending.input = _decode_mono(sample.files, "input.flac", rate)
            if pending.input.size < ratio:
                raise _SkipSample("input.flac: shorter than one latent frame", f"{pending.input.size} samples < {ratio}")
        if self.task in ("t2a", "t2m"):
            caption = (meta.get("caption") or "").strip()
            if not caption:
                raise _SkipSample("json: no caption")
            pending.caption = caption
        if self.task == "v2a":
            members = sorted(name for name in sample.files if name.startswith("video."))
            if not members:
                raise _SkipSample("video: missing")
            try:
                frames = self.encoders["video"].encode(sample.files[members[0]], name=f"{sample.key}.{members[0]}")
            except Exception as exc:  # PyAV and the encoder raise many types for a broken container
                raise _SkipSample("video: undecodable", str(exc)) from None
            pending.files["video.npy"] = _npy(_half("video", frames))
        if self.task == "tts":
            try:
                embedding = self.encoders["speaker"].embed(pending.target, rate)
            except Exception as exc:  # one utterance the encoder cannot embed must not sink the shard
                raise _SkipSample("speaker: no embedding", str(exc)) from None
            pending.files["speaker.npy"] = _npy(np.asarray(embedding, dtype=np.float32))
        return pending

    def _finish(self, chunk: list[_Pending]) -> Iterator[Sample]:
        """Batched encoders over a chunk, then the chunk's samples in their original order."""
        clips = [pending.target for pending in chunk] + [p.input for p in chunk if p.input is not None]
        posteriors = self.vae.encode(clips)
        targets, inputs = posteriors[: len(chunk)], iter(posteriors[len(chunk) :])
        texts: dict[str, np.ndarray] = {}
        captions = [pending.caption for pending in chunk if pending.caption is not None]
        if captions:
            texts = dict(zip(captions, self.encoders["text"].encode(captions), strict=True))
        for pending, target in zip(chunk, targets, strict=True):
            try:
                files = dict(pending.files)
                for stem, array in stored_latents(target, self.posterior, pending.key).items():
                    files[f"{stem}.npy"] = _npy(_half(stem, array))
                features: dict[str, Any] = {
                    "version": FEATURES_VERSION,
                    "encoders": self.identities,
                    "posterior": self.posterior,
                    "latent_rate": self.vae.config.frame_rate,
                    "latent_frames": int(target.mean.shape[0]),
                }
                if pending.input is not None:
                    source = next(inputs)
                    for stem, array in stored_latents(source, self.posterior, pending.key + "/input").items():
                        files[f"input_{stem}.npy"] = _npy(_half(f"input_{stem}", array))
                    features["input_latent_frames"] = int(source.mean.shape[0])
                if pending.caption is not None:
                    files["text.npy"] = _npy(_half("text", texts[pending.caption]))
                    features["text_tokens"] = int(texts[pending.caption].shape[0])
                if "video.npy" in files:
                    features["video_frames"] = int(np.load(io.BytesIO(files["video.npy"])).shape[0])
            except _SkipSample as skip:
                self.skipped.append(SkippedSample(key=pending.key, reason=skip.reason, detail=skip.detail))
                continue
            meta = {**pending.meta, "features": features}
            files["json"] = json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            yield Sample(pending.key, files)

    def build(self, samples: Iterator[Sample]) -> Iterator[Sample]:
        """Feature samples for ``samples``, in order, leaving out (and recording) the unusable ones."""
        chunk: list[_Pending] = []
        for sample in samples:
            try:
                chunk.append(self._prepare(sample))
            except _SkipSample as skip:
                self.skipped.append(SkippedSample(key=sample.key, reason=skip.reason, detail=skip.detail[:500]))
                continue
            if len(chunk) >= self.chunk_samples:
                yield from self._finish(chunk)
                chunk = []
        if chunk:
            yield from self._finish(chunk)


def extract_feature_shard(
    storage: Storage, task: str, split: str, audio: ShardRecord, encoders: FeatureEncoders, chunk_samples: int = 256
) -> FeatureShardRecord:
    """Write the feature shard of one audio shard (atomically) and return its ledger line."""
    builder = FeatureShardBuilder(task, encoders, chunk_samples)
    key = cache_key(task, builder.identities, builder.posterior, audio.sha256)
    target = ShardSet(storage, "features", task, split).url(audio.name)
    samples = builder.build(iter_shard_samples(storage, task, split, audio))
    written = write_shard(samples, target, storage.fs("features"), source_hash=key)
    return FeatureShardRecord(
        **written.model_dump(include=set(ShardContents.model_fields)),
        cache_key=key,
        input_sha256=audio.sha256,
        input_samples=audio.samples,
        encoders=builder.identities,
        skipped=builder.skipped,
    )


# -- the feature ledger and what a rerun must redo --------------------------------------------------
def feature_set(storage: Storage, task: str, split: str) -> ShardSet:
    return ShardSet(storage, "features", task, split)


def read_feature_ledger(shard_set: ShardSet) -> list[FeatureShardRecord]:
    """The feature ledger's records (empty when there is none yet)."""
    return read_ledger(shard_set, FeatureShardRecord)


def write_feature_ledger(shard_set: ShardSet, records: list[FeatureShardRecord]) -> None:
    """Replace the feature ledger atomically, sorted by shard name."""
    write_ledger(shard_set, records)


@dataclass
class FeatureWork:
    """One audio shard whose feature shard must be (re)computed, and why."""

    audio: ShardRecord
    cache_key: str
    why: str


@dataclass
class FeaturePlan:
    """What a run does for one task's split: shards to compute, shards reused, stale ones to remove."""

    task: str
    split: str
    todo: list[FeatureWork]
    reused: list[str]
    stale: list[str]
    ledger: list[FeatureShardRecord]
    audio_names: list[str]

    @property
    def why_counts(self) -> dict[str, int]:
        return dict(Counter(work.why for work in self.todo))


def _sha256_of(storage: Storage, shard_set: ShardSet, name: str) -> str:
    digest = hashlib.sha256()
    with storage.open(shard_set.role, shard_set.task, shard_set.split, name) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def plan_features(
    storage: Storage,
    task: str,
    split: str,
    identities: dict[str, dict[str, str | int]],
    posterior: Posterior = "mean_std",
    verify: Verify = "size",
) -> FeaturePlan:
    """Compare the audio ledger with the feature ledger and the files present; decide what to recompute.

    ``verify="size"`` compares sizes from one listing; ``"sha256"`` re-reads every reused shard.
    """
    audio_ledger = read_ledger(ShardSet(storage, "shards", task, split))
    features = feature_set(storage, task, split)
    ledger = read_feature_ledger(features)
    by_name = {record.name: record for record in ledger}
    sizes = features.tar_sizes()
    todo: list[FeatureWork] = []
    reused: list[str] = []
    for audio in audio_ledger:
        key = cache_key(task, identities, posterior, audio.sha256)
        record = by_name.get(audio.name)
        if record is None:
            why = "new"
        elif record.cache_key != key:
            why = "cache key changed"
        elif audio.name not in sizes:
            why = "feature shard missing"
        elif sizes[audio.name] != record.bytes:
            why = "feature shard damaged (size)"
        elif verify == "sha256" and _sha256_of(storage, features, audio.name) != record.sha256:
            why = "feature shard damaged (sha256)"
        else:
            reused.append(audio.name)
            continue
        todo.append(FeatureWork(audio, key, why))
    audio_names = [record.name for record in audio_ledger]
    stale = sorted((set(sizes) | set(by_name)) - set(audio_names))
    return FeaturePlan(task, split, todo, reused, stale, ledger, audio_names)


def remove_stale(storage: Storage, plan: FeaturePlan) -> None:
    """Delete feature shards whose audio shard is gone (a loader would otherwise read them)."""
    for name in plan.stale:
        storage.remove("features", plan.task, plan.split, name)
