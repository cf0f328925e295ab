"""Degradations of the URGENT 2025 recipe, applied to the noisy signal only: bandwidth limitation,
clipping, lossy codecs and packet loss.

Each augmentation is a pure function of the signal and an explicit parameter dict (the form stored
in ``SeParams.augmentations``: ``{"name": ..., <params>}``), so a stored parameter record always
renders the same audio. Drawing those parameters is separate (the ``sample`` methods of the config
models below) and takes a numpy Generator; nothing here touches a global RNG.

Every function keeps the length and the time alignment of its input:

- bandwidth limitation resamples down and back up with soxr (linear phase, delay compensated),
  then cuts or pads the end to the input length;
- codecs: MP3 is encoded by LAME through ffmpeg (PyAV) in constant bitrate mode and decoded by
  libsndfile (mpg123), which removes the encoder delay and padding that ffmpeg's muxer records in
  the Xing/LAME tag; Ogg Vorbis and Opus go through libsndfile both ways, aligned by granule
  positions and the Opus pre-skip. Measured on speech at 24 kHz (ffmpeg 8 / LAME 3.100,
  libsndfile 1.2.2): the decoded signal has the input's length and its cross-correlation with the
  input peaks at lag 0 for MP3 at 8-64 kb/s, Vorbis at every level and Opus from level 0 to 0.9
  (Opus at its lowest bitrate shows a 1-3 sample lag from phase distortion, not delay). What the
  measurement rules out: libsndfile's own MP3 encoder in constant bitrate mode at high compression
  is not gapless (LAME resamples internally; the decoder returns 1344 extra samples and a 1105
  sample delay), which is one reason MP3 is encoded through ffmpeg; the other is speed (LAME at
  algorithm quality 7 takes 32-37 ms per 10 s of 24 kHz audio, libsndfile's LAME setup 50-60 ms).
  A decoder that returns another length anyway is cut or padded at the end (``fit_length``).
"""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr
from pydantic import Field, model_validator

from uniflow.config import StrictModel
from uniflow.simulate.common import fit_length

AUGMENTATIONS: tuple[str, ...] = ("bandwidth_limitation", "clipping", "codec", "packet_loss")
ResampleMethod = Literal["soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq"]
_SOXR_QUALITY = {"soxr_vhq": "VHQ", "soxr_hq": "HQ", "soxr_mq": "MQ", "soxr_lq": "LQ"}
# libsndfile (format, subtype) per codec; MP3 is decoded by libsndfile but encoded through ffmpeg.
_CODECS: dict[tuple[str, str], tuple[str, str]] = {
    ("mp3", "mp3"): ("MP3", "MPEG_LAYER_III"),
    ("ogg", "vorbis"): ("OGG", "VORBIS"),
    ("ogg", "opus"): ("OGG", "OPUS"),
}
# LAME's algorithm quality (its -q: 0 slowest and best ... 9 fastest): at 7 it encodes in less than
# half the time of its default (33 vs 85 ms per 10 s at 24 kHz); part of SE_VERSION. The bitrates
# are those MPEG-2 layer III allows at 16-24 kHz.
_LAME_QUALITY = 7
MP3_BITRATES_KBPS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
# Codec input is scaled to this peak and back: encoders clip at full scale, the mixture may exceed it.
_CODEC_PEAK = 0.9


# -- parameter models (part of SeConfig) -----------------------------------------------------------
def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} {bounds}: need {low} <= low <= high <= {high}")


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


