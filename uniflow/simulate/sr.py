"""Super-resolution pairs: a 24 kHz high-resolution clip and its low-passed twin of the same length.

Following NVSR/AudioSR (paper, SR setup), every high-quality recording is resampled to 24 kHz and
cut into clips; the low-resolution input of a clip is a zero-phase IIR low-pass of random type
(Butterworth, Chebyshev I, elliptic, Bessel), order and cutoff, designed in second-order sections,
then resampled down to twice the cutoff and back up, so no energy is left above the cutoff and the
pair stays sample-aligned at 24 kHz.

Two ways to run the low-pass, chosen per clip by its ``resample_method``:

- ``fourier`` (the default): forward-backward filtering multiplies the spectrum by ``|H|^2`` with
  zero phase, and Fourier-method resampling to twice the cutoff and back (``scipy.signal.resample``'s
  method) keeps the bins below the cutoff and zeroes the rest. Both act on one spectrum, so one
  real FFT, one product and one inverse FFT do the work of two IIR passes and two resamplers
  (about twice as fast), and the band above the cutoff is empty to float precision.
- ``soxr_hq`` / ``soxr_vhq``: ``sosfiltfilt`` in the time domain, then soxr down and back up (its
  transition band ends at the lower rate's Nyquist frequency). Kept for clips drawn with it.

Two stages, as for SE: ``sample_sr_params`` draws every random choice of every clip into an
``SrParams`` record (deterministic per key), and ``render_sr`` turns one record plus the raw root
into ``(low, high)``; the same record always renders the same bytes.

Sources: a manifest record's ``audio`` file. MUSDB18-HQ records point at ``mixture.wav`` (the
sum of their stems), which is used as is; MoisesDB has no mixture file, so its records list every
source track under ``extra["stems"]`` (``{stem: [{"path": ...}, ...]}``) and the source is their
sum. Multi-channel audio is mixed to mono by averaging the channels (choosing one channel would
lose whatever a stereo mix pans to the other side).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.fft
import scipy.signal as signal
import soundfile as sf
import soxr
from pydantic import Field, model_validator

from uniflow.audio import read_float32
from uniflow.config import StrictModel
from uniflow.simulate.common import fit_length, key_seed, params_values
from uniflow.simulate.errors import SimulationInputError

SR_VERSION = 1
"""Bumped whenever rendering changes, so stored parameters say which code made their audio."""

FilterType = Literal["butter", "cheby1", "ellip", "bessel"]
ResampleMethod = Literal["fourier", "soxr_hq", "soxr_vhq"]
FILTER_TYPES: tuple[str, ...] = ("butter", "cheby1", "ellip", "bessel")
_SOXR_QUALITY = {"soxr_hq": "HQ", "soxr_vhq": "VHQ"}
# The source -> 24 kHz step is not a drawn parameter: it is part of the renderer (SR_VERSION).
_SOURCE_RESAMPLE_QUALITY = "HQ"


class SrConfig(StrictModel):
    """Settings of the SR pair simulator (defaults: the paper's 24 kHz, 2-6 kHz cutoffs, NVSR's filters).

    The paper (Sec. "SR") draws the cutoff from [2, 6] kHz; the authors' released code uses
    2-4 kHz. Cutoffs are drawn on a grid of ``cutoff_step_hz`` so that filter designs repeat and
    their cache pays off; ripples and stopband attenuations are drawn from short lists for the
    same reason.
    """

    sample_rate: int = Field(24_000, gt=0, description="Rate of both outputs (the VAE's rate).")
    cutoff_hz: tuple[float, float] = Field((2000.0, 6000.0), description="Cutoff range in Hz, both ends included.")
    cutoff_step_hz: float = Field(50.0, gt=0, description="Cutoffs are drawn on this grid from the range's low end.")
    filter_types: tuple[FilterType, ...] = Field(FILTER_TYPES, min_length=1, description="Drawn uniformly.")
    order: tuple[int, int] = Field((2, 10), description="Filter order range, both ends included.")
    cheby1_ripple_db: tuple[float, ...] = Field((0.1, 0.25, 0.5, 1.0), min_length=1, description="Passband ripples.")
    ellip_ripple_db: tuple[float, ...] = Field((0.1,), min_length=1, description="Elliptic passband ripples.")
    ellip_stopband_db: tuple[float, ...] = Field((60.0,), min_length=1, description="Elliptic stopband attenuations.")
    resample_methods: tuple[ResampleMethod, ...] = Field(
        ("fourier",), min_length=1, description="For the down/up step (see the module docstring)."
    )
    clip_seconds: float = Field(10.0, gt=0, description="Length of the clips long files are cut into.")
    split_long_seconds: float = Field(20.0, gt=0, description="Files longer than this are cut into clips.")
    min_clip_seconds: float = Field(2.0, gt=0, description="Shorter clips (and shorter files) are dropped.")
    min_source_sample_rate: int = Field(24_000, gt=0, description="Lower rates lack the band the target needs.")
    silence_dbfs: float = Field(-60.0, description="A clip whose RMS is below this level is quarantined as silent.")
    clip_level: float = Field(0.999, gt=0, description="Samples at or above this magnitude count as clipped.")
    max_clipped_fraction: float = Field(0.001, ge=0, le=1, description="More clipped samples than this: quarantined.")
    peak_limit: float = Field(0.99, gt=0, le=1, description="Pairs peaking higher are scaled down together.")
    seed: int = Field(0, description="Global seed; each clip's seed derives from it and the clip's key.")

    @model_validator(mode="after")
    def _check_ranges(self) -> SrConfig:
        low, high = self.cutoff_hz
        if not 0 < low <= high < self.sample_rate / 2:
            raise ValueError(f"cutoff_hz {self.cutoff_hz}: need 0 < low <= high < sample_rate/2 = {self.sample_rate / 2}")
        if not 1 <= self.order[0] <= self.order[1] <= 20:
            raise ValueError(f"order {self.order}: need 1 <= low <= high <= 20")
        if self.min_clip_seconds > self.clip_seconds:
            raise ValueError(f"min_clip_seconds {self.min_clip_seconds} exceeds clip_seconds {self.clip_seconds}")
        if any(r <= 0 for r in self.cheby1_ripple_db + self.ellip_ripple_db):
            raise ValueError("ripples must be positive")
        if min(self.ellip_stopband_db) <= max(self.ellip_ripple_db):
            raise ValueError("ellip_stopband_db must exceed ellip_ripple_db")
        return self


@dataclass(frozen=True)
class SrParams:
    """Everything needed to render one SR pair again (JSON round trip via to_json/from_json)."""

    key: str
    seed: int
    version: int
    split: str
    source_id: str
    audio: tuple[str, ...]  # raw-relative files summed into the source: one file, or every MoisesDB track
    start: float  # seconds into the files
    end: float
    source_sample_rate: int
    sample_rate: int
    filter_type: str
    order: int
    cutoff_hz: float
    ripple_db: float | None  # cheby1 and ellip only
    stopband_db: float | None  # ellip only
    resample_method: str

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["audio"] = list(self.audio)
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SrParams:
        values = params_values(cls, record, "SR")
        values["audio"] = tuple(values["audio"])
        return cls(**values)


# -- planning and parameter sampling -------------------------------------------------------------
@dataclass(frozen=True)
class SrClip:
    """One clip of one source record: ``[start, end)`` seconds into its files."""

    record: dict[str, Any]
    index: int
    start: float
    end: float


def source_files(record: dict[str, Any]) -> tuple[str, ...]:
    """The raw-relative files whose sum is the record's source (see the module docstring)."""
    stems = (record.get("extra") or {}).get("stems")
    if isinstance(stems, dict) and stems and all(isinstance(tracks, list) for tracks in stems.values()):
        paths = tuple(track["path"] for name in sorted(stems) for track in stems[name] if isinstance(track, dict))
        if paths:
            return paths
    return (record["audio"],)


