"""Shared audio reading: ``read_float32`` gives exactly what libsndfile's float read gives, for every encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from uniflow.audio import read_audio, read_float32


@pytest.mark.parametrize(
    ("container", "subtype"),
    [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("OGG", "VORBIS")],
)
def test_read_float32_is_libsndfile_float_read_bit_for_bit(container: str, subtype: str) -> None:
    rng = np.random.default_rng(0)
    samples = np.clip(rng.standard_normal((44_100, 2)) * 0.3, -1, 1)
    samples[:8] = [[-1.0, 1.0]] * 8  # the extremes of every integer encoding
    buffer = io.BytesIO()
    sf.write(buffer, samples, 44_100, format=container, subtype=subtype)
    data = buffer.getvalue()
    expected, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    with sf.SoundFile(io.BytesIO(data)) as handle:
        ours = read_float32(handle)
    assert ours.dtype == np.float32 and ours.tobytes() == expected.tobytes()
    # a window of frames, as the stages read clips
    with sf.SoundFile(io.BytesIO(data)) as handle:
        handle.seek(1_000)
        part = read_float32(handle, 5_000)
    assert part.tobytes() == expected[1_000:6_000].tobytes()
    whole, rate = read_audio(io.BytesIO(data))
    assert rate == 44_100 and whole.tobytes() == expected.tobytes()
