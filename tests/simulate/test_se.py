"""SE pair simulation on real recorded speech: SNR, alignment, draw statistics, replay, bad inputs."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.signal as signal
import soundfile as sf
import soxr

from uniflow.mirror import synth
from uniflow.simulate.errors import SimulationInputError
from uniflow.simulate.noise_cache import NoiseCache
from uniflow.simulate.rir import direct_path_index, early_rir, generate_rirs, load_rir
from uniflow.simulate.se import SeConfig, SeParams, render_se, render_voicebank_pair, sample_se_params

RATE = 24_000
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ALSA = Path("/usr/share/sounds/alsa")
NO_AUGMENTATION = {0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0}


def record(raw: Path, path: Path, record_id: str, **fields: Any) -> dict[str, Any]:
    """A manifest line for ``path`` (probed like the manifest builder does)."""
    info = sf.info(path)
    line = {
        "id": record_id,
        "corpus": record_id.split("/")[0],
        "split": "train",
        "audio": path.relative_to(raw).as_posix(),
        "sample_rate": info.samplerate,
        "seconds": info.frames / info.samplerate,
        "num_frames": info.frames,
        "channels": info.channels,
    }
    return {**line, **fields}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A raw root with real speech (LibriVox 16 kHz FLAC, ALSA 48 kHz WAV), written noise, generated RIRs."""
    librivox = sorted(LIBRIVOX.glob("*.wav"))
    alsa = ALSA / "Front_Center.wav"
    if not librivox or not alsa.exists():
        pytest.skip(f"recorded speech missing ({LIBRIVOX}, {alsa}): Debian packages pocketsphinx-en-us, alsa-utils")
    raw = tmp_path_factory.mktemp("raw")
    (raw / "speech").mkdir()
    (raw / "noise").mkdir()
    clean = []
    for path in librivox:  # the longest is 7.1 s, the shortest 3 s
        target = raw / "speech" / f"{path.stem}.flac"
        sf.write(target, sf.read(path, dtype="int16")[0], 16_000, subtype="PCM_16")
        clean.append(record(raw, target, f"librivox/{path.stem.rsplit('-', 1)[1]}"))
    wideband = raw / "speech" / "front_center.wav"
    wideband.write_bytes(alsa.read_bytes())
    clean.append(record(raw, wideband, "alsa/front_center"))
    rng = np.random.default_rng(5)
    noise = []
    for name, rate, seconds, channels in (("musan_like", 16_000, 20.0, 1), ("wham_like", 48_000, 9.0, 2)):
        audio = np.stack([synth.noise(rng, seconds, rate, color) for color in ("pink", "brown")[:channels]], axis=1)
        path = raw / "noise" / f"{name}.wav"
        sf.write(path, audio, rate, subtype="PCM_16")
        noise.append(record(raw, path, f"noise/{name}"))
    rirs = generate_rirs(3, 11, raw / "rirs", 16_000)
    for line in rirs:
        line["audio"] = Path(line["audio"]).relative_to(raw.resolve()).as_posix()
    return {"raw": raw, "clean": clean, "noise": noise, "rirs": rirs}


def one_pair(corpus, clean_index: int = 0, noise_index: int = 0, **settings: Any) -> SeParams:
    config = SeConfig(seed=3, **settings)
    params, skipped = sample_se_params(
        [corpus["clean"][clean_index]], [corpus["noise"][noise_index]], corpus["rirs"], config, "train"
    )
    assert not skipped and len(params) == 1
    return params[0]