def plan_sr_clips(records: list[dict[str, Any]], config: SrConfig | None = None) -> tuple[list[SrClip], list[dict[str, str]]]:
    """Cut records into clips: longer than ``split_long_seconds`` -> ``clip_seconds`` pieces, short ones dropped.

    A file up to ``split_long_seconds`` long is one clip. Pieces shorter than ``min_clip_seconds``
    (a long file's tail) are dropped silently; records that give no clip at all (too short, too
    low a sample rate, broken fields) are returned as ``{"id", "reason"}``.
    """
    config = config or SrConfig()
    clips: list[SrClip] = []
    skipped: list[dict[str, str]] = []
    for record in records:
        reason = _unusable(record, config)
        if reason:
            skipped.append({"id": str(record.get("id")), "reason": reason})
            continue
        offset = float(record.get("start") or 0.0)
        seconds = float(record["seconds"])
        if seconds <= config.split_long_seconds:
            bounds = [(0.0, seconds)]
        else:
            count = math.ceil(seconds / config.clip_seconds - 1e-9)
            bounds = [(k * config.clip_seconds, min((k + 1) * config.clip_seconds, seconds)) for k in range(count)]
        bounds = [(a, b) for a, b in bounds if b - a >= config.min_clip_seconds - 1e-9]
        for index, (a, b) in enumerate(bounds):
            clips.append(SrClip(record, index, round(offset + a, 6), round(offset + b, 6)))
    return clips, skipped


