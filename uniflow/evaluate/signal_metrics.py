"""Reference-based signal metrics: PESQ and STOI (SE), LSD (SR), F0 RMSE and semitone accuracy (SVS).

Every metric returns a :class:`Score`: the value and a metric card naming the implementation (package and
version, or this module's own sha256 where the computation is ours), the sample rate it ran at and its
settings, so that a number is never reported without how it was made.

Inputs are mono float arrays with their sample rate. A reference and an estimate may differ in length by
a little (resamplers and codecs round lengths; generated audio ends on a latent frame); both are cut to the
shorter one, and a difference above ``MAX_LENGTH_MISMATCH_S`` is an error because it means the two files
do not belong together.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import scipy.signal
import soxr

from uniflow.evaluate.cards import checked_mono, own_implementation, package_implementation

MAX_LENGTH_MISMATCH_S = 0.05

# Pins the evaluation was validated with; a missing package error tells the user to install exactly these.
PINNED_PACKAGES = {"pesq": "0.0.4", "pystoi": "0.4.1"}

PESQ_SAMPLE_RATE = 16000
LSD_SAMPLE_RATE = 24000
LSD_N_FFT = 2048
LSD_HOP = 512
LSD_EPS = 1e-10
# C2..C6 spans bass to soprano singing; the frame must hold two periods of the lowest pitch.
F0_FMIN_HZ = 65.41
F0_FMAX_HZ = 1046.5
F0_HOP_S = 0.01
F0_YIN_THRESHOLD = 0.15
F0_SILENCE_DB = -60.0
_F0_FRAMES_PER_CHUNK = 2048
F0_UNITS = ("cents", "hz", "log")


class MetricUnavailable(RuntimeError):
    """A metric's package is not installed; the message says what to install."""


class Score(NamedTuple):
    """A metric value and the card that says how it was computed."""

    value: float
    card: dict[str, Any]


class PitchTrack(NamedTuple):
    """Frame-wise F0 in Hz (0 where unvoiced) and the voicing decision, one frame every ``hop_s``."""

    f0_hz: np.ndarray
    voiced: np.ndarray
    hop_s: float


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Score:
    """Wideband PESQ (ITU-T P.862.2, MOS-LQO, about -0.5..4.64) at 16 kHz; other rates are resampled with soxr."""
    pesq_module = _require("pesq", "PESQ")
    reference, estimate, seconds = _paired(reference, estimate, sample_rate)
    ref16 = _resample(reference, sample_rate, PESQ_SAMPLE_RATE)
    est16 = _resample(estimate, sample_rate, PESQ_SAMPLE_RATE)
    try:
        value = pesq_module.pesq(PESQ_SAMPLE_RATE, ref16, est16, "wb")
    except pesq_module.PesqError as error:
        raise ValueError(f"PESQ could not score this pair: {type(error).__name__}: {error}") from error
    card = _card(
        "pesq_wb",
        package_implementation("pesq"),
        PESQ_SAMPLE_RATE,
        sample_rate,
        seconds,
        {"mode": "wb", "standard": "ITU-T P.862.2"},
    )
    return Score(float(value), card)


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, *, extended: bool = False) -> Score:
    """STOI (0..1) by pystoi, which resamples to 10 kHz itself and drops frames 40 dB below the loudest."""
    pystoi_module = _require("pystoi", "STOI")
    reference, estimate, seconds = _paired(reference, estimate, sample_rate)
    with warnings.catch_warnings():
        # pystoi only warns and returns 1e-5 when too little speech is left; that is not a score.
        warnings.filterwarnings("error", message="Not enough STFT frames", category=RuntimeWarning)
        try:
            value = pystoi_module.stoi(reference, estimate, sample_rate, extended=extended)
        except RuntimeWarning as warning:
            raise ValueError(f"STOI could not score this pair: {warning}") from warning
    card = _card(
        "estoi" if extended else "stoi",
        package_implementation("pystoi"),
        10000,
        sample_rate,
        seconds,
        {"extended": extended, "frame": 256, "dynamic_range_db": 40},
    )
    return Score(float(value), card)


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Score:
    """LSD at 24 kHz as NVSR/AudioSR compute it: STFT power, log10, per frame the root mean square over
    frequency bins of the difference, then the mean over frames (0 for identical signals)."""
    reference, estimate, seconds = _paired(reference, estimate, sample_rate)
    ref24 = _resample(reference, sample_rate, LSD_SAMPLE_RATE)
    est24 = _resample(estimate, sample_rate, LSD_SAMPLE_RATE)
    log_ref = np.log10(_power_spectrogram(ref24) + LSD_EPS)
    log_est = np.log10(_power_spectrogram(est24) + LSD_EPS)
    per_frame = np.sqrt(np.mean((log_ref - log_est) ** 2, axis=1))
    card = _card(
        "lsd",
        own_implementation(__name__, __file__, numpy=np.__version__),
        LSD_SAMPLE_RATE,
        sample_rate,
        seconds,
        {
            "n_fft": LSD_N_FFT,
            "hop": LSD_HOP,
            "window": "hann (periodic)",
            "center": "reflect padding of n_fft/2",
            "spectrum": "power",
            "log": "log10",
            "eps": LSD_EPS,
            "reduction": "mean over frames of sqrt(mean over bins of squared difference)",
        },
    )
    return Score(float(np.mean(per_frame)), card)


