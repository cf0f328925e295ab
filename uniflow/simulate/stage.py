"""The simulation stage: parameter manifests first, then rendering in batches, replayable per key.

``plan_simulation`` chooses the sources from ``datasets/plan.yaml`` (SE: clean speech with the
noise corpora it is mixed with, RIRs, VoiceBank+DEMAND pairs; SR: high-quality targets), samples
every random parameter of every output pair (the URGENT design) and writes them, batch by batch,
to the work role. ``render_batch`` renders one batch into a tar of 16-bit WAV pairs and JSON (one
Prefect task, one future WebDataset shard) and marks it ``.done``; ``summarize`` gathers counts,
hours and parameter histograms. ``replay`` re-renders one key and checks it against what was
written: the same parameters always give the same audio.

Layout per task (``se``, ``sr``) and split::

    <work>/simulate/<task>/<split>/plan.json                 sources, config hash, batch count
    <work>/simulate/<task>/<split>/skipped.jsonl             sources that cannot be used, and why
    <work>/simulate/<task>/<split>/batch_00003.params.jsonl  the parameters of batch 3
    <work>/simulate/<task>/<split>/batch_00003.tar           <key>.input.wav, <key>.target.wav, <key>.json
    <work>/simulate/<task>/<split>/batch_00003.quarantine.jsonl
    <work>/simulate/<task>/<split>/batch_00003.done          written last

Pairs are 16-bit WAV, not FLAC: the shard stage cuts training pairs to their clip and encodes the
result to FLAC, so FLAC here would cost two encodes and two decodes per pair for nothing (a third
of SR's rendering time). The samples are the same 16-bit values either way.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from uniflow.audio import decode_audio, encode_wav
from uniflow.config import StrictModel, load_yaml
from uniflow.corpora.manifest import read_manifest
from uniflow.corpora.recipe import SPLITS, Plan
from uniflow.jsonl import encode_line
from uniflow.simulate.errors import SimulationInputError
from uniflow.simulate.noise_cache import NoiseCache
from uniflow.simulate.se import SeConfig, SeParams, render_se, render_voicebank_pair, sample_se_params
from uniflow.simulate.sr import SrConfig, SrParams, render_sr, sample_sr_params
from uniflow.storage import Storage, atomic_write

SimTask = Literal["se", "sr"]
OUTPUT_RATE = 24_000
VOICEBANK_PREFIX = "se-paired/"
PAIR_MEMBERS = ("input.wav", "target.wav")
"""A rendered pair's audio members in a batch tar (after ``<key>.``)."""


class SimulationConfig(StrictModel):
    """``datasets/simulation.yaml``: the SE and SR simulators' settings and the batch size."""

    batch_size: int = Field(256, ge=1, description="Pairs per rendered batch (one task, one future shard).")
    se: SeConfig = Field(default_factory=SeConfig)
    sr: SrConfig = Field(default_factory=SrConfig)


def load_simulation_config(path: str | Path = "datasets/simulation.yaml") -> SimulationConfig:
    return load_yaml(path, SimulationConfig)


@dataclass
class SimulationPlan:
    task: str
    split: str
    batches: int
    pairs: int
    skipped: int
    batch_size: int
    fingerprint: str
    sources: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class BatchResult:
    index: int
    pairs: int
    quarantined: int
    seconds: float
    skipped: bool = False


def work_dir(storage: Storage, task: str, split: str) -> Path:
    return storage.path("work", "simulate", task, split)


def _batch_name(index: int) -> str:
    return f"batch_{index:05d}"


# -- choosing sources -----------------------------------------------------------------------------
def _records(storage: Storage, corpus: str, split: str, fallback_to_train: bool = False) -> list[dict[str, Any]]:
    for candidate in (split, "train") if fallback_to_train else (split,):
        if storage.exists("manifests", corpus, f"{candidate}.jsonl.gz"):
            return list(read_manifest(storage, corpus, candidate))
    return []


def _is_noise(record: dict[str, Any]) -> bool:
    """MUSAN's music and speech are not noise; other noise corpora are noise throughout."""
    category = (record.get("extra") or {}).get("category")
    return category in (None, "noise")


