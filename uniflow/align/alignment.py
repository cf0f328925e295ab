"""The structure every aligner returns: word and phone intervals of one utterance.

MFA (TextGrids) and the offline pocketsphinx aligner both produce an ``Alignment``, so the rest
of the pipeline (frame counts, shards) never needs to know which aligner ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Gaps and overlaps below this are rounding noise of the aligners' 10 ms frames.
_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Interval:
    label: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class AlignItem:
    """One utterance to align: its audio (optionally a segment of a file) and its transcript."""

    id: str
    audio: Path
    text: str
    speaker: str = "unknown"
    start: float | None = None
    end: float | None = None


@dataclass(slots=True)
class AlignFailure:
    """An utterance the aligner could not align, with a short reason (counted per reason)."""

    id: str
    reason: str
    detail: str = ""


class AlignmentError(ValueError):
    """An alignment violates the interval contract (order, overlap, range)."""


@dataclass(slots=True)
class Alignment:
    """Word and phone intervals of one utterance, in seconds from the start of its audio.

    Phones use ARPAbet with stress digits plus ``sil`` and ``spn`` (see ``uniflow.align.phones``).
    Intervals are sorted, do not overlap and lie within ``[0, duration]``; gaps between phones are
    silence that the aligner did not label.
    """

    id: str
    duration: float
    words: list[Interval]
    phones: list[Interval]
    aligner: str
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise AlignmentError unless both tiers are ordered, disjoint and inside the utterance."""
        for tier_name, tier in (("words", self.words), ("phones", self.phones)):
            previous_end = 0.0
            for index, interval in enumerate(tier):
                where = f"{self.id}: {tier_name}[{index}] {interval.label!r} [{interval.start:.3f}, {interval.end:.3f}]"
                if interval.end <= interval.start:
                    raise AlignmentError(f"{where}: empty or reversed interval")
                if interval.start < previous_end - _TOLERANCE:
                    raise AlignmentError(f"{where}: overlaps the previous interval ending at {previous_end:.3f}")
                if interval.start < -_TOLERANCE or interval.end > self.duration + _TOLERANCE:
                    raise AlignmentError(f"{where}: outside the utterance [0, {self.duration:.3f}]")
                previous_end = interval.end
        if not self.phones:
            raise AlignmentError(f"{self.id}: no phones")

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "duration": round(self.duration, 6),
            "aligner": self.aligner,
            "words": [[w.label, round(w.start, 4), round(w.end, 4)] for w in self.words],
            "phones": [[p.label, round(p.start, 4), round(p.end, 4)] for p in self.phones],
        }
        if self.extra:
            record["extra"] = self.extra
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Alignment:
        return cls(
            id=record["id"],
            duration=record["duration"],
            aligner=record["aligner"],
            words=[Interval(label, start, end) for label, start, end in record["words"]],
            phones=[Interval(label, start, end) for label, start, end in record["phones"]],
            extra=record.get("extra", {}),
        )
