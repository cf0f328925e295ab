"""Compressed noise recordings decoded once, then read by memory map.

A noise recording is mixed into many pairs (WHAM! and MUSAN together hold about a tenth of the SE speech
hours, so each noise second is used about ten times), and decoding a 10 s excerpt of WHAM!'s 48 kHz stereo
FLAC costs more than everything else in a pair except the codecs. The cache keeps each compressed recording's
samples exactly as libsndfile decodes them (16-bit sources as int16, whose float32 view libsndfile gives as
value / 32768; others as float32), so an excerpt read from it is bit-identical to one decoded from the file:
a pair renders the same with or without the cache, and replay stays bit-exact. WAV sources are read directly:
there is nothing to decode.

    <work>/simulate/noise_pcm/<path under the raw role>.<file size>.npy
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from uniflow.audio import INT16_SCALE
from uniflow.simulate.errors import SimulationInputError

CACHED_FORMATS = frozenset({"FLAC", "OGG", "MPEG"})


class NoiseCache:
    """Decoded noise under ``root``; an entry is written on first use (atomically: temporary name, rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry(self, relative: str, source: Path) -> Path:
        # The size in the name: a source replaced by a different file gets a new entry, never a stale one.
        return self.root / f"{relative}.{source.stat().st_size}.npy"

    def frames(
        self, raw_root: Path, relative: str, rate: int, first: int, count: int, channel: int | None = None
    ) -> np.ndarray | None:
        """Frames ``[first, first + count)`` as float32 (frames, channels), only ``channel`` when given (converting
        one channel, not all), or None for a source read directly."""
        source = raw_root / relative
        try:
            entry = self.entry(relative, source)
            if not entry.exists() and not self._build(source, entry, rate):
                return None
            pcm = np.load(entry, mmap_mode="r")
        except SimulationInputError:
            raise
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as error:
            reason = "file not found" if not source.exists() else f"cannot read: {error}"
            raise SimulationInputError(source, reason) from None
        if len(pcm) < first + count:
            raise SimulationInputError(source, f"file has {len(pcm)} frames, the segment needs {first + count}")
        if channel is not None and not 0 <= channel < pcm.shape[1]:
            raise SimulationInputError(source, f"noise channel {channel} requested, the file has {pcm.shape[1]}")
        excerpt = pcm[first : first + count] if channel is None else pcm[first : first + count, channel : channel + 1]
        return excerpt * INT16_SCALE if excerpt.dtype == np.int16 else np.array(excerpt, dtype=np.float32)

    def _build(self, source: Path, entry: Path, rate: int) -> bool:
        with sf.SoundFile(source) as handle:
            if handle.format not in CACHED_FORMATS:
                return False
            if handle.samplerate != rate:
                raise SimulationInputError(source, f"sample rate {handle.samplerate} Hz, the manifest says {rate} Hz")
            dtype = "int16" if handle.subtype == "PCM_16" else "float32"
            pcm = handle.read(dtype=dtype, always_2d=True)
            if len(pcm) < handle.frames:
                raise SimulationInputError(source, f"decoded {len(pcm)} of {handle.frames} frames (truncated file?)")
        entry.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.save(handle, pcm)
            os.replace(temporary, entry)  # two processes building the same entry write the same bytes
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return True
