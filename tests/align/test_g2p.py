"""English G2P: CMUdict with stress, g2p_en offline for unknown words, the shared tokenizer, phonemize."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from uniflow.align.g2p import EnglishG2p, normalize_words, strip_stress
from uniflow.align.phones import normalize_phone


@pytest.fixture(scope="module")
def g2p(tmp_path_factory: pytest.TempPathFactory) -> EnglishG2p:
    return EnglishG2p(nltk_data=tmp_path_factory.mktemp("nltk_data"))


def test_dictionary_words_keep_cmudict_stress(g2p: EnglishG2p) -> None:
    assert g2p.pronounce("disposed") == ["D", "IH0", "S", "P", "OW1", "Z", "D"]
    assert g2p.pronounce("Amiable") == ["EY1", "M", "IY0", "AH0", "B", "AH0", "L"]
    # The first CMUdict pronunciation is the one used; all are available for the aligners.
    assert g2p.pronounce("was") == ["W", "AA1", "Z"]
    assert g2p.pronunciations("was") == [["W", "AA1", "Z"], ["W", "AH0", "Z"]]
    assert strip_stress(g2p.pronounce("respectable")) == ["R", "IH", "S", "P", "EH", "K", "T", "AH", "B", "AH", "L"]


def test_normalize_words_is_the_aligners_tokenizer() -> None:
    text = "Mr. Dashwood's ill-disposed son—born in 1999—paid $5.50 for the 3rd 'best' café, 2,500 times!"
    assert normalize_words(text) == [
        "mr", "dashwood's", "ill", "disposed", "son", "born", "in", "nineteen", "ninety", "nine",
        "paid", "five", "dollars", "fifty", "cents", "for", "the", "third", "best", "cafe",
        "two", "thousand", "five", "hundred", "times",
    ]  # fmt: skip
    assert normalize_words("“Don’t”, he said -- 'twas 007.") == ["don't", "he", "said", "twas", "zero", "zero", "seven"]
    assert normalize_words("... !? --") == []


def test_phonemize_puts_sil_at_start_end_and_punctuation(g2p: EnglishG2p) -> None:
    phones = g2p.phonemize("Hello, world. He was ill... Mr. Smith?")
    assert phones == [
        "sil", "HH", "AH0", "L", "OW1", "sil", "W", "ER1", "L", "D", "sil",
        "HH", "IY1", "W", "AA1", "Z", "IH1", "L", "sil",
        # "Mr." is an abbreviation, not a pause; the final "?" gives the closing sil only once.
        "M", "IH1", "S", "T", "ER0", "S", "M", "IH1", "TH", "sil",
    ]  # fmt: skip
    assert g2p.phonemize("no punctuation") == "sil N OW1 P AH2 NG K CH UW0 EY1 SH AH0 N sil".split()


def test_unknown_words_use_the_neural_model_and_every_phone_is_in_the_phone_set(g2p: EnglishG2p) -> None:
    words = ["uniflow", "dashwoodian", "zorblaxes", "prefect's"]
    assert not any(g2p.in_dictionary(word) for word in words)
    for word in words:
        phones = g2p.pronounce(word)
        assert phones and all(normalize_phone(phone) == phone for phone in phones), (word, phones)
        assert any(phone[-1] in "12" for phone in phones), (word, phones)  # a stressed vowel
    assert g2p.pronounce("uniflow") == ["Y", "UW1", "N", "IH0", "L", "F", "AW2"]
    assert g2p.pronunciations("uniflow") == [g2p.pronounce("uniflow")]
    sentence = g2p.phonemize("Uniflow orchestrates corpora, offline.")
    assert sentence[0] == "sil" and sentence[-1] == "sil" and sentence.count("sil") == 3
    assert all(normalize_phone(phone) == phone for phone in sentence)


def test_g2p_en_loads_and_predicts_without_network_or_download_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import uniflow.align.g2p as g2p_module

    class RefusingSocket(socket.socket):
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise OSError("network access attempted")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", RefusingSocket)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    # g2p_en is imported afresh inside this test, so its import-time downloads would run here.
    for name in [name for name in sys.modules if name == "g2p_en" or name.startswith("g2p_en.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(g2p_module, "_neural_model", None)
    nltk_data = tmp_path / "nltk_data"
    monkeypatch.setenv("NLTK_DATA", str(nltk_data))

    assert EnglishG2p(nltk_data=nltk_data).pronounce("uniflow") == ["Y", "UW1", "N", "IH0", "L", "F", "AW2"]

    # g2p_en prints "[nltk_data] Error loading ..." when it tries to download; nothing may appear.
    out, err = capfd.readouterr()
    assert "nltk_data" not in out + err and "Error" not in out + err
    corpus = nltk_data / "corpora" / "cmudict" / "cmudict"
    assert corpus.stat().st_size > 3_000_000
    assert "disposed 1 D IH0 S P OW1 Z D\n" in corpus.read_text()
