"""What a corpus reader yields: one recording found in a corpus's on-disk layout, or a problem.

Readers only understand layouts and metadata files; probing the audio (rate, length, channels,
readability) is done once, for every corpus, by the manifest builder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Entry:
    """One recording as the corpus describes it.

    ``key`` is the corpus-local part of the id, derived from the source path (never random), so
    the manifest id ``<corpus>/<key>`` is stable across runs. Keys must not contain dots (dots split
    WebDataset sample keys) and use '/' only as a namespace separator.
    """

    key: str
    split: str
    audio: Path
    subset: str | None = None
    text: str | None = None
    speaker: str | None = None
    caption: str | None = None
    score: dict[str, Any] | None = None
    gender: str | None = None
    language: str | None = None
    video: Path | None = None
    # Time range inside ``audio`` when a recording is a segment of a longer file.
    start: float | None = None
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Problem:
    """Something a reader could not turn into an Entry (missing transcript, bad metadata...)."""

    path: Path
    reason: str
    key: str | None = None
