"""Known inputs give known answers: PESQ/STOI on clean and noisy speech, LSD under low-passes, F0 on tones."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import soxr

from uniflow.evaluate import signal_metrics
from uniflow.evaluate.signal_metrics import (
    MetricUnavailable,
    f0_rmse,
    log_spectral_distance,
    pesq_wb,
    pitch_track,
    semitone_accuracy,
    stoi,
    svs_pitch_metrics,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SPEECH_FILE = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"

pytestmark = pytest.mark.skipif(not SPEECH_FILE.exists(), reason="pocketsphinx test speech is not installed")


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """Three seconds of real read speech at 16 kHz."""
    audio, sample_rate = sf.read(SPEECH_FILE, dtype="float64")
    return audio, sample_rate


def with_white_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(audio))
    noise *= np.sqrt(np.mean(audio**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return audio + noise


def tone(frequency_hz: float, sample_rate: int = 24000, seconds: float = 2.0) -> np.ndarray:
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    return 0.4 * np.sin(2 * np.pi * frequency_hz * time)


def test_pesq_is_near_its_ceiling_for_clean_speech_and_falls_with_the_snr(speech):
    audio, sample_rate = speech
    clean = pesq_wb(audio, audio, sample_rate)
    snr30 = pesq_wb(audio, with_white_noise(audio, 30, seed=1), sample_rate)
    snr10 = pesq_wb(audio, with_white_noise(audio, 10, seed=2), sample_rate)
    # P.862.2 maps a perfect wideband score to 4.64.
    assert clean.value == pytest.approx(4.64, abs=0.05)
    assert clean.value > snr30.value + 1.0
    assert snr30.value > snr10.value + 0.5
    assert clean.card["metric"] == "pesq_wb"
    assert clean.card["implementation"] == {"package": "pesq", "version": "0.0.4"}
    assert clean.card["sample_rate"] == 16000
    assert clean.card["settings"]["mode"] == "wb"


def test_pesq_resamples_other_rates_to_16k_and_says_so(speech):
    audio, sample_rate = speech
    audio24 = soxr.resample(audio, sample_rate, 24000)
    score = pesq_wb(audio24, audio24, 24000)
    assert score.value == pytest.approx(4.64, abs=0.05)
    assert score.card["input_sample_rate"] == 24000
    assert score.card["sample_rate"] == 16000
    assert score.card["resampler"]["package"] == "soxr"


def test_stoi_is_one_for_clean_speech_and_falls_with_the_snr(speech):
    audio, sample_rate = speech
    clean = stoi(audio, audio, sample_rate)
    snr30 = stoi(audio, with_white_noise(audio, 30, seed=1), sample_rate)
    snr10 = stoi(audio, with_white_noise(audio, 10, seed=2), sample_rate)
    assert clean.value == pytest.approx(1.0, abs=1e-6)
    assert 0.95 < snr30.value < clean.value
    assert snr10.value < snr30.value - 0.05
    assert clean.card["implementation"] == {"package": "pystoi", "version": "0.4.1"}
    assert clean.card["settings"]["extended"] is False
    assert stoi(audio, audio, sample_rate, extended=True).card["metric"] == "estoi"


def test_lsd_is_zero_for_identical_signals_and_grows_as_the_low_pass_cuts_lower(speech):
    audio, sample_rate = speech
    audio24 = soxr.resample(audio, sample_rate, 24000)

    def low_passed(cutoff_hz: float) -> np.ndarray:
        sos = scipy.signal.butter(8, cutoff_hz, btype="low", fs=24000, output="sos")
        return scipy.signal.sosfiltfilt(sos, audio24)

    identical = log_spectral_distance(audio24, audio24, 24000)
    cut_4k = log_spectral_distance(audio24, low_passed(4000), 24000)
    cut_1k = log_spectral_distance(audio24, low_passed(1000), 24000)
    assert identical.value == 0.0
    assert 0.1 < cut_4k.value < cut_1k.value
    assert identical.card["sample_rate"] == 24000
    assert identical.card["settings"]["n_fft"] == 2048
    assert identical.card["settings"]["hop"] == 512
    assert len(identical.card["implementation"]["sha256"]) == 64
    # A 16 kHz input is brought to 24 kHz before the STFT.
    assert log_spectral_distance(audio, audio, sample_rate).card["resampler"]["package"] == "soxr"


def test_pitch_track_finds_the_frequency_of_tones_and_no_voice_in_silence():
    for frequency in (82.41, 220.0, 880.0):
        track = pitch_track(tone(frequency), 24000)
        assert track.voiced.mean() > 0.95
        assert np.median(track.f0_hz[track.voiced]) == pytest.approx(frequency, rel=0.002)
    silent = pitch_track(np.zeros(24000), 24000)
    assert not silent.voiced.any()
    assert len(silent.f0_hz) == 101  # one frame every 10 ms, centred


def test_f0_rmse_is_zero_against_itself_and_one_hundred_cents_against_a_semitone_up():
    a3 = tone(220.0)
    a_sharp3 = tone(220.0 * 2 ** (1 / 12))
    assert f0_rmse(a3, a3, 24000).value == 0.0
    assert semitone_accuracy(a3, a3, 24000).value == 1.0
    assert f0_rmse(a3, a_sharp3, 24000).value == pytest.approx(100.0, abs=3.0)
    assert semitone_accuracy(a3, a_sharp3, 24000).value == 0.0
    in_hz = f0_rmse(a3, a_sharp3, 24000, unit="hz")
    assert in_hz.value == pytest.approx(220.0 * (2 ** (1 / 12) - 1), abs=0.5)
    assert in_hz.card["settings"]["unit"] == "hz"
    # ESPnet's log-F0 RMSE (the paper's Table 1 unit): a semitone is ln(2) / 12 = 0.0578.
    in_log = f0_rmse(a3, a_sharp3, 24000, unit="log")
    assert in_log.value == pytest.approx(np.log(2) / 12, abs=0.002)
    with pytest.raises(ValueError, match="unit"):
        f0_rmse(a3, a3, 24000, unit="mel")


def test_svs_metrics_share_one_extraction_and_count_only_frames_voiced_in_both():
    reference = tone(220.0)
    # The estimate is silent for its second half: only the first second is compared.
    estimate = np.concatenate((tone(220.0, seconds=1.0), np.zeros(24000)))
    scores = svs_pitch_metrics(reference, estimate, 24000)
    assert scores["f0_rmse"].value < 1.0
    assert scores["semitone_accuracy"].value == 1.0
    compared = scores["f0_rmse"].card["settings"]["voiced_frames_compared"]
    assert 90 <= compared <= 102
    with pytest.raises(ValueError, match="voiced in both"):
        svs_pitch_metrics(reference, np.zeros(48000), 24000)


def test_inputs_that_do_not_belong_together_are_refused(speech):
    audio, sample_rate = speech
    with pytest.raises(ValueError, match="differ by"):
        log_spectral_distance(audio, audio[: len(audio) // 2], sample_rate)
    with pytest.raises(ValueError, match="mono"):
        log_spectral_distance(np.stack((audio, audio)), np.stack((audio, audio)), sample_rate)
    # pystoi would return 1e-5 for too little speech; that is refused, not scored.
    with pytest.raises(ValueError, match="Not enough STFT frames"):
        stoi(audio[:3200], audio[:3200], sample_rate)
    # A few samples of rounding are tolerated and the shorter length is compared.
    assert log_spectral_distance(audio, audio[:-7], sample_rate).card["compared_seconds"] == pytest.approx(
        (len(audio) - 7) / sample_rate
    )


def test_a_missing_metric_package_says_what_to_install(monkeypatch, speech):
    audio, sample_rate = speech
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "pesq", None)
    monkeypatch.setitem(sys.modules, "pystoi", None)
    with pytest.raises(MetricUnavailable, match=r"pip install pesq==0\.0\.4"):
        pesq_wb(audio, audio, sample_rate)
    with pytest.raises(MetricUnavailable, match=r"pip install pystoi==0\.4\.1"):
        stoi(audio, audio, sample_rate)
    assert signal_metrics.PINNED_PACKAGES == {"pesq": "0.0.4", "pystoi": "0.4.1"}
