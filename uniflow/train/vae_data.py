"""Audio for VAE training: random crops of the Table 6 corpora, and fixed held-out clips per domain.

Clips come from the manifests (``<manifests>/<corpus>/<split>.jsonl.gz``); the audio lives in the raw role.
A crop reads only its own frames (``sf.read(start=, stop=)``), mixes to mono and resamples to the VAE's rate
with soxr, so a 14-minute song costs no more than a 1.5 s utterance.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import IterableDataset, get_worker_info

from uniflow.corpora.manifest import manifest_name, read_manifest
from uniflow.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioClip:
    """One recording (or manifest segment) of a VAE corpus: where its frames are and which domain it counts for."""

    id: str
    domain: str
    path: str
    sample_rate: int
    start_frame: int
    end_frame: int

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def seconds(self) -> float:
        return self.num_frames / self.sample_rate


def clip_from_record(record: dict[str, Any], domain: str, raw_root: Path) -> AudioClip:
    """A manifest line -> AudioClip; ``start``/``end`` (seconds) narrow it to a segment of the file."""
    rate = int(record["sample_rate"])
    total = int(record.get("num_frames") or round(float(record["seconds"]) * rate))
    start = round(float(record.get("start") or 0.0) * rate)
    end = min(total, round(float(record["end"]) * rate)) if record.get("end") is not None else total
    path = Path(record["audio"])
    return AudioClip(record["id"], domain, str(path if path.is_absolute() else raw_root / path), rate, start, end)


def manifest_clips(storage: Storage, corpora: dict[str, list[str]], splits: tuple[str, ...]) -> dict[str, list[AudioClip]]:
    """Domain -> clips of the first of ``splits`` each corpus has a manifest for (a corpus with none is logged)."""
    raw_root = storage.path("raw")
    clips: dict[str, list[AudioClip]] = {}
    for domain, names in corpora.items():
        found: list[AudioClip] = []
        for corpus in names:
            split = next((s for s in splits if storage.exists("manifests", corpus, manifest_name(s))), None)
            if split is None:
                log.warning("VAE data: %s has no %s manifest; skipped", corpus, "/".join(splits))
                continue
            found += [clip_from_record(r, domain, raw_root) for r in read_manifest(storage, corpus, split)]
        clips[domain] = [clip for clip in found if clip.num_frames > 0]
    return clips


def read_crop(clip: AudioClip, offset_frame: int, num_frames: int, sample_rate: int, length: int) -> np.ndarray:
    """Frames [offset, offset + num_frames) of the clip (source rate) as mono float32 at ``sample_rate``,
    padded with zeros or trimmed to exactly ``length`` samples."""
    start = clip.start_frame + offset_frame
    stop = min(clip.end_frame, start + num_frames)
    audio, rate = sf.read(clip.path, start=start, stop=stop, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != sample_rate and mono.size:
        mono = soxr.resample(mono, rate, sample_rate).astype(np.float32, copy=False)
    if mono.size >= length:
        return np.ascontiguousarray(mono[:length])
    return np.pad(mono, (0, length - mono.size))


class RandomCropDataset(IterableDataset):
    """An endless stream of (1, crop_samples) float32 crops, the clip drawn in proportion to its duration.
    ``crop_samples`` is ``crop_seconds`` rounded down to a multiple of ``multiple_of`` (the VAE's frame).

    The stream is a pure function of (seed, rank, DataLoader worker, start_step): each process and worker reads
    different crops, a rerun with the same seed reads the same ones, and a resumed run does not replay the start.
    """

    def __init__(
        self,
        clips: list[AudioClip],
        crop_seconds: float,
        sample_rate: int,
        seed: int,
        rank: int = 0,
        start_step: int = 0,
        multiple_of: int = 1,
    ) -> None:
        super().__init__()
        if not clips:
            raise ValueError("no training clips: prepare the manifests of the VAE corpora first")
        self.clips = clips
        self.sample_rate = sample_rate
        # Whole VAE frames only, so the reconstruction has exactly the crop's length.
        self.crop_samples = round(crop_seconds * sample_rate) // multiple_of * multiple_of
        if self.crop_samples == 0:
            raise ValueError(f"a crop of {crop_seconds} s is shorter than one VAE frame ({multiple_of} samples)")
        self.crop_seconds = self.crop_samples / sample_rate
        self.seed, self.rank, self.start_step = seed, rank, start_step
        seconds = np.array([clip.seconds for clip in clips], dtype=np.float64)
        self.probabilities = seconds / seconds.sum()

    def rng(self) -> np.random.Generator:
        worker = get_worker_info()
        return np.random.default_rng([self.seed, self.rank, worker.id if worker else 0, self.start_step])

    def __iter__(self) -> Iterator[torch.Tensor]:
        rng = self.rng()
        while True:
            clip = self.clips[rng.choice(len(self.clips), p=self.probabilities)]
            # Source frames a crop needs, one extra so resampling never comes up short.
            needed = math.ceil(self.crop_seconds * clip.sample_rate) + 1
            offset = int(rng.integers(0, clip.num_frames - needed + 1)) if clip.num_frames > needed else 0
            audio = read_crop(clip, offset, needed, self.sample_rate, self.crop_samples)
            yield torch.from_numpy(audio).unsqueeze(0)


def heldout_clips(clips: list[AudioClip], count: int) -> list[AudioClip]:
    """``count`` clips spread evenly over the id-sorted list: the same choice on every run and every machine."""
    ordered = sorted(clips, key=lambda clip: clip.id)
    if len(ordered) <= count:
        return ordered
    return [ordered[round(i * (len(ordered) - 1) / max(1, count - 1))] for i in range(count)]


def load_heldout(clips: list[AudioClip], seconds: float, sample_rate: int, multiple_of: int) -> list[torch.Tensor]:
    """Each clip's centre ``seconds`` (the whole clip when shorter) at ``sample_rate``, trimmed to a multiple of
    ``multiple_of`` samples (the VAE's frame); clips shorter than one frame are left out."""
    loaded = []
    for clip in clips:
        take = min(clip.num_frames, math.ceil(seconds * clip.sample_rate))
        offset = (clip.num_frames - take) // 2
        length = min(round(seconds * sample_rate), math.floor(take * sample_rate / clip.sample_rate))
        length -= length % multiple_of
        if length <= 0:
            continue
        audio = read_crop(clip, offset, take, sample_rate, length)
        loaded.append(torch.from_numpy(audio).view(1, 1, -1))
    return loaded
