"""What goes into a task's shards: the list of sample sources, and one WebDataset sample per source.

``sample_sources`` lists, deterministically and sorted by key, everything a task's split is made of
(manifest records joined with their alignment or score, or the rendered pairs of the simulation
stage), decides each sample's crop window from the task's ``clip`` rule in ``datasets/plan.yaml``
and estimates its size for ``assign_shards``. ``build_sample`` turns one source into a ``Sample``.
Both depend only on the input files and the key, so a rebuild gives the same keys and bytes.

Sample schema per task (every audio file is 16-bit FLAC, 24 kHz, mono)::

    task     files                               json fields besides the common ones
    -------  ----------------------------------  ---------------------------------------------------
    tts      target.flac, json                   text, speaker, phones, frames, latent_frames
    svs      target.flac, json                   speaker, score {phones, frames, midi, note_seconds, slur}
    t2a      target.flac, json                   caption (and captions when the corpus has several)
    t2m      target.flac, json                   caption
    se, sr   input.flac, target.flac, json       simulation (every parameter of the pair), batch
    v2a      target.flac, video.<ext>, json      video (its path in the raw role), caption when given

Common json fields: ``key``, ``task``, ``split``, ``corpus``, ``source_id`` (manifest id or
simulation key), ``seconds`` (of target.flac), ``sample_rate``, ``license``, ``record`` (the whole
manifest line, absent for simulated pairs), ``clip`` {``offset_seconds``, ``seconds``,
``source_seconds``, ``rule``, ``seed``} and ``code_version``. ``frames`` / ``score.frames`` are
latent frame counts of the whole recording: TTS, SVS and V2A are never cropped, only kept or
skipped, so they stay true.

Keys are ``<task>/<manifest id>`` (e.g. ``tts/libritts/19_198_000000_000000``) or, for SE and SR,
the simulation key (``se/libritts/.../r0``, ``sr/hq_tts/.../c0``), which ``uniflow simulate
replay`` takes; manifest ids never contain dots, so neither do keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from uniflow.audio import encode_flac
from uniflow.corpora.manifest import manifest_name, read_manifest
from uniflow.corpora.recipe import ClipRule, Plan
from uniflow.jsonl import iter_jsonl_gz
from uniflow.shards.writer import Sample, check_key
from uniflow.simulate.stage import PAIR_MEMBERS
from uniflow.storage import Role, Storage

SAMPLES_VERSION = 1
SAMPLE_RATE = 24_000
# Size estimate for shard planning: 16-bit PCM (FLAC is smaller, so shards stay under max_bytes) plus json.
BYTES_PER_SECOND = SAMPLE_RATE * 2
JSON_BYTES = 2048
# Cropping a time-aligned sample would break its per-phone frames (tts, svs) or its video (v2a).
UNCROPPABLE_TASKS = frozenset({"tts", "svs", "v2a"})
PAIR_TASKS = frozenset({"se", "sr"})


def code_version() -> str:
    try:
        package = metadata.version("uniflow")
    except metadata.PackageNotFoundError:
        package = "source"
    return f"uniflow {package} samples v{SAMPLES_VERSION}"


@dataclass
class SampleSource:
    """One future sample: where it comes from, its crop window, and its size estimate."""

    key: str
    task: str
    split: str
    corpus: str
    source_id: str
    seconds: float  # what the sample will hold, after clipping
    bytes: int  # estimate, for assign_shards
    source_seconds: float  # length of the source before clipping
    offset_seconds: float = 0.0
    crop_seed: int | None = None
    rule: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)  # manifest line (empty for se/sr: their json is in the tar)
    annotation: dict[str, Any] = field(default_factory=dict)  # alignment durations or singing score
    pair: dict[str, Any] | None = None  # se/sr: {"tar": path under work, "members": {ext: [data offset, size]}}


class SampleSources(list[SampleSource]):
    """The sorted sources of a task's split, with the hash of the inputs and what was skipped, and why."""

    def __init__(self, sources: list[SampleSource], source_hash: str, skipped: Counter[str]) -> None:
        super().__init__(sources)
        self.source_hash = source_hash
        self.skipped = skipped


