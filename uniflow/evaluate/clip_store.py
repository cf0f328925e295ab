"""An evaluation's clips kept on disk rather than in memory, and read back by memory map.

A task's metrics need its whole set of generated and reference clips (FD compares the two sets), and a full
test split is large: MusicCaps alone is about 15 hours, 5 GB per side as float32 at 24 kHz. Clips are appended
to a scratch file as they arrive; once a side is complete the file is mapped and each clip becomes a read-only
view into it. The metrics read clip after clip, so the kernel holds only the pages in use and can drop the rest:
the evaluation's memory no longer grows with the size of the test set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import numpy as np

Item = TypeVar("Item")

EMPTY_CLIP = np.zeros(0, dtype=np.float32)
EMPTY_CLIP.setflags(write=False)
"""What an item holds between writing its clip to a store and receiving the clip's view."""


class ClipStore:
    """Append mono clips to ``path`` (float32), then ``views()`` maps them; ``remove()`` deletes the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "wb")  # noqa: SIM115 - open until views() seals the file
        self._spans: list[tuple[int, int]] = []  # (first sample, samples) per clip
        self._samples = 0

    def add(self, audio: np.ndarray) -> int:
        """Write one mono clip; returns its index."""
        clip = np.ascontiguousarray(audio, dtype=np.float32)
        if clip.ndim != 1:
            raise ValueError(f"{self.path}: clips are mono (1-D), got shape {clip.shape}")
        clip.tofile(self._handle)
        self._spans.append((self._samples, len(clip)))
        self._samples += len(clip)
        return len(self._spans) - 1

    def views(self) -> list[np.ndarray]:
        """Every clip added, in order, as a read-only view of the mapped file (no more clips can be added)."""
        if not self._handle.closed:
            self._handle.close()
        if not self._samples:  # an empty file cannot be mapped
            return [EMPTY_CLIP for _ in self._spans]
        mapped = np.memmap(self.path, dtype=np.float32, mode="r", shape=(self._samples,))
        return [mapped[first : first + count] for first, count in self._spans]

    def remove(self) -> None:
        """Delete the file; views already taken stay readable until they are dropped (the mapping outlives it)."""
        if not self._handle.closed:
            self._handle.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ClipStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()


def moved_to_store(items: Iterable[Item], store: ClipStore, field: str) -> list[Item]:
    """``items`` (dataclasses) with the clip in ``field`` written to ``store`` as each arrives and dropped from
    memory; the items returned hold a memory-mapped view of their own clip instead."""
    written = []
    for item in items:
        store.add(getattr(item, field))
        written.append(replace(item, **{field: EMPTY_CLIP}))
    return [replace(item, **{field: view}) for item, view in zip(written, store.views(), strict=True)]