def _is_rir(record: dict[str, Any]) -> bool:
    return (record.get("extra") or {}).get("kind", "rir") == "rir"


def _generated_rirs(storage: Storage, config: SeConfig) -> list[dict[str, Any]]:
    """RIRs simulated with pyroomacoustics, for builds without an RIR corpus (kept in the raw role)."""
    from uniflow.simulate.rir import generate_rirs

    folder = storage.path("raw", "generated_rirs")
    index_path = folder / "index.json"
    if index_path.exists():
        return json.loads(index_path.read_text())
    records = generate_rirs(64, config.seed, folder, 16_000)
    raw_root = storage.path("raw")
    for record in records:  # manifest-style: audio relative to the raw root
        record["audio"] = str(Path(record["audio"]).resolve().relative_to(raw_root.resolve()))
    with atomic_write(index_path, mode="w") as handle:
        json.dump(records, handle)
    return records


def _se_params(storage: Storage, plan: Plan, config: SeConfig, split: str) -> tuple[list[Any], list[dict], dict]:
    sources = plan.tasks["se"].sources
    rirs = [r for s in sources if s.role == "rir" for r in _records(storage, s.corpus, split, True) if _is_rir(r)]
    used: dict[str, list[str]] = {"rir": sorted({r["corpus"] for r in rirs}) or ["generated_rirs"]}
    if not rirs:
        rirs = _generated_rirs(storage, config)
    params: list[Any] = []
    skipped: list[dict] = []
    for source in sources:
        if source.role == "clean":
            clean = _records(storage, source.corpus, split)
            noise = [r for corpus in source.mix_with for r in _records(storage, corpus, split, True) if _is_noise(r)]
            if not clean:
                continue
            if not noise:
                skipped.append({"id": source.corpus, "reason": f"no manifests for its noise corpora {source.mix_with}"})
                continue
            made, bad = sample_se_params(clean, noise, rirs, config, split)
            params += made
            skipped += bad
            used.setdefault("clean", []).append(source.corpus)
            used.setdefault("noise", []).extend(source.mix_with)
        elif source.role == "paired":
            paired = _records(storage, source.corpus, split)
            params += [{"key": f"{VOICEBANK_PREFIX}{r['id']}", "record": r} for r in paired]
            if paired:
                used.setdefault("paired", []).append(source.corpus)
    return params, skipped, used


def _sr_params(storage: Storage, plan: Plan, config: SrConfig, split: str) -> tuple[list[Any], list[dict], dict]:
    records = [r for s in plan.tasks["sr"].sources if s.role == "target" for r in _records(storage, s.corpus, split)]
    params, skipped = sample_sr_params(records, config, split)
    return params, skipped, {"target": sorted({r["corpus"] for r in records})}


def _to_json(params: Any) -> dict[str, Any]:
    return params if isinstance(params, dict) else params.to_json()


def plan_simulation(storage: Storage, task: SimTask, split: str, plan: Plan, config: SimulationConfig) -> SimulationPlan:
    """Sample every parameter of the split's pairs and write them in batches (kept when unchanged)."""
    task_config = config.se if task == "se" else config.sr
    params, skipped, used = (_se_params if task == "se" else _sr_params)(storage, plan, task_config, split)
    lines = [encode_line(_to_json(p)) for p in params]
    # the member layout is part of it, so batches written in another layout are rendered again
    layout = f"{config.batch_size}|{'|'.join(PAIR_MEMBERS)}".encode()
    fingerprint = hashlib.sha256(b"".join(lines) + layout).hexdigest()
    folder = work_dir(storage, task, split)
    plan_path = folder / "plan.json"
    if plan_path.exists():
        existing = SimulationPlan(**json.loads(plan_path.read_text()))
        if existing.fingerprint == fingerprint:
            return existing
        shutil.rmtree(folder)  # other sources or settings: the old batches describe other pairs
    folder.mkdir(parents=True, exist_ok=True)
    batches = 0
    for start in range(0, len(lines), config.batch_size):
        with atomic_write(folder / f"{_batch_name(batches)}.params.jsonl", mode="wb") as handle:
            handle.writelines(lines[start : start + config.batch_size])
        batches += 1
    with atomic_write(folder / "skipped.jsonl", mode="wb") as handle:
        handle.writelines(encode_line(line) for line in skipped)
    result = SimulationPlan(task, split, batches, len(lines), len(skipped), config.batch_size, fingerprint, used)
    with atomic_write(plan_path, mode="w") as handle:
        json.dump(asdict(result), handle, indent=1)
    return result