def active_frame_snr(speech: np.ndarray, noise: np.ndarray) -> float:
    """SNR over the 20 ms frames of ``speech`` within 50 dB of its loudest frame (float64)."""
    frames = -(-len(speech) // 480)
    pad = frames * 480 - len(speech)
    speech_frames = np.pad(speech.astype(np.float64), (0, pad)).reshape(frames, 480)
    noise_frames = np.pad(noise.astype(np.float64), (0, pad)).reshape(frames, 480)
    speech_energy = (speech_frames**2).sum(axis=1)
    active = speech_energy > speech_energy.max() * 1e-5
    return 10 * np.log10(speech_energy[active].sum() / (noise_frames[active] ** 2).sum())


def dry_speech(corpus, params: SeParams) -> np.ndarray:
    """The clean segment at 24 kHz, read and resampled independently of the renderer."""
    audio, rate = sf.read(corpus["raw"] / params.clean_audio, dtype="float32", always_2d=True)
    segment = audio[round(params.clean_start * rate) : round(params.clean_end * rate), 0]
    resampled = soxr.resample(segment, rate, RATE, quality="HQ") if rate != RATE else segment
    return np.pad(resampled, (0, max(0, params.num_samples - len(resampled))))[: params.num_samples]


def components(corpus, params: SeParams, noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reverberant speech, scaled noise) behind a rendered pair, from a float64 reference convolution."""
    speech = dry_speech(corpus, params).astype(np.float64)
    if params.rir_audio is not None:
        rir = load_rir(corpus["raw"] / params.rir_audio, params.rir_channel, RATE).astype(np.float64)
        reverberant = signal.convolve(speech, rir)[: len(speech)]
        direct = signal.convolve(speech, early_rir(rir, RATE))[: len(speech)]
    else:
        reverberant = direct = speech
    scale = np.dot(clean, direct) / np.dot(direct, direct)  # the shared peak normalisation
    assert np.allclose(clean, scale * direct, atol=1e-5), "target is the early-reverberant speech"
    return scale * reverberant, noisy - scale * reverberant


@pytest.mark.parametrize("reverberant", [False, True], ids=["dry", "reverberant"])
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 7.5, 20.0])
def test_realised_snr_matches_the_request(corpus, snr_db, reverberant) -> None:
    params = one_pair(corpus, snr_db=(snr_db, snr_db), prob_reverberation=float(reverberant), augmentation_counts=NO_AUGMENTATION)
    assert (params.rir_audio is not None) == reverberant and params.snr_db == snr_db
    noisy, clean = render_se(params, corpus["raw"], SeConfig())
    assert noisy.dtype == clean.dtype == np.float32 and len(noisy) == len(clean) == params.num_samples
    speech, noise = components(corpus, params, noisy, clean)
    assert abs(active_frame_snr(speech, noise) - snr_db) < 0.1
    assert np.isclose(max(np.abs(noisy).max(), np.abs(clean).max()), 0.9), "shared peak normalisation"


@pytest.mark.parametrize("reverberant", [False, True], ids=["dry", "reverberant"])
def test_input_and_target_are_sample_aligned(corpus, reverberant) -> None:
    params = one_pair(corpus, 2, snr_db=(20.0, 20.0), prob_reverberation=float(reverberant), augmentation_counts=NO_AUGMENTATION)
    noisy, clean = render_se(params, corpus["raw"], SeConfig())
    correlation = signal.correlate(noisy, clean, mode="full", method="fft")
    assert int(np.argmax(correlation)) - (len(clean) - 1) == 0
    if reverberant:  # both carry the direct-path delay: the target is not the dry speech
        rir = load_rir(corpus["raw"] / params.rir_audio, 0, RATE)
        delay = direct_path_index(rir)
        dry = dry_speech(corpus, params)
        correlation = signal.correlate(clean, dry, mode="full", method="fft")
        lag = int(np.argmax(correlation)) - (len(dry) - 1)
        assert delay > 0 and delay <= lag <= delay + 0.05 * RATE, (lag, delay)


def test_wideband_speech_and_stereo_noise(corpus) -> None:
    """48 kHz speech and 48 kHz stereo noise are resampled; the drawn noise channel is used."""
    params = one_pair(corpus, clean_index=5, noise_index=1, snr_db=(5.0, 5.0), augmentation_counts=NO_AUGMENTATION)
    assert params.clean_sample_rate == 48_000 and params.noise_channel in (0, 1)
    noisy, clean = render_se(params, corpus["raw"], SeConfig())
    assert len(noisy) == (sf.info(corpus["raw"] / params.clean_audio).frames + 1) // 2  # halves round up
    speech, noise = components(corpus, params, noisy, clean)
    assert abs(active_frame_snr(speech, noise) - 5.0) < 0.1


def fake(record_id: str, rate: int = RATE, seconds: float = 4.0, **fields: Any) -> dict[str, Any]:
    """A manifest line for draw statistics (sampling never opens audio)."""
    return {
        "id": record_id,
        "audio": f"{record_id}.flac",
        "sample_rate": rate,
        "num_frames": int(seconds * rate),
        "channels": 1,
        **fields,
    }


@pytest.mark.parametrize("probability", [0.2, 0.5, 0.9])
def test_reverberation_probability_is_honoured(probability) -> None:
    """URGENT's code applies the RIR with probability 1 - p; here it is p (binomial, 4 sigma)."""
    draws = 2400
    config = SeConfig(seed=11, prob_reverberation=probability, repeat_per_utterance=draws)
    params, _ = sample_se_params([fake("c/a")], [fake("n/a")], [fake("r/a"), fake("r/b")], config, "train")
    reverberant = sum(item.rir_id is not None for item in params)
    sigma = np.sqrt(draws * probability * (1 - probability))
    assert abs(reverberant - draws * probability) < 4 * sigma, (reverberant, draws * probability)
    assert {item.rir_id for item in params} == {None, "r/a", "r/b"}


def test_augmentation_counts_and_names_follow_the_config() -> None:
    draws = 4000
    config = SeConfig(seed=2, repeat_per_utterance=draws)
    params, _ = sample_se_params([fake("c/a")], [fake("n/a")], [], config, "train")
    counts = np.bincount([len(item.augmentations) for item in params], minlength=4)
    for count, probability in config.augmentation_counts.items():
        sigma = np.sqrt(draws * probability * (1 - probability))
        assert abs(counts[count] - draws * probability) < 4 * sigma, (count, counts)
    for item in params:
        names = [a["name"] for a in item.augmentations]
        assert len(set(names)) == len(names), "drawn without replacement"
    share = sum(len(item.augmentations) for item in params) / (4 * draws)  # each name: E[count] / 4
    for name in ("bandwidth_limitation", "clipping", "codec", "packet_loss"):
        used = sum(any(a["name"] == name for a in item.augmentations) for item in params) / draws
        assert abs(used - share) < 0.03, (name, used, share)


def test_bandwidth_limitation_is_not_drawn_for_narrowband_speech() -> None:
    config = SeConfig(seed=2, repeat_per_utterance=500, augmentation_counts={0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0})
    params, _ = sample_se_params([fake("c/a", rate=16_000)], [fake("n/a")], [], config, "train")
    bands = [a for item in params for a in item.augmentations if a["name"] == "bandwidth_limitation"]
    assert bands and all(a["rate"] == 8_000 for a in bands), "only rates below the 16 kHz source"
    params, _ = sample_se_params(
        [fake("c/b", rate=8_000)], [fake("n/a")], [], config.model_copy(update={"min_clean_sample_rate": 8_000}), "train"
    )
    assert all(a["name"] != "bandwidth_limitation" for item in params for a in item.augmentations)
    assert all(len(item.augmentations) == 3 for item in params)


def test_parameters_depend_on_the_key_not_on_list_order(corpus) -> None:
    config = SeConfig(seed=9, repeat_per_utterance=2)
    first, _ = sample_se_params(corpus["clean"], corpus["noise"], corpus["rirs"], config, "train")
    shuffled = [list(items) for items in (corpus["clean"], corpus["noise"], corpus["rirs"])]
    for items in shuffled:
        random.Random(1).shuffle(items)
    second, _ = sample_se_params(*shuffled, config, "train")
    assert [p.to_json() for p in first] == [p.to_json() for p in second]
    assert len({p.key for p in first}) == len(first) and all("." not in p.key for p in first)
    assert [p.key for p in first][:3] == ["se/alsa/front_center/r0", "se/alsa/front_center/r1", "se/librivox/0870/r0"]
    other, _ = sample_se_params(corpus["clean"], corpus["noise"], corpus["rirs"], config.model_copy(update={"seed": 10}), "train")
    assert [p.snr_db for p in other] != [p.snr_db for p in first]


@pytest.mark.parametrize(
    "codec",
    [
        {"name": "codec", "format": "mp3", "encoder": "mp3", "bitrate_kbps": 24},
        {"name": "codec", "format": "ogg", "encoder": "vorbis", "compression_level": 0.3},
    ],
    ids=["mp3", "vorbis"],
)
def test_rendering_is_bit_exact_and_replayable_from_json(corpus, codec) -> None:
    drawn = one_pair(corpus, prob_reverberation=1.0, augmentation_counts={0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0})
    assert drawn.rir_id is not None and len(drawn.augmentations) == 3
    # every augmentation kind once, the codec last (its input has all the others in it)
    others = [a for a in drawn.augmentations if a["name"] != "codec"]
    missing = [
        {"name": "bandwidth_limitation", "rate": 8000, "method": "soxr_lq"},
        {"name": "clipping", "min_quantile": 0.02, "max_quantile": 0.97},
        {"name": "packet_loss", "packet_ms": 20.0, "loss_rate": 0.1, "packet_indices": [7, 8]},
    ]
    others += [a for a in missing if a["name"] not in {b["name"] for b in others}]
    params = SeParams.from_json({**drawn.to_json(), "augmentations": [*others, codec]})
    first = render_se(params, corpus["raw"], SeConfig())
    replayed = SeParams.from_json(json.loads(json.dumps(params.to_json())))
    assert replayed == params
    second = render_se(replayed, corpus["raw"], SeConfig())
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b) and a.tobytes() == b.tobytes()


