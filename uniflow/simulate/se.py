"""Noisy speech pairs (SE) after the URGENT 2025 recipe: reverberation, noise at a drawn SNR, degradations.

Two stages, as URGENT: ``sample_se_params`` draws every random choice of every output pair into an
``SeParams`` record, from an RNG seeded by the global seed and the pair's key alone (so a record
does not depend on the order of the inputs or on the batch it lands in); ``render_se`` turns one
record plus the raw root into ``(noisy, clean)``, float32 mono at 24 kHz, equal length and
sample-aligned. The same record always renders the same bytes: the math is single-threaded
float32 (pocketfft, soxr, libsndfile), with no global RNG.

Rendering, in order:

1. speech: only the record's frames are decoded (``SoundFile.seek`` + ``read``), channel 0,
   resampled to 24 kHz (soxr HQ);
2. reverberation, with probability ``prob_reverberation`` (drawn when sampling; URGENT's code
   skips the RIR when ``rand() <= p``, i.e. applies it with probability 1 - p, this module applies
   it with probability p): the noisy path gets speech * RIR, the clean target speech * early RIR
   (direct path + 50 ms, ``rir.early_rir``), both cut to the speech length, so both carry the
   direct-path delay and stay aligned;
3. noise: ``noise_channel`` of the noise file from ``noise_offset``, resampled to 24 kHz; a noise
   recording shorter than the speech is repeated (wrap padding) from the offset, and the record
   says so (``noise_wrapped``);
4. SNR: speech-active frames are the 20 ms frames (non-overlapping, the last one partial) of the
   reverberant speech whose energy is within 50 dB of the loudest frame's; the noise is scaled so
   that the energy ratio of reverberant speech to noise over exactly those frames is ``snr_db``
   (URGENT measures both powers on their own non-silent frames; measuring both on the frames
   where the speech is, is what "SNR of the speech" means and makes the realised SNR exact);
5. augmentations, in the stored order, on the noisy signal only (``augment.py``);
6. shared peak normalisation: both signals times 0.9 / max(peak noisy, peak clean).

``render_voicebank_pair`` takes VoiceBank+DEMAND as published (already paired), at 24 kHz.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft as fft
import soundfile as sf
import soxr
from pydantic import Field, model_validator

from uniflow.audio import read_float32
from uniflow.config import StrictModel
from uniflow.simulate.augment import (
    AUGMENTATIONS,
    BandwidthConfig,
    ClippingConfig,
    CodecConfig,
    PacketLossConfig,
    apply_augmentation,
)
from uniflow.simulate.common import fit_length, key_seed, params_values
from uniflow.simulate.errors import SimulationInputError
from uniflow.simulate.noise_cache import NoiseCache
from uniflow.simulate.rir import early_rir, load_rir

SE_VERSION = 1
"""Bumped whenever rendering changes, so stored parameters say which code made their audio."""

ACTIVE_FRAME_SECONDS = 0.02
ACTIVE_RANGE_DB = 50.0
"""Speech-active frames: 20 ms frames within 50 dB of the loudest one (part of SE_VERSION)."""
OUTPUT_PEAK = 0.9
_SOURCE_RESAMPLE_QUALITY = "HQ"  # speech, noise and RIR to 24 kHz: part of the renderer, not drawn


class SeConfig(StrictModel):
    """Settings of the SE pair simulator; defaults are the URGENT 2025 training recipe at 24 kHz."""

    seed: int = Field(0, description="Global seed; each pair's seed derives from it and the pair's key.")
    sample_rate: int = Field(24_000, gt=0, description="Rate of both outputs (the VAE's rate).")
    snr_db: tuple[float, float] = Field((-5.0, 20.0), description="SNR range in dB, drawn uniformly.")
    prob_reverberation: float = Field(0.5, ge=0, le=1, description="Probability that a pair is reverberant.")
    early_rir_seconds: float = Field(0.05, gt=0, description="Early RIR: this long after the direct path.")
    augmentation_counts: dict[int, float] = Field(
        {0: 0.25, 1: 0.40, 2: 0.20, 3: 0.15}, description="Distribution of the number of augmentations per pair."
    )
    augmentation_weights: dict[str, float] = Field(
        {name: 1.0 for name in AUGMENTATIONS}, description="Relative weights; drawn without replacement."
    )
    bandwidth: BandwidthConfig = Field(default_factory=BandwidthConfig)
    clipping: ClippingConfig = Field(default_factory=ClippingConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    packet_loss: PacketLossConfig = Field(default_factory=PacketLossConfig)
    repeat_per_utterance: int = Field(1, ge=1, description="Pairs made from each clean utterance.")
    max_seconds: float | None = Field(None, gt=0, description="Longer utterances are cropped to a random window.")
    min_seconds: float = Field(0.5, gt=0, description="Shorter utterances are skipped.")
    min_clean_sample_rate: int = Field(16_000, gt=0, description="Clean speech below this rate is skipped.")
    min_source_sample_rate: int = Field(8_000, gt=0, description="Noise and RIRs below this rate are skipped.")
    silence_dbfs: float = Field(-60.0, description="Speech whose peak is below this level is quarantined as silent.")
    clip_level: float = Field(0.999, gt=0, description="Speech samples at or above this magnitude count as clipped.")
    max_clipped_fraction: float = Field(0.001, ge=0, le=1, description="More clipped speech samples: quarantined.")

    @model_validator(mode="after")
    def _check(self) -> SeConfig:
        if self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"snr_db {self.snr_db}: low end above high end")
        counts = self.augmentation_counts
        if not counts or min(counts) < 0 or max(counts) > len(AUGMENTATIONS):
            raise ValueError(f"augmentation_counts keys must lie in 0..{len(AUGMENTATIONS)}")
        if min(counts.values()) < 0 or not math.isclose(sum(counts.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"augmentation_counts {counts}: probabilities must be >= 0 and sum to 1")
        unknown = set(self.augmentation_weights) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"augmentation_weights: unknown {sorted(unknown)}; expected some of {AUGMENTATIONS}")
        if min(self.augmentation_weights.values(), default=0) < 0:
            raise ValueError("augmentation_weights must be >= 0")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds {self.max_seconds} below min_seconds {self.min_seconds}")
        return self


@dataclass(frozen=True)
class SeParams:
    """Everything needed to render one SE pair again (JSON round trip via to_json/from_json).

    Times are seconds into the files (``clean_start``/``clean_end``: the speech segment;
    ``noise_start``/``noise_end``: the noise recording's usable range, which wrap padding cycles
    through; ``noise_offset``: where the noise starts). They are exact multiples of one sample
    period of their file, so rounding ``seconds * rate`` gives the frame back. ``num_samples`` is
    the length of both outputs at ``sample_rate``.
    """

    key: str
    seed: int
    version: int
    split: str
    sample_rate: int
    num_samples: int
    clean_id: str
    clean_audio: str
    clean_start: float
    clean_end: float
    clean_sample_rate: int
    noise_id: str
    noise_audio: str
    noise_sample_rate: int
    noise_channel: int
    noise_start: float
    noise_end: float
    noise_offset: float
    noise_wrapped: bool
    snr_db: float
    rir_id: str | None
    rir_audio: str | None
    rir_channel: int | None
    early_rir_seconds: float
    augmentations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SeParams:
        values = params_values(cls, record, "SE")
        values["augmentations"] = [dict(item) for item in values["augmentations"]]
        return cls(**values)


# -- parameter sampling ----------------------------------------------------------------------------
def _resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """``frames * target / source`` rounded half up, in integers (soxr's output length)."""
    return (2 * frames * target_rate + source_rate) // (2 * source_rate)


def _frame_range(record: dict[str, Any]) -> tuple[int, int]:
    """The record's segment ``[first, end)`` in frames of its file."""
    rate = int(record["sample_rate"])
    total = int(record["num_frames"])
    first = round(float(record.get("start") or 0.0) * rate)
    end = record.get("end")
    last = min(round(float(end) * rate), total) if end is not None else total
    return first, last


def _source_problem(record: dict[str, Any], min_rate: int) -> str | None:
    """Why a manifest record cannot be read as planned, or None."""
    if not record.get("id") or not record.get("audio"):
        return "record has no id or no audio"
    rate = record.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        return f"sample rate {rate!r} is not a positive integer"
    if rate < min_rate:
        return f"sample rate {rate} Hz below {min_rate} Hz"
    frames = record.get("num_frames")
    if not isinstance(frames, int) or frames <= 0:
        return f"num_frames {frames!r}: no audio"
    channels = record.get("channels", 1)
    if not isinstance(channels, int) or channels < 1:
        return f"channels {channels!r} is not a positive integer"
    first, last = _frame_range(record)
    if not 0 <= first < last:
        return f"segment [{record.get('start')}, {record.get('end')}] s is empty or outside the file"
    return None


def _clean_problem(record: dict[str, Any], config: SeConfig, split: str) -> str | None:
    problem = _source_problem(record, config.min_clean_sample_rate)
    if problem:
        return problem
    if record.get("split") not in (None, split):
        return f"split {record.get('split')!r}, not {split!r}"
    first, last = _frame_range(record)
    seconds = (last - first) / record["sample_rate"]
    if seconds < config.min_seconds:
        return f"too short: {seconds:.3f} s < {config.min_seconds:g} s"
    return None


def sample_se_params(
    clean: list[dict[str, Any]],
    noise: list[dict[str, Any]],
    rirs: list[dict[str, Any]],
    config: SeConfig,
    split: str,
) -> tuple[list[SeParams], list[dict[str, str]]]:
    """Parameters of every pair (``repeat_per_utterance`` per clean utterance) and the skipped sources.

    Inputs are manifest records. Noise and RIR pools are sorted by id, so a pair's parameters
    depend on its key, the pools' contents and the config only. Unusable records are returned as
    ``{"id", "reason"}`` (each once); without any usable noise every clean record is skipped.
    """
    skipped: list[dict[str, str]] = []
    pools: dict[str, list[dict[str, Any]]] = {}
    for name, records in (("noise", noise), ("rir", rirs)):
        usable = []
        for record in records:
            problem = _source_problem(record, config.min_source_sample_rate)
            if problem:
                skipped.append({"id": str(record.get("id")), "reason": f"{name}: {problem}"})
            else:
                usable.append(record)
        pools[name] = sorted(usable, key=lambda r: r["id"])
    params: list[SeParams] = []
    for record in sorted(clean, key=lambda r: str(r.get("id"))):
        problem = _clean_problem(record, config, split)
        if problem is None and not pools["noise"]:
            problem = "no usable noise recording to mix with"
        if problem:
            skipped.append({"id": str(record.get("id")), "reason": problem})
            continue
        for repeat in range(config.repeat_per_utterance):
            params.append(_draw(record, repeat, pools["noise"], pools["rir"], config, split))
    return params, skipped


def _draw(
    record: dict[str, Any],
    repeat: int,
    noise_pool: list[dict[str, Any]],
    rir_pool: list[dict[str, Any]],
    config: SeConfig,
    split: str,
) -> SeParams:
    key = f"se/{record['id']}/r{repeat}"
    seed = key_seed(config.seed, key)
    rng = np.random.default_rng(seed)
    out_rate = config.sample_rate

    clean_rate = int(record["sample_rate"])
    first, last = _frame_range(record)
    if config.max_seconds is not None:
        longest = int(config.max_seconds * clean_rate)
        if last - first > longest:
            first += int(rng.integers(0, last - first - longest + 1))
            last = first + longest
    num_samples = _resampled_length(last - first, clean_rate, out_rate)

    noise = noise_pool[int(rng.integers(len(noise_pool)))]
    noise_rate = int(noise["sample_rate"])
    noise_first, noise_last = _frame_range(noise)
    available = noise_last - noise_first
    needed = _native_noise_frames(num_samples, noise_rate, out_rate)
    wrapped = available < needed
    offset = noise_first + int(rng.integers(0, available if wrapped else available - needed + 1))
    noise_channel = int(rng.integers(int(noise.get("channels", 1))))

    snr_db = float(rng.uniform(config.snr_db[0], config.snr_db[1]))

    rir = None
    rir_channel = None
    reverberant = bool(rng.random() < config.prob_reverberation)
    if reverberant and rir_pool:
        rir = rir_pool[int(rng.integers(len(rir_pool)))]
        rir_channel = int(rng.integers(int(rir.get("channels", 1))))

    augmentations = _draw_augmentations(rng, config, clean_rate, num_samples)
    return SeParams(
        key=key,
        seed=seed,
        version=SE_VERSION,
        split=split,
        sample_rate=out_rate,
        num_samples=num_samples,
        clean_id=str(record["id"]),
        clean_audio=str(record["audio"]),
        clean_start=first / clean_rate,
        clean_end=last / clean_rate,
        clean_sample_rate=clean_rate,
        noise_id=str(noise["id"]),
        noise_audio=str(noise["audio"]),
        noise_sample_rate=noise_rate,
        noise_channel=noise_channel,
        noise_start=noise_first / noise_rate,
        noise_end=noise_last / noise_rate,
        noise_offset=offset / noise_rate,
        noise_wrapped=wrapped,
        snr_db=snr_db,
        rir_id=str(rir["id"]) if rir else None,
        rir_audio=str(rir["audio"]) if rir else None,
        rir_channel=rir_channel,
        early_rir_seconds=config.early_rir_seconds,
        augmentations=augmentations,
    )


def _draw_augmentations(rng: np.random.Generator, config: SeConfig, clean_rate: int, num_samples: int) -> list[dict]:
    """How many (from ``augmentation_counts``), which (weighted, without replacement), and their parameters."""
    counts = sorted(config.augmentation_counts)
    probabilities = np.array([config.augmentation_counts[c] for c in counts], dtype=np.float64)
    count = counts[int(rng.choice(len(counts), p=probabilities / probabilities.sum()))]
    eligible = [
        name
        for name in AUGMENTATIONS
        if config.augmentation_weights.get(name, 0.0) > 0
        and (name != "bandwidth_limitation" or config.bandwidth.candidates(clean_rate, config.sample_rate))
    ]
    count = min(count, len(eligible))
    if count == 0:
        return []
    weights = np.array([config.augmentation_weights[name] for name in eligible], dtype=np.float64)
    chosen = rng.choice(len(eligible), size=count, replace=False, p=weights / weights.sum())
    augmentations = []
    for index in chosen:
        name = eligible[int(index)]
        if name == "bandwidth_limitation":
            augmentations.append(config.bandwidth.sample(rng, clean_rate, config.sample_rate))
        elif name == "clipping":
            augmentations.append(config.clipping.sample(rng))
        elif name == "codec":
            augmentations.append(config.codec.sample(rng))
        else:
            augmentations.append(config.packet_loss.sample(rng, num_samples, config.sample_rate))
    return augmentations


def _native_noise_frames(num_samples: int, noise_rate: int, out_rate: int) -> int:
    """Noise frames at the noise file's rate that give at least ``num_samples`` at ``out_rate``."""
    return -(-num_samples * noise_rate // out_rate)


# -- rendering -------------------------------------------------------------------------------------
def _read_frames(path: Path, rate: int, first: int, count: int) -> np.ndarray:
    """Frames ``[first, first + count)`` of a file, float32 (frames, channels); checks rate and length."""
    try:
        with sf.SoundFile(path) as handle:
            if handle.samplerate != rate:
                raise SimulationInputError(path, f"sample rate {handle.samplerate} Hz, the manifest says {rate} Hz")
            if handle.frames < first + count:
                raise SimulationInputError(path, f"file has {handle.frames} frames, the segment needs {first + count}")
            if first:
                handle.seek(first)
            data = read_float32(handle, count)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        reason = "file not found" if not path.exists() else f"cannot read: {error}"
        raise SimulationInputError(path, reason) from None
    if len(data) < count:
        raise SimulationInputError(path, f"decoded {len(data)} frames of the {count} the segment needs (truncated file?)")
    return data


def _peak(x: np.ndarray) -> float:
    return max(float(x.max()), -float(x.min())) if len(x) else 0.0


def _check_finite(path: str | Path, x: np.ndarray) -> None:
    # a NaN or an infinity anywhere makes the sum non-finite; cheaper than isfinite().all()
    if not math.isfinite(float(np.add.reduce(x, axis=None))):
        raise SimulationInputError(path, "audio holds NaN or infinite samples")


def _read_speech(params: SeParams, raw_root: Path, config: SeConfig) -> np.ndarray:
    """The speech segment, channel 0, checked (finite, not silent, not clipped), at the output rate."""
    path = raw_root / params.clean_audio
    rate = params.clean_sample_rate
    first = round(params.clean_start * rate)
    count = round(params.clean_end * rate) - first
    data = _read_frames(path, rate, first, count)
    speech = np.ascontiguousarray(data[:, 0])
    _check_finite(path, speech)
    peak = _peak(speech)
    if peak == 0.0 or 20 * math.log10(peak) < config.silence_dbfs:
        level = "digital silence" if peak == 0.0 else f"peak {20 * math.log10(peak):.1f} dBFS"
        raise SimulationInputError(params.clean_id, f"silent speech: {level} < {config.silence_dbfs:g} dBFS")
    if peak >= config.clip_level:
        fraction = np.count_nonzero(np.abs(speech) >= config.clip_level) / len(speech)
        if fraction > config.max_clipped_fraction:
            raise SimulationInputError(
                path, f"clipped speech: {fraction:.2%} of samples at full scale (limit {config.max_clipped_fraction:.2%})"
            )
    if rate != params.sample_rate:
        speech = soxr.resample(speech, rate, params.sample_rate, quality=_SOURCE_RESAMPLE_QUALITY)
    return fit_length(speech, params.num_samples)


def _read_noise(params: SeParams, raw_root: Path, cache: NoiseCache | None = None) -> np.ndarray:
    """``num_samples`` of noise at the output rate from ``noise_offset``, wrapping inside the usable range;
    compressed recordings come from ``cache`` when one is given (the same samples, decoded once)."""
    path = raw_root / params.noise_audio
    rate = params.noise_sample_rate
    needed = _native_noise_frames(params.num_samples, rate, params.sample_rate)
    offset = round(params.noise_offset * rate)
    first = round(params.noise_start * rate) if params.noise_wrapped else offset
    count = round(params.noise_end * rate) - first if params.noise_wrapped else needed
    channel = params.noise_channel
    cached = cache.frames(raw_root, params.noise_audio, rate, first, count, channel) if cache is not None else None
    if cached is not None:
        data, channel = cached, 0
    else:
        data = _read_frames(path, rate, first, count)
    if len(data) == 0:
        raise SimulationInputError(path, "noise recording is empty")
    if not 0 <= channel < data.shape[1]:
        raise SimulationInputError(path, f"noise channel {channel} requested, the file has {data.shape[1]}")
    noise = np.ascontiguousarray(data[:, channel])
    if params.noise_wrapped:  # cycle through the recording from the offset
        shift = offset - first
        noise = np.resize(np.concatenate((noise[shift:], noise[:shift])), needed)
    _check_finite(path, noise)
    if rate != params.sample_rate:
        noise = soxr.resample(noise, rate, params.sample_rate, quality=_SOURCE_RESAMPLE_QUALITY)
    return fit_length(noise, params.num_samples)


def _block_size(rir_length: int) -> int:
    """FFT block of the overlap-add convolution: 64k samples (fits the L2 cache; fastest on the
    benchmark machine for RIRs up to about 1 s at 24 kHz), larger only for longer RIRs."""
    return max(1 << 16, 1 << (2 * rir_length - 1).bit_length())


def reverberate(speech: np.ndarray, rir: np.ndarray, early: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(speech * rir, speech * early)``, both cut to the speech length (float32, exact up to rounding).

    Overlap-add FFT convolution: each block of the speech is transformed once and serves both
    products; ``early`` is never longer than ``rir``. Block size and order of the additions depend
    on the lengths only, so the result is the same bytes every time.
    """
    n = len(speech)
    block = _block_size(len(rir))
    step = block - len(rir) + 1
    rir_spectrum = fft.rfft(rir, block)
    early_spectrum = fft.rfft(early, block)
    reverberant = np.zeros(n + block, dtype=np.float32)
    direct = np.zeros(n + block, dtype=np.float32)
    for start in range(0, n, step):
        spectrum = fft.rfft(speech[start : start + step], block)
        reverberant[start : start + block] += fft.irfft(spectrum * rir_spectrum, block)
        direct[start : start + block] += fft.irfft(spectrum * early_spectrum, block)
    return reverberant[:n], direct[:n]


def frame_energies(x: np.ndarray, frame: int) -> np.ndarray:
    """Energy (sum of squares) of each ``frame``-sample frame; the last, partial frame included."""
    full = len(x) // frame
    blocks = x[: full * frame].reshape(full, frame)
    energies = np.einsum("ij,ij->i", blocks, blocks)
    if len(x) > full * frame:
        rest = x[full * frame :]
        energies = np.append(energies, np.einsum("i,i->", rest, rest))
    return energies


def active_frames(energies: np.ndarray) -> np.ndarray:
    """Frames whose energy is within ``ACTIVE_RANGE_DB`` of the loudest frame's."""
    return energies > energies.max() * 10 ** (-ACTIVE_RANGE_DB / 10)


def noise_gain(speech: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate: int) -> float:
    """The factor that puts ``noise`` at ``snr_db`` below ``speech`` over the speech-active frames.

    Raises ValueError when the speech has no energy or the noise has none where the speech is active.
    """
    frame = round(ACTIVE_FRAME_SECONDS * sample_rate)
    speech_energies = frame_energies(speech, frame)
    if not speech_energies.max() > 0:
        raise ValueError("speech has no energy")
    active = active_frames(speech_energies)
    speech_energy = float(speech_energies[active].sum(dtype=np.float64))
    noise_energy = float(frame_energies(noise, frame)[active].sum(dtype=np.float64))
    if not noise_energy > 0:
        raise ValueError("noise is silent where the speech is active")
    return math.sqrt(speech_energy / (noise_energy * 10 ** (snr_db / 10)))


def render_se(
    params: SeParams, raw_root: str | Path, config: SeConfig, noise_cache: NoiseCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)``: float32 mono at ``params.sample_rate``, equal length, sample-aligned; the same with
    or without ``noise_cache`` (compressed noise decoded once, see ``uniflow.simulate.noise_cache``).

    Raises SimulationInputError (the stage quarantines the pair) for a missing or unreadable file,
    a rate or length other than the manifest's, NaN or infinite samples, silent or clipped speech,
    an RIR without the channel, or noise that is silent where the speech is.
    """
    if params.version != SE_VERSION:
        raise ValueError(f"{params.key}: parameters of SE version {params.version}; this code renders version {SE_VERSION}")
    raw_root = Path(raw_root)
    rate = params.sample_rate
    speech = _read_speech(params, raw_root, config)
    if params.rir_audio is not None:
        rir = load_rir(raw_root / params.rir_audio, int(params.rir_channel or 0), rate)
        reverberant, clean = reverberate(speech, rir, early_rir(rir, rate, params.early_rir_seconds))
    else:
        reverberant = clean = speech
    noise = _read_noise(params, raw_root, noise_cache)
    try:
        gain = noise_gain(reverberant, noise, params.snr_db, rate)
    except ValueError as error:
        source = params.noise_audio if "noise" in str(error) else params.clean_id
        raise SimulationInputError(source, str(error)) from None
    noise *= np.float32(gain)
    noisy = reverberant + noise
    for augmentation in params.augmentations:
        noisy = apply_augmentation(noisy, rate, augmentation)
    peak = max(_peak(noisy), _peak(clean))
    if not (math.isfinite(peak) and peak > 0):
        raise SimulationInputError(params.clean_id, f"rendered pair has peak {peak}")
    scale = np.float32(OUTPUT_PEAK / peak)
    return noisy * scale, clean * scale


def render_voicebank_pair(record: dict[str, Any], raw_root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)`` of a VoiceBank+DEMAND manifest record, as published, resampled to 24 kHz.

    The clean file is ``record["audio"]``, its noisy twin ``record["extra"]["noisy"]`` (both
    raw-relative); they must have the same rate and length. Levels are left as they are.
    """
    raw_root = Path(raw_root)
    source = str(record.get("id"))
    noisy_relative = (record.get("extra") or {}).get("noisy")
    if not noisy_relative:
        raise SimulationInputError(source, "record has no extra.noisy (the noisy twin)")
    signals = []
    rates = []
    for relative in (noisy_relative, record["audio"]):
        path = raw_root / relative
        try:
            data, rate = sf.read(path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            reason = "file not found" if not path.exists() else f"cannot read: {error}"
            raise SimulationInputError(path, reason) from None
        if len(data) == 0:
            raise SimulationInputError(path, "file is empty")
        channel = np.ascontiguousarray(data[:, 0])
        _check_finite(path, channel)
        signals.append(channel)
        rates.append(rate)
    noisy, clean = signals
    if rates[0] != rates[1] or len(noisy) != len(clean):
        raise SimulationInputError(
            source, f"noisy twin is {len(noisy)} frames at {rates[0]} Hz, clean {len(clean)} frames at {rates[1]} Hz"
        )
    if _peak(clean) == 0.0:
        raise SimulationInputError(source, "silent speech: the clean file is digital silence")
    rate = rates[0]
    if rate != 24_000:
        length = _resampled_length(len(clean), rate, 24_000)
        noisy = fit_length(soxr.resample(noisy, rate, 24_000, quality=_SOURCE_RESAMPLE_QUALITY), length)
        clean = fit_length(soxr.resample(clean, rate, 24_000, quality=_SOURCE_RESAMPLE_QUALITY), length)
    return noisy, clean
