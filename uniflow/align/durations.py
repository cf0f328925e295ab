"""From phone intervals in seconds to per-phone counts of 20 ms latent frames.

The model expands each phone by its frame count (the paper's sequence duration d_s), so the counts
of an utterance must add up to its latent length exactly. The VAE emits one latent per full hop
of 480 samples at 24 kHz, so an utterance of ``n`` samples has ``n // 480`` latent frames.

Rounding: every phone *boundary* is rounded to the nearest frame (halves up), and a count is the
difference of two rounded boundaries. Rounding boundaries rather than durations keeps errors from
accumulating: each boundary is within half a frame (10 ms) of the aligner's, and the counts sum
to the latent length by construction. The last boundary is the latent length itself. Gaps the
aligner left unlabelled become ``sil``; adjacent silences are merged. A phone shorter than a frame
can get 0 frames: it keeps its place in the sequence (the duration predictor learns log(0 + 1)).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from uniflow.align.alignment import Interval
from uniflow.align.phones import SILENCE

SAMPLE_RATE = 24_000
HOP_LENGTH = 480
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # 50 latent frames per second
# Unlabelled gaps shorter than this are aligner jitter, not pauses: they go to the neighbour.
_MIN_GAP_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class PhoneDurations:
    phones: list[str]
    frames: list[int]

    @property
    def total(self) -> int:
        return sum(self.frames)


def latent_frames(seconds: float) -> int:
    """Latent length of ``seconds`` of audio at 24 kHz: ``round(seconds * 24000) // 480``."""
    return int(round(seconds * SAMPLE_RATE)) // HOP_LENGTH


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def fill_silence(phones: list[Interval], end: float) -> list[Interval]:
    """Phones covering [0, end]: unlabelled gaps become ``sil``, consecutive silences merge."""
    filled: list[Interval] = []
    cursor = 0.0

    def add(label: str, start: float, stop: float) -> None:
        if filled and filled[-1].label == SILENCE and label == SILENCE:
            filled[-1] = Interval(SILENCE, filled[-1].start, stop)
        else:
            filled.append(Interval(label, start, stop))

    for phone in phones:
        if phone.start - cursor >= _MIN_GAP_SECONDS:
            add(SILENCE, cursor, phone.start)
        elif filled:  # a tiny gap or overlap: the boundary moves to this phone's start
            filled[-1] = Interval(filled[-1].label, filled[-1].start, phone.start)
        add(phone.label, phone.start if filled else 0.0, phone.end)
        cursor = phone.end
    if end - cursor >= _MIN_GAP_SECONDS:
        add(SILENCE, cursor, end)
    elif filled:
        filled[-1] = Interval(filled[-1].label, filled[-1].start, max(end, filled[-1].start))
    return filled


def phone_frame_counts(phones: list[Interval], total_frames: int, frame_rate: float = FRAME_RATE) -> PhoneDurations:
    """Frame counts per phone that sum to ``total_frames`` exactly (see the module docstring)."""
    if not phones:
        raise ValueError("no phones to count")
    covered = fill_silence(phones, total_frames / frame_rate)
    frames = _frames_between([interval.end for interval in covered], total_frames, frame_rate)
    return PhoneDurations([interval.label for interval in covered], frames)


def frames_from_seconds(seconds: list[float], total_frames: int, frame_rate: float = FRAME_RATE) -> list[int]:
    """Per-token frame counts from consecutive durations in seconds (e.g. a score's phone lengths)."""
    return _frames_between(list(itertools.accumulate(seconds)), total_frames, frame_rate)


def _frames_between(ends: list[float], total_frames: int, frame_rate: float) -> list[int]:
    """Counts between rounded token end times; the last end is ``total_frames`` whatever it was."""
    if total_frames < 0:
        raise ValueError(f"total_frames must be >= 0, got {total_frames}")
    boundaries, previous = [], 0
    for end in ends[:-1]:
        previous = min(total_frames, max(previous, _round_half_up(end * frame_rate)))
        boundaries.append(previous)
    boundaries.append(total_frames)
    return [boundaries[0]] + [b - a for a, b in itertools.pairwise(boundaries)]