def test_augmentations_touch_the_input_only(corpus) -> None:
    plain = one_pair(corpus, 1, augmentation_counts=NO_AUGMENTATION, prob_reverberation=1.0)
    packet_loss = {"name": "packet_loss", "packet_ms": 20.0, "loss_rate": 0.1, "packet_indices": [3, 4, 10]}
    damaged = SeParams.from_json({**plain.to_json(), "augmentations": [packet_loss]})
    noisy_plain, clean_plain = render_se(plain, corpus["raw"], SeConfig())
    noisy, clean = render_se(damaged, corpus["raw"], SeConfig())
    assert np.all(noisy[3 * 480 : 5 * 480] == 0) and np.all(noisy[10 * 480 : 11 * 480] == 0)
    # same target up to the shared normalisation, whose peak may now come from the other signal
    assert np.allclose(clean / np.abs(clean).max(), clean_plain / np.abs(clean_plain).max(), atol=1e-6)


def test_short_noise_is_wrapped_and_long_speech_cropped(corpus, tmp_path) -> None:
    raw = corpus["raw"]
    short = raw / "noise" / "short.wav"
    sf.write(short, synth.noise(np.random.default_rng(1), 1.0, 16_000, "white"), 16_000)
    config = SeConfig(seed=4, max_seconds=2.5, snr_db=(0.0, 0.0), prob_reverberation=0.0, augmentation_counts=NO_AUGMENTATION)
    params, _ = sample_se_params([corpus["clean"][0]], [record(raw, short, "noise/short")], [], config, "train")
    (item,) = params
    assert item.noise_wrapped and item.num_samples == int(2.5 * RATE)
    assert np.isclose(item.clean_end - item.clean_start, 2.5) and item.clean_start >= 0
    noisy, clean = render_se(item, raw, config)
    noise = noisy - clean  # dry, no augmentation: the mixture is speech + noise
    period = RATE  # a 1 s recording repeats every second
    head, tail = noise[1000 : period - 1000], noise[period + 1000 : 2 * period - 1000]
    assert np.corrcoef(head, tail)[0, 1] > 0.99


