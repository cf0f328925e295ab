"""The offline pocketsphinx aligner on real recorded speech (Debian's pocketsphinx-testdata).

The recordings: five LibriVox "Sense and Sensibility" utterances (one reader, 16 kHz) and five
spoken playing-card names, with their transcripts in the package's ``transcription`` files.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from uniflow.align.alignment import AlignFailure, AlignItem, Alignment
from uniflow.align.g2p import EnglishG2p, strip_stress
from uniflow.align.phones import SILENCE, is_vowel, normalize_phone
from uniflow.align.sphinx import PocketsphinxAligner

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
pytestmark = pytest.mark.skipif(
    not (TESTDATA / "librivox" / "transcription").is_file(),
    reason="Debian package pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata)",
)

# Word boundaries (seconds) placed by hand, not taken from any aligner. How they were checked:
# each file was rendered as a spectrogram (0-8 kHz) above its waveform and its 25 ms / 10 ms
# energy contour, with a labelled 100 ms grid and 10 ms ticks, first whole and then zoomed to
# 1000-4000 px/s around each boundary, and looked at. Only boundaries with a clear acoustic
# landmark are listed: the onset of aspiration or voicing after silence (he, ten), the end of a
# fricative's noise (was|not, clubs end), the release burst and aspiration of a final stop before
# a pause (not end), voicing resuming after a pause (an), the start of a stop closure where the
# preceding sonorant's formants stop (ill|disposed, have|been, of|clubs, made|amiable), an abrupt
# glide/voicing onset after frication (disposed|young), the end of visible nasal voicing (man end),
# the broadband onset of [h] (even|have) and the drop into a nasal murmur (he|might). Stops
# count from their closure, as MFA and TIMIT do.
HAND_CHECKED: dict[str, list[tuple[str, str, float]]] = {
    "librivox/sense_and_sensibility_01_austen_64kb-0880": [
        ("he", "start", 0.245),
        ("not", "start", 0.565),
        ("not", "end", 0.965),  # a 175 ms pause follows
        ("an", "start", 1.148),
        ("disposed", "start", 1.48),
        ("young", "start", 2.135),
        ("man", "end", 2.785),
    ],
    "librivox/sense_and_sensibility_01_austen_64kb-0930": [
        ("he", "start", 0.24),
        ("might", "start", 0.385),
        ("have", "start", 0.925),
        ("been", "start", 1.085),
        ("amiable", "start", 1.66),
    ],
    "cards/001": [
        ("ten", "start", 0.178),
        ("clubs", "start", 0.435),
        ("clubs", "end", 0.935),
    ],
}
TOLERANCE = 0.060


def read_testdata_items() -> dict[str, AlignItem]:
    """Every utterance of the package with its transcript, keyed ``<folder>/<file stem>``."""
    items = {}
    for folder, transcription in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (TESTDATA / folder / transcription).read_text().splitlines():
            match = re.fullmatch(r"<s>\s*(.*?)\s*</s>\s*\((\S+)\)", line.strip())
            assert match, line
            key = f"{folder}/{match.group(2)}"
            items[key] = AlignItem(id=key, audio=TESTDATA / folder / f"{match.group(2)}.wav", text=match.group(1))
    return items


ITEMS = read_testdata_items() if TESTDATA.is_dir() else {}


@pytest.fixture(scope="module")
def aligner(tmp_path_factory: pytest.TempPathFactory) -> PocketsphinxAligner:
    return PocketsphinxAligner(EnglishG2p(nltk_data=tmp_path_factory.mktemp("nltk_data")))


@pytest.fixture(scope="module")
def alignments(aligner: PocketsphinxAligner, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Alignment]:
    results = list(aligner.align_batch(list(ITEMS.values()), tmp_path_factory.mktemp("work")))
    assert all(isinstance(result, Alignment) for result in results), results
    return {result.id: result for result in results}


def speech_span(path: Path) -> tuple[float, float]:
    """First and last 10 ms frame whose energy is 15 dB above the file's quietest 5 %: where speech is."""
    audio, rate = sf.read(path, dtype="float32")
    hop = rate // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    loud = np.flatnonzero(energy > np.percentile(energy, 5) + 15)
    return loud[0] / 100, (loud[-1] + 1) / 100


