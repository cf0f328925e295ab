"""Fast audio probing: sample rate, length and channels, and whether a file is fit to use.

Manifest preparation touches every recording of a corpus once, so probing must be cheap. WAV
files (most of the corpora) are probed by parsing the RIFF header directly: one small read and one
``stat``, no decoder. Other formats go through libsndfile (soundfile). Either way a file is
rejected, with the reason, when it is unreadable, empty, truncated, or holds non-finite samples.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

_HEADER_BYTES = 4096
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# Frames decoded at the end of a compressed file: a truncated stream fails to deliver them.
_TAIL_FRAMES = 2048


@dataclass(slots=True)
class AudioInfo:
    sample_rate: int
    num_frames: int
    channels: int
    format: str

    @property
    def seconds(self) -> float:
        return self.num_frames / self.sample_rate


class AudioProblem(ValueError):
    """The file cannot be used; ``reason`` is a short phrase for the quarantine list."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def probe_audio(path: str | Path) -> AudioInfo:
    """Describe ``path`` or raise AudioProblem saying why it is unusable."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            header = handle.read(_HEADER_BYTES)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        raise AudioProblem(path, "file not found") from None
    except OSError as exc:
        raise AudioProblem(path, f"unreadable: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioProblem(path, "empty file (0 bytes)")
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        info = _probe_wav_header(path, header, size)
        if info is not None:
            return info
    return _probe_with_libsndfile(path)


def _probe_wav_header(path: str, header: bytes, size: int) -> AudioInfo | None:
    """Parse RIFF chunks; None when the layout needs the general decoder (e.g. fmt beyond 4 KiB)."""
    offset = 12
    fmt: tuple[int, int, int, int, int] | None = None
    while offset + 8 <= len(header):
        chunk_id = header[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", header, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt ":
            if body + 16 > len(header):
                return None
            code, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", header, body)
            if code == _WAVE_FORMAT_EXTENSIBLE and chunk_size >= 40 and body + 26 <= len(header):
                (code,) = struct.unpack_from("<H", header, body + 24)
            fmt = (code, channels, rate, block_align, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioProblem(path, "corrupt WAV: data chunk before fmt chunk")
            code, channels, rate, block_align, bits = fmt
            if channels == 0 or rate == 0 or block_align == 0:
                raise AudioProblem(path, f"corrupt WAV header (channels={channels}, rate={rate}, block_align={block_align})")
            available = size - body
            if chunk_size in (0, 0xFFFFFFFF):  # written by a streaming encoder that never patched the size
                chunk_size = available
            if chunk_size > available:
                raise AudioProblem(path, f"truncated: header declares {chunk_size} data bytes, file holds {available}")
            frames = chunk_size // block_align
            if frames == 0:
                raise AudioProblem(path, "empty audio (0 frames)")
            if code == _WAVE_FORMAT_IEEE_FLOAT:
                dtype = {32: "<f4", 64: "<f8"}.get(bits)
                if dtype is None:
                    return None
                samples = np.fromfile(path, dtype=dtype, count=frames * channels, offset=body)
                if not np.isfinite(samples).all():
                    raise AudioProblem(path, "non-finite samples (NaN or Inf)")
            elif code != _WAVE_FORMAT_PCM:
                return None  # A-law, ADPCM...: let libsndfile decide
            return AudioInfo(rate, frames, channels, "wav")
        offset = body + chunk_size + (chunk_size & 1)
    if offset + 8 > size:
        raise AudioProblem(path, "truncated: WAV has no data chunk")
    return None


def _probe_with_libsndfile(path: str) -> AudioInfo:
    try:
        audio = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioProblem(path, f"unreadable audio: {exc}") from None
    with audio:
        frames, rate, channels, fmt = audio.frames, audio.samplerate, audio.channels, audio.format.lower()
        if frames <= 0:
            raise AudioProblem(path, "empty audio (0 frames)")
        if audio.format == "MPEG":
            # MP3 length is counted by scanning frames, so a cut file just reports fewer frames;
            # seeking near the end only makes libmpg123 complain about its bit reservoir.
            return AudioInfo(rate, frames, channels, fmt)
        tail = min(frames, _TAIL_FRAMES)
        try:
            audio.seek(frames - tail)
            samples = audio.read(tail, dtype="float32")
        except (sf.LibsndfileError, RuntimeError) as exc:
            # The header promised frames the stream cannot deliver: the file was cut short.
            raise AudioProblem(path, f"truncated: cannot decode the end of the {frames}-frame stream ({exc})") from None
    if len(samples) < tail:
        raise AudioProblem(path, f"truncated: header declares {frames} frames, decoding stopped early")
    if not np.isfinite(samples).all():
        raise AudioProblem(path, "non-finite samples (NaN or Inf)")
    return AudioInfo(rate, frames, channels, fmt)