def write_speech(path: Path, audio: np.ndarray, rate: int = 16_000, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)


def quarantined(corpus, clean_line: dict[str, Any], noise_line: dict[str, Any] | None = None) -> SimulationInputError:
    config = SeConfig(seed=1, augmentation_counts=NO_AUGMENTATION)
    params, skipped = sample_se_params([clean_line], [noise_line or corpus["noise"][0]], [], config, "train")
    assert not skipped
    with pytest.raises(SimulationInputError) as caught:
        render_se(params[0], corpus["raw"], config)
    return caught.value


def test_bad_inputs_raise_with_a_reason(corpus) -> None:
    raw = corpus["raw"]
    good, _ = sf.read(raw / corpus["clean"][0]["audio"], dtype="float32")
    cases: dict[str, tuple[np.ndarray, str]] = {
        "silent": (np.zeros(32_000, dtype=np.float32), "silent speech"),
        "nan": (np.where(np.arange(len(good)) == 5000, np.nan, good).astype(np.float32), "NaN"),
        "clipped": (np.clip(good * 20, -1, 1), "clipped speech"),
    }
    for name, (audio, reason) in cases.items():
        path = raw / "bad" / f"{name}.wav"
        write_speech(path, audio, subtype="FLOAT")
        error = quarantined(corpus, record(raw, path, f"bad/{name}"))
        assert reason in error.reason, (name, error.reason)
    garbage = raw / "bad" / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 40)
    line = {**corpus["clean"][0], "id": "bad/garbage", "audio": "bad/garbage.wav"}
    assert "cannot read" in quarantined(corpus, line).reason
    assert "not found" in quarantined(corpus, {**line, "audio": "bad/missing.wav"}).reason
    rate_lie = {**corpus["clean"][5], "id": "bad/rate", "sample_rate": 16_000}
    assert "sample rate 48000" in quarantined(corpus, rate_lie).reason
    silent_noise = raw / "bad" / "silent_noise.wav"
    sf.write(silent_noise, np.zeros(48_000, dtype=np.float32), 16_000)
    error = quarantined(corpus, corpus["clean"][0], record(raw, silent_noise, "bad/silent_noise"))
    assert "noise is silent" in error.reason and error.source == "bad/silent_noise.wav"
    copy = pickle.loads(pickle.dumps(error))  # crosses process pools with its fields
    assert (copy.source, copy.reason) == (error.source, error.reason)