@dataclass(frozen=True)
class SampleConfig:
    """How audio is written: rate and resampler quality (the clip window is decided by the source)."""

    sample_rate: int = SAMPLE_RATE
    resample_quality: str = "HQ"


# -- choosing sources -----------------------------------------------------------------------------------
def crop_seed(key: str) -> int:
    """A 63-bit seed from the key alone, so a crop never depends on what else is in the set."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> 1


def clip_window(key: str, seconds: float, rule: ClipRule | None) -> tuple[float, float, int | None] | str:
    """(offset, length, seed) of the sample within its source, or the reason it is skipped."""
    if rule is None:
        return 0.0, seconds, None
    if seconds < rule.min_seconds:
        return f"shorter than {rule.min_seconds:g} s"
    if rule.max_seconds is None or seconds <= rule.max_seconds or rule.mode == "keep":
        return 0.0, seconds, None
    if rule.mode == "drop_outside":
        return f"longer than {rule.max_seconds:g} s"
    # random_crop, on the 24 kHz sample grid so input and target of a pair cut at the same sample.
    seed = crop_seed(key)
    total, length = round(seconds * SAMPLE_RATE), round(rule.max_seconds * SAMPLE_RATE)
    offset = int(np.random.default_rng(seed).integers(0, total - length + 1))
    return offset / SAMPLE_RATE, length / SAMPLE_RATE, seed


class _Inputs:
    """Digests of every input file used, folded into one ``source_hash``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.lines: list[str] = []

    def add(self, role: Role, *parts: str) -> None:
        digest = hashlib.sha256()
        with self.storage.open(role, *parts) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        self.lines.append(f"{role}/{'/'.join(parts)} {digest.hexdigest()}\n")

    def digest(self, *extra: str) -> str:
        return hashlib.sha256("".join(sorted(self.lines) + list(extra)).encode("utf-8")).hexdigest()


def _annotations(storage: Storage, inputs: _Inputs, corpus: str, name: str) -> dict[str, dict[str, Any]]:
    """id -> what a sample needs of an alignment (its durations) or score (all but the id); {} when absent.

    Only that part is kept: word and phone intervals of a large corpus's alignments would not fit in memory.
    """
    if not storage.exists("manifests", corpus, name):
        return {}
    inputs.add("manifests", corpus, name)
    with storage.open("manifests", corpus, name) as handle:
        if name.endswith(".align.jsonl.gz"):
            return {line["id"]: line["durations"] for line in iter_jsonl_gz(handle)}
        return {line["id"]: {field: value for field, value in line.items() if field != "id"} for line in iter_jsonl_gz(handle)}


def _raw_path(storage: Storage, relative: str) -> Path:
    path = Path(relative)
    return path if path.is_absolute() else storage.path("raw", relative)


