"""Reading real MFA 3 TextGrids into phone/word intervals, and writing them back as MFA does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from praatio import textgrid as praat_textgrid

from uniflow.align.alignment import Interval
from uniflow.align.phones import PHONE_TO_ID, UnknownPhone
from uniflow.align.textgrid import TextGridError, read_textgrid, write_textgrid

DATA = Path(__file__).parent / "data"
SPOKEN = DATA / "mfa3_english_us_arpa_long.TextGrid"
UNKNOWN = DATA / "mfa3_unknown_words_long.TextGrid"

# Word and phone boundaries exactly as MFA 3 wrote them for "I said white, not bait".
SPOKEN_WORDS = [
    Interval("i", 0.44, 0.53),
    Interval("said", 0.53, 0.92),
    Interval("white", 0.92, 1.33),
    Interval("not", 1.48, 1.8),
    Interval("bait", 1.8, 2.24),
]
SPOKEN_PHONES = "sil AY1 S EY1 D W AY1 T sil N AA1 T B EY1 T sil".split()


def test_real_mfa_output_gives_words_and_phones():
    alignment = read_textgrid(SPOKEN, "isle/0131_01")
    assert alignment.id == "isle/0131_01"
    assert alignment.aligner == "mfa"
    assert alignment.duration == 4.125
    assert alignment.words == SPOKEN_WORDS
    assert [phone.label for phone in alignment.phones] == SPOKEN_PHONES
    assert alignment.phones[2] == Interval("S", 0.53, 0.71)
    assert alignment.phones[-1] == Interval("sil", 2.24, 4.125)


def test_phone_intervals_tile_the_utterance_with_known_phones():
    alignment = read_textgrid(SPOKEN, "u")
    phones = alignment.phones
    assert phones[0].start == 0.0 and phones[-1].end == alignment.duration
    assert all(left.end == right.start for left, right in zip(phones, phones[1:], strict=False))
    assert all(phone.duration > 0 and phone.label in PHONE_TO_ID for phone in phones)
    # Every word lies on phone boundaries.
    boundaries = {phone.start for phone in phones} | {phone.end for phone in phones}
    assert all(word.start in boundaries and word.end in boundaries for word in alignment.words)


def test_unknown_words_keep_unk_and_spn():
    alignment = read_textgrid(UNKNOWN, "u")
    assert [word.label for word in alignment.words] == ["<unk>"] * 5
    assert [phone.label for phone in alignment.phones] == "sil spn spn spn sil spn spn sil".split()
    assert alignment.words[0] == Interval("<unk>", 0.43, 0.53)


def test_duration_from_audio_clips_rounding_and_rejects_other_audio():
    clipped = read_textgrid(SPOKEN, "u", duration=4.12)
    assert clipped.duration == 4.12 and clipped.phones[-1] == Interval("sil", 2.24, 4.12)
    with pytest.raises(TextGridError, match="audio lasts 3.000"):
        read_textgrid(SPOKEN, "u", duration=3.0)


def _save(path: Path, tiers: dict[str, list[tuple[float, float, str]]], end: float) -> Path:
    grid = praat_textgrid.Textgrid(minTimestamp=0, maxTimestamp=end)
    for name, entries in tiers.items():
        grid.addTier(praat_textgrid.IntervalTier(name, entries, minT=0, maxT=end))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True, minimumIntervalLength=None)
    return path


def _tiers(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    grid = praat_textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    return {name: [tuple(entry) for entry in grid.getTier(name).entries] for name in grid.tierNames}


def test_speaker_named_tiers_of_multi_speaker_files(tmp_path):
    # MFA names tiers "<speaker> - words" / "<speaker> - phones" when a file has several speakers.
    spoken, unknown = _tiers(SPOKEN), _tiers(UNKNOWN)
    both = _save(
        tmp_path / "two.TextGrid",
        {
            "p225 - words": spoken["words"],
            "p225 - phones": spoken["phones"],
            "p226 - words": unknown["words"],
            "p226 - phones": unknown["phones"],
        },
        4.125,
    )
    assert read_textgrid(both, "u", speaker="p225").words == SPOKEN_WORDS
    assert [w.label for w in read_textgrid(both, "u", speaker="p226").words] == ["<unk>"] * 5
    with pytest.raises(TextGridError, match="several speakers"):
        read_textgrid(both, "u")
    one = _save(tmp_path / "one.TextGrid", {"p225 - words": spoken["words"], "p225 - phones": spoken["phones"]}, 4.125)
    assert [p.label for p in read_textgrid(one, "u").phones] == SPOKEN_PHONES


def test_missing_phone_tier_and_foreign_phones_are_errors(tmp_path):
    words_only = _save(tmp_path / "w.TextGrid", {"words": [(0.1, 0.5, "hello")]}, 1.0)
    with pytest.raises(TextGridError, match="no 'words' and 'phones' tiers"):
        read_textgrid(words_only, "u")
    # An IPA model (english_mfa) writes phones the ARPAbet phone set does not have.
    ipa = _save(tmp_path / "ipa.TextGrid", {"words": [(0.0, 0.3, "on")], "phones": [(0.0, 0.2, "ɑ"), (0.2, 0.3, "n")]}, 0.3)
    with pytest.raises(UnknownPhone):
        read_textgrid(ipa, "u")


def test_case_of_labels_is_normalized(tmp_path):
    path = _save(tmp_path / "c.TextGrid", {"words": [(0.0, 0.4, "Hello")], "phones": [(0.0, 0.1, "hh"), (0.1, 0.4, "ah0")]}, 0.5)
    alignment = read_textgrid(path, "u")
    assert alignment.words == [Interval("hello", 0.0, 0.4)]
    assert [p.label for p in alignment.phones] == ["HH", "AH0", "sil"]


@pytest.mark.parametrize("output_format", ["long_textgrid", "short_textgrid"])
def test_textgrid_round_trip(tmp_path, output_format):
    original = read_textgrid(SPOKEN, "u")
    path = tmp_path / "out.TextGrid"
    write_textgrid(original, path, output_format)
    assert read_textgrid(path, "u") == original
    tiers = _tiers(path)
    assert list(tiers) == ["words", "phones"]
    # Silence is written as MFA writes it: an empty label, not "sil".
    assert tiers["phones"][0] == (0.0, 0.44, "")


def test_short_textgrid_has_mfa_header(tmp_path):
    path = tmp_path / "short.TextGrid"
    write_textgrid(read_textgrid(SPOKEN, "u"), path, "short_textgrid")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:9] == ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", "4.125", "<exists>", "2",
                         '"IntervalTier"', '"words"']  # fmt: skip


def test_mfa_json_round_trip(tmp_path):
    original = read_textgrid(SPOKEN, "u")
    path = tmp_path / "out.json"
    write_textgrid(original, path, "json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["end"] == 4.125 and set(document["tiers"]) == {"words", "phones"}
    assert document["tiers"]["words"]["type"] == "interval"
    assert document["tiers"]["words"]["entries"][0] == [0.44, 0.53, "i"]
    back = read_textgrid(path, "u")
    # MFA's JSON leaves silence out: the gaps are silence.
    assert back.words == original.words
    assert back.phones == [p for p in original.phones if p.label != "sil"]
