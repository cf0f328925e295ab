"""In-memory audio encoding shared by the stages that write audio (simulation, shards)."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def encode_flac(audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """FLAC bytes of a float signal in [-1, 1] (libsndfile clips what lies outside)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="FLAC", subtype=subtype)
    return buffer.getvalue()


def decode_audio(data: bytes, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Samples and rate of encoded audio (FLAC, WAV, Ogg...)."""
    samples, rate = sf.read(io.BytesIO(data), dtype=dtype)
    return samples, rate
