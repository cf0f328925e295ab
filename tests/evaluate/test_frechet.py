"""FD known answers (self-distance, closed forms for Gaussians, shifts) and the PANNs CNN14 embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf
import soxr
import torch

from uniflow.evaluate import frechet, panns
from uniflow.evaluate.backbones import BackbonePinError, module_digest
from uniflow.evaluate.clap_score import save_tiny_clap
from uniflow.evaluate.frechet import FrechetSettings, embed, fd_score, frechet_distance, load_embedder
from uniflow.evaluate.signal_metrics import MetricUnavailable
from uniflow.hashing import file_digest

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def with_moments(rng: np.random.Generator, mean: np.ndarray, covariance: np.ndarray, items: int) -> np.ndarray:
    """Samples whose sample mean and unbiased sample covariance are exactly ``mean`` and ``covariance``."""
    raw = rng.standard_normal((items, len(mean)))
    raw -= raw.mean(axis=0)
    whitened = raw @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(raw, rowvar=False)))).T
    return mean + whitened @ np.linalg.cholesky(covariance).T


def closed_form_fd(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """FD through the symmetric root tr((A^1/2 B A^1/2)^1/2), a different route from the module's."""
    values, vectors = np.linalg.eigh(cov_a)
    root_a = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    difference = mean_a - mean_b
    return float(difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.standard_normal((dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


# --- frechet_distance on embeddings -------------------------------------------------------------------


def test_a_set_against_itself_is_zero() -> None:
    embeddings = np.random.default_rng(0).standard_normal((200, 16))
    score = frechet_distance(embeddings, embeddings)
    assert abs(score.value) < 1e-8
    assert score.card["n_reference"] == 200 and score.card["embedding_dim"] == 16


def test_one_dimensional_gaussians_match_the_textbook_formula() -> None:
    rng = np.random.default_rng(1)
    reference = with_moments(rng, np.array([1.0]), np.array([[4.0]]), 50)
    generated = with_moments(rng, np.array([-0.5]), np.array([[0.25]]), 80)
    # (m1 - m2)^2 + (s1 - s2)^2 with standard deviations 2 and 0.5.
    assert frechet_distance(reference, generated).value == pytest.approx(1.5**2 + 1.5**2, rel=1e-9)


def test_diagonal_gaussians_match_the_closed_form() -> None:
    rng = np.random.default_rng(2)
    variances_a, variances_b = np.array([1.0, 4.0, 0.5, 2.0]), np.array([9.0, 1.0, 0.5, 0.1])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    reference = with_moments(rng, mean_a, np.diag(variances_a), 100)
    generated = with_moments(rng, mean_b, np.diag(variances_b), 100)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(variances_a) - np.sqrt(variances_b)) ** 2)
    assert frechet_distance(reference, generated).value == pytest.approx(expected, rel=1e-9)


def test_full_covariances_match_the_closed_form() -> None:
    rng = np.random.default_rng(3)
    cov_a, cov_b = random_covariance(rng, 12), random_covariance(rng, 12)
    mean_a, mean_b = rng.standard_normal(12), rng.standard_normal(12)
    reference = with_moments(rng, mean_a, cov_a, 300)
    generated = with_moments(rng, mean_b, cov_b, 150)
    score = frechet_distance(reference, generated)
    assert score.value == pytest.approx(closed_form_fd(mean_a, cov_a, mean_b, cov_b), rel=1e-8)
    assert score.card["settings"]["eps_offset_used"] is False


def test_shifting_the_generated_set_adds_the_squared_shift() -> None:
    reference = np.random.default_rng(4).standard_normal((300, 8))
    values = [frechet_distance(reference, reference + step).value for step in (0.5, 1.0, 2.0)]
    # The covariance is unchanged, so only the mean term grows: |shift|^2 = 8 step^2.
    assert values == pytest.approx([8 * step**2 for step in (0.5, 1.0, 2.0)], rel=1e-9)


def test_rank_deficient_sets_match_the_closed_form() -> None:
    rng = np.random.default_rng(5)
    # Five items in 32 dimensions: both covariances have rank 4, so their product is singular.
    reference = rng.standard_normal((5, 32))
    generated = rng.standard_normal((5, 32)) + 1.0
    expected = closed_form_fd(
        reference.mean(0), np.cov(reference, rowvar=False), generated.mean(0), np.cov(generated, rowvar=False)
    )
    assert frechet_distance(reference, generated).value == pytest.approx(expected, rel=1e-5)
    # The root of a singular product is less accurate: zero up to 1e-6 of the total variance (about 32).
    assert abs(frechet_distance(reference, reference).value) < 1e-6 * np.trace(np.cov(reference, rowvar=False))


def test_a_failed_square_root_is_retried_with_the_eps_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    reference, generated = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) + 0.5
    exact = frechet_distance(reference, generated)
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def failing_first(matrix: np.ndarray) -> np.ndarray:
        # Stand-in for scipy giving up on a singular product: the first root is all NaN.
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(frechet.scipy.linalg, "sqrtm", failing_first)
    retried = frechet_distance(reference, generated, eps=1e-6)
    assert len(calls) == 2 and retried.card["settings"]["eps_offset_used"] is True
    assert exact.card["settings"]["eps_offset_used"] is False
    # The offset adds about eps to each diagonal entry: a change of order eps * dim.
    assert retried.value == pytest.approx(exact.value, abs=1e-4)


