"""The reference side of an evaluation: each test item's target audio, inputs and metadata, from the audio shards.

Feature shards hold what the model reads; the audio shards of the same task and split hold what a metric compares
against under the same keys: ``target`` (the reference audio), ``video.mp4`` (V2A) and the sample's JSON
(transcript, caption, speaker). SE's and SR's degraded inputs are not kept: the metrics compare with the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uniflow.evaluate.clip_store import ClipStore, moved_to_store
from uniflow.shards.loader import make_dataset, shard_urls
from uniflow.storage import Storage

ROLE = "shards"


@dataclass
class ReferenceItem:
    """One test item as the audio shards hold it."""

    key: str
    task: str
    target: np.ndarray  # mono float32
    sample_rate: int
    meta: dict[str, Any] = field(default_factory=dict)
    video: bytes | None = None  # V2A: the clip's MP4

    @property
    def text(self) -> str | None:
        return self.meta.get("text")

    @property
    def caption(self) -> str | None:
        return self.meta.get("caption")


def _mono(audio: np.ndarray) -> np.ndarray:
    return (audio.mean(axis=1) if audio.ndim == 2 else audio).astype(np.float32)


def read_reference_items(
    storage: Storage, task: str, split: str, keys: Iterable[str] | None = None, store: ClipStore | None = None
) -> dict[str, ReferenceItem]:
    """Every item of ``<task>/<split>`` in the audio shards (only ``keys`` when given), by key, in shard order.

    With a ``store``, the targets are written there and each item holds a memory-mapped view of its own.
    """
    items = _reference_items(storage, task, split, keys)
    if store is not None:
        items = moved_to_store(items, store, "target")
    return {item.key: item for item in items}


def _reference_items(storage: Storage, task: str, split: str, keys: Iterable[str] | None = None) -> Iterator[ReferenceItem]:
    """The items of ``read_reference_items`` one by one; a key repeated in the shards keeps its first sample."""
    wanted = set(keys) if keys is not None else None
    urls = shard_urls(storage, ROLE, task, split)
    if not urls:
        return
    dataset = make_dataset(
        urls, epoch_samples=0, batch_size=1, rank=0, world_size=1, seed=0, shuffle_buffer=0,
        resampled=False, storage=storage, role=ROLE,
    )
    seen: set[str] = set()
    for batch in dataset:  # in this process: a DataLoader would turn the arrays into tensors
        key = batch["key"][0]
        if (wanted is not None and key not in wanted) or key in seen:
            continue
        target = batch.get("target", [None])[0]
        if target is None:
            raise ValueError(f"{batch['url'][0]}: sample {key} has no target audio")
        seen.add(key)
        yield ReferenceItem(
            key=key,
            task=task,
            target=_mono(target),
            sample_rate=int(batch["target_sample_rate"][0]),
            meta=batch.get("meta", [{}])[0] or {},
            video=batch.get("video.mp4", [None])[0],
        )
        if wanted is not None and len(seen) == len(wanted):
            return  # the keys come from the first shards of the split: do not decode the rest
