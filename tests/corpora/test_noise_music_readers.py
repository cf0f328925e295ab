"""Noise, RIR and music corpora: the mini mirror's archives, read back by each corpus's reader.

The mirror is built once for the six corpora; each test extracts the archives it needs into its own
``raw/<corpus>/parts/<part>/`` tree (the layout acquisition produces), so tests may break metadata
without disturbing each other.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from support import by_key, place_parts, read_entries
from uniflow.corpora.recipe import Recipe
from uniflow.mirror.build import build_mirror

CORPORA = ["wham_noise", "musan", "rirs_noises", "esc50", "musdb18hq", "moisesdb"]
REAL_RIRS = "RIRS_NOISES/real_rirs_isotropic_noises"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, recipes: dict[str, Recipe]) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    build_mirror(recipes, root, only=CORPORA, progress=False)
    return root


@pytest.fixture
def corpus(mirror: Path, recipes: dict[str, Recipe], tmp_path: Path):
    """``corpus(name)`` -> (corpus_dir, recipe), freshly extracted for this test."""

    def extract(name: str) -> tuple[Path, Recipe]:
        corpus_dir = tmp_path / "raw" / name
        place_parts(mirror, recipes[name], corpus_dir)
        return corpus_dir, recipes[name]

    return extract


# -- archives: real top folders and audio formats ---------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "top", "audio_member", "rate", "channels"),
    [
        ("wham_noise", "high_res_wham/", "high_res_wham/audio/wham_noise_mirror_001.wav", 48000, 2),
        ("musan", "musan/", "musan/noise/free-sound/noise-free-sound-0000.wav", 16000, 1),
        ("rirs_noises", "RIRS_NOISES/", f"{REAL_RIRS}/RVB2014_type1_rir_largeroom1_near_angla.wav", 16000, 8),
        ("esc50", "ESC-50-master/", "ESC-50-master/audio/1-100032-A-0.wav", 44100, 1),
        ("musdb18hq", "train/", "test/Al James - Schoolboy Facination/mixture.wav", 44100, 2),
        ("moisesdb", "moisesdb/moisesdb_v0.1/", None, 44100, 2),
    ],
)
def test_mirror_archive_has_the_real_top_folder_and_audio_format(
    corpus, name: str, top: str, audio_member: str | None, rate: int, channels: int
) -> None:
    corpus_dir, recipe = corpus(name)
    part_dir = corpus_dir / "parts" / recipe.parts[0].name
    assert (part_dir / top).is_dir()
    audio = part_dir / audio_member if audio_member else next((part_dir / top).rglob("*.wav"))
    info = sf.info(str(audio))
    assert (info.samplerate, info.channels) == (rate, channels)


# -- WHAM! noise --------------------------------------------------------------------------------------------
def test_wham_noise_splits_come_from_the_metadata_csv(corpus) -> None:
    corpus_dir, recipe = corpus("wham_noise")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    assert Counter(entry.split for entry in entries) == {"train": 3, "valid": 1, "test": 1}
    entries_by_key = by_key(entries)
    assert sorted(entries_by_key) == [f"wham_noise_mirror_00{n}" for n in range(1, 6)]
    assert entries_by_key["wham_noise_mirror_004"].split == "valid"
    assert entries_by_key["wham_noise_mirror_005"].split == "test"
    for entry in entries:
        assert entry.subset == "high_res_wham"
        # The CSV's length is the file's length: the reader kept the right number for the right file.
        assert entry.extra["file_length_sec"] == pytest.approx(sf.info(str(entry.audio)).duration, abs=1e-3)


def test_wham_noise_broken_rows_are_problems(corpus) -> None:
    corpus_dir, recipe = corpus("wham_noise")
    metadata = corpus_dir / "parts/high_res_wham/high_res_wham/high_res_metadata.csv"
    lines = metadata.read_text(encoding="utf-8").splitlines()
    lines[2] = "wham_noise_mirror_002.wav,Train,long"  # length is not a number
    lines[4] = "wham_noise_mirror_004.wav,Dev,1.0"  # unknown split
    lines.append("not_there.wav,Train,2.0")  # no such file
    metadata.write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries, problems = read_entries(corpus_dir, recipe)
    assert sorted(by_key(entries)) == ["wham_noise_mirror_001", "wham_noise_mirror_003", "wham_noise_mirror_005"]
    reasons = " | ".join(problem.reason for problem in problems)
    assert len(problems) == 3
    assert "unknown WHAM! Split 'Dev'" in reasons
    assert "not in audio/" in reasons and any(problem.path.name == "not_there.wav" for problem in problems)
    assert "'long' is not a number" in reasons


def test_wham_noise_without_split_column_is_one_problem(corpus) -> None:
    corpus_dir, recipe = corpus("wham_noise")
    metadata = corpus_dir / "parts/high_res_wham/high_res_wham/high_res_metadata.csv"
    lines = metadata.read_text(encoding="utf-8").splitlines()
    metadata.write_text("\n".join(["Filename,Subset,File Length (sec)", *lines[1:]]) + "\n", encoding="utf-8")
    entries, problems = read_entries(corpus_dir, recipe)
    assert entries == []
    assert len(problems) == 1 and "'WHAM! Split'" in problems[0].reason


# -- MUSAN ----------------------------------------------------------------------------------------------------
def test_musan_yields_all_categories_with_their_annotations(corpus) -> None:
    corpus_dir, recipe = corpus("musan")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    assert {entry.split for entry in entries} == {"train"}
    assert Counter(entry.extra["category"] for entry in entries) == {"music": 3, "speech": 3, "noise": 3}
    entries_by_key = by_key(entries)
    fma = entries_by_key["music/fma/music-fma-0000"]
    assert fma.extra == {
        "category": "music",
        "source": "fma",
        "genres": ["pop", "rock"],
        "vocals": True,
        "artist": "The Mirror Band",
    }
    assert entries_by_key["music/hd-classical/music-hd-0000"].extra["vocals"] is False
    librivox = entries_by_key["speech/librivox/speech-librivox-0001"]
    assert (librivox.gender, librivox.language) == ("female", "english")
    # us-gov has no ANNOTATIONS file in MUSAN: its recordings carry no speaker facts.
    assert entries_by_key["speech/us-gov/speech-us-gov-0000"].gender is None
    # The plan uses the noise category only; background comes from free-sound's ANNOTATIONS.
    noise = {entry.key: entry.extra.get("background") for entry in entries if entry.extra["category"] == "noise"}
    assert noise == {
        "noise/free-sound/noise-free-sound-0000": False,
        "noise/free-sound/noise-free-sound-0001": True,
        "noise/sound-bible/noise-sound-bible-0000": None,
    }
    assert all(entry.audio.is_file() for entry in entries)


def test_musan_broken_annotations_are_problems(corpus) -> None:
    corpus_dir, recipe = corpus("musan")
    root = corpus_dir / "parts/musan/musan"
    music = root / "music/fma/ANNOTATIONS"
    music.write_text(music.read_text(encoding="utf-8").replace(" Y ", " maybe "), encoding="utf-8")
    with open(root / "speech/librivox/ANNOTATIONS", "a", encoding="utf-8") as handle:
        handle.write("speech-librivox-0099 m english\n")
    entries, problems = read_entries(corpus_dir, recipe)
    # Recordings are still yielded; only their broken annotation is reported.
    assert len(entries) == 9
    assert "genres" not in by_key(entries)["music/fma/music-fma-0000"].extra
    assert sorted(problem.path.parent.name for problem in problems) == ["fma", "librivox"]
    assert any("'<id> <genres> <Y|N> <artist>'" in problem.reason for problem in problems)
    assert any(problem.key == "speech-librivox-0099" for problem in problems)


# -- RIRs and noises (OpenSLR 28) -------------------------------------------------------------------------------
def test_rirs_noises_reads_rirs_and_noises_from_the_list_files(corpus) -> None:
    corpus_dir, recipe = corpus("rirs_noises")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    assert {entry.split for entry in entries} == {"train"}
    rirs = [entry for entry in entries if entry.extra["kind"] == "rir"]
    noises = [entry for entry in entries if entry.extra["kind"] == "noise"]
    assert Counter(entry.extra["source"] for entry in rirs) == {"simulated": 4, "real": 3}
    assert Counter(entry.extra["room_size"] for entry in rirs if entry.extra["source"] == "simulated") == {
        "small": 2,
        "medium": 1,
        "large": 1,
    }
    small = by_key(entries)["simulated_rirs/smallroom/Room001/Room001-00002"]
    assert small.extra == {
        "kind": "rir",
        "source": "simulated",
        "room": "small-Room001",
        "room_size": "small",
        "rir_id": "small-Room001-00002",
    }
    real = by_key(entries)["real_rirs_isotropic_noises/RVB2014_type1_rir_largeroom1_near_angla"]
    assert (real.extra["room"], real.extra["room_size"]) == ("RVB2014_largeroom1", None)
    assert {entry.extra["noise_type"] for entry in noises} == {"isotropic", "point-source"}
    isotropic = by_key(entries)["real_rirs_isotropic_noises/RVB2014_type1_noise_largeroom1_1"]
    assert isotropic.extra["room"] == "RVB2014_largeroom1"
    assert by_key(entries)["pointsource_noises/noise-free-sound-0001"].extra["background"] is True
    assert all(entry.audio.is_file() for entry in entries)


def test_rirs_noises_broken_list_lines_are_problems(corpus) -> None:
    corpus_dir, recipe = corpus("rirs_noises")
    rir_list = corpus_dir / "parts/rirs_noises/RIRS_NOISES/simulated_rirs/mediumroom/rir_list"
    rooms = "RIRS_NOISES/simulated_rirs/mediumroom"
    with open(rir_list, "a", encoding="utf-8") as handle:
        handle.write(f"--rir-id medium-Room009-00001 --room-id medium-Room009 {rooms}/Room009/Room009-00001.wav\n")
        handle.write(f"--rir-id medium-Room001-00009 {rooms}/Room001/Room001-00001.wav\n")  # no --room-id
        handle.write("--rir-id medium-Room001-00001 --room-id\n")  # no location
    entries, problems = read_entries(corpus_dir, recipe)
    assert len(entries) == 10
    assert len(problems) == 3
    absent, unnamed_room, malformed = problems
    assert absent.path.name == "Room009-00001.wav" and "not found" in absent.reason
    assert "missing --room-id" in unnamed_room.reason
    assert "expected '--option value' pairs" in malformed.reason


# -- ESC-50 ------------------------------------------------------------------------------------------------------
def test_esc50_is_all_test_with_category_captions_and_folds(corpus) -> None:
    corpus_dir, recipe = corpus("esc50")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    assert {entry.split for entry in entries} == {"test"}
    assert sorted(by_key(entries)) == [
        "1-100032-A-0",
        "2-118206-B-14",
        "3-141240-A-37",
        "4-181286-A-16",
        "5-200334-A-30",
    ]
    birds = by_key(entries)["2-118206-B-14"]
    assert birds.caption == "chirping birds"
    assert birds.extra == {
        "fold": 2,
        "target": 14,
        "category": "chirping_birds",
        "esc10": False,
        "src_file": "118206",
        "take": "B",
    }
    assert by_key(entries)["1-100032-A-0"].extra["esc10"] is True
    assert sorted(entry.extra["fold"] for entry in entries) == [1, 2, 3, 4, 5]


def test_esc50_broken_rows_are_problems(corpus) -> None:
    corpus_dir, recipe = corpus("esc50")
    root = corpus_dir / "parts/ESC-50-master/ESC-50-master"
    with open(root / "meta/esc50.csv", "a", encoding="utf-8") as handle:
        handle.write("9-100032-A-0.wav,9,0,dog,True,100032,A\n")  # fold out of range
        handle.write("1-555-A-3.wav,1,4,frog,False,555,A\n")  # name says target 3, column says 4
        handle.write("1-777-A-5.wav,1,5,cat,False,777,A\n")  # consistent row, file absent
    (root / "audio/4-181286-A-16.wav").unlink()
    entries, problems = read_entries(corpus_dir, recipe)
    assert len(entries) == 4
    assert sorted(problem.key for problem in problems) == ["1-555-A-3", "1-777-A-5", "4-181286-A-16", "9-100032-A-0"]
    reasons = " | ".join(problem.reason for problem in problems)
    assert "out of range" in reasons and "does not match its columns" in reasons and "not in audio/" in reasons


# -- MUSDB18-HQ --------------------------------------------------------------------------------------------------
def test_musdb18hq_tracks_have_folder_splits_and_stems(corpus) -> None:
    corpus_dir, recipe = corpus("musdb18hq")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    assert {entry.key: entry.split for entry in entries} == {
        "train/A_Classic_Education_-_NightOwl": "train",
        "train/Actions_-_One_Minute_Smile": "train",
        "test/Al_James_-_Schoolboy_Facination": "test",
    }
    track = by_key(entries)["test/Al_James_-_Schoolboy_Facination"]
    assert track.audio.name == "mixture.wav"
    assert (track.extra["artist"], track.extra["title"]) == ("Al James", "Schoolboy Facination")
    assert sorted(track.extra["stems"]) == ["bass", "drums", "other", "vocals"]
    # Stem paths are relative to the raw root, like the manifest's audio field.
    raw_root = corpus_dir.parent
    assert track.extra["stems"]["vocals"] == "musdb18hq/parts/musdb18hq/test/Al James - Schoolboy Facination/vocals.wav"
    assert all((raw_root / path).is_file() for path in track.extra["stems"].values())


def test_musdb18hq_track_names_with_dots_give_dot_free_keys(corpus) -> None:
    corpus_dir, recipe = corpus("musdb18hq")
    test_dir = corpus_dir / "parts/musdb18hq/test"
    shutil.copytree(test_dir / "Al James - Schoolboy Facination", test_dir / "M.E.R.C. Music - Knockout")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    knockout = by_key(entries)["test/M_E_R_C_Music_-_Knockout"]
    assert knockout.extra["track"] == "M.E.R.C. Music - Knockout"
    assert all("." not in entry.key for entry in entries)


def test_musdb18hq_track_without_a_stem_is_a_problem(corpus) -> None:
    corpus_dir, recipe = corpus("musdb18hq")
    (corpus_dir / "parts/musdb18hq/train/Actions - One Minute Smile/vocals.wav").unlink()
    entries, problems = read_entries(corpus_dir, recipe)
    assert sorted(by_key(entries)) == ["test/Al_James_-_Schoolboy_Facination", "train/A_Classic_Education_-_NightOwl"]
    assert len(problems) == 1
    assert problems[0].key == "train/Actions_-_One_Minute_Smile" and "vocals.wav" in problems[0].reason


# -- MoisesDB ----------------------------------------------------------------------------------------------------
def test_moisesdb_songs_list_every_source_file(corpus) -> None:
    corpus_dir, recipe = corpus("moisesdb")
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == []
    assert len(entries) == 2 and {entry.split for entry in entries} == {"train"}
    songs = {entry.extra["song"]: entry for entry in entries}
    assert sorted(songs) == ["Localhost Nights", "Loopback Lullaby"]
    lullaby = songs["Loopback Lullaby"]
    assert (lullaby.extra["artist"], lullaby.extra["genre"]) == ("The Mirror Band", "pop")
    stems = lullaby.extra["stems"]
    assert sorted(stems) == ["bass", "drums", "guitar", "vocals"]
    # Sources keep data.json's order: the kick drum, then the snare drum recorded with bleed.
    assert [(source["track_type"], source["has_bleed"]) for source in stems["drums"]] == [
        ("kick drum", False),
        ("snare drum", True),
    ]
    raw_root = corpus_dir.parent
    paths = [raw_root / source["path"] for sources in stems.values() for source in sources]
    assert len(paths) == 5 and all(path.is_file() for path in paths)
    # No mixture file exists: audio is one of the source files, only there to be probed.
    assert lullaby.audio in paths
    assert "no mixture file" in lullaby.extra["mixture"]
    assert lullaby.key == lullaby.audio.parents[1].name


def test_moisesdb_broken_songs_are_problems(corpus) -> None:
    corpus_dir, recipe = corpus("moisesdb")
    release = corpus_dir / "parts/moisesdb/moisesdb/moisesdb_v0.1"
    first, second = sorted(path for path in release.iterdir())
    (first / "data.json").write_text('{"artist": "cut off', encoding="utf-8")
    data = json.loads((second / "data.json").read_text(encoding="utf-8"))
    missing = second / data["stems"][0]["stemName"] / f"{data['stems'][0]['tracks'][0]['id']}.wav"
    missing.unlink()
    entries, problems = read_entries(corpus_dir, recipe)
    assert entries == []
    assert sorted(problem.key for problem in problems) == sorted([first.name, second.name])
    reasons = " | ".join(problem.reason for problem in problems)
    assert "not valid JSON" in reasons and "names missing file(s)" in reasons


# -- all six: ids are usable sample keys ------------------------------------------------------------------------
@pytest.mark.parametrize("name", CORPORA)
def test_keys_are_unique_and_dot_free(corpus, name: str) -> None:
    corpus_dir, recipe = corpus(name)
    entries, problems = read_entries(corpus_dir, recipe)
    assert problems == [] and entries
    keys = [entry.key for entry in entries]
    assert len(set(keys)) == len(keys)
    assert not any("." in key or key.startswith("/") for key in keys)
