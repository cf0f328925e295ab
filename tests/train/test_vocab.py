"""SVS vocabulary: the authors' table sizes, ids that never move, and the file written beside a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniflow.model.content import MidiEncoderConfig
from uniflow.train.vocab import SvsVocab, UnknownSymbol


def test_default_tables_fit_the_paper_midi_encoder() -> None:
    vocab, encoder = SvsVocab(), MidiEncoderConfig()
    assert len(vocab.phones) == encoder.phone_vocab_size == 61 and len(vocab.singers) == encoder.num_singers == 21
    assert vocab.phone_ids(["AP", "SP", "b", "vn"]) == [1, 2, 3, 60]
    assert vocab.singer_id("Alto-1") == 1 and vocab.singer_id("Tenor-7") == 20 and vocab.singer_id("Nobody") == 0
    with pytest.raises(UnknownSymbol, match="'xx'"):
        vocab.phone_ids(["a", "xx"])


def test_extension_appends_and_the_file_round_trips(tmp_path: Path) -> None:
    extended = SvsVocab().extended(phones=["zz", "a", "yy"], singers=["opencpop"])
    assert extended.phones[61:] == ("yy", "zz") and extended.phone_ids(["a"]) == SvsVocab().phone_ids(["a"])
    assert extended.singer_id("opencpop", strict=True) == 21
    extended.save(tmp_path)
    assert SvsVocab.load(tmp_path) == extended and SvsVocab.load(tmp_path / "none") == SvsVocab()