def test_the_package_has_the_ten_transcribed_utterances() -> None:
    assert len(ITEMS) == 10
    assert ITEMS["librivox/sense_and_sensibility_01_austen_64kb-0880"].text == "he was not an ill disposed young man"
    assert ITEMS["cards/005"].text == "eight of spades four of clubs seven of hearts"


@pytest.mark.parametrize("key", sorted(HAND_CHECKED))
def test_words_lie_within_60_ms_of_hand_checked_boundaries(alignments: dict[str, Alignment], key: str) -> None:
    alignment = alignments[key]
    words = {word.label: word for word in alignment.words}
    misses = [
        f"{label} {side}: aligner {getattr(words[label], side):.3f} s, by hand {expected:.3f} s"
        for label, side, expected in HAND_CHECKED[key]
        if abs(getattr(words[label], side) - expected) > TOLERANCE
    ]
    assert not misses, misses


@pytest.mark.parametrize("key", sorted(ITEMS))
def test_phones_are_ordered_and_cover_the_utterance(alignments: dict[str, Alignment], key: str) -> None:
    alignment = alignments[key]
    alignment.validate()
    item = ITEMS[key]
    assert alignment.aligner == "pocketsphinx"
    assert alignment.duration == pytest.approx(sf.info(item.audio).duration, abs=1e-6)
    assert [word.label for word in alignment.words] == item.text.split()
    phones = alignment.phones
    assert all(normalize_phone(phone.label) == phone.label for phone in phones)
    assert all(phone.label[-1] in "012" for phone in phones if is_vowel(phone.label))
    # No gaps: silences are explicit, from 0 to the end of the audio.
    assert phones[0].start == 0.0 and phones[-1].end == pytest.approx(alignment.duration)
    assert all(abs(a.end - b.start) < 1e-6 for a, b in pairwise(phones))
    assert all(not (a.label == b.label == SILENCE) for a, b in pairwise(phones))
    # Speech sits where the signal has it; leading and trailing silence are labelled sil.
    onset, offset = speech_span(item.audio)
    spoken = [phone for phone in phones if phone.label != SILENCE]
    assert abs(spoken[0].start - onset) < 0.3 and abs(spoken[-1].end - offset) < 0.3
    # Each word is exactly the span of its phones, and nothing but silence lies between words.
    for word, following in zip(alignment.words, [*alignment.words[1:], None], strict=True):
        inside = [phone for phone in phones if word.start - 1e-6 <= phone.start and phone.end <= word.end + 1e-6]
        assert inside[0].start == pytest.approx(word.start) and inside[-1].end == pytest.approx(word.end)
        assert SILENCE not in [phone.label for phone in inside]
        if following is not None:
            between = [phone.label for phone in phones if word.end - 1e-6 <= phone.start and phone.end <= following.start + 1e-6]
            assert set(between) <= {SILENCE}


def test_stress_comes_from_the_pronunciation_pocketsphinx_chose(alignments: dict[str, Alignment]) -> None:
    alignment = alignments["librivox/sense_and_sensibility_01_austen_64kb-0880"]

    def phones_of(word_label: str) -> list[str]:
        word = next(word for word in alignment.words if word.label == word_label)
        return [phone.label for phone in alignment.phones if word.start <= phone.start and phone.end <= word.end]

    assert phones_of("disposed") == ["D", "IH0", "S", "P", "OW1", "Z", "D"]
    # The reader says the weak forms; CMUdict lists them second, with their own stress.
    assert phones_of("was") == ["W", "AH0", "Z"]
    assert phones_of("an") == ["AH0", "N"]
    assert "stress_fallback" not in alignment.extra


def test_a_pause_after_a_final_stop_becomes_silence(alignments: dict[str, Alignment]) -> None:
    # "not ... an": pocketsphinx alone stretches the final T over part of the pause.
    alignment = alignments["librivox/sense_and_sensibility_01_austen_64kb-0880"]
    pause = [phone for phone in alignment.phones if phone.label == SILENCE and 0.9 < phone.start < 1.2]
    assert len(pause) == 1 and pause[0].duration > 0.15