def test_unusable_sources_are_skipped_when_sampling(corpus) -> None:
    clean = [
        corpus["clean"][0],
        fake("c/short", seconds=0.2),
        fake("c/narrow", rate=8_000),
        fake("c/other_split", split="test"),
        {"id": "c/no_audio"},
    ]
    noise = [corpus["noise"][0], fake("n/empty", num_frames=0) | {"num_frames": 0}]
    params, skipped = sample_se_params(clean, noise, [fake("r/odd", rate=0)], SeConfig(), "train")
    reasons = {line["id"]: line["reason"] for line in skipped}
    assert [p.clean_id for p in params] == [corpus["clean"][0]["id"]]
    assert "too short" in reasons["c/short"] and "below 16000 Hz" in reasons["c/narrow"]
    assert "split 'test'" in reasons["c/other_split"] and "no id or no audio" in reasons["c/no_audio"]
    assert "noise: num_frames 0" in reasons["n/empty"] and "rir: sample rate 0" in reasons["r/odd"]
    _, skipped = sample_se_params(clean[:1], noise[1:], [], SeConfig(), "train")
    assert [line["reason"] for line in skipped][-1] == "no usable noise recording to mix with"


def test_voicebank_pairs_are_taken_as_published(corpus, tmp_path) -> None:
    raw = tmp_path
    speech, rate = sf.read(ALSA / "Front_Center.wav", dtype="float32")
    noisy = speech + 0.05 * synth.noise(np.random.default_rng(2), len(speech) / rate, rate)[: len(speech)]
    write_speech(raw / "vb" / "clean" / "p226_001.wav", speech, rate)
    write_speech(raw / "vb" / "noisy" / "p226_001.wav", noisy, rate)
    line = {"id": "voicebank_demand/p226_001", "audio": "vb/clean/p226_001.wav", "extra": {"noisy": "vb/noisy/p226_001.wav"}}
    noisy_24k, clean_24k = render_voicebank_pair(line, raw)
    assert noisy_24k.dtype == clean_24k.dtype == np.float32
    assert len(noisy_24k) == len(clean_24k) == (len(speech) + 1) // 2  # halves round up
    assert np.allclose(clean_24k, soxr.resample(speech, rate, RATE, quality="HQ")[: len(clean_24k)], atol=1e-6)
    write_speech(raw / "vb" / "noisy" / "p226_002.wav", noisy[:-10], rate)
    with pytest.raises(SimulationInputError, match="noisy twin"):
        render_voicebank_pair({**line, "extra": {"noisy": "vb/noisy/p226_002.wav"}}, raw)


