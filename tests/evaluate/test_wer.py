"""WER: the normalizer and the word alignment give known answers, and real recognizers score real speech."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from support import tiny_wav2vec2_config
from uniflow.evaluate.backbones import BackbonePinError, BackboneSpec
from uniflow.evaluate.signal_metrics import MetricUnavailable
from uniflow.evaluate.text_normalizer import NORMALIZER_VERSION, cardinal, normalize, ordinal, year
from uniflow.evaluate.wer import (
    DEFAULT_BACKBONES,
    WerSettings,
    align_words,
    edit_counts,
    load_asr,
    transcribe,
    wer_of_transcripts,
    word_error_rate,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox_items() -> list[tuple[np.ndarray, int, str]]:
    """The five LibriVox utterances with their transcripts (``<s> words </s> (file id)`` lines)."""
    items = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, file_id = line.rpartition(" (")
        audio, sample_rate = sf.read(LIBRIVOX / f"{file_id.rstrip(')')}.wav", dtype="float32")
        items.append((audio, sample_rate, text.replace("<s>", "").replace("</s>", "").strip()))
    return items


# -- normalizer --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("  Don't   STOP—the 'students' rock-n-roll. ", "don't stop the students rock n roll"),
        ("It’s fine", "it's fine"),  # typographic apostrophe
        ("ＡＢＣ ﬁne", "abc fine"),  # NFKC: full-width letters, ligature
        ("The primary coil has 50 turns.", "the primary coil has fifty turns"),
        ("Type 1 diabetes", "type one diabetes"),
        ("1,000,000 people", "one million people"),
        ("123", "one hundred twenty three"),
        ("in 1999 and 1905 and 1900", "in nineteen ninety nine and nineteen oh five and nineteen hundred"),
        ("2005 or 2024", "two thousand five or twenty twenty four"),
        ("5000 years", "five thousand years"),
        ("3.14", "three point one four"),
        ("the 1st, 2nd, 3rd, 22nd and 100th", "the first second third twenty second and one hundredth"),
        ("$5", "five dollars"),
        ("$1", "one dollar"),
        ("$5.50", "five dollars fifty cents"),
        ("$0.99", "ninety nine cents"),
        ("€3 million", "three million euros"),
        ("£2", "two pounds"),
        ("12% more", "twelve percent more"),
        ("-5 degrees", "minus five degrees"),
        ("agent 007", "agent zero zero seven"),
        ("Mr. Dashwood met Mrs. Ferrars and Dr. Smith", "mister dashwood met missus ferrars and doctor smith"),
        ("...", ""),
    ],
)
def test_normalizer_known_answers(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_number_words() -> None:
    assert cardinal(0) == "zero"
    assert cardinal(1_002_003) == "one million two thousand three"
    assert cardinal(999_999_999_999) == "nine hundred ninety nine billion nine hundred ninety nine million nine hundred ninety nine thousand nine hundred ninety nine"
    assert ordinal(20) == "twentieth"
    assert ordinal(12) == "twelfth"
    assert ordinal(101) == "one hundred first"
    assert year(1066) == "one thousand sixty six"  # outside the year-pair range: a cardinal
    assert NORMALIZER_VERSION == "uniflow-en-1"


# -- alignment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "hypothesis", "counts"),
    [
        ("a b c d", "a b c d", (0, 0, 0, 4)),
        ("a b c d", "a x c d", (1, 0, 0, 4)),
        ("a b c d", "a c d", (0, 1, 0, 4)),
        ("a b c d", "a b x c d", (0, 0, 1, 4)),
        ("a b c d", "", (0, 4, 0, 4)),
        ("a", "x y z", (1, 0, 2, 1)),
        ("the cat sat on the mat", "cat sat on a mat today", (1, 1, 1, 6)),
    ],
)
def test_edit_counts_known_answers(reference: str, hypothesis: str, counts: tuple[int, int, int, int]) -> None:
    assert tuple(edit_counts(reference.split(), hypothesis.split())) == counts


def test_alignment_pairs_words() -> None:
    steps = align_words("the cat sat".split(), "a cat sat down".split())
    assert [step.op for step in steps] == ["substitution", "match", "match", "insertion"]
    assert steps[0].reference == "the" and steps[0].hypothesis == "a"
    assert steps[-1].reference is None and steps[-1].hypothesis == "down"


def test_corpus_wer_weighs_utterances_by_length() -> None:
    score = wer_of_transcripts(["one two three four", "five six"], ["one two three four", "five seven"])
    # 1 error over 6 reference words, not the mean of the per-utterance rates (0 and 0.5).
    assert score.value == pytest.approx(1 / 6)
    assert score.card["counts"] == {
        "substitutions": 1,
        "deletions": 0,
        "insertions": 0,
        "reference_words": 6,
        "errors": 1,
        "utterances": 2,
    }
    assert [utterance["wer"] for utterance in score.card["utterances"]] == [0.0, 0.5]
    assert score.card["normalizer"]["version"] == NORMALIZER_VERSION


def test_normalization_removes_number_and_punctuation_errors() -> None:
    score = wer_of_transcripts(["The primary coil has fifty turns."], ["the primary coil has 50 turns"])
    assert score.value == 0.0
    with pytest.raises(ValueError, match="no words"):
        wer_of_transcripts(["?!"], ["anything"])


# -- pocketsphinx on real speech ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pocketsphinx_scores() -> tuple:
    if not (LIBRIVOX / "transcription").is_file():
        pytest.skip("Debian package pocketsphinx-testdata is not installed")
    asr = load_asr(WerSettings())
    items = librivox_items()
    score = word_error_rate(asr, items)
    hypotheses = [utterance["hypothesis"] for utterance in score.card["utterances"]]
    references = [text for _, _, text in items]
    # Each transcript scored against another utterance's text: what an unintelligible system would get.
    shuffled = wer_of_transcripts(references[1:] + references[:1], hypotheses, asr_card=asr.card)
    return asr, items, score, shuffled


def test_pocketsphinx_wer_on_real_speech_is_far_below_chance(pocketsphinx_scores) -> None:
    _, _, score, shuffled = pocketsphinx_scores
    assert score.value < 0.45
    assert shuffled.value > 0.8
    assert shuffled.value > score.value + 0.4
    counts = score.card["counts"]
    assert counts["reference_words"] == 71
    assert counts["utterances"] == 5
    assert counts["errors"] == counts["substitutions"] + counts["deletions"] + counts["insertions"]
    assert score.value == pytest.approx(counts["errors"] / 71)
    # "mr" from the recognizer's dictionary meets "mister" in the transcript after normalization.
    assert score.card["utterances"][0]["hypothesis"].startswith("and mister john")


def test_pocketsphinx_card_names_the_backbone_and_normalizer(pocketsphinx_scores) -> None:
    asr, _, score, _ = pocketsphinx_scores
    backbone = score.card["backbone"]
    assert backbone["asr"] == "pocketsphinx"
    assert backbone["package"] == {"name": "pocketsphinx", "version": "5.1.1"}
    assert backbone["files"] == {"acoustic_model": "en-us", "dictionary": "cmudict-en-us.dict", "language_model": "en-us.lm.bin"}
    assert len(backbone["sha256"]) == 64 and backbone["pinned"] is False
    assert score.card["normalizer"]["version"] == NORMALIZER_VERSION
    assert score.card["sample_rate"] == 16000 and score.card["input_sample_rate"] == 16000
    assert score.card["audio_seconds"] == pytest.approx(24.73, abs=0.01)


def test_pocketsphinx_transcript_does_not_depend_on_order(pocketsphinx_scores) -> None:
    asr, items, score, _ = pocketsphinx_scores
    audio, sample_rate, _ = items[1]
    # Decoded again after the whole batch, the utterance gives the transcript it got in second place,
    # because the front end is reset per utterance.
    assert normalize(transcribe(asr, audio, sample_rate)) == score.card["utterances"][1]["hypothesis"]


def test_pocketsphinx_pin_mismatch_is_refused() -> None:
    spec = DEFAULT_BACKBONES["pocketsphinx"].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(BackbonePinError, match="pins 0000"):
        load_asr(WerSettings(backbone=spec))


# -- transformers CTC --------------------------------------------------------------------------------


def save_tiny_ctc_model(directory: Path, letter: str) -> None:
    """A tiny random Wav2Vec2ForCTC with a character vocabulary whose output head always picks ``letter``."""
    from transformers import (
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    directory.mkdir(parents=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{chr(97 + i): 5 + i for i in range(26)}, "'": 31}
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token="|")
    feature_extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(directory)
    torch.manual_seed(0)
    config = tiny_wav2vec2_config(
        vocab_size=len(vocab),
        pad_token_id=0,
    )
    model = Wav2Vec2ForCTC(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.fill_(-10.0)
        model.lm_head.bias[vocab[letter]] = 10.0
    model.save_pretrained(directory)


def test_transformers_ctc_model_from_disk_transcribes(tmp_path: Path) -> None:
    model_dir = tmp_path / "tiny-ctc"
    save_tiny_ctc_model(model_dir, "a")
    settings = WerSettings(asr="transformers-ctc", backbone=BackboneSpec(name="tiny-ctc", path=str(model_dir)))
    asr = load_asr(settings)
    audio = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    # Every frame says "a": greedy CTC collapses the repeats into one letter.
    assert transcribe(asr, audio, 24000) == "a"
    score = word_error_rate(asr, [(audio, 24000, "A."), (audio, 24000, "a b")])
    assert score.value == pytest.approx(1 / 3)
    backbone = score.card["backbone"]
    assert backbone["asr"] == "transformers-ctc" and backbone["architecture"] == "Wav2Vec2ForCTC"
    assert score.card["sample_rate"] == 16000 and score.card["input_sample_rate"] == 24000
    assert score.card["resampler"]["package"] == "soxr"
    # The digest pins these weights: the same spec with it loads, a wrong one is refused.
    pinned = settings.backbone.model_copy(update={"sha256": backbone["sha256"]})
    assert load_asr(settings.model_copy(update={"backbone": pinned})).card["pinned"] is True
    wrong = settings.backbone.model_copy(update={"sha256": "f" * 64})
    with pytest.raises(BackbonePinError):
        load_asr(settings.model_copy(update={"backbone": wrong}))


def test_missing_model_dir_is_unavailable(tmp_path: Path) -> None:
    settings = WerSettings(asr="transformers-ctc", backbone=BackboneSpec(name="w2v", path=str(tmp_path / "absent")))
    with pytest.raises(MetricUnavailable, match="not found"):
        load_asr(settings)
    assert WerSettings(asr="transformers-ctc").backbone.path == "models/eval/wav2vec2-base-960h"


def test_nemo_without_the_toolkit_is_unavailable() -> None:
    pytest.importorskip("pocketsphinx")
    try:
        import nemo  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("NeMo is installed here")
    settings = WerSettings(asr="nemo")
    assert settings.backbone.name == "nvidia/stt_en_conformer_transducer_xlarge"
    with pytest.raises(MetricUnavailable, match="needs NVIDIA NeMo"):
        load_asr(settings)