def test_a_word_missing_from_the_dictionary_is_aligned_with_its_g2p_pronunciation(aligner: PocketsphinxAligner) -> None:
    item = ITEMS["librivox/sense_and_sensibility_01_austen_64kb-0880"]
    misspelt = AlignItem("oov", item.audio, "He was not an ill-dispozed young man.")
    alignment = aligner.align(misspelt)
    assert isinstance(alignment, Alignment), alignment
    assert alignment.extra["g2p_words"] == ["dispozed"]
    word = next(word for word in alignment.words if word.label == "dispozed")
    assert abs(word.start - 1.48) < TOLERANCE and abs(word.end - 2.135) < TOLERANCE
    phones = [phone.label for phone in alignment.phones if word.start <= phone.start and phone.end <= word.end]
    assert phones == aligner.g2p.pronounce("dispozed") and strip_stress(phones)[-3:] == ["OW", "Z", "D"]


def test_a_segment_of_a_resampled_stereo_file_gives_the_same_words(
    aligner: PocketsphinxAligner, alignments: dict[str, Alignment], tmp_path: Path
) -> None:
    """AlignItem.start/end select the utterance inside a longer 22.05 kHz stereo recording."""
    first, second = ITEMS["cards/001"], ITEMS["librivox/sense_and_sensibility_01_austen_64kb-0930"]
    audio_a, _ = sf.read(first.audio, dtype="float32")
    audio_b, _ = sf.read(second.audio, dtype="float32")
    joined = soxr.resample(np.concatenate([audio_a, audio_b]), 16000, 22050)
    path = tmp_path / "joined.wav"
    sf.write(path, np.stack([joined, joined * 0.5], axis=1), 22050, subtype="PCM_16")
    offset = len(audio_a) / 16000
    segment = AlignItem("segment", path, second.text, start=offset, end=offset + len(audio_b) / 16000)
    alignment = aligner.align(segment)
    assert isinstance(alignment, Alignment), alignment
    assert alignment.duration == pytest.approx(len(audio_b) / 16000, abs=1e-3)
    reference = alignments[second.id]
    for word, expected in zip(alignment.words, reference.words, strict=True):
        assert word.label == expected.label
        assert abs(word.start - expected.start) <= 0.02 and abs(word.end - expected.end) <= 0.02


def test_results_do_not_depend_on_what_the_decoder_aligned_before(
    aligner: PocketsphinxAligner, alignments: dict[str, Alignment]
) -> None:
    again = aligner.align(ITEMS["cards/003"])
    assert again.to_json() == alignments["cards/003"].to_json()


def test_failures_are_reported_per_utterance_and_the_batch_goes_on(aligner: PocketsphinxAligner, tmp_path: Path) -> None:
    not_audio = tmp_path / "broken.wav"
    not_audio.write_text("this is not a wav file")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    short_clip = ITEMS["cards/004"].audio
    items = [
        AlignItem("empty", ITEMS["cards/001"].audio, " -- ... ! "),
        AlignItem("broken", not_audio, "ten of clubs"),
        AlignItem("missing", tmp_path / "nowhere.wav", "ten of clubs"),
        AlignItem("silent", silent, "ten of clubs"),
        AlignItem("too much text", short_clip, " ".join(["respectable amiable gentleman"] * 12)),
        ITEMS["cards/001"],
    ]
    results = list(aligner.align_batch(items, tmp_path))
    reasons = {result.id: result.reason for result in results if isinstance(result, AlignFailure)}
    assert reasons == {
        "empty": "transcript empty",
        "broken": "audio unreadable",
        "missing": "audio unreadable",
        "silent": "no speech found",
        "too much text": "aligner produced no output",
    }
    assert isinstance(results[-1], Alignment) and [w.label for w in results[-1].words] == ["ten", "of", "clubs"]


def test_stress_fallback_rule_when_no_pronunciation_matches(aligner: PocketsphinxAligner) -> None:
    # "was" read with a vowel no CMUdict entry has: the vowel takes the first pronunciation's stress.
    assert aligner._restore_stress("was", ["W", "UH", "Z"]) == (["W", "UH1", "Z"], False)
    assert aligner._restore_stress("amiable", ["EY", "M", "IY", "AH", "B", "AH", "L", "IY"]) == (
        ["EY1", "M", "IY0", "AH0", "B", "AH0", "L", "IY0"],
        False,
    )
    assert aligner._restore_stress("was", ["W", "AH", "Z"]) == (["W", "AH0", "Z"], True)