def pitch_track(
    audio: np.ndarray,
    sample_rate: int,
    *,
    fmin: float = F0_FMIN_HZ,
    fmax: float = F0_FMAX_HZ,
    hop_s: float = F0_HOP_S,
    threshold: float = F0_YIN_THRESHOLD,
    silence_db: float = F0_SILENCE_DB,
) -> PitchTrack:
    """YIN F0 (de Cheveigné & Kawahara 2002) with parabolic refinement, vectorised with numpy.

    A frame is voiced when its cumulative mean normalised difference has a trough below ``threshold``
    between the periods of ``fmax`` and ``fmin`` and its RMS is above ``silence_db`` dBFS.
    """
    audio = checked_mono(audio, "audio")
    longest = int(np.ceil(sample_rate / fmin))
    shortest = max(2, int(np.floor(sample_rate / fmax)))
    # The integration window is one longest period, so each frame holds two of them.
    window = longest
    frame_length = window + longest + 1
    hop = max(1, int(round(hop_s * sample_rate)))
    # Frame i is centred on sample i * hop, giving 1 + len // hop frames as centred STFTs do.
    padded = np.pad(audio, (frame_length // 2, frame_length - frame_length // 2))
    frames_view = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop]
    f0 = np.zeros(len(frames_view))
    voiced = np.zeros(len(frames_view), dtype=bool)
    for start in range(0, len(frames_view), _F0_FRAMES_PER_CHUNK):
        frames = frames_view[start : start + _F0_FRAMES_PER_CHUNK]
        chunk_f0, chunk_voiced = _yin_frames(frames, window, shortest, longest, sample_rate, threshold)
        rms_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
        f0[start : start + len(frames)] = chunk_f0
        voiced[start : start + len(frames)] = chunk_voiced & (rms_db > silence_db)
    f0[~voiced] = 0.0
    return PitchTrack(f0, voiced, hop / sample_rate)


def f0_rmse(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, *, unit: str = "cents") -> Score:
    """RMS F0 error over the frames voiced in both signals, in cents (default), Hz, or natural-log F0
    ("log": ESPnet's log-F0 RMSE, the unit of the paper's Table 1 F0 column)."""
    return svs_pitch_metrics(reference, estimate, sample_rate, unit=unit)["f0_rmse"]


def semitone_accuracy(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Score:
    """Share of frames voiced in both whose F0 rounds to the same MIDI semitone."""
    return svs_pitch_metrics(reference, estimate, sample_rate)["semitone_accuracy"]


def svs_pitch_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, *, unit: str = "cents") -> dict[str, Score]:
    """F0 RMSE and semitone accuracy from one pitch extraction of each signal, frame by frame (no DTW:
    SVS output follows the score's durations, so frames correspond)."""
    if unit not in F0_UNITS:
        raise ValueError(f"F0 RMSE unit must be one of {', '.join(F0_UNITS)}, not {unit!r}")
    reference, estimate, seconds = _paired(reference, estimate, sample_rate)
    ref_track = pitch_track(reference, sample_rate)
    est_track = pitch_track(estimate, sample_rate)
    both = ref_track.voiced & est_track.voiced
    if not both.any():
        raise ValueError("no frame is voiced in both signals, so F0 metrics are undefined")
    ref_f0 = ref_track.f0_hz[both]
    est_f0 = est_track.f0_hz[both]
    if unit == "cents":
        errors = 1200 * np.log2(est_f0 / ref_f0)
    elif unit == "log":
        errors = np.log(est_f0 / ref_f0)
    else:
        errors = est_f0 - ref_f0
    rmse = float(np.sqrt(np.mean(errors**2)))
    accuracy = float(np.mean(np.round(_midi(ref_f0)) == np.round(_midi(est_f0))))
    settings = {
        "extractor": "YIN with parabolic interpolation",
        "fmin_hz": F0_FMIN_HZ,
        "fmax_hz": F0_FMAX_HZ,
        "hop_s": F0_HOP_S,
        "yin_threshold": F0_YIN_THRESHOLD,
        "silence_db": F0_SILENCE_DB,
        "frames": "voiced in both reference and estimate",
        "alignment": "frame by frame, no DTW",
        "voiced_frames_compared": int(both.sum()),
        "frames_total": int(min(len(ref_track.f0_hz), len(est_track.f0_hz))),
    }
    implementation = own_implementation(__name__, __file__, numpy=np.__version__)
    return {
        "f0_rmse": Score(
            rmse,
            _card("f0_rmse", implementation, sample_rate, sample_rate, seconds, {**settings, "unit": unit}),
        ),
        "semitone_accuracy": Score(
            accuracy,
            _card(
                "semitone_accuracy",
                implementation,
                sample_rate,
                sample_rate,
                seconds,
                {**settings, "semitone": "round(69 + 12 * log2(f0 / 440))"},
            ),
        ),
    }


def _yin_frames(
    frames: np.ndarray, window: int, shortest: int, longest: int, sample_rate: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """F0 and the trough-below-threshold flag of each frame (rows of ``frames``)."""
    n_fft = 1 << int(np.ceil(np.log2(frames.shape[1] + window)))
    head = frames[:, :window]
    # Cross-correlation of the integration window with the whole frame, for lags 0..longest.
    spectrum_product = np.conj(np.fft.rfft(head, n_fft, axis=1)) * np.fft.rfft(frames, n_fft, axis=1)
    correlation = np.fft.irfft(spectrum_product, n_fft, axis=1)[:, : longest + 1]
    energy = np.concatenate((np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)), axis=1)
    lags = np.arange(longest + 1)
    lagged_energy = energy[:, lags + window] - energy[:, lags]
    difference = np.maximum(lagged_energy[:, :1] + lagged_energy - 2 * correlation, 0.0)
    cumulative = np.cumsum(difference[:, 1:], axis=1)
    normalized = np.ones_like(difference)
    normalized[:, 1:] = difference[:, 1:] * lags[1:] / np.maximum(cumulative, 1e-20)
    # Troughs strictly inside [shortest, longest) so both neighbours exist for the parabola.
    centre = normalized[:, shortest:longest]
    before = normalized[:, shortest - 1 : longest - 1]
    after = normalized[:, shortest + 1 : longest + 1]
    candidates = (centre < threshold) & (centre <= before) & (centre < after)
    found = candidates.any(axis=1)
    first = np.argmax(candidates, axis=1)
    rows = np.arange(len(frames))
    y0, y1, y2 = before[rows, first], centre[rows, first], after[rows, first]
    curvature = y0 - 2 * y1 + y2
    shift = np.where(curvature > 0, 0.5 * (y0 - y2) / np.where(curvature > 0, curvature, 1.0), 0.0)
    period = shortest + first + np.clip(shift, -1.0, 1.0)
    return np.where(found, sample_rate / period, 0.0), found


def _power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """|STFT|^2 with shape (frames, bins)."""
    # Centred frames as torch.stft/librosa make them; reflection needs more samples than the pad.
    mode = "reflect" if len(audio) > LSD_N_FFT // 2 else "constant"
    padded = np.pad(audio, (LSD_N_FFT // 2, LSD_N_FFT // 2), mode=mode)
    if len(padded) < LSD_N_FFT:
        padded = np.pad(padded, (0, LSD_N_FFT - len(padded)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, LSD_N_FFT)[::LSD_HOP]
    window = scipy.signal.get_window("hann", LSD_N_FFT)
    return np.abs(np.fft.rfft(frames * window, axis=1)) ** 2


def _midi(f0_hz: np.ndarray) -> np.ndarray:
    return 69 + 12 * np.log2(f0_hz / 440.0)


def _paired(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Both signals as float64, cut to the shorter, with the compared duration in seconds."""
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    reference = checked_mono(reference, "reference")
    estimate = checked_mono(estimate, "estimate")
    mismatch_s = abs(len(reference) - len(estimate)) / sample_rate
    if mismatch_s > MAX_LENGTH_MISMATCH_S:
        raise ValueError(
            f"reference ({len(reference)} samples) and estimate ({len(estimate)} samples) differ by "
            f"{mismatch_s:.3f} s, more than {MAX_LENGTH_MISMATCH_S} s"
        )
    length = min(len(reference), len(estimate))
    return reference[:length], estimate[:length], length / sample_rate


def _resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return audio
    return soxr.resample(audio, source_rate, target_rate, quality="VHQ")


def _card(
    metric: str,
    implementation: dict[str, str],
    sample_rate: int,
    input_sample_rate: int,
    seconds: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "metric": metric,
        "implementation": implementation,
        "sample_rate": sample_rate,
        "input_sample_rate": input_sample_rate,
        "compared_seconds": round(seconds, 6),
        "settings": settings,
    }
    if metric in ("pesq_wb", "lsd") and input_sample_rate != sample_rate:
        card["resampler"] = {"package": "soxr", "version": importlib.metadata.version("soxr"), "quality": "VHQ"}
    return card


def _require(package: str, metric: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise MetricUnavailable(
            f"{metric} needs the '{package}' package: pip install {package}=={PINNED_PACKAGES[package]}"
        ) from error

