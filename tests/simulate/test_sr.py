"""SR pair simulator: band limit, alignment, bit-exact replay, clip planning, parameters, bad inputs.

Real recordings come from Debian packages the bootstrap installs: alsa-utils' channel announcements
(/usr/share/sounds/alsa, 48 kHz speech, plus Noise.wav, broadband noise) and pocketsphinx-testdata's
LibriVox excerpts (16 kHz). Music is uniflow.mirror.synth's stems at 44.1 kHz.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as signal
import soundfile as sf
import soxr
from pydantic import ValidationError

from uniflow.mirror import synth
from uniflow.simulate.errors import SimulationInputError
from uniflow.simulate.sr import (
    FILTER_TYPES,
    SR_VERSION,
    SrConfig,
    SrParams,
    design_lowpass,
    lowpass,
    plan_sr_clips,
    render_sr,
    sample_sr_params,
    zero_phase_lowpass,
)

ALSA = Path("/usr/share/sounds/alsa")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 24_000
SHAPES = {"butter": (None, None), "cheby1": (1.0, None), "ellip": (0.1, 60.0), "bessel": (None, None)}
METHODS = ("fourier", "soxr_hq")


def _alsa_files() -> list[Path]:
    files = sorted(path for path in ALSA.glob("*.wav") if path.name != "Noise.wav")
    if not files:
        pytest.skip(f"no speech in {ALSA}: the alsa-utils package is not installed")
    return files


@pytest.fixture(scope="module")
def speech48() -> np.ndarray:
    """About 11 s of real speech at 48 kHz: the ALSA channel announcements, one after another."""
    return np.concatenate([sf.read(path, dtype="float32")[0] for path in _alsa_files()])


@pytest.fixture(scope="module")
def speech24(speech48: np.ndarray) -> np.ndarray:
    return soxr.resample(speech48, 48_000, RATE)


@pytest.fixture(scope="module")
def noise24() -> np.ndarray:
    path = ALSA / "Noise.wav"
    if not path.exists():
        pytest.skip(f"{path} is missing: the alsa-utils package is not installed")
    return soxr.resample(sf.read(path, dtype="float32")[0], 48_000, RATE)


def _record(record_id: str, audio: str, rate: int, seconds: float, **extra_fields) -> dict:
    return {"id": record_id, "split": "train", "audio": audio, "sample_rate": rate, "seconds": seconds, **extra_fields}


def _params(record: dict, config: SrConfig | None = None) -> list[SrParams]:
    params, skipped = sample_sr_params([record], config or SrConfig(), "train")
    assert not skipped, skipped
    return params


def _band_ratio_db(audio: np.ndarray, cutoff_hz: float) -> float:
    """Energy below the cutoff over energy above it, in dB, from a Welch PSD.

    8192-point segments (2.9 Hz bins) with a Blackman-Harris window (sidelobes below -92 dB); the
    bins within four bins above the cutoff (the window's main lobe) are left out of both sums.
    """
    freqs, psd = signal.welch(audio.astype(np.float64), fs=RATE, window="blackmanharris", nperseg=8192)
    above = psd[freqs > cutoff_hz + 4 * freqs[1]].sum()
    below = psd[freqs < cutoff_hz].sum()
    return float(10 * np.log10(below / max(above, 1e-300)))


# -- the low-pass --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("filter_type", FILTER_TYPES)
def test_no_energy_is_left_above_the_cutoff(filter_type: str, method: str, speech24: np.ndarray, noise24: np.ndarray) -> None:
    ripple, stopband = SHAPES[filter_type]
    for order in (2, 5, 10):
        for cutoff in (2000.0, 3050.0, 4450.0, 6000.0):
            for name, audio in (("speech", speech24), ("noise", noise24)):
                low = lowpass(audio, RATE, filter_type, order, cutoff, ripple, stopband, method)
                assert low.dtype == np.float32 and low.shape == audio.shape
                ratio = _band_ratio_db(low, cutoff)
                assert ratio >= 50, f"{name} {filter_type} order {order} at {cutoff} Hz: only {ratio:.1f} dB"
                # and what lies below the cutoff is kept: the input was not simply silenced
                assert _band_ratio_db(audio, cutoff) < ratio - 20


@pytest.mark.parametrize("filter_type", ["ellip", "cheby1"])
def test_high_order_design_is_stable_and_filters_as_designed(filter_type: str) -> None:
    """Order 10 at a low normalised cutoff: stable in SOS form, and the float32 filter matches the design."""
    ripple, stopband = SHAPES[filter_type]
    # 2 kHz: the configured range's low end; 300 Hz: far below it, poles within 0.002 of the unit circle
    for cutoff, float32_error in ((2000.0, 1e-5), (300.0, 2e-4)):
        sos = design_lowpass(filter_type, 10, cutoff, RATE, ripple, stopband)
        assert sos.shape == (5, 6)
        poles = np.concatenate([np.roots(section[3:]) for section in sos])
        assert np.abs(poles).max() < 1
        freqs, response = signal.sosfreqz(sos, worN=8192, fs=RATE)
        gain_db = 20 * np.log10(np.abs(response) + 1e-300)
        passband = freqs < 0.9 * cutoff
        assert gain_db[passband].max() < 0.01 and gain_db[passband].min() > -ripple - 0.01
        assert abs(gain_db[np.argmin(np.abs(freqs - cutoff))] + ripple) < 0.2  # ripple dB down at the cutoff
        if stopband is not None:
            assert gain_db[freqs > 1.2 * cutoff].max() < -stopband + 0.1
        # the float32 forward-backward run against scipy's float64 sosfiltfilt of the same design
        impulse = np.zeros(24_001, dtype=np.float32)
        impulse[12_000] = 1.0
        ours = zero_phase_lowpass(impulse, RATE, filter_type, 10, cutoff, ripple, stopband)
        reference = signal.sosfiltfilt(sos, impulse.astype(np.float64))
        assert np.abs(ours - reference).max() < float32_error * np.abs(reference).max()
        # its spectrum is the design's |H|^2 (zero phase: forward and backward), within 0.01 dB in the passband
        # (the 1 s window truncates the slowest-decaying responses slightly)
        spectrum = np.abs(np.fft.rfft(ours.astype(np.float64)))
        expected = np.abs(signal.sosfreqz(sos, worN=np.fft.rfftfreq(len(ours), 1 / RATE), fs=RATE)[1]) ** 2
        band = np.fft.rfftfreq(len(ours), 1 / RATE) < cutoff
        assert np.abs(spectrum[band] - expected[band]).max() < 1e-3


def test_design_matches_scipy_iirfilter() -> None:
    for filter_type in FILTER_TYPES:
        ripple, stopband = SHAPES[filter_type]
        for order in (2, 3, 9, 10):
            ours = design_lowpass(filter_type, order, 3050.0, RATE, ripple, stopband)
            ftype = "bessel_mag" if filter_type == "bessel" else filter_type
            theirs = signal.iirfilter(order, 3050.0, rp=ripple, rs=stopband, btype="low", ftype=ftype, output="sos", fs=RATE)
            grid = np.linspace(0, RATE / 2, 2048)
            np.testing.assert_allclose(
                signal.sosfreqz(ours, grid, fs=RATE)[1], signal.sosfreqz(theirs, grid, fs=RATE)[1], atol=1e-9
            )


@pytest.mark.parametrize("filter_type", FILTER_TYPES)
def test_low_passed_impulse_stays_centred(filter_type: str) -> None:
    ripple, stopband = SHAPES[filter_type]
    impulse = np.zeros(24_001, dtype=np.float32)
    impulse[12_000] = 1.0
    for method in ("fourier", "soxr_hq", "soxr_vhq"):
        for order, cutoff in ((2, 2000.0), (10, 3050.0), (7, 5950.0)):
            low = lowpass(impulse, RATE, filter_type, order, cutoff, ripple, stopband, method)
            assert int(np.argmax(np.abs(low))) == 12_000
            # zero phase: symmetric around the impulse
            assert np.abs(low[11_000:12_000] - low[12_001:13_001][::-1]).max() < 1e-5 * low[12_000]


@pytest.mark.parametrize("filter_type", FILTER_TYPES)
def test_fourier_method_is_the_zero_phase_filter_then_an_empty_band(filter_type: str) -> None:
    """Its impulse response's spectrum is the design's |H|^2 below the cutoff and nothing from the cutoff on,
    and on a signal with nothing near the band edge it agrees with sosfiltfilt away from the clip's ends."""
    ripple, stopband = SHAPES[filter_type]
    impulse = np.zeros(48_000, dtype=np.float32)
    impulse[24_000] = 1.0
    freqs = np.fft.rfftfreq(len(impulse), 1 / RATE)
    for order, cutoff in ((2, 2000.0), (10, 3050.0), (5, 6000.0)):
        sos = design_lowpass(filter_type, order, cutoff, RATE, ripple, stopband)
        low = lowpass(impulse, RATE, filter_type, order, cutoff, ripple, stopband, "fourier")
        spectrum = np.abs(np.fft.rfft(low.astype(np.float64)))
        expected = np.abs(signal.sosfreqz(sos, worN=freqs, fs=RATE)[1]) ** 2
        # 50 Hz (100 bins) either side of the cutoff left out: the band edge, computed on the padded FFT's grid,
        # leaks into its neighbours on this grid
        below, above = freqs < cutoff - 50, freqs > cutoff + 50
        assert np.abs(spectrum[below] - expected[below]).max() < 2e-3
        assert spectrum[above].max() < 2e-3
    # noise band-limited below 2.8 kHz, so where the band edge falls on either grid does not matter
    spectrum = np.fft.rfft(np.random.default_rng(5).standard_normal(5 * RATE))
    spectrum[np.fft.rfftfreq(5 * RATE, 1 / RATE) > 2800.0] = 0
    noise = np.fft.irfft(spectrum, 5 * RATE).astype(np.float32)
    sos = design_lowpass(filter_type, 6, 3050.0, RATE, ripple, stopband)
    reference = signal.sosfiltfilt(sos, noise.astype(np.float64))
    ours = lowpass(noise, RATE, filter_type, 6, 3050.0, ripple, stopband, "fourier")
    middle = slice(RATE // 2, -RATE // 2)  # where the two methods' edge handling no longer matters
    error = np.sqrt(np.mean((ours[middle] - reference[middle]) ** 2) / np.mean(reference[middle] ** 2))
    assert error < 2e-4, f"{filter_type}: relative RMS difference {error:.2e}"


def test_short_clips_are_filtered_without_error() -> None:
    short = np.sin(np.arange(40, dtype=np.float32))  # shorter than the default edge padding of order 10
    for filter_type in FILTER_TYPES:
        ripple, stopband = SHAPES[filter_type]
        assert lowpass(short, RATE, filter_type, 10, 2000.0, ripple, stopband).shape == (40,)
    with pytest.raises(ValueError, match="at least 2 samples"):
        lowpass(short[:1], RATE, "butter", 4, 2000.0)


# -- rendering -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_root(tmp_path_factory: pytest.TempPathFactory, speech48: np.ndarray) -> Path:
    """Speech at 48 kHz (mono WAV, a 26 s stereo FLAC) and music stems at 44.1 kHz in corpus layouts."""
    root = tmp_path_factory.mktemp("raw")
    sf.write(root / "speech.wav", speech48, 48_000, subtype="PCM_16")
    long_speech = np.tile(speech48, 3)[: 26 * 48_000]
    stereo = np.stack([long_speech, 0.5 * np.roll(long_speech, 480)], axis=1)
    sf.write(root / "long_stereo.flac", stereo, 48_000, subtype="PCM_16")
    stems = synth.music(np.random.default_rng(3), 4.0, 44_100)
    track = root / "musdb18hq/parts/musdb18hq/train/Artist - Song"
    track.mkdir(parents=True)
    for name, stem in stems.items():
        sf.write(track / f"{name}.wav", np.stack([stem, stem], axis=1), 44_100, subtype="PCM_16")
    sf.write(track / "mixture.wav", np.stack([sum(stems.values())] * 2, axis=1), 44_100, subtype="PCM_16")
    song = root / "moisesdb/parts/moisesdb/moisesdb_v0.1/0a1b"
    for name, stem in stems.items():
        (song / name).mkdir(parents=True)
        sf.write(song / name / f"{name}-track.wav", np.stack([stem, 0.5 * stem], axis=1), 44_100, subtype="PCM_16")
    return root


def _speech_record(seconds: float) -> dict:
    return _record("alsa/speech", "speech.wav", 48_000, seconds)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("filter_type", FILTER_TYPES)
def test_rendered_pair_is_aligned_band_limited_and_bit_exact(
    filter_type: str, method: str, raw_root: Path, speech48: np.ndarray
) -> None:
    config = SrConfig(filter_types=(filter_type,), resample_methods=(method,), seed=7)
    params = _params(_speech_record(len(speech48) / 48_000), config)[0]
    low, high = render_sr(params, raw_root, config)
    assert low.dtype == high.dtype == np.float32
    assert len(low) == len(high) == round(len(speech48) / 2)
    np.testing.assert_array_equal(high, soxr.resample(speech48, 48_000, RATE))  # the target is the source at 24 kHz
    assert _band_ratio_db(low, params.cutoff_hz) >= 50
    correlation = signal.correlate(low.astype(np.float64), high.astype(np.float64), mode="full", method="fft")
    assert int(np.argmax(correlation)) - (len(high) - 1) == 0  # peak at lag 0
    # replay from the JSON record, with a cold design cache: the same bytes
    from uniflow.simulate import sr as sr_module

    sr_module._design.cache_clear()
    replayed = SrParams.from_json(json.loads(json.dumps(params.to_json())))
    assert replayed == params
    low_again, high_again = render_sr(replayed, raw_root, config)
    assert low_again.tobytes() == low.tobytes() and high_again.tobytes() == high.tobytes()


def test_clips_of_a_long_stereo_file_read_their_own_frames(raw_root: Path) -> None:
    info = sf.info(raw_root / "long_stereo.flac")
    record = _record("alsa/long", "long_stereo.flac", 48_000, info.frames / 48_000, channels=2)
    params = _params(record)
    assert [(p.key, p.start, p.end) for p in params] == [
        ("sr/alsa/long/c0", 0.0, 10.0),
        ("sr/alsa/long/c1", 10.0, 20.0),
        ("sr/alsa/long/c2", 20.0, 26.0),
    ]
    whole, _ = sf.read(raw_root / "long_stereo.flac", dtype="float32")
    middle = (whole[480_000:960_000, 0] + whole[480_000:960_000, 1]) * np.float32(0.5)  # channels averaged
    low, high = render_sr(params[1], raw_root, SrConfig())
    np.testing.assert_array_equal(high, soxr.resample(middle, 48_000, RATE))
    assert len(low) == len(high) == 10 * RATE


def test_music_sources_musdb_mixture_and_moisesdb_sum_of_stems(raw_root: Path) -> None:
    musdb_track = "musdb18hq/parts/musdb18hq/train/Artist - Song"
    musdb = _record(
        "musdb18hq/train/Artist_-_Song", f"{musdb_track}/mixture.wav", 44_100, 4.0,
        extra={"stems": {name: f"{musdb_track}/{name}.wav" for name in ("bass", "drums", "other", "vocals")}},
    )  # fmt: skip
    song = "moisesdb/parts/moisesdb/moisesdb_v0.1/0a1b"
    tracks = {
        name: [{"path": f"{song}/{name}/{name}-track.wav", "track_type": None, "has_bleed": False}]
        for name in ("bass", "drums", "other", "vocals")
    }
    moises = _record("moisesdb/0a1b", tracks["bass"][0]["path"], 44_100, 4.0, extra={"stems": tracks})
    config = SrConfig()
    musdb_params, moises_params = _params(musdb, config)[0], _params(moises, config)[0]
    assert musdb_params.audio == (f"{musdb_track}/mixture.wav",)
    assert moises_params.audio == tuple(tracks[name][0]["path"] for name in sorted(tracks))
    stereo = [sf.read(raw_root / path, dtype="float32")[0] for path in moises_params.audio]
    expected = soxr.resample(sum((d[:, 0] + d[:, 1]) * np.float32(0.5) for d in stereo), 44_100, RATE)
    low, high = render_sr(moises_params, raw_root, config)
    scale = float(high[np.argmax(np.abs(high))] / expected[np.argmax(np.abs(high))])  # 1 unless peak-limited
    assert 0 < scale <= 1 and np.abs(high).max() <= config.peak_limit + 1e-6
    np.testing.assert_allclose(high, expected * np.float32(scale), atol=1e-5)
    assert len(render_sr(musdb_params, raw_root, config)[1]) == 4 * RATE


def test_hot_sources_are_scaled_down_together(tmp_path: Path, speech48: np.ndarray) -> None:
    sf.write(tmp_path / "hot.wav", speech48 / np.abs(speech48).max() * 0.998, 48_000, subtype="FLOAT")
    params = _params(_record("alsa/hot", "hot.wav", 48_000, len(speech48) / 48_000))[0]
    low, high = render_sr(params, tmp_path, SrConfig())
    peak = max(np.abs(low).max(), np.abs(high).max())
    assert peak == pytest.approx(0.99, abs=1e-6)
    plain_high = soxr.resample(sf.read(tmp_path / "hot.wav", dtype="float32")[0], 48_000, RATE)
    plain_low = lowpass(
        plain_high, RATE, params.filter_type, params.order, params.cutoff_hz, params.ripple_db, params.stopband_db
    )
    ratio = np.abs(low).max() / np.abs(plain_low).max()
    assert ratio < 1
    np.testing.assert_allclose(low, plain_low * ratio, atol=1e-6)  # the same factor on input and target
    np.testing.assert_allclose(high, plain_high * ratio, atol=1e-6)


# -- planning and parameters ---------------------------------------------------------------------
def test_clip_planning_cuts_long_files_and_drops_short_pieces() -> None:
    records = [
        _record("c/long", "long.flac", 44_100, 25.0),  # 10 + 10 + 5
        _record("c/tail", "tail.flac", 44_100, 21.0),  # 10 + 10, the 1 s tail is dropped
        _record("c/medium", "medium.flac", 44_100, 15.0),  # not longer than 20 s: one clip
        _record("c/short", "short.flac", 44_100, 1.5),
        _record("c/segment", "book.flac", 48_000, 30.0, start=100.0, end=130.0),
        _record("c/narrow", "narrow.wav", 16_000, 12.0),
    ]
    clips, skipped = plan_sr_clips(records)  # the default config: 10 s clips, split above 20 s, 2 s minimum
    assert [(c.record["id"], c.index, c.start, c.end) for c in clips] == [
        ("c/long", 0, 0.0, 10.0), ("c/long", 1, 10.0, 20.0), ("c/long", 2, 20.0, 25.0),
        ("c/tail", 0, 0.0, 10.0), ("c/tail", 1, 10.0, 20.0),
        ("c/medium", 0, 0.0, 15.0),
        ("c/segment", 0, 100.0, 110.0), ("c/segment", 1, 110.0, 120.0), ("c/segment", 2, 120.0, 130.0),
    ]  # fmt: skip
    assert {s["id"]: s["reason"].split(":")[0] for s in skipped} == {
        "c/short": "too short",
        "c/narrow": "sample rate 16000 Hz below 24000 Hz",
    }


def test_sampled_parameters_cover_the_configured_ranges_deterministically() -> None:
    config = SrConfig(seed=11, ellip_ripple_db=(0.1, 0.5), ellip_stopband_db=(60.0, 80.0))
    records = [_record(f"c/r{index}", f"r{index}.flac", 44_100, 12.0) for index in range(1500)]
    params, skipped = sample_sr_params(records, config, "train")
    assert not skipped and len(params) == 1500 and len({p.key for p in params}) == 1500
    assert {p.filter_type for p in params} == set(FILTER_TYPES)
    assert {p.order for p in params} == set(range(2, 11))
    cutoffs = np.array([p.cutoff_hz for p in params])
    assert cutoffs.min() == 2000.0 and cutoffs.max() == 6000.0 and np.all(cutoffs % 50 == 0)
    assert len(set(cutoffs)) > 70  # the grid's 81 values, nearly all drawn
    for p in params:
        assert p.version == SR_VERSION and p.split == "train" and p.sample_rate == RATE
        assert (p.ripple_db is None) == (p.filter_type not in ("cheby1", "ellip"))
        assert (p.stopband_db is None) == (p.filter_type != "ellip")
    assert {p.ripple_db for p in params if p.filter_type == "cheby1"} == {0.1, 0.25, 0.5, 1.0}
    assert {(p.ripple_db, p.stopband_db) for p in params if p.filter_type == "ellip"} == {
        (0.1, 60.0), (0.1, 80.0), (0.5, 60.0), (0.5, 80.0)
    }  # fmt: skip
    # per key: the same draws from another order and subset of the records, other draws from another seed
    again, _ = sample_sr_params(records[::-7], config, "train")
    by_key = {p.key: p for p in params}
    assert all(by_key[p.key] == p for p in again)
    other, _ = sample_sr_params(records[:50], config.model_copy(update={"seed": 12}), "train")
    assert sum(by_key[p.key].cutoff_hz != p.cutoff_hz for p in other) > 40


def test_records_of_another_split_are_skipped() -> None:
    params, skipped = sample_sr_params([{**_record("c/a", "a.flac", 44_100, 5.0), "split": "test"}], SrConfig(), "train")
    assert params == [] and skipped == [{"id": "c/a", "reason": "split 'test', not 'train'"}]


def test_config_rejects_cutoffs_at_or_above_nyquist() -> None:
    with pytest.raises(ValidationError, match="cutoff_hz"):
        SrConfig(cutoff_hz=(2000.0, 12_000.0))
    with pytest.raises(ValidationError, match="order"):
        SrConfig(order=(6, 4))


# -- bad inputs ----------------------------------------------------------------------------------
def test_bad_inputs_raise_simulation_input_error_with_reasons(tmp_path: Path, speech48: np.ndarray) -> None:
    seconds = len(speech48) / 48_000
    nan_speech = speech48.copy()
    nan_speech[1000] = np.nan
    sf.write(tmp_path / "nan.wav", nan_speech, 48_000, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", speech48 * 1e-4, 48_000, subtype="FLOAT")  # about -90 dBFS
    sf.write(tmp_path / "clipped.wav", np.clip(speech48 * 30, -1, 1), 48_000, subtype="PCM_16")
    sf.write(tmp_path / "44k.wav", speech48[: 44_100 * 3], 44_100, subtype="PCM_16")
    sf.write(tmp_path / "shorter.wav", speech48[: 48_000 * 3], 48_000, subtype="PCM_16")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 20)
    cases = {
        "nan.wav": "NaN",
        "silent.wav": "silent",
        "clipped.wav": "clipped",
        "44k.wav": "sample rate 44100 Hz, planned 48000 Hz",
        "shorter.wav": "file ends before the clip",
        "garbage.wav": "cannot read",
        "missing.wav": "file not found",
    }
    config = SrConfig()
    for name, reason in cases.items():
        params = _params(_record(f"bad/{name[:-4]}", name, 48_000, seconds), config)[0]
        with pytest.raises(SimulationInputError) as caught:
            render_sr(params, tmp_path, config)
        assert reason in caught.value.reason, (name, caught.value.reason)
        assert isinstance(caught.value, ValueError) and caught.value.source


def test_narrow_band_librivox_speech_is_not_a_target() -> None:
    files = sorted(LIBRIVOX.glob("*.wav"))
    if not files:
        pytest.skip(f"no recordings in {LIBRIVOX}: the pocketsphinx-testdata package is not installed")
    info = sf.info(files[0])
    record = _record("librivox/a", str(files[0]), info.samplerate, info.frames / info.samplerate)
    params, skipped = sample_sr_params([record], SrConfig(), "train")
    assert params == [] and skipped[0]["reason"].startswith("sample rate 16000 Hz below 24000 Hz")
    # a lower floor admits it, and the 16 kHz source renders to 24 kHz like any other
    config = SrConfig(min_source_sample_rate=16_000)
    params, _ = sample_sr_params([record], config, "train")
    low, high = render_sr(params[0], "/", config)
    assert len(low) == len(high) == round(info.frames * 1.5) and _band_ratio_db(low, params[0].cutoff_hz) >= 50