def test_imaginary_parts_are_dropped_when_small_and_refused_when_large(monkeypatch: pytest.MonkeyPatch) -> None:
    embeddings = np.random.default_rng(7).standard_normal((50, 3))
    real_checked = frechet._checked_sqrtm
    for imaginary in (1e-5, 0.5):
        monkeypatch.setattr(frechet, "_checked_sqrtm", lambda m, i=imaginary: real_checked(m) + 1j * i * np.eye(len(m)))
        if imaginary < 1e-3:
            score = frechet_distance(embeddings, embeddings)
            assert abs(score.value) < 1e-8
            assert score.card["settings"]["discarded_imaginary"] == pytest.approx(imaginary)
        else:
            with pytest.raises(ValueError, match="imaginary diagonal part of 0.5"):
                frechet_distance(embeddings, embeddings)


def test_fewer_than_two_items_or_mismatched_dimensions_are_refused() -> None:
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="at least 2 generated items"):
        frechet_distance(rng.standard_normal((4, 3)), rng.standard_normal((1, 3)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(rng.standard_normal((4, 3)), rng.standard_normal((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((4, 3), np.nan), rng.standard_normal((4, 3)))


# --- the CNN14 network ---------------------------------------------------------------------------------


def test_front_end_matches_librosa_log_mel() -> None:
    import librosa

    audio = np.random.default_rng(8).standard_normal(16000) * 0.1
    model = panns.Cnn14(panns.CNN14_TINY)
    with torch.no_grad():
        ours = model.logmel_extractor(model.spectrogram_extractor(torch.from_numpy(audio).float()[None]))[0, 0]
    power = np.abs(librosa.stft(audio, n_fft=512, hop_length=160, window="hann", center=True, pad_mode="reflect")) ** 2
    mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000) @ power
    expected = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == (101, 64)
    assert np.max(np.abs(ours.double().numpy() - expected)) < 1e-3  # dB


def test_full_size_network_has_the_published_checkpoint_layout() -> None:
    with torch.device("meta"):
        model = panns.Cnn14(panns.CNN14_16K)
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    # Names and shapes as printed from Cnn14_16k_mAP=0.438.pth's 'model' entry.
    assert list(shapes)[:8] == [
        "spectrogram_extractor.stft.conv_real.weight",
        "spectrogram_extractor.stft.conv_imag.weight",
        "logmel_extractor.melW",
        "bn0.weight",
        "bn0.bias",
        "bn0.running_mean",
        "bn0.running_var",
        "bn0.num_batches_tracked",
    ]
    assert shapes["spectrogram_extractor.stft.conv_real.weight"] == (257, 1, 512)
    assert shapes["logmel_extractor.melW"] == (257, 64)
    assert shapes["conv_block1.conv1.weight"] == (64, 1, 3, 3)
    assert shapes["conv_block2.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["conv_block6.bn2.running_var"] == (2048,)
    assert shapes["fc1.weight"] == (2048, 2048) and shapes["fc_audioset.weight"] == (527, 2048)
    assert len(shapes) == 8 + 6 * 12 + 4
    trainable = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(("spectrogram", "logmel")))
    assert trainable == 80_753_615  # the paper's "80.8M parameters"


def test_checkpoint_with_numpy_extras_in_the_legacy_format_loads(tmp_path: Path) -> None:
    source = panns.save_tiny_cnn14(tmp_path / "tiny.pth")
    state = torch.load(source, weights_only=True)["model"]
    legacy = tmp_path / "legacy.pth"
    # 2020-era training scripts stored counters as numpy scalars next to the weights, in the pre-zip format.
    torch.save({"model": state, "iteration": np.int64(560000)}, legacy, _use_new_zipfile_serialization=False)
    audio = torch.from_numpy(np.random.default_rng(9).standard_normal(8000).astype(np.float32))[None]
    first = panns.load_cnn14(source, panns.CNN14_TINY)(audio).embedding
    second = panns.load_cnn14(legacy, panns.CNN14_TINY)(audio).embedding
    assert torch.equal(first, second)
    assert first.shape == (1, 32)


def test_a_checkpoint_of_another_layout_is_refused(tmp_path: Path) -> None:
    state = torch.load(panns.save_tiny_cnn14(tmp_path / "tiny.pth"), weights_only=True)["model"]
    with pytest.raises(ValueError, match="does not match the CNN14 architecture"):
        panns.load_cnn14(tmp_path / "tiny.pth", panns.CNN14_16K)
    del state["fc1.bias"]
    torch.save({"model": state}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="fc1.bias"):
        panns.load_cnn14(tmp_path / "partial.pth", panns.CNN14_TINY)
    torch.save(state, tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="under 'model'"):
        panns.load_cnn14(tmp_path / "bare.pth", panns.CNN14_TINY)


# --- fd_score end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_clips() -> list[tuple[np.ndarray, int]]:
    """Ten 1.5 s clips of real read speech at 16 kHz (two from each LibriVox test file)."""
    files = sorted(LIBRIVOX.glob("*.wav"))
    if not files:
        pytest.skip("pocketsphinx test speech is not installed")
    clips = []
    for file in files:
        audio, rate = sf.read(file, dtype="float64")
        clips += [(audio[:24000], rate), (audio[24000:48000], rate)]
    return clips


@pytest.fixture(scope="module")
def tiny_panns(tmp_path_factory: pytest.TempPathFactory) -> FrechetSettings:
    path = panns.save_tiny_cnn14(tmp_path_factory.mktemp("panns") / panns.CHECKPOINT_NAME)
    return FrechetSettings(backbone={"name": "panns-cnn14-tiny", "path": str(path)}, architecture="cnn14-tiny")


def test_fd_score_on_speech_is_zero_for_the_same_set_and_grows_for_noise(
    tiny_panns: FrechetSettings, speech_clips: list[tuple[np.ndarray, int]]
) -> None:
    embedder = load_embedder(tiny_panns)
    reference, held_out = speech_clips[::2], speech_clips[1::2]
    rng = np.random.default_rng(10)
    noise = [(0.1 * rng.standard_normal(24000), 16000) for _ in range(5)]
    same = fd_score(embedder, reference, reference)
    other_speech = fd_score(embedder, reference, held_out)
    noise_score = fd_score(embedder, reference, noise)
    assert abs(same.value) < 1e-6
    assert 0 < other_speech.value < noise_score.value
    card = noise_score.card
    assert card["backbone"]["sha256"] == module_digest(panns.load_cnn14(Path(tiny_panns.backbone.path), panns.CNN14_TINY))
    assert card["backbone"]["checkpoint_md5"] == file_digest(tiny_panns.backbone.path, "md5")
    assert card["embedder"] == "panns-cnn14" and card["sample_rate"] == 16000
    assert (card["n_reference"], card["n_generated"], card["embedding_dim"]) == (5, 5, 32)
    assert "resampler" not in card


def test_fd_score_resamples_other_rates(tiny_panns: FrechetSettings, speech_clips: list[tuple[np.ndarray, int]]) -> None:
    embedder = load_embedder(tiny_panns)
    reference = speech_clips[:4]
    at_44k = [(soxr.resample(audio, rate, 44100, quality="VHQ"), 44100) for audio, rate in reference]
    (native, _), (resampled, _) = embed(embedder, reference), embed(embedder, at_44k)
    assert resampled.shape == (4, 32)
    # A round trip through 44.1 kHz changes the embedding by far less than its size.
    assert np.max(np.abs(native - resampled)) < 0.05 * np.max(np.abs(native))
    card = fd_score(embedder, reference, at_44k).card
    assert card["input_sample_rates"] == [16000, 44100] and card["resampler"]["package"] == "soxr"


def test_fd_score_input_errors(tiny_panns: FrechetSettings, speech_clips: list[tuple[np.ndarray, int]]) -> None:
    embedder = load_embedder(tiny_panns)
    with pytest.raises(ValueError, match="at least 2 reference items"):
        fd_score(embedder, speech_clips[:1], speech_clips)
    with pytest.raises(ValueError, match="mono"):
        embed(embedder, [(np.zeros((2, 16000)), 16000)])


def test_clips_shorter_than_the_receptive_field_are_padded_with_silence_and_counted(
    tiny_panns: FrechetSettings, speech_clips: list[tuple[np.ndarray, int]]
) -> None:
    embedder = load_embedder(tiny_panns)
    short = [(audio[:3000], rate) for audio, rate in speech_clips[:2]]  # 0.19 s, under CNN14's 0.31 s
    padded = [(np.pad(audio, (0, embedder.min_samples - len(audio))), rate) for audio, rate in short]
    (as_given, count), (by_hand, _) = embed(embedder, short), embed(embedder, padded)
    assert count == 2 and np.array_equal(as_given, by_hand)
    card = fd_score(embedder, speech_clips[:2], short).card
    assert card["padded_to_min_seconds"] == {"min_seconds": embedder.min_samples / 16000, "reference": 0, "generated": 2}


def test_missing_weights_and_pin_mismatch(tmp_path: Path, tiny_panns: FrechetSettings) -> None:
    missing = tmp_path / "nowhere" / panns.CHECKPOINT_NAME
    with pytest.raises(MetricUnavailable, match=str(missing)):
        load_embedder(FrechetSettings(backbone={"name": "panns-cnn14-16k", "path": str(missing)}))
    pinned = tiny_panns.model_copy(update={"backbone": tiny_panns.backbone.model_copy(update={"sha256": "0" * 64})})
    with pytest.raises(BackbonePinError, match="0" * 64):
        load_embedder(pinned)
    digest = load_embedder(tiny_panns).card["sha256"]
    right_pin = tiny_panns.model_copy(update={"backbone": tiny_panns.backbone.model_copy(update={"sha256": digest})})
    assert load_embedder(right_pin).card["pinned"] is True


def test_defaults_are_the_paper_configuration() -> None:
    settings = FrechetSettings()
    assert settings.embedder == "panns-cnn14" and settings.architecture == "cnn14-16k"
    assert settings.backbone.name == "panns-cnn14-16k"
    assert settings.backbone.path == "models/eval/Cnn14_16k_mAP=0.438.pth"
    config = panns.CONFIGS[settings.architecture]
    assert (config.sample_rate, config.window_size, config.hop_size, config.mel_bins) == (16000, 512, 160, 64)
    assert (config.fmin, config.fmax, config.embedding_dim) == (50.0, 8000.0, 2048)


def test_clap_audio_embedder_is_pluggable(tmp_path: Path, speech_clips: list[tuple[np.ndarray, int]]) -> None:
    directory = save_tiny_clap(tmp_path / "clap")
    settings = FrechetSettings(embedder="clap-audio", backbone={"name": "clap-tiny", "path": str(directory)})
    embedder = load_embedder(settings)
    reference = speech_clips[:2]
    rng = np.random.default_rng(11)
    noise = [(0.1 * rng.standard_normal(24000), 16000) for _ in range(2)]
    score = fd_score(embedder, reference, noise)
    reference_embeddings, _ = embed(embedder, reference)
    assert reference_embeddings.shape == (2, 8)
    assert np.linalg.norm(reference_embeddings, axis=1) == pytest.approx([1.0, 1.0])
    # A random tiny CLAP separates speech from noise only a little, but far above the self-distance.
    assert abs(frechet_distance(reference_embeddings, reference_embeddings).value) < 1e-9
    assert score.value > 1e-5
    assert score.card["embedder"] == "clap-audio" and score.card["sample_rate"] == 48000
    assert score.card["embedding_dim"] == 8 and len(score.card["backbone"]["sha256"]) == 64
    with pytest.raises(ValueError, match="CLAP model directory"):
        load_embedder(FrechetSettings(embedder="clap-audio", backbone={"name": "x", "path": str(directory / "config.json")}))