class BandwidthConfig(StrictModel):
    """Bandwidth limitation: resample down to one of ``rates`` (below the source's own rate) and back."""

    rates: tuple[int, ...] = Field((8000, 16000, 22050), min_length=1, description="Candidate reduced rates in Hz.")
    methods: tuple[ResampleMethod, ...] = Field(
        ("soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq"),
        min_length=1,
        description="Resampling methods, drawn uniformly: soxr qualities, from the widest passband and "
        "steepest roll-off (vhq) to the narrowest (lq), as URGENT draws among librosa's methods.",
    )

    def candidates(self, source_rate: int, output_rate: int) -> tuple[int, ...]:
        """Rates that actually narrow the band: below both the source's and the output's rate."""
        return tuple(sorted(rate for rate in set(self.rates) if rate < min(source_rate, output_rate)))

    def sample(self, rng: np.random.Generator, source_rate: int, output_rate: int) -> dict[str, Any]:
        rates = self.candidates(source_rate, output_rate)
        return {
            "name": "bandwidth_limitation",
            "rate": int(rates[int(rng.integers(len(rates)))]),
            "method": self.methods[int(rng.integers(len(self.methods)))],
        }


class ClippingConfig(StrictModel):
    """Clipping at the signal's own quantiles (URGENT: min q in [0, 0.1], max q in [0.9, 1.0])."""

    min_quantile: tuple[float, float] = Field((0.0, 0.1), description="Range of the lower clipping quantile.")
    max_quantile: tuple[float, float] = Field((0.9, 1.0), description="Range of the upper clipping quantile.")

    @model_validator(mode="after")
    def _ranges(self) -> ClippingConfig:
        _check_range("min_quantile", self.min_quantile, 0.0, 0.5)
        _check_range("max_quantile", self.max_quantile, 0.5, 1.0)
        return self

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "name": "clipping",
            "min_quantile": _uniform(rng, self.min_quantile),
            "max_quantile": _uniform(rng, self.max_quantile),
        }


class CodecChoice(StrictModel):
    """One codec: container format, encoder, weight, and its quality knob.

    MP3 draws a constant bitrate from ``bitrates_kbps`` (URGENT draws ffmpeg's qscale; a bitrate
    is the same knob in constant bitrate mode, which keeps LAME from resampling internally). Ogg
    draws libsndfile's compression level from ``compression_level``: 0 is the best quality, 1 the
    smallest file; for Vorbis it sets the encoder quality (about 76 down to 30 kb/s for 24 kHz
    speech), for Opus the bitrate (260 down to 7 kb/s).
    """

    format: Literal["mp3", "ogg"]
    encoder: Literal["mp3", "vorbis", "opus"]
    weight: float = Field(1.0, gt=0)
    bitrates_kbps: tuple[int, ...] | None = None
    compression_level: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _valid(self) -> CodecChoice:
        if (self.format, self.encoder) not in _CODECS:
            raise ValueError(f"codec {self.format}/{self.encoder} unsupported; expected one of {sorted(_CODECS)}")
        if self.format == "mp3":
            if not self.bitrates_kbps or self.compression_level is not None:
                raise ValueError("mp3 takes bitrates_kbps (and no compression_level)")
            unknown = sorted(set(self.bitrates_kbps) - set(MP3_BITRATES_KBPS))
            if unknown:
                raise ValueError(f"mp3 bitrates {unknown} kb/s are not layer III bitrates {MP3_BITRATES_KBPS}")
        else:
            if self.compression_level is None or self.bitrates_kbps is not None:
                raise ValueError("ogg takes compression_level (and no bitrates_kbps)")
            _check_range("compression_level", self.compression_level, 0.0, 1.0)
        return self

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        params: dict[str, Any] = {"name": "codec", "format": self.format, "encoder": self.encoder}
        if self.bitrates_kbps:
            params["bitrate_kbps"] = int(self.bitrates_kbps[int(rng.integers(len(self.bitrates_kbps)))])
        else:
            assert self.compression_level is not None
            params["compression_level"] = round(_uniform(rng, self.compression_level), 4)
        return params