def _unusable(record: dict[str, Any], config: SrConfig) -> str | None:
    if not record.get("id") or not record.get("audio"):
        return "record has no id or no audio"
    rate = record.get("sample_rate")
    if not isinstance(rate, int) or rate <= 0:
        return f"sample rate {rate!r} is not a positive integer"
    if rate < config.min_source_sample_rate:
        return f"sample rate {rate} Hz below {config.min_source_sample_rate} Hz: the target would lack its upper band"
    seconds = record.get("seconds")
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return f"duration {seconds!r} is not a number"
    if seconds < config.min_clip_seconds:
        return f"too short: {seconds:.3f} s < {config.min_clip_seconds:g} s"
    return None


def sample_sr_params(records: list[dict[str, Any]], config: SrConfig, split: str) -> tuple[list[SrParams], list[dict[str, str]]]:
    """Every clip's filter and resampling parameters, drawn from an RNG seeded by its key."""
    usable, skipped = [], []
    for record in records:
        record_split = record.get("split")
        if record_split is not None and record_split != split:
            skipped.append({"id": str(record.get("id")), "reason": f"split {record_split!r}, not {split!r}"})
        else:
            usable.append(record)
    clips, unusable = plan_sr_clips(usable, config)
    return [_draw(clip, config, split) for clip in clips], skipped + unusable


def _draw(clip: SrClip, config: SrConfig, split: str) -> SrParams:
    key = f"sr/{clip.record['id']}/c{clip.index}"
    seed = key_seed(config.seed, key)
    rng = np.random.default_rng(seed)
    filter_type = config.filter_types[int(rng.integers(len(config.filter_types)))]
    order = int(rng.integers(config.order[0], config.order[1] + 1))
    low, high = config.cutoff_hz
    steps = int(math.floor((high - low) / config.cutoff_step_hz + 1e-9))
    cutoff = round(low + config.cutoff_step_hz * int(rng.integers(steps + 1)), 6)
    ripple = stopband = None
    if filter_type == "cheby1":
        ripple = float(config.cheby1_ripple_db[int(rng.integers(len(config.cheby1_ripple_db)))])
    elif filter_type == "ellip":
        ripple = float(config.ellip_ripple_db[int(rng.integers(len(config.ellip_ripple_db)))])
        stopband = float(config.ellip_stopband_db[int(rng.integers(len(config.ellip_stopband_db)))])
    method = config.resample_methods[int(rng.integers(len(config.resample_methods)))]
    return SrParams(
        key=key,
        seed=seed,
        version=SR_VERSION,
        split=split,
        source_id=str(clip.record["id"]),
        audio=source_files(clip.record),
        start=clip.start,
        end=clip.end,
        source_sample_rate=int(clip.record["sample_rate"]),
        sample_rate=config.sample_rate,
        filter_type=filter_type,
        order=order,
        cutoff_hz=float(cutoff),
        ripple_db=ripple,
        stopband_db=stopband,
        resample_method=method,
    )