def _record_sources(
    storage: Storage, plan: Plan, task: str, split: str, rule: ClipRule | None, inputs: _Inputs, skipped: Counter[str]
) -> list[SampleSource]:
    """Sources of the tasks made from manifest records: tts, svs, t2a, t2m, v2a."""
    sources: list[SampleSource] = []
    for task_source in plan.tasks[task].sources:
        if task_source.role != "target":
            continue
        corpus = task_source.corpus
        if not storage.exists("manifests", corpus, manifest_name(split)):
            skipped[f"{corpus}: no {split} manifest"] += 1
            continue
        inputs.add("manifests", corpus, manifest_name(split))
        annotations: dict[str, dict[str, Any]] = {}
        if task == "tts":
            annotations = _annotations(storage, inputs, corpus, f"{split}.align.jsonl.gz")
        elif task == "svs":
            annotations = _annotations(storage, inputs, corpus, f"{split}.score.jsonl.gz")
        for record in read_manifest(storage, corpus, split):
            annotation: dict[str, Any] = annotations.get(record["id"], {})
            if task == "tts" and not annotation:
                skipped["no alignment"] += 1
                continue
            if task == "svs" and not annotation:
                skipped["no score"] += 1
                continue
            if task in ("t2a", "t2m") and not (record.get("caption") or "").strip():
                skipped["no caption"] += 1
                continue
            elif task == "v2a" and not record.get("video"):
                skipped["no video"] += 1
                continue
            key = f"{task}/{record['id']}"
            window = clip_window(key, float(record["seconds"]), rule)
            if isinstance(window, str):
                skipped[window] += 1
                continue
            offset, seconds, seed = window
            size = int(seconds * BYTES_PER_SECOND) + JSON_BYTES
            if task == "v2a":
                size += _raw_path(storage, record["video"]).stat().st_size
            sources.append(
                SampleSource(
                    key=key, task=task, split=split, corpus=corpus, source_id=record["id"], seconds=round(seconds, 6),
                    bytes=size, source_seconds=float(record["seconds"]), offset_seconds=offset, crop_seed=seed,
                    rule=rule.model_dump() if rule else None, record=record, annotation=annotation,
                )
            )
    return sources


