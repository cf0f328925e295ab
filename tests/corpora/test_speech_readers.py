"""Speech corpus readers (LibriTTS, VCTK, LJSpeech, VoiceBank+DEMAND, AISHELL-3, HQ-TTS) on the mini mirror.

The mirror of these corpora is built once; each test extracts the archives it needs into its own
``parts/<part name>/`` tree, runs the corpus's reader and checks ids, splits, texts and speakers,
and that broken metadata comes out as a Problem while the rest is still read.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from support import by_key, place_parts, read_entries
from uniflow.corpora.entry import Entry
from uniflow.corpora.recipe import Recipe
from uniflow.mirror.build import build_mirror

SPEECH_CORPORA = ["aishell3", "hq_tts", "libritts", "ljspeech", "vctk", "voicebank_demand"]


@pytest.fixture(scope="module")
def speech_mirror(tmp_path_factory: pytest.TempPathFactory, recipes: dict[str, Recipe]) -> Path:
    root = tmp_path_factory.mktemp("speech-mirror")
    build_mirror(recipes, root, only=SPEECH_CORPORA, progress=False)
    return root


def splits(found: dict[str, Entry]) -> Counter[str]:
    return Counter(entry.split for entry in found.values())


@pytest.fixture
def corpus(speech_mirror: Path, recipes: dict[str, Recipe], tmp_path: Path):
    """Extract one corpus of the mirror into this test's tmp_path; returns (recipe, corpus_dir)."""

    def extract(name: str) -> tuple[Recipe, Path]:
        recipe, corpus_dir = recipes[name], tmp_path / "raw" / name
        place_parts(speech_mirror, recipe, corpus_dir)
        return recipe, corpus_dir

    return extract


# -- every corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEECH_CORPORA)
def test_entries_have_clean_keys_and_real_audio_at_the_native_rate(name: str, corpus) -> None:
    recipe, corpus_dir = corpus(name)
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    assert found
    for key, entry in found.items():
        assert "." not in key and not key.startswith("/") and key == key.strip()
        assert entry.split in recipe.splits
        assert sf.info(str(entry.audio)).samplerate == recipe.sample_rate
    if name != "libritts":  # the LibriTTS mirror keeps the release's one corrupt file
        assert problems == []


# -- LibriTTS ----------------------------------------------------------------------------------


