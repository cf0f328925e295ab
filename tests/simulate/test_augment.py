"""The URGENT 2025 degradations on real read speech: band limit, clipping, codecs, packet loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal as signal
import soundfile as sf
import soxr

from uniflow.simulate.augment import (
    BandwidthConfig,
    ClippingConfig,
    CodecChoice,
    CodecConfig,
    PacketLossConfig,
    apply_augmentation,
    bandwidth_limitation,
    clipping,
    codec,
    packet_loss,
    packet_samples,
)

RATE = 24_000
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 10 s of real read speech (LibriVox, 16 kHz) at 24 kHz, with a faint full-band floor."""
    files = sorted(LIBRIVOX.glob("*.wav"))
    if not files:
        pytest.skip(f"no recorded speech in {LIBRIVOX} (Debian package pocketsphinx-en-us test data)")
    audio = np.concatenate([soxr.resample(sf.read(path, dtype="float32")[0], 16_000, RATE) for path in files[:2]])
    # the recordings stop at 8 kHz; a -60 dB white floor puts energy up to 12 kHz to be removed
    floor = 1e-3 * np.random.default_rng(0).standard_normal(len(audio))
    return (0.5 * audio / np.abs(audio).max() + floor).astype(np.float32)


def lag_of_peak(output: np.ndarray, reference: np.ndarray) -> int:
    correlation = signal.correlate(output, reference, mode="full", method="fft")
    return int(np.argmax(correlation)) - (len(reference) - 1)


def band_energy(x: np.ndarray, low_hz: float) -> float:
    freqs, power = signal.welch(x, RATE, nperseg=2048)
    return float(power[freqs >= low_hz].sum())


@pytest.mark.parametrize("method", BandwidthConfig().methods)
@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050])
def test_bandwidth_limitation_removes_everything_above_the_new_nyquist(speech, method, rate) -> None:
    limited = bandwidth_limitation(speech, RATE, rate, method)
    assert limited.dtype == np.float32 and len(limited) == len(speech)
    removed_db = 10 * np.log10(band_energy(limited, rate / 2) / band_energy(speech, rate / 2))
    assert removed_db < -70, f"{method} -> {rate} Hz leaves {removed_db:.1f} dB above {rate / 2} Hz"
    kept_db = 10 * np.log10(band_energy(limited, 0) / band_energy(speech, 0))
    assert kept_db > -1, "speech below the new Nyquist frequency is kept"
    assert lag_of_peak(limited, speech) == 0


def test_bandwidth_limitation_refuses_rates_that_do_not_narrow(speech) -> None:
    with pytest.raises(ValueError, match="does not narrow"):
        bandwidth_limitation(speech, RATE, RATE, "soxr_hq")
    assert BandwidthConfig().candidates(source_rate=16_000, output_rate=RATE) == (8_000,)
    assert BandwidthConfig().candidates(source_rate=48_000, output_rate=RATE) == (8_000, 16_000, 22_050)


def test_clipping_bounds_the_signal_at_its_quantiles(speech) -> None:
    clipped = clipping(speech, 0.05, 0.9)
    low, high = np.quantile(speech, [0.05, 0.9])
    assert clipped.min() == np.float32(low) and clipped.max() == np.float32(high)
    inside = (speech > low) & (speech < high)
    assert np.array_equal(clipped[inside], speech[inside]), "samples between the thresholds are untouched"
    assert abs(np.mean(clipped == np.float32(high)) - 0.10) < 0.002
    assert np.array_equal(clipping(speech, 0.0, 1.0), speech), "quantiles 0 and 1 clip nothing"


CODECS = [
    {"format": "mp3", "encoder": "mp3", "bitrate_kbps": 16},
    {"format": "mp3", "encoder": "mp3", "bitrate_kbps": 64},
    {"format": "ogg", "encoder": "vorbis", "compression_level": 0.0},
    {"format": "ogg", "encoder": "vorbis", "compression_level": 1.0},
    {"format": "ogg", "encoder": "opus", "compression_level": 0.5},
]


@pytest.mark.parametrize("settings", CODECS, ids=lambda s: f"{s['encoder']}-{s.get('bitrate_kbps', s.get('compression_level'))}")
def test_codec_keeps_length_and_alignment(speech, settings) -> None:
    excerpt = speech[: 4 * RATE] * np.float32(2.5)  # louder than full scale: the codec path must not clip it
    decoded = codec(excerpt, RATE, **settings)
    assert decoded.dtype == np.float32 and len(decoded) == len(excerpt)
    assert lag_of_peak(decoded, excerpt) == 0
    error = decoded - excerpt
    snr = 10 * np.log10(np.sum(excerpt.astype(np.float64) ** 2) / np.sum(error.astype(np.float64) ** 2))
    assert 3 < snr < 60, f"lossy but recognisable: SNR {snr:.1f} dB"
    peak, decoded_peak = np.abs(excerpt).max(), np.abs(decoded).max()
    assert peak > 1 and abs(decoded_peak / peak - 1) < 0.2, "level kept: encoded at a safe peak, scaled back"


def test_codec_rejects_bad_settings(speech) -> None:
    with pytest.raises(ValueError, match="bitrate"):
        codec(speech[:RATE], RATE, "mp3", "mp3", bitrate_kbps=33)
    with pytest.raises(ValueError, match="unsupported"):
        codec(speech[:RATE], RATE, "ogg", "mp3", compression_level=0.5)
    with pytest.raises(ValueError, match="compression_level"):
        CodecChoice(format="ogg", encoder="vorbis", bitrates_kbps=(32,))


def test_packet_loss_zeroes_exactly_the_listed_packets(speech) -> None:
    rng = np.random.default_rng(3)
    params = PacketLossConfig().sample(rng, len(speech), RATE)
    lost = params["packet_indices"]
    packets = -(-len(speech) // packet_samples(20.0, RATE))
    assert lost == sorted(set(lost)) and 0 <= lost[0] and lost[-1] < packets
    assert len(lost) == round(params["loss_rate"] * packets) and 0.05 <= params["loss_rate"] <= 0.25
    damaged = apply_augmentation(speech, RATE, params)
    mask = np.zeros(len(speech), dtype=bool)
    for index in lost:
        mask[index * 480 : (index + 1) * 480] = True
    assert np.all(damaged[mask] == 0)
    assert np.array_equal(damaged[~mask], speech[~mask])
    assert np.array_equal(packet_loss(speech, RATE, []), speech)


def test_sampled_parameters_stay_in_their_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        clip = ClippingConfig().sample(rng)
        assert 0 <= clip["min_quantile"] <= 0.1 and 0.9 <= clip["max_quantile"] <= 1.0
        band = BandwidthConfig().sample(rng, source_rate=22_050, output_rate=RATE)
        assert band["rate"] in (8_000, 16_000)
        chosen = CodecConfig().sample(rng)
        if chosen["format"] == "mp3":
            assert 16 <= chosen["bitrate_kbps"] <= 64
        else:
            assert chosen["encoder"] == "vorbis" and 0 <= chosen["compression_level"] <= 1


def test_unknown_augmentation_is_an_error(speech) -> None:
    with pytest.raises(ValueError, match="unknown augmentation"):
        apply_augmentation(speech, RATE, {"name": "reverse"})
