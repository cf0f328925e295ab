"""The reference side of an evaluation: each test item's target audio, inputs and metadata, from the audio shards.

Feature shards hold what the model reads; the audio shards of the same task and split hold what a metric compares
against under the same keys: ``target`` (the reference audio), ``video.mp4`` (V2A) and the sample's JSON
(transcript, caption, speaker). SE's and SR's degraded inputs are not kept: the metrics compare with the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from uniflow.evaluate.clip_store import EMPTY_CLIP, ClipStore
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
    wanted = set(keys) if keys is not None else None
    urls = shard_urls(storage, ROLE, task, split)
    if not urls:
        return {}
    dataset = make_dataset(
        urls, epoch_samples=0, batch_size=1, rank=0, world_size=1, seed=0, shuffle_buffer=0,
        resampled=False, storage=storage, role=ROLE,
    )
    items: dict[str, ReferenceItem] = {}
    for batch in dataset:  # in this process: a DataLoader would turn the arrays into tensors
        key = batch["key"][0]
        if (wanted is not None and key not in wanted) or key in items:  # a repeated key: the first one counts
            continue
        target = batch.get("target", [None])[0]
        if target is None:
            raise ValueError(f"{batch['url'][0]}: sample {key} has no target audio")
        target = _mono(target)
        if store is not None:
            store.add(target)
            target = EMPTY_CLIP  # its view is set once every target is written
        items[key] = ReferenceItem(
            key=key,
            task=task,
            target=target,
            sample_rate=int(batch["target_sample_rate"][0]),
            meta=batch.get("meta", [{}])[0] or {},
            video=batch.get("video.mp4", [None])[0],
        )
        if wanted is not None and len(items) == len(wanted):
            break  # the keys come from the first shards of the split: do not decode the rest
    if store is not None:
        items = {key: replace(item, target=view) for (key, item), view in zip(items.items(), store.views(), strict=True)}
    return items