def _member_key(name: str) -> tuple[str, str]:
    """``se/libritts/x/r0.input.flac`` -> (``se/libritts/x/r0``, ``input.flac``): dots only after the last '/'."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension


def _pair_sources(
    storage: Storage, task: str, split: str, rule: ClipRule | None, inputs: _Inputs, skipped: Counter[str]
) -> list[SampleSource]:
    """Sources of se/sr: the pairs of the simulation stage's rendered batches, located by tar offset.

    The hash covers the plan, parameters and completion markers of every batch, not the tars: the
    parameters determine the rendered audio bit for bit (``uniflow simulate replay`` checks it).
    """
    folder = ("simulate", task, split)
    if not storage.exists("work", *folder, "plan.json"):
        skipped[f"{task}/{split}: not simulated"] += 1
        return []
    inputs.add("work", *folder, "plan.json")
    plan = json.loads(storage.read_text("work", *folder, "plan.json"))
    sources: list[SampleSource] = []
    for index in range(int(plan["batches"])):
        batch = f"batch_{index:05d}"
        if not storage.exists("work", *folder, f"{batch}.done"):
            raise RuntimeError(f"{storage.url('work', *folder)}: {batch} is not rendered; finish `uniflow simulate` first")
        inputs.add("work", *folder, f"{batch}.params.jsonl")
        inputs.add("work", *folder, f"{batch}.done")
        members: dict[str, dict[str, list[int]]] = {}
        seconds_by_key: dict[str, float] = {}
        with tarfile.open(storage.path("work", *folder, f"{batch}.tar")) as archive:
            for member in archive:
                key, extension = _member_key(member.name)
                members.setdefault(key, {})[extension] = [member.offset_data, member.size]
                if extension == "json":
                    handle = archive.extractfile(member)
                    assert handle is not None
                    seconds_by_key[key] = float(json.loads(handle.read())["seconds"])
        for key in sorted(seconds_by_key):
            found = members[key]
            if not set(PAIR_MEMBERS) <= set(found):
                raise RuntimeError(
                    f"{batch}.tar: pair {key} lacks {sorted(set(PAIR_MEMBERS) - set(found))}; "
                    "run `uniflow simulate` again to re-render batches of an older layout"
                )
            window = clip_window(key, seconds_by_key[key], rule)
            if isinstance(window, str):
                skipped[window] += 1
                continue
            offset, seconds, seed = window
            sources.append(
                SampleSource(
                    key=key, task=task, split=split, corpus=key.split("/")[1], source_id=key,
                    seconds=round(seconds, 6), bytes=int(2 * seconds * BYTES_PER_SECOND) + JSON_BYTES,
                    source_seconds=seconds_by_key[key], offset_seconds=offset, crop_seed=seed,
                    rule=rule.model_dump() if rule else None,
                    pair={"tar": "/".join((*folder, f"{batch}.tar")), "members": found},
                )
            )
    return sources


def sample_sources(storage: Storage, plan: Plan, task: str, split: str) -> SampleSources:
    """Everything that goes into ``task``'s ``split``, sorted by key, with the inputs' hash and the skips."""
    if task not in plan.tasks:
        raise KeyError(f"task {task!r} is not in the plan (tasks: {', '.join(plan.tasks)})")
    rule = plan.tasks[task].clip
    if rule is not None and rule.mode == "random_crop" and task in UNCROPPABLE_TASKS:
        raise ValueError(f"plan: tasks.{task}.clip: {task} samples cannot be cropped; use drop_outside or keep")
    rule_here = rule if rule is not None and split in rule.splits else None
    inputs = _Inputs(storage)
    skipped: Counter[str] = Counter()
    if task in PAIR_TASKS:
        sources = _pair_sources(storage, task, split, rule_here, inputs, skipped)
    else:
        sources = _record_sources(storage, plan, task, split, rule_here, inputs, skipped)
    sources.sort(key=lambda source: source.key)
    for previous, current in zip(sources, sources[1:], strict=False):
        if previous.key == current.key:
            raise ValueError(f"sample key {current.key!r} appears twice in {task}/{split}")
    for source in sources:
        check_key(source.key)
    rule_text = json.dumps(rule_here.model_dump() if rule_here else None, sort_keys=True)
    return SampleSources(sources, inputs.digest(f"version {SAMPLES_VERSION}\n", f"rule {rule_text}\n"), skipped)


# -- building samples -----------------------------------------------------------------------------------
def _read_record_audio(storage: Storage, source: SampleSource, config: SampleConfig) -> np.ndarray:
    """The source's window of its recording (segment bounds honoured), mono, at the configured rate."""
    record = source.record
    rate = int(record["sample_rate"])
    first = round(((record.get("start") or 0.0) + source.offset_seconds) * rate)
    count = round(source.seconds * rate)
    audio, file_rate = sf.read(_raw_path(storage, record["audio"]), start=first, frames=count, dtype="float32", always_2d=True)
    if file_rate != rate:
        raise ValueError(f"{source.key}: {record['audio']} is {file_rate} Hz but its manifest says {rate} Hz")
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    if rate != config.sample_rate:
        mono = soxr.resample(mono, rate, config.sample_rate, quality=config.resample_quality)
    mono = mono[: round(source.seconds * config.sample_rate)]
    if mono.size == 0:
        raise ValueError(f"{source.key}: {record['audio']} gave no audio in [{first}, {first + count}) at {rate} Hz")
    return mono