class CodecConfig(StrictModel):
    """Lossy codecs, drawn by weight. Default: MP3 (16-64 kb/s) or Ogg Vorbis, equally likely.

    Ogg Opus is supported but left out by default: libsndfile's Opus encoder runs at its highest
    complexity and costs about 120 ms per 10 s of 24 kHz audio, four times Vorbis.
    """

    choices: tuple[CodecChoice, ...] = Field(
        (
            CodecChoice(format="mp3", encoder="mp3", bitrates_kbps=(16, 24, 32, 40, 48, 56, 64)),
            CodecChoice(format="ogg", encoder="vorbis", compression_level=(0.0, 1.0)),
        ),
        min_length=1,
    )

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        weights = np.array([choice.weight for choice in self.choices], dtype=np.float64)
        return self.choices[int(rng.choice(len(self.choices), p=weights / weights.sum()))].sample(rng)


class PacketLossConfig(StrictModel):
    """Packet loss: ``packet_ms`` packets, a loss rate drawn from ``loss_rate``, lost in bursts."""

    packet_ms: float = Field(20.0, gt=0)
    loss_rate: tuple[float, float] = Field((0.05, 0.25))
    burst_packets: tuple[int, int] = Field((1, 10), description="Consecutive packets lost per burst, both ends included.")

    @model_validator(mode="after")
    def _ranges(self) -> PacketLossConfig:
        _check_range("loss_rate", self.loss_rate, 0.0, 1.0)
        if not 1 <= self.burst_packets[0] <= self.burst_packets[1]:
            raise ValueError(f"burst_packets {self.burst_packets}: need 1 <= low <= high")
        return self

    def sample(self, rng: np.random.Generator, num_samples: int, sample_rate: int) -> dict[str, Any]:
        """Lost packet indices: bursts at uniform starts until ``rate * packets`` are lost."""
        packet = packet_samples(self.packet_ms, sample_rate)
        packets = max(1, math.ceil(num_samples / packet))
        rate = _uniform(rng, self.loss_rate)
        target = min(packets, round(rate * packets))
        lost = np.zeros(packets, dtype=bool)
        while int(lost.sum()) < target:
            burst = int(rng.integers(self.burst_packets[0], self.burst_packets[1] + 1))
            start = int(rng.integers(packets))
            lost[start : start + min(burst, target - int(lost.sum()))] = True
        return {
            "name": "packet_loss",
            "packet_ms": self.packet_ms,
            "loss_rate": rate,
            "packet_indices": [int(i) for i in np.flatnonzero(lost)],
        }


# -- the augmentations -------------------------------------------------------------------------------
def resample(audio: np.ndarray, source_rate: int, target_rate: int, method: str) -> np.ndarray:
    """float32 resampling with a named soxr quality (linear phase, delay compensated).

    scipy's polyphase resampler (URGENT's "polyphase") is not offered: with its default Kaiser
    window it leaves energy 18-35 dB down just above the reduced Nyquist frequency, and a
    bandwidth limitation must leave none.
    """
    if method not in _SOXR_QUALITY:
        raise ValueError(f"unknown resampling method {method!r}; expected one of {sorted(_SOXR_QUALITY)}")
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if source_rate == target_rate:
        return x
    return soxr.resample(x, source_rate, target_rate, quality=_SOXR_QUALITY[method])


def bandwidth_limitation(audio: np.ndarray, sample_rate: int, rate: int, method: str) -> np.ndarray:
    """Resample to ``rate`` and back: nothing is left above ``rate / 2``; length and alignment kept."""
    if rate >= sample_rate:
        raise ValueError(f"bandwidth limitation to {rate} Hz does not narrow a {sample_rate} Hz signal")
    narrow = resample(audio, sample_rate, rate, method)
    return fit_length(resample(narrow, rate, sample_rate, method), len(audio))


def clipping(audio: np.ndarray, min_quantile: float, max_quantile: float) -> np.ndarray:
    """Clip at the signal's ``min_quantile`` and ``max_quantile`` values (per-signal thresholds)."""
    low, high = np.quantile(audio, [min_quantile, max_quantile])
    return np.clip(audio, audio.dtype.type(low), audio.dtype.type(high))