def test_libritts_reads_official_splits_with_trans_tsv_texts(corpus) -> None:
    recipe, corpus_dir = corpus("libritts")
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    # 2 speakers x 3 utterances per part; train-clean-360 loses the known-corrupt recording.
    assert splits(found) == {"train": 17, "valid": 6, "test": 6}
    assert {entry.subset for entry in found.values()} == {"train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "test-clean"}
    assert [(problem.key, "corrupt" in problem.reason) for problem in problems] == [("1092_134562_000013_000004", True)]

    first = found["19_198_000001_000000"]
    assert (first.split, first.subset, first.speaker, first.gender, first.language) == ("train", "train-clean-100", "19", "female", "en")
    assert first.text == "Mister Brown paid five dollars for the old map."
    assert first.extra["original_text"] == "Mr. Brown paid $5 for the old map."
    assert first.extra["chapter"] == "198" and 15 <= first.extra["snr"] <= 45
    assert first.audio == corpus_dir / "parts/train-clean-100/LibriTTS/train-clean-100/19/198/19_198_000001_000000.wav"
    assert {entry.speaker for entry in found.values() if entry.split == "test"} == {"1089", "121"}
    assert found["1089_134686_000001_000000"].gender == "male"
    # book.tsv also lists a sentence LibriTTS excluded: it has no audio and must not appear.
    assert not any(key.endswith("_000003_000000") for key in found)
    for entry in found.values():
        assert entry.text == entry.audio.with_name(f"{entry.key}.normalized.txt").read_text()
        assert entry.extra["original_text"] == entry.audio.with_name(f"{entry.key}.original.txt").read_text()


def test_libritts_broken_trans_tsv_yields_problems_and_falls_back_to_text_files(corpus) -> None:
    recipe, corpus_dir = corpus("libritts")
    chapter = corpus_dir / "parts/dev-clean/LibriTTS/dev-clean/84/121123"
    rows = (chapter / "84_121123.trans.tsv").read_text().splitlines()
    broken = [
        rows[0].replace("\t", " "),  # no tabs: unparsable, but its .normalized.txt is still there
        rows[1],
        # rows[2] dropped and its .normalized.txt deleted: no transcript at all
        "84_121123_000009_000000\tA sentence.\tA sentence.",  # listed, but no audio
    ]
    (chapter / "84_121123.trans.tsv").write_text("\n".join(broken) + "\n")
    (chapter / "84_121123_000002_000001.normalized.txt").unlink()

    entries, problems = read_entries(corpus_dir, recipe)

    found = by_key(entries)
    reasons = {(problem.key, problem.reason.split(":")[0]) for problem in problems}
    assert (None, "line 1") in reasons
    assert ("84_121123_000009_000000", "listed in 84_121123.trans.tsv but the audio file is missing") in reasons
    assert ("84_121123_000002_000001", "no transcript") in reasons
    assert "84_121123_000002_000001" not in found
    fallback = found["84_121123_000001_000000"]
    assert fallback.text == (chapter / "84_121123_000001_000000.normalized.txt").read_text()
    assert splits(found) == {"train": 17, "valid": 5, "test": 6}


def test_libritts_reader_lists_far_faster_than_the_manifest_target(tmp_path: Path, recipes: dict[str, Recipe]) -> None:
    """The manifest target is 3000 recordings/s/core including probing; listing must be a small share."""
    chapters, per_chapter = 150, 40
    subset = tmp_path / "parts/train-clean-100/LibriTTS/train-clean-100"
    for index in range(chapters):
        speaker, chapter = str(1000 + index // 3), str(50000 + index)
        folder = subset / speaker / chapter
        folder.mkdir(parents=True)
        rows = []
        for number in range(per_chapter):
            utterance = f"{speaker}_{chapter}_{number:06d}_000000"
            (folder / f"{utterance}.wav").touch()  # the reader never opens audio
            rows.append(f"{utterance}\tOriginal text {number}.\tNormalized text {number}.\n")
        (folder / f"{speaker}_{chapter}.trans.tsv").write_text("".join(rows))
        (folder / f"{speaker}_{chapter}.book.tsv").write_text("".join(row.rstrip("\n") + "\t30.5\n" for row in rows))
    reader = importlib.import_module("uniflow.corpora.readers.libritts")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        count = sum(isinstance(item, Entry) for item in reader.entries(tmp_path, recipes["libritts"]))
        best = min(best, time.perf_counter() - started)
    assert count == chapters * per_chapter
    assert count / best > 30000, f"{count / best:.0f} recordings/s"


# -- VCTK --------------------------------------------------------------------------------------


def test_vctk_takes_mic2_speaker_folder_and_txt_with_sr_test_speakers_in_test(corpus) -> None:
    recipe, corpus_dir = corpus("vctk")
    found = by_key(read_entries(corpus_dir, recipe)[0])
    assert splits(found) == {"train": 8, "test": 4}
    assert {entry.speaker for entry in found.values() if entry.split == "test"} == {"p360", "s5"}
    assert {entry.subset for entry in found.values() if entry.split == "test"} == {"sr-test-speakers"}

    first = found["p225_001"]
    assert first.audio == corpus_dir / "parts/VCTK-Corpus-0.92/wav48_silence_trimmed/p225/p225_001_mic2.flac"
    assert (first.speaker, first.gender, first.extra["mic"], first.extra["accent"]) == ("p225", "female", "mic2", "English")
    assert first.text == "The quick brown fox jumps over the lazy dog."
    # p280 has no mic2 recordings: mic1 instead. p315 has no transcripts: no text.
    assert {found[key].extra["mic"] for key in ("p280_001", "p280_002")} == {"mic1"}
    assert found["p280_001"].audio.name == "p280_001_mic1.flac"
    assert found["p315_001"].text is None and found["p315_001"].gender == "male"
    for entry in found.values():
        if entry.text is not None:
            text_file = corpus_dir / "parts/VCTK-Corpus-0.92/txt" / entry.speaker / f"{entry.key}.txt"
            assert entry.text == text_file.read_text().strip()


def test_vctk_missing_transcript_and_bad_file_name_are_problems(corpus) -> None:
    recipe, corpus_dir = corpus("vctk")
    root = corpus_dir / "parts/VCTK-Corpus-0.92"
    (root / "txt/p225/p225_002.txt").unlink()
    (root / "wav48_silence_trimmed/p226/p226_003.flac").write_bytes(b"")
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    assert [(problem.key, problem.reason) for problem in problems if problem.key] == [
        ("p225_002", "no transcript txt/p225/p225_002.txt")
    ]
    assert [problem.path.name for problem in problems if problem.key is None] == ["p226_003.flac"]
    assert "p225_002" not in found and splits(found) == {"train": 7, "test": 4}


# -- LJSpeech ----------------------------------------------------------------------------------


def test_ljspeech_reads_metadata_csv_as_one_speaker_all_train(corpus) -> None:
    recipe, corpus_dir = corpus("ljspeech")
    found = by_key(read_entries(corpus_dir, recipe)[0])
    assert sorted(found) == ["LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ002-0001", "LJ002-0002", "LJ050-0278"]
    assert splits(found) == {"train": 6}
    assert {(entry.speaker, entry.gender) for entry in found.values()} == {("LJ", "female")}
    clip = found["LJ001-0003"]
    assert clip.text == 'Mister Hale said "no" to the plan.'
    assert clip.extra["original_text"] == 'Mr. Hale said "no" to the plan.'
    assert clip.audio == corpus_dir / "parts/LJSpeech-1.1/LJSpeech-1.1/wavs/LJ001-0003.wav"


def test_ljspeech_bad_lines_and_unlisted_or_missing_audio_are_problems(corpus) -> None:
    recipe, corpus_dir = corpus("ljspeech")
    root = corpus_dir / "parts/LJSpeech-1.1/LJSpeech-1.1"
    with (root / "metadata.csv").open("a", encoding="utf-8") as metadata:
        metadata.write("LJ003-0001|only two fields\n")
        metadata.write("LJ003-0002|Listed without audio.|Listed without audio.\n")
    (root / "wavs/LJ009-0009.wav").write_bytes((root / "wavs/LJ001-0001.wav").read_bytes())
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    assert len(found) == 6
    reasons = sorted((problem.key or "", problem.reason) for problem in problems)
    assert reasons == [
        ("", "line 7: expected 3 '|'-separated fields (id|text|normalized text), got 2"),
        ("LJ003-0002", "listed in metadata.csv but the audio file is missing"),
        ("LJ009-0009", "audio file has no line in metadata.csv"),
    ]


# -- VoiceBank+DEMAND --------------------------------------------------------------------------


def test_voicebank_demand_pairs_each_clean_file_with_its_noisy_twin(corpus) -> None:
    recipe, corpus_dir = corpus("voicebank_demand")
    found = by_key(read_entries(corpus_dir, recipe)[0])
    assert splits(found) == {"train": 4, "test": 4}
    assert {entry.speaker for entry in found.values() if entry.split == "test"} == {"p232", "p257"}
    assert {entry.subset for entry in found.values()} == {"trainset_28spk", "testset"}
    pair = found["p232_001"]
    assert pair.audio == corpus_dir / "parts/clean_testset_wav/clean_testset_wav/p232_001.wav"
    assert pair.extra["noisy"] == "voicebank_demand/parts/noisy_testset_wav/noisy_testset_wav/p232_001.wav"
    assert pair.text == (corpus_dir / "parts/testset_txt/testset_txt/p232_001.txt").read_text().strip()
    for entry in found.values():
        noisy = corpus_dir.parent / entry.extra["noisy"]
        assert noisy.is_file() and sf.info(str(noisy)).frames == sf.info(str(entry.audio)).frames


def test_voicebank_demand_clean_file_without_noisy_twin_is_a_problem(corpus) -> None:
    recipe, corpus_dir = corpus("voicebank_demand")
    (corpus_dir / "parts/noisy_trainset_28spk_wav/noisy_trainset_28spk_wav/p287_002.wav").unlink()
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    assert [(problem.key, problem.reason) for problem in problems] == [
        ("p287_002", "clean file without its noisy twin noisy_trainset_28spk_wav/p287_002.wav")
    ]
    assert "p287_002" not in found and splits(found) == {"train": 3, "test": 4}


# -- AISHELL-3 ---------------------------------------------------------------------------------


def test_aishell3_joins_characters_and_keeps_pinyin(corpus) -> None:
    recipe, corpus_dir = corpus("aishell3")
    found = by_key(read_entries(corpus_dir, recipe)[0])
    assert splits(found) == {"train": 4, "test": 2}
    first = found["SSB00050001"]
    assert (first.text, first.extra["pinyin"]) == ("今天天气很好", "jin1 tian1 tian1 qi4 hen3 hao3")
    assert (first.speaker, first.gender, first.language, first.subset) == ("SSB0005", "female", "zh", "train")
    assert first.audio == corpus_dir / "parts/data_aishell3/train/wav/SSB0005/SSB00050001.wav"
    assert found["SSB00090001"].gender == "male"
    assert {entry.speaker for entry in found.values() if entry.split == "test"} == {"SSB0011"}


def test_aishell3_unpaired_transcript_and_unlisted_audio_are_problems(corpus) -> None:
    recipe, corpus_dir = corpus("aishell3")
    content = corpus_dir / "parts/data_aishell3/train/content.txt"
    lines = content.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].rsplit(" ", 1)[0]  # drop the last pinyin: characters and pinyin no longer pair
    del lines[3]  # SSB00090002.wav loses its line
    lines.append("SSB00059999.wav\t好 hao3")  # a line without audio
    content.write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    reasons = sorted((problem.key, problem.reason.split(" (")[0]) for problem in problems)
    assert reasons == [
        ("SSB00050002", "line 2: characters and pinyin do not pair up"),
        ("SSB00059999", "listed in train/content.txt but the audio file is missing"),
        ("SSB00090002", "audio file has no line in train/content.txt"),
    ]
    assert sorted(key for key, entry in found.items() if entry.split == "train") == ["SSB00050001", "SSB00090001"]


# -- HQ-TTS ------------------------------------------------------------------------------------


def test_hq_tts_reads_speaker_folders(corpus) -> None:
    recipe, corpus_dir = corpus("hq_tts")
    found = by_key(read_entries(corpus_dir, recipe)[0])
    assert sorted(found) == [f"speaker_{s}/speaker_{s}_000{n}" for s in "abc" for n in (1, 2)]
    assert splits(found) == {"train": 6}
    entry = found["speaker_b/speaker_b_0002"]
    assert (entry.speaker, entry.text) == ("speaker_b", None)
    assert entry.audio == corpus_dir / "parts/hq_tts/hq_tts/speaker_b/speaker_b_0002.wav"


def test_hq_tts_files_outside_the_documented_layout_are_problems(corpus) -> None:
    recipe, corpus_dir = corpus("hq_tts")
    root = corpus_dir / "parts/hq_tts/hq_tts"
    sample = (root / "speaker_a/speaker_a_0001.wav").read_bytes()
    (root / "stray.wav").write_bytes(sample)
    (root / "README.txt").write_text("about this collection\n")
    (root / "speaker_a/take.2.wav").write_bytes(sample)
    (root / "speaker_b/extra.mp3").write_bytes(b"ID3")
    (root / "speaker_c/session1").mkdir()
    entries, problems = read_entries(corpus_dir, recipe)
    found = by_key(entries)
    assert len(found) == 6
    assert sorted(problem.path.relative_to(root).as_posix() for problem in problems) == [
        "speaker_a/take.2.wav",
        "speaker_b/extra.mp3",
        "speaker_c/session1",
        "stray.wav",
    ]