def _flac_of_pcm(data: bytes, first: int = 0, length: int | None = None) -> tuple[bytes, int]:
    """16-bit FLAC of a sample-exact cut of 16-bit audio (read as int16, so nothing is requantised), and its length."""
    pcm, rate = sf.read(io.BytesIO(data), dtype="int16")
    piece = pcm[first : None if length is None else first + length]
    buffer = io.BytesIO()
    sf.write(buffer, piece, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue(), len(piece)


def _pair_files(storage: Storage, source: SampleSource) -> tuple[dict[str, bytes], float, dict[str, Any]]:
    """input.flac and target.flac of a rendered pair (cut at the same offset when clipped), and its json."""
    assert source.pair is not None
    stored: dict[str, bytes] = {}
    with storage.open("work", source.pair["tar"]) as handle:
        for member in (*PAIR_MEMBERS, "json"):
            offset, size = source.pair["members"][member]
            handle.seek(offset)
            stored[member] = handle.read(size)
    simulation = json.loads(stored.pop("json"))
    first, length = 0, None
    if source.crop_seed is not None:
        first, length = round(source.offset_seconds * SAMPLE_RATE), round(source.seconds * SAMPLE_RATE)
    files: dict[str, bytes] = {}
    lengths = set()
    for member, name in zip(PAIR_MEMBERS, ("input.flac", "target.flac"), strict=True):
        files[name], kept = _flac_of_pcm(stored[member], first, length)
        lengths.add(kept)
    if len(lengths) != 1:
        raise ValueError(f"{source.key}: input and target differ in length after the crop ({sorted(lengths)})")
    seconds = lengths.pop() / SAMPLE_RATE
    return files, (source.source_seconds if source.crop_seed is None else seconds), simulation


def _task_fields(source: SampleSource, simulation: dict[str, Any] | None) -> dict[str, Any]:
    record, annotation = source.record, source.annotation
    if source.task == "tts":
        return {
            "text": record.get("text"),
            "speaker": record.get("speaker"),
            "phones": annotation["phones"],
            "frames": annotation["frames"],
            "latent_frames": annotation["latent_frames"],
        }
    if source.task == "svs":
        score = {name: annotation[name] for name in ("phones", "frames", "midi", "note_seconds", "slur")}
        return {"speaker": record.get("speaker"), "text": record.get("text"), "score": score}
    if source.task in ("t2a", "t2m"):
        captions = (record.get("extra") or {}).get("captions")
        return {"caption": record["caption"], **({"captions": captions} if captions else {})}
    if source.task == "v2a":
        return {"video": record["video"], **({"caption": record["caption"]} if record.get("caption") else {})}
    return {"simulation": simulation, "batch": source.pair["tar"] if source.pair else None}


def build_sample(storage: Storage, source: SampleSource, config: SampleConfig | None = None) -> Sample:
    """Read, clip, resample and encode one source, with the json that traces it back."""
    config = config or SampleConfig()
    files: dict[str, bytes] = {}
    simulation: dict[str, Any] | None = None
    if source.task in PAIR_TASKS:
        files, seconds, simulation = _pair_files(storage, source)
        sample_rate = SAMPLE_RATE
    else:
        audio = _read_record_audio(storage, source, config)
        files["target.flac"] = encode_flac(audio, config.sample_rate)
        seconds, sample_rate = audio.size / config.sample_rate, config.sample_rate
        if source.task == "v2a":
            video = _raw_path(storage, source.record["video"])
            files[f"video{video.suffix.lower() or '.mp4'}"] = video.read_bytes()
    meta: dict[str, Any] = {
        "key": source.key,
        "task": source.task,
        "split": source.split,
        "corpus": source.corpus,
        "source_id": source.source_id,
        "seconds": round(seconds, 6),
        "sample_rate": sample_rate,
        "license": source.record.get("license") if simulation is None else simulation.get("license"),
        "clip": {
            "offset_seconds": round(source.offset_seconds, 6),
            "seconds": round(seconds, 6),
            "source_seconds": source.source_seconds,
            "rule": source.rule,
            "seed": source.crop_seed,
        },
        **_task_fields(source, simulation),
        "code_version": code_version(),
    }
    if source.task not in PAIR_TASKS:
        meta["record"] = source.record
    files["json"] = json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Sample(source.key, files)


def required_files(task: str) -> Callable[[dict[str, Any] | None], set[str]]:
    """What every sample of ``task`` must hold (for ``validate_shard_set``); V2A's video keeps its container."""
    base = {"target.flac", "json"} | ({"input.flac"} if task in PAIR_TASKS else set())

    def required(meta: dict[str, Any] | None) -> set[str]:
        if task == "v2a" and meta and meta.get("video"):
            return base | {f"video{Path(meta['video']).suffix.lower() or '.mp4'}"}
        return base

    return required