def _encode_mp3(audio: np.ndarray, sample_rate: int, bitrate_kbps: int) -> bytes:
    """MP3 bytes (constant bitrate, Xing/LAME tag with delay and padding) through ffmpeg's LAME."""
    import av  # imported here: only MP3 needs it

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, options={"compression_level": str(_LAME_QUALITY)})
        stream.layout = "mono"
        stream.codec_context.bit_rate = bitrate_kbps * 1000
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32)[None, :], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def _encode_libsndfile(audio: np.ndarray, sample_rate: int, container: str, subtype: str, level: float) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", sample_rate, 1, subtype=subtype, format=container, compression_level=level) as handle:
        handle.write(audio)
    return buffer.getvalue()


def codec(
    audio: np.ndarray,
    sample_rate: int,
    format: str,
    encoder: str,
    bitrate_kbps: int | None = None,
    compression_level: float | None = None,
) -> np.ndarray:
    """Encode and decode in memory; same length, sample-aligned (module docstring).

    MP3 takes ``bitrate_kbps``, Ogg Vorbis/Opus ``compression_level``. The signal is scaled to a
    0.9 peak for the codec and back, so encoders never clip it.
    """
    if (format, encoder) not in _CODECS:
        raise ValueError(f"codec {format}/{encoder} unsupported; expected one of {sorted(_CODECS)}")
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    gain = _CODEC_PEAK / peak if peak > 0 else 1.0
    scaled = np.ascontiguousarray(audio * np.float32(gain), dtype=np.float32)
    if format == "mp3":
        if bitrate_kbps not in MP3_BITRATES_KBPS:
            raise ValueError(f"mp3 bitrate {bitrate_kbps!r} kb/s; expected one of {MP3_BITRATES_KBPS}")
        encoded = _encode_mp3(scaled, sample_rate, int(bitrate_kbps))
    else:
        if compression_level is None or not 0.0 <= compression_level <= 1.0:
            raise ValueError(f"ogg compression level {compression_level!r}; expected a number in [0, 1]")
        container, subtype = _CODECS[(format, encoder)]
        encoded = _encode_libsndfile(scaled, sample_rate, container, subtype, float(compression_level))
    decoded, _ = sf.read(io.BytesIO(encoded), dtype="float32")
    decoded = fit_length(np.asarray(decoded, dtype=np.float32).reshape(-1), len(audio))
    decoded *= np.float32(1.0 / gain)
    return decoded


def packet_samples(packet_ms: float, sample_rate: int) -> int:
    return max(1, round(packet_ms * sample_rate / 1000))


def packet_loss(audio: np.ndarray, sample_rate: int, packet_indices: list[int], packet_ms: float = 20.0) -> np.ndarray:
    """Zero every lost packet (``packet_ms`` long, numbered from the first sample)."""
    packet = packet_samples(packet_ms, sample_rate)
    result = audio.copy()
    for index in packet_indices:
        result[index * packet : (index + 1) * packet] = 0
    return result


def apply_augmentation(audio: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
    """Apply one stored augmentation (``{"name": ..., <params>}``) to a float32 mono signal."""
    name = params.get("name")
    if name == "bandwidth_limitation":
        return bandwidth_limitation(audio, sample_rate, int(params["rate"]), params["method"])
    if name == "clipping":
        return clipping(audio, float(params["min_quantile"]), float(params["max_quantile"]))
    if name == "codec":
        return codec(
            audio,
            sample_rate,
            params["format"],
            params["encoder"],
            bitrate_kbps=params.get("bitrate_kbps"),
            compression_level=params.get("compression_level"),
        )
    if name == "packet_loss":
        return packet_loss(audio, sample_rate, params["packet_indices"], float(params["packet_ms"]))
    raise ValueError(f"unknown augmentation {name!r}; expected one of {AUGMENTATIONS}")