# -- the low-pass ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Design:
    sos: np.ndarray  # float32 (sections, 6)
    zi: np.ndarray  # float32 (sections, 2): steady-state state for a unit step
    padlen: int


def design_lowpass(
    filter_type: str,
    order: int,
    cutoff_hz: float,
    sample_rate: int,
    ripple_db: float | None = None,
    stopband_db: float | None = None,
) -> np.ndarray:
    """The low-pass as second-order sections (float64), designed directly in SOS form.

    Bessel filters are magnitude-normalised, so every type is 3 dB (Chebyshev I and elliptic:
    ``ripple_db``) down at ``cutoff_hz``.
    """
    return _design(filter_type, int(order), float(cutoff_hz), int(sample_rate), ripple_db, stopband_db)[0].copy()


@lru_cache(maxsize=8192)  # the default grid has about 5,100 designs
def _design(
    filter_type: str, order: int, cutoff_hz: float, sample_rate: int, ripple_db: float | None, stopband_db: float | None
) -> tuple[np.ndarray, _Design]:
    """(float64 SOS, float32 design for filtering), as scipy's iirfilter would design it, only faster.

    The analog prototype depends on the type, order and shape alone, so it is cached separately;
    per cutoff only the frequency scaling, the bilinear transform and the pairing into sections
    remain (scipy's general zpk2sos costs ten times more than all the rest).
    """
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff {cutoff_hz} Hz is not inside (0, {sample_rate / 2}) Hz")
    zeros, poles, gain = _prototype(filter_type, order, ripple_db, stopband_db)
    warped = 2.0 * sample_rate * math.tan(math.pi * cutoff_hz / sample_rate)  # pre-warped for the bilinear map
    zeros, poles, gain = signal.lp2lp_zpk(zeros, poles, gain, wo=warped)
    zeros, poles, gain = signal.bilinear_zpk(zeros, poles, gain, fs=sample_rate)
    sos = _lowpass_sections(zeros, poles, gain)
    a1, a2 = sos[:, 4], sos[:, 5]
    if not (np.all(np.abs(a2) < 1) and np.all(np.abs(a1) < 1 + a2)):  # poles inside the unit circle
        raise ValueError(f"{filter_type} order {order} at {cutoff_hz} Hz is unstable")
    sos.setflags(write=False)
    padlen = 3 * (2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))
    design = _Design(np.ascontiguousarray(sos, dtype=np.float32), _steady_state(sos).astype(np.float32), padlen)
    return sos, design


