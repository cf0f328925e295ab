"""Room impulse responses for SE simulation: loading, the early-reverberation RIR, generated RIRs.

``load_rir`` gives one channel of an RIR file at the output rate, peak-normalised (max |h| = 1),
so the reverberant speech keeps about the level of the dry speech.

``early_rir`` follows URGENT (``rir_utils.estimate_early_rir``, from sms_wsj): the direct path
starts at the first sample whose magnitude exceeds 0.1 * max |h|; the early RIR keeps everything
up to 50 ms after it and is zero afterwards. The clean target is the speech convolved with it, so
it carries the same direct-path delay as the reverberant input and the pair stays time-aligned.

``generate_rirs`` writes pyroomacoustics shoebox RIRs (image source method) for builds that have
no RIR corpus, as manifest-style records.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from uniflow.simulate.errors import SimulationInputError

DIRECT_PATH_THRESHOLD = 0.1
"""The direct path starts at the first sample above this fraction of the RIR's peak magnitude."""

GENERATED_CORPUS = "generated_rirs"
# Image-source order cap: compute time grows with its cube (order 90 takes 0.3 s per RIR); 24
# reflections per axis reach about 0.3-0.6 s into the response, enough for the reverberation tail
# that matters at SNRs down to -5 dB, and keeps 64 RIRs to a few seconds.
_MAX_IMAGE_ORDER = 24


def load_rir(path: str | Path, channel: int, sample_rate: int) -> np.ndarray:
    """Channel ``channel`` of the RIR file at ``sample_rate``, float32, peak-normalised to 1.

    Raises SimulationInputError when the file is unreadable, lacks the channel, holds NaN or
    infinite samples, or is all zeros.
    """
    path = Path(path)
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        reason = "file not found" if not path.exists() else f"cannot read: {error}"
        raise SimulationInputError(path, reason) from None
    if not 0 <= channel < data.shape[1]:
        raise SimulationInputError(path, f"RIR channel {channel} requested, the file has {data.shape[1]}")
    if data.shape[0] == 0:
        raise SimulationInputError(path, "RIR file is empty")
    rir = np.ascontiguousarray(data[:, channel])
    if rate != sample_rate:
        rir = soxr.resample(rir, rate, sample_rate, quality="HQ")
    peak = float(np.abs(rir).max())
    if not math.isfinite(peak):
        raise SimulationInputError(path, "RIR holds NaN or infinite samples")
    if peak == 0.0:
        raise SimulationInputError(path, "RIR is all zeros")
    rir /= np.float32(peak)  # division: the peak becomes exactly 1
    return rir


def direct_path_index(rir: np.ndarray) -> int:
    """Index of the first sample whose magnitude exceeds ``DIRECT_PATH_THRESHOLD`` times the peak."""
    magnitude = np.abs(rir)
    return int(np.argmax(magnitude > DIRECT_PATH_THRESHOLD * magnitude.max()))


def early_rir(rir: np.ndarray, sample_rate: int, early_seconds: float = 0.05) -> np.ndarray:
    """The early-reverberation RIR: ``rir`` up to ``early_seconds`` after the direct path.

    The samples after that are zero by definition, so they are left out: the returned array is the
    leading part of ``rir`` (convolving with it equals convolving with the zero-padded RIR).
    """
    end = direct_path_index(rir) + round(early_seconds * sample_rate)
    return rir[: min(end, len(rir))].copy()


def generate_rirs(count: int, seed: int, out_dir: str | Path, sample_rate: int) -> list[dict[str, Any]]:
    """Write ``count`` shoebox RIRs (``rir_00000.wav``...) to ``out_dir``; return their records.

    Each RIR is drawn from its own RNG (``seed``, index), so the first N files are the same for
    any ``count`` >= N. Rooms: 3-10 x 3-8 x 2.5-4 m, RT60 0.2-0.8 s (absorption from Sabine's
    formula), source and microphone at least 0.5 m from the walls and 0.3 m apart. Records look
    like manifest lines (``audio`` is the absolute file path) with ``extra["kind"] == "rir"``.
    """
    import pyroomacoustics as pra  # imported here: it takes about a second to import

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    # pyroomacoustics sums image sources on all cores by default, in an order that varies from run
    # to run; one thread makes the same seed give the same bytes.
    threads = pra.constants.get("num_threads")
    pra.constants.set("num_threads", 1)
    try:
        for index in range(count):
            rng = np.random.default_rng([seed, index])
            room_dim = [float(rng.uniform(3, 10)), float(rng.uniform(3, 8)), float(rng.uniform(2.5, 4))]
            rt60 = float(rng.uniform(0.2, 0.8))
            absorption, sabine_order = pra.inverse_sabine(rt60, room_dim)
            order = int(min(sabine_order, _MAX_IMAGE_ORDER))
            while True:  # positions: inside the walls' 0.5 m margin, not on top of each other
                source = [float(rng.uniform(0.5, side - 0.5)) for side in room_dim]
                mic = [float(rng.uniform(0.5, side - 0.5)) for side in room_dim]
                distance = float(np.linalg.norm(np.subtract(source, mic)))
                if distance >= 0.3:
                    break
            room = pra.ShoeBox(room_dim, fs=sample_rate, materials=pra.Material(absorption), max_order=order)
            room.add_source(source)
            room.add_microphone(mic)
            room.compute_rir()
            rir = np.asarray(room.rir[0][0], dtype=np.float32)
            rir *= np.float32(0.999) / np.abs(rir).max()  # just below full scale for 24-bit PCM
            path = (out_dir / f"rir_{index:05d}.wav").resolve()
            # 24-bit PCM (144 dB of range): float WAV would carry libsndfile's PEAK chunk, which holds
            # a time stamp, so the same RIR would not give the same bytes
            sf.write(path, rir, sample_rate, subtype="PCM_24")
            records.append(
                {
                    "id": f"{GENERATED_CORPUS}/rir_{index:05d}",
                    "corpus": GENERATED_CORPUS,
                    "split": "train",
                    "audio": str(path),
                    "sample_rate": sample_rate,
                    "seconds": round(len(rir) / sample_rate, 6),
                    "num_frames": len(rir),
                    "channels": 1,
                    "extra": {
                        "kind": "rir",
                        "source": "pyroomacoustics",
                        "rt60": round(rt60, 4),
                        "room_dim": [round(side, 3) for side in room_dim],
                        "image_order": order,
                        "distance": round(distance, 3),
                    },
                }
            )
    finally:
        pra.constants.set("num_threads", threads)
    return records