# -- rendering ------------------------------------------------------------------------------------------
def noise_cache(storage: Storage) -> NoiseCache:
    """Compressed noise recordings decoded once for every batch and replay (the same samples as decoding)."""
    return NoiseCache(storage.path("work", "simulate", "noise_pcm"))


def render_pair(
    task: str, line: dict[str, Any], raw_root: Path, config: SimulationConfig, cache: NoiseCache | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(input, target, metadata) of one parameter line."""
    if task == "se" and line["key"].startswith(VOICEBANK_PREFIX):
        noisy, clean = render_voicebank_pair(line["record"], raw_root)
        return noisy, clean, {"key": line["key"], "kind": "paired", "source_id": line["record"]["id"]}
    if task == "se":
        params = SeParams.from_json(line)
        noisy, clean = render_se(params, raw_root, config.se, cache)
        return noisy, clean, {**params.to_json(), "kind": "simulated"}
    params = SrParams.from_json(line)
    low, high = render_sr(params, raw_root, config.sr)
    return low, high, {**params.to_json(), "kind": "simulated"}


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def render_batch(storage: Storage, task: SimTask, split: str, index: int, config: SimulationConfig) -> BatchResult:
    """Render one batch into its tar; a quarantined pair is listed with its reason, never fatal."""
    folder = work_dir(storage, task, split)
    name = _batch_name(index)
    done = folder / f"{name}.done"
    if done.exists():
        counts = json.loads(done.read_text())
        return BatchResult(index, counts["pairs"], counts["quarantined"], counts["seconds"], skipped=True)
    lines = [json.loads(line) for line in (folder / f"{name}.params.jsonl").read_text().splitlines() if line.strip()]
    raw_root, cache = storage.path("raw"), noise_cache(storage)
    quarantine: list[dict[str, Any]] = []
    pairs, seconds = 0, 0.0
    with atomic_write(folder / f"{name}.tar", mode="wb") as handle, tarfile.open(fileobj=handle, mode="w") as archive:
        for line in lines:
            try:
                source, target, metadata = render_pair(task, line, raw_root, config, cache)
            except SimulationInputError as exc:
                quarantine.append({"key": line["key"], "source": str(exc.source), "reason": exc.reason})
                continue
            metadata["seconds"] = round(len(target) / OUTPUT_RATE, 4)
            _add_member(archive, f"{line['key']}.{PAIR_MEMBERS[0]}", encode_wav(source, OUTPUT_RATE))
            _add_member(archive, f"{line['key']}.{PAIR_MEMBERS[1]}", encode_wav(target, OUTPUT_RATE))
            _add_member(archive, f"{line['key']}.json", json.dumps(metadata, sort_keys=True).encode())
            pairs += 1
            seconds += len(target) / OUTPUT_RATE
    with atomic_write(folder / f"{name}.quarantine.jsonl", mode="wb") as handle:
        handle.writelines(encode_line(line) for line in quarantine)
    with atomic_write(done, mode="w") as handle:  # last: the batch is complete
        json.dump({"pairs": pairs, "quarantined": len(quarantine), "seconds": seconds}, handle)
    return BatchResult(index, pairs, len(quarantine), seconds)


# -- summary and replay -------------------------------------------------------------------------------
@dataclass
class SimulationSummary:
    task: str
    split: str
    pairs: int = 0
    hours: float = 0.0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, dict[str, int]] = field(default_factory=dict)


def _bucket(value: float, width: float) -> str:
    low = np.floor(value / width) * width
    return f"{low:g}..{low + width:g}"


def summarize(storage: Storage, task: SimTask, split: str) -> SimulationSummary:
    """Counts, hours and histograms (SNR, cutoff, augmentations per pair) of a rendered split."""
    folder = work_dir(storage, task, split)
    plan = SimulationPlan(**json.loads((folder / "plan.json").read_text()))
    summary = SimulationSummary(task, split)
    reasons: Counter[str] = Counter()
    histograms: dict[str, Counter[str]] = {"snr_db": Counter(), "cutoff_hz": Counter(), "augmentations": Counter(), "filter": Counter()}
    for index in range(plan.batches):
        name = _batch_name(index)
        if not (folder / f"{name}.done").exists():
            raise RuntimeError(f"{folder}: batch {index} of {plan.batches} is not rendered yet")
        for line in (folder / f"{name}.quarantine.jsonl").read_text().splitlines():
            if line.strip():
                reasons[json.loads(line)["reason"].split(":")[0]] += 1
        with tarfile.open(folder / f"{name}.tar") as archive:
            for member in archive:
                if not member.name.endswith(".json"):
                    continue
                metadata = json.load(archive.extractfile(member))
                summary.pairs += 1
                summary.hours += metadata["seconds"] / 3600
                if "snr_db" in metadata:
                    histograms["snr_db"][_bucket(metadata["snr_db"], 5)] += 1
                    histograms["augmentations"][str(len(metadata.get("augmentations", [])))] += 1
                if "cutoff_hz" in metadata:
                    histograms["cutoff_hz"][_bucket(metadata["cutoff_hz"], 500)] += 1
                    histograms["filter"][metadata.get("filter_type", "?")] += 1
    summary.hours = round(summary.hours, 4)
    summary.quarantined = sum(reasons.values())
    summary.quarantine_reasons = dict(sorted(reasons.items()))
    summary.histograms = {name: dict(sorted(counts.items())) for name, counts in histograms.items() if counts}
    storage.write_text("reports", "simulate", f"{task}-{split}.json", text=json.dumps(asdict(summary), indent=1))
    return summary


@dataclass
class ReplayResult:
    key: str
    task: str
    split: str
    batch: int
    identical: bool
    input: np.ndarray
    target: np.ndarray


def _find_key(storage: Storage, key: str) -> tuple[str, str, int, dict[str, Any]]:
    for task in ("se", "sr"):
        for split in SPLITS:
            folder = work_dir(storage, task, split)
            for params_file in sorted(folder.glob("batch_*.params.jsonl")) if folder.is_dir() else []:
                needle = json.dumps(key)
                for line in params_file.read_text().splitlines():
                    if needle in line:
                        record = json.loads(line)
                        if record["key"] == key:
                            return task, split, int(params_file.name[6:11]), record
    raise KeyError(f"{key}: no simulated pair has this key (looked in {storage.path('work', 'simulate')})")


def replay(storage: Storage, key: str, config: SimulationConfig) -> ReplayResult:
    """Render ``key`` again from its stored parameters and compare it with the written pair."""
    task, split, batch, line = _find_key(storage, key)
    source, target, _ = render_pair(task, line, storage.path("raw"), config, noise_cache(storage))
    source_pcm, _ = decode_audio(encode_wav(source, OUTPUT_RATE), dtype="int16")
    target_pcm, _ = decode_audio(encode_wav(target, OUTPUT_RATE), dtype="int16")
    identical = False
    tar_path = work_dir(storage, task, split) / f"{_batch_name(batch)}.tar"
    if tar_path.exists():
        with tarfile.open(tar_path) as archive:
            stored_input, _ = decode_audio(archive.extractfile(f"{key}.{PAIR_MEMBERS[0]}").read(), dtype="int16")
            stored_target, _ = decode_audio(archive.extractfile(f"{key}.{PAIR_MEMBERS[1]}").read(), dtype="int16")
        identical = np.array_equal(stored_input, source_pcm) and np.array_equal(stored_target, target_pcm)
    return ReplayResult(key, task, split, batch, identical, source, target)