@cache
def _prototype(
    filter_type: str, order: int, ripple_db: float | None, stopband_db: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Analog low-pass prototype (cutoff 1 rad/s) as zeros, poles, gain."""
    if order < 1:
        raise ValueError(f"filter order {order} < 1")
    if filter_type == "butter":
        return signal.buttap(order)
    if filter_type == "cheby1":
        if ripple_db is None:
            raise ValueError("cheby1 needs ripple_db")
        return signal.cheb1ap(order, ripple_db)
    if filter_type == "ellip":
        if ripple_db is None or stopband_db is None:
            raise ValueError("ellip needs ripple_db and stopband_db")
        return signal.ellipap(order, ripple_db, stopband_db)
    if filter_type == "bessel":
        return signal.besselap(order, norm="mag")
    raise ValueError(f"unknown filter type {filter_type!r}; expected one of {FILTER_TYPES}")


def _lowpass_sections(zeros: np.ndarray, poles: np.ndarray, gain: float) -> np.ndarray:
    """Second-order sections of a digital low-pass from its zeros, poles and gain.

    Sections are ordered from the pole pair farthest from the unit circle to the nearest (the most
    resonant section last, as scipy's zpk2sos orders them), each with the remaining zero pair
    nearest to its pole; an odd order's real pole and real zero make the first, first-order
    section; the gain goes to the first section.
    """
    upper = poles[poles.imag > 0]
    real_poles = poles[poles.imag == 0].real
    if len(upper) * 2 + len(real_poles) != len(poles) or len(real_poles) > 1 or len(zeros) != len(poles):
        raise ValueError("expected conjugate pole pairs, at most one real pole, and as many zeros as poles")
    upper = upper[np.argsort(np.abs(upper))]
    zero_pairs = list(zeros[zeros.imag > 0])
    # a low-pass's zeros lie on the unit circle: conjugate pairs, and -1 (each -1 pair taken as a double root)
    minus_ones = len(zeros) - 2 * len(zero_pairs)
    zero_pairs += [complex(-1.0, 0.0)] * (minus_ones // 2)
    sections = []
    if len(real_poles):
        sections.append([1.0, 1.0, 0.0, 1.0, -real_poles[0], 0.0])  # its real zero is -1
    for pole in upper:
        nearest = int(np.argmin([abs(pole - zero) for zero in zero_pairs]))
        zero = zero_pairs.pop(nearest)
        sections.append([1.0, -2.0 * zero.real, abs(zero) ** 2, 1.0, -2.0 * pole.real, abs(pole) ** 2])
    sos = np.array(sections, dtype=np.float64)
    sos[0, :3] *= gain
    return sos


def _steady_state(sos: np.ndarray) -> np.ndarray:
    """Initial state of every section for a unit step input (what scipy's sosfilt_zi solves for)."""
    zi = np.empty((len(sos), 2))
    level = 1.0  # the step's level at this section's input
    for index, (b0, b1, b2, _, a1, a2) in enumerate(sos):
        dc_gain = (b0 + b1 + b2) / (1.0 + a1 + a2)
        # transposed direct form II at rest under a constant input: y = dc_gain, z1 = y - b0, z2 = b2 - a2 y
        zi[index] = level * (dc_gain - b0), level * (b2 - a2 * dc_gain)
        level *= dc_gain
    return zi


def _zero_phase(design: _Design, x: np.ndarray) -> np.ndarray:
    """sosfiltfilt in float32 (odd extension at both ends, steady-state initial conditions).

    Same method as scipy's sosfiltfilt, but with the initial conditions cached with the design and
    kept in float32 (scipy's float64 ones would promote the whole pass), and the edge padding
    shortened for clips shorter than it.
    """
    n = len(x)
    pad = min(design.padlen, n - 1)
    if pad > 0:
        head = 2 * x[0] - x[pad:0:-1]
        tail = 2 * x[-1] - x[-2 : -pad - 2 : -1]
        ext = np.concatenate((head, x, tail))
    else:
        ext = x
    forward, _ = signal.sosfilt(design.sos, ext, zi=design.zi * ext[0])
    backward = forward[::-1]
    result, _ = signal.sosfilt(design.sos, backward, zi=design.zi * backward[0])
    return result[::-1][pad : pad + n] if pad > 0 else result[::-1]


def zero_phase_lowpass(
    audio: np.ndarray,
    sample_rate: int,
    filter_type: str,
    order: int,
    cutoff_hz: float,
    ripple_db: float | None = None,
    stopband_db: float | None = None,
) -> np.ndarray:
    """The IIR part alone: the cached SOS design run forward and backward (float32, same length)."""
    x = _mono_float32(audio)
    _, design = _design(filter_type, int(order), float(cutoff_hz), int(sample_rate), ripple_db, stopband_db)
    return _zero_phase(design, x)


def lowpass(
    audio: np.ndarray,
    sample_rate: int,
    filter_type: str,
    order: int,
    cutoff_hz: float,
    ripple_db: float | None = None,
    stopband_db: float | None = None,
    resample_method: str = "fourier",
) -> np.ndarray:
    """Zero-phase SOS low-pass, then resampling to ``2 * cutoff_hz`` and back: float32, same length.

    The IIR filter gives the drawn roll-off shape; the down/up step removes what the filter lets
    through above the cutoff. ``fourier`` does both in one FFT pair, the soxr methods one after the
    other (see the module docstring).
    """
    if resample_method == "fourier":
        sos, _ = _design(filter_type, int(order), float(cutoff_hz), int(sample_rate), ripple_db, stopband_db)
        return _fourier_lowpass(_mono_float32(audio), sos, int(sample_rate), float(cutoff_hz))
    if resample_method not in _SOXR_QUALITY:
        known = sorted(["fourier", *_SOXR_QUALITY])
        raise ValueError(f"unknown resample method {resample_method!r}; expected one of {known}")
    filtered = zero_phase_lowpass(audio, sample_rate, filter_type, order, cutoff_hz, ripple_db, stopband_db)
    quality = _SOXR_QUALITY[resample_method]
    low_rate = 2.0 * float(cutoff_hz)
    down = soxr.resample(filtered, sample_rate, low_rate, quality=quality)
    up = soxr.resample(down, low_rate, sample_rate, quality=quality)
    return fit_length(up, len(filtered))


# Odd extension at each end before the transform (as sosfiltfilt extends, only longer): the FFT's
# periodic wrap then joins extension to extension, 85 ms from the clip, where the responses of the
# filter and of the band edge have decayed below -60 dB.
_FOURIER_PAD = 2048


def _fourier_lowpass(x: np.ndarray, sos: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """The ``fourier`` method: spectrum times ``|H|^2`` below the cutoff, zero from it on (float32)."""
    n = len(x)
    pad = min(_FOURIER_PAD, n - 1)
    ext = np.concatenate((2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1]))
    size = scipy.fft.next_fast_len(len(ext), real=True)
    spectrum = scipy.fft.rfft(ext, size)
    kept = math.ceil(cutoff_hz * size / sample_rate)  # bins strictly below the cutoff
    spectrum[:kept] *= _power_response(sos, _cosines(size)[:kept])
    spectrum[kept:] = 0
    return scipy.fft.irfft(spectrum, size)[pad : pad + n]


@lru_cache(maxsize=8)
def _cosines(size: int) -> np.ndarray:
    """``cos(w)`` at the bins of a ``size``-point real FFT (clips of one length share one array)."""
    cosines = np.cos(2 * np.pi * np.arange(size // 2 + 1) / size)
    cosines.setflags(write=False)
    return cosines


def _power_response(sos: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``|H(e^jw)|^2`` of second-order sections at ``c = cos(w)``, as float32.

    Per section, ``|b0 + b1 z^-1 + b2 z^-2|^2 = (b0^2 + b1^2 + b2^2 - 2 b0 b2) + 2 (b0 b1 + b1 b2) c
    + 4 b0 b2 c^2`` on the unit circle, and likewise for the poles: real arithmetic, in float64
    (a resonant section's denominator is a small difference of terms near 1).
    """
    numerator = np.ones_like(c)
    denominator = np.ones_like(c)
    term = np.empty_like(c)
    for b0, b1, b2, _, a1, a2 in sos:
        for coefficients, product in (((b0, b1, b2), numerator), ((1.0, a1, a2), denominator)):
            p0, p1, p2 = coefficients
            np.multiply(c, 4 * p0 * p2, out=term)  # Horner in c
            term += 2 * (p0 * p1 + p1 * p2)
            term *= c
            term += p0 * p0 + p1 * p1 + p2 * p2 - 2 * p0 * p2
            product *= term
    numerator /= denominator
    return numerator.astype(np.float32)


def _mono_float32(audio: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (one dimension), got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"expected at least 2 samples, got {len(x)}")
    return x


# -- rendering ---------------------------------------------------------------------------------------
def render_sr(params: SrParams, raw_root: str | Path, config: SrConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``: float32 mono at ``params.sample_rate``, equal length, sample-aligned.

    Raises SimulationInputError (the stage quarantines the pair) when a source file is missing,
    unreadable, at another rate than planned, shorter than the clip, non-finite, clipped or silent.
    """
    if params.version != SR_VERSION:
        raise ValueError(f"{params.key}: parameters of SR version {params.version}; this code renders version {SR_VERSION}")
    source = _read_source(params, Path(raw_root), config)
    high = source
    if params.source_sample_rate != params.sample_rate:
        high = soxr.resample(source, params.source_sample_rate, params.sample_rate, quality=_SOURCE_RESAMPLE_QUALITY)
    high = fit_length(high, round(len(source) * params.sample_rate / params.source_sample_rate))
    low = lowpass(
        high,
        params.sample_rate,
        params.filter_type,
        params.order,
        params.cutoff_hz,
        params.ripple_db,
        params.stopband_db,
        params.resample_method,
    )
    peak = max(_peak(high), _peak(low))
    if peak > config.peak_limit:  # FLAC PCM would clip: scale both, keeping the pair consistent
        scale = np.float32(config.peak_limit / peak)
        high = high * scale
        low = low * scale
    return low, high


def _peak(x: np.ndarray) -> float:
    return max(float(x.max()), -float(x.min()))


def _read_source(params: SrParams, raw_root: Path, config: SrConfig) -> np.ndarray:
    """The clip's frames of every source file, each checked and mixed to mono, summed (float32).

    Checked here, at the source rate, before any resampling work: coverage, NaN, silence.
    """
    rate = params.source_sample_rate
    first = round(params.start * rate)
    count = round(params.end * rate) - first
    if count < 2:
        raise SimulationInputError(params.source_id, f"clip [{params.start}, {params.end}] s holds {count} frames")
    total: np.ndarray | None = None
    covered = False
    for relative in params.audio:
        path = raw_root / relative
        frames, complete = _read_frames(path, rate, first, count, config)
        covered = covered or complete
        total = frames if total is None else total + frames
    assert total is not None
    if not covered:
        raise SimulationInputError(params.audio[0], f"file ends before the clip [{params.start}, {params.end}] s does")
    # one pass gives both checks: a NaN or infinity anywhere makes the energy non-finite
    energy = float(np.einsum("i,i->", total, total))
    if not math.isfinite(energy):
        raise SimulationInputError(params.source_id, "audio holds NaN or infinite samples")
    rms_dbfs = 10 * math.log10(energy / len(total) + 1e-30)
    if rms_dbfs < config.silence_dbfs:
        raise SimulationInputError(params.source_id, f"silent: RMS {rms_dbfs:.1f} dBFS < {config.silence_dbfs:g} dBFS")
    return total


def _read_frames(path: Path, rate: int, first: int, count: int, config: SrConfig) -> tuple[np.ndarray, bool]:
    """Mono float32 frames ``[first, first + count)`` of one file, zero-padded; and whether it had them all."""
    try:
        with sf.SoundFile(path) as handle:
            if handle.samplerate != rate:
                raise SimulationInputError(path, f"sample rate {handle.samplerate} Hz, planned {rate} Hz")
            if first >= handle.frames:
                return np.zeros(count, dtype=np.float32), False
            handle.seek(first)
            data = read_float32(handle, count)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        reason = "file not found" if not path.exists() else f"cannot read: {error}"
        raise SimulationInputError(path, reason) from None
    _check_clipping(path, data, config)
    channels = data.shape[1]
    if channels == 1:
        mono = data.reshape(-1)  # a view: ``data`` is ours and C-ordered
    elif channels == 2:
        mono = data[:, 0] + data[:, 1]
        mono *= np.float32(0.5)
    else:
        mono = data.mean(axis=1, dtype=np.float32)
    if len(mono) < count:
        return fit_length(mono, count), False
    return mono, True


def _check_clipping(path: Path, data: np.ndarray, config: SrConfig) -> None:
    if len(data) == 0 or _peak(data) < config.clip_level:
        return
    clipped = int(np.count_nonzero(np.abs(data) >= config.clip_level))
    fraction = clipped / data.size
    if fraction > config.max_clipped_fraction:
        raise SimulationInputError(
            path, f"clipped: {fraction:.2%} of samples at full scale (limit {config.max_clipped_fraction:.2%})"
        )