def test_rirs_are_generated_reproducibly_and_loaded_per_channel(corpus, tmp_path) -> None:
    again = generate_rirs(2, 11, tmp_path / "rirs", 16_000)
    original = corpus["raw"] / corpus["rirs"][1]["audio"]
    assert Path(again[1]["audio"]).read_bytes() == original.read_bytes()
    assert again[0]["extra"]["kind"] == "rir" and again[0]["id"] == "generated_rirs/rir_00000"
    rir = load_rir(original, 0, RATE)
    assert np.abs(rir).max() == 1.0
    start = direct_path_index(rir)
    assert np.abs(rir[start]) > 0.1 >= np.abs(rir[:start]).max(initial=0)
    early = early_rir(rir, RATE, 0.05)
    assert len(early) == start + 1200 and np.array_equal(early, rir[: len(early)])
    stereo = tmp_path / "stereo_rir.wav"
    sf.write(stereo, np.stack([np.r_[1.0, np.zeros(99)], np.r_[0.0, 0.0, 0.5, np.zeros(97)]], axis=1), RATE)
    assert direct_path_index(load_rir(stereo, 1, RATE)) == 2
    with pytest.raises(SimulationInputError, match="channel 2"):
        load_rir(stereo, 2, RATE)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_decoded_noise_cache_renders_the_same_samples(corpus, tmp_path: Path, subtype: str) -> None:
    """A compressed noise recording decoded once (memory-mapped) gives bit-identical pairs; WAV is read directly."""
    raw = corpus["raw"]
    flac = raw / "noise" / f"wham_like_{subtype}.flac"
    rng = np.random.default_rng(9)
    sf.write(flac, np.stack([synth.noise(rng, 4.0, 48_000, c) for c in ("pink", "brown")], axis=1), 48_000, subtype=subtype)
    cache = NoiseCache(tmp_path / "noise_pcm")
    for seconds in (3.0, 6.0):  # a plain excerpt, then one wrapped through the 4 s recording
        config = SeConfig(seed=12, max_seconds=seconds, prob_reverberation=0.0)
        params, _ = sample_se_params([corpus["clean"][2]], [record(raw, flac, f"noise/{flac.stem}")], [], config, "train")
        (item,) = params
        assert item.noise_wrapped == (seconds > 4.0)
        direct = render_se(item, raw, config)
        cached = render_se(item, raw, config, cache)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(direct, cached, strict=True))
    (entry,) = (tmp_path / "noise_pcm").rglob("*.npy")  # built once, reused by the second pair
    assert entry.name == f"{flac.name}.{flac.stat().st_size}.npy"
    assert np.load(entry).dtype == (np.int16 if subtype == "PCM_16" else np.float32)
    wav = corpus["noise"][1]
    assert cache.frames(raw, wav["audio"], 48_000, 0, 10) is None  # nothing to decode: read as before
    with pytest.raises(SimulationInputError, match="channel 5"):
        cache.frames(raw, f"noise/{flac.name}", 48_000, 0, 10, channel=5)
    with pytest.raises(SimulationInputError, match="manifest says 16000"):
        NoiseCache(tmp_path / "other").frames(raw, f"noise/{flac.name}", 16_000, 0, 10)
