"""CLAP score on a tiny random CLAP saved in the transformers format and loaded by the real code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from transformers import ClapModel

from uniflow.evaluate.backbones import BackbonePinError, module_digest
from uniflow.evaluate.clap_score import (
    ClapScoreSettings,
    clap_score,
    clap_similarities,
    load_clap,
    save_tiny_clap,
)
from uniflow.evaluate.signal_metrics import MetricUnavailable

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def tiny_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "clap-tiny")


@pytest.fixture(scope="module")
def settings(tiny_directory: Path) -> ClapScoreSettings:
    return ClapScoreSettings(backbone={"name": "clap-tiny", "path": str(tiny_directory)}, batch_size=2)


def librivox_transcripts() -> dict[str, str]:
    """File id -> transcript, from the transcription file's `<s> text </s> (file id)` lines."""
    transcripts = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, file_id = line.rpartition(" (")
        transcripts[file_id.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    return transcripts


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[tuple[np.ndarray, int]]]:
    """Two clips of real read speech captioned with their transcripts, and noise captioned as rain."""
    files = sorted(LIBRIVOX.glob("*.wav"))[:2]
    if len(files) < 2 or not (LIBRIVOX / "transcription").exists():
        pytest.skip("pocketsphinx test speech is not installed")
    transcripts = librivox_transcripts()
    captions, audios = [], []
    for file in files:
        audio, rate = sf.read(file, dtype="float64")
        captions.append(transcripts[file.stem])
        audios.append((audio[: 2 * rate], rate))
    captions.append("steady rain on a roof")
    audios.append((0.05 * np.random.default_rng(0).standard_normal(44100), 44100))
    return captions, audios


def test_score_is_a_mean_cosine_in_range_and_deterministic(settings: ClapScoreSettings, pairs) -> None:
    backbone = load_clap(settings)
    captions, audios = pairs
    score = clap_score(backbone, captions, audios)
    similarities = clap_similarities(backbone, captions, audios)
    assert -1.0 <= score.value <= 1.0
    assert np.all(np.abs(similarities) <= 1.0)
    assert score.value == pytest.approx(float(np.mean(similarities)), abs=1e-12)
    assert captions[1] == "he was not an ill disposed young man"
    assert clap_score(load_clap(settings), captions, audios).value == score.value
    # Swapping captions between clips changes the score: it really pairs each caption with its clip.
    assert clap_score(backbone, captions[::-1], audios).value != pytest.approx(score.value, abs=1e-9)


def test_each_pair_is_scored_on_its_own(settings: ClapScoreSettings, pairs) -> None:
    backbone = load_clap(settings)
    captions, audios = pairs
    together = clap_similarities(backbone, captions, audios)
    alone = [clap_similarities(backbone, [caption], [audio])[0] for caption, audio in zip(captions, audios, strict=True)]
    assert together == pytest.approx(alone, abs=1e-6)


def test_audio_is_resampled_to_48k_and_long_clips_cut_to_10_s(settings: ClapScoreSettings, pairs) -> None:
    backbone = load_clap(settings)
    captions, audios = pairs
    speech, rate = audios[0]
    at_48k = soxr.resample(speech, rate, 48000, quality="VHQ")
    native = clap_similarities(backbone, captions[:1], [(speech, rate)])
    assert clap_similarities(backbone, captions[:1], [(at_48k, 48000)]) == pytest.approx(native, abs=1e-6)
    # 12 s: the first 10 s are scored (the extractor alone would take a random 10 s crop).
    long_clip = np.concatenate([np.tile(at_48k, 5), np.random.default_rng(1).standard_normal(96000)])[: 12 * 48000]
    long_score = clap_similarities(backbone, ["a long clip"], [(long_clip, 48000)])
    assert long_score == pytest.approx(clap_similarities(backbone, ["a long clip"], [(long_clip[: 10 * 48000], 48000)]))
    assert long_score == pytest.approx(clap_similarities(backbone, ["a long clip"], [(long_clip, 48000)]), abs=0)


def test_card_records_backbone_digest_and_scale(settings: ClapScoreSettings, tiny_directory: Path, pairs) -> None:
    captions, audios = pairs
    card = clap_score(load_clap(settings), captions, audios).card
    assert card["metric"] == "clap_score" and card["n_pairs"] == 3
    assert card["backbone"]["sha256"] == module_digest(ClapModel.from_pretrained(tiny_directory, local_files_only=True))
    assert card["backbone"]["pinned"] is False and card["backbone"]["path"] == str(tiny_directory)
    assert card["backbone"]["feature_extractor"]["truncation"] == "rand_trunc"
    assert card["sample_rate"] == 48000 and card["input_sample_rates"] == [16000, 44100]
    assert "not multiplied by 100" in card["settings"]["scale"]
    assert card["implementation"]["package"] == "transformers" and card["resampler"]["package"] == "soxr"


def test_pin_mismatch_and_missing_weights(settings: ClapScoreSettings, tmp_path: Path) -> None:
    digest = load_clap(settings).card["sha256"]
    wrong = ClapScoreSettings(backbone={**settings.backbone.model_dump(), "sha256": "f" * 64})
    with pytest.raises(BackbonePinError, match=digest):
        load_clap(wrong)
    right = ClapScoreSettings(backbone={**settings.backbone.model_dump(), "sha256": digest})
    assert load_clap(right).card["pinned"] is True
    missing = tmp_path / "models" / "eval" / "clap-htsat-unfused"
    with pytest.raises(MetricUnavailable, match=str(missing)):
        load_clap(ClapScoreSettings(backbone={"name": "clap-htsat-unfused", "path": str(missing)}))
    missing.mkdir(parents=True)
    with pytest.raises(MetricUnavailable, match=f"no loadable CLAP model and processor in {missing}"):
        load_clap(ClapScoreSettings(backbone={"name": "clap-htsat-unfused", "path": str(missing)}))


def test_input_errors(settings: ClapScoreSettings, pairs) -> None:
    backbone = load_clap(settings)
    captions, audios = pairs
    with pytest.raises(ValueError, match="3 captions and 2 clips"):
        clap_score(backbone, captions, audios[:2])
    with pytest.raises(ValueError, match="at least one"):
        clap_score(backbone, [], [])
    with pytest.raises(ValueError, match="caption 0 is empty"):
        clap_score(backbone, [" "], audios[:1])


def test_defaults_point_at_the_paper_era_checkpoint() -> None:
    settings = ClapScoreSettings()
    assert settings.backbone.name == "clap-htsat-unfused"
    assert settings.backbone.path == "models/eval/clap-htsat-unfused"
