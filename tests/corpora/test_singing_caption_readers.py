"""Singing and caption corpora: mirror -> real layout on disk -> reader, with ids, splits, fields and problems."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from support import by_key, place_parts, read_entries
from uniflow.corpora.huggingface import fetch_huggingface
from uniflow.corpora.recipe import Recipe
from uniflow.mirror.build import build_mirror
from uniflow.mirror.builders import lp_musiccaps_msd as lp_mirror
from uniflow.mirror.builders import m4singer as m4singer_mirror
from uniflow.mirror.serve import serve_in_background

SINGING = ["m4singer", "opencpop", "popcs", "opensinger"]


def _place(recipe: Recipe, mirror: Path, raw: Path, mirror_url: str | None = None) -> Path:
    """Put a corpus where acquisition would: archives extracted to parts/<part>, HF snapshots via the mirror."""
    corpus_dir = raw / recipe.name
    place_parts(mirror, recipe, corpus_dir)
    if recipe.source.kind == "huggingface":
        assert mirror_url is not None
        fetch_huggingface(recipe.source, corpus_dir, endpoint=mirror_url + "/hf", progress=False)
    return corpus_dir


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory, recipes: dict[str, Recipe]) -> Path:
    """Every corpus of this module placed under one raw root (pyarrow-dependent ones only when it is installed)."""
    names = SINGING + ["wavcaps_freesound"]
    try:
        import pyarrow  # noqa: F401 - the LP-MusicCaps mirror is parquet
    except ImportError:
        pass
    else:
        names += ["lp_musiccaps_msd", "msd"]
    mirror = tmp_path_factory.mktemp("mirror")
    build_mirror(recipes, mirror, only=names, progress=False)
    root = tmp_path_factory.mktemp("raw")
    server = serve_in_background(mirror)
    try:
        for name in names:
            _place(recipes[name], mirror, root, server.url)
    finally:
        server.shutdown()
    return root


@pytest.fixture
def editable(raw: Path, tmp_path: Path) -> Iterator:
    """A private copy of one placed corpus, for tests that break its metadata."""

    def copy(name: str) -> Path:
        target = tmp_path / "raw" / name
        shutil.copytree(raw / name, target)
        return target

    yield copy


@pytest.mark.parametrize("name", SINGING + ["wavcaps_freesound"])
def test_entries_follow_the_recipe(name: str, raw: Path, recipes: dict[str, Recipe]) -> None:
    entries, problems = read_entries(raw / name, recipes[name])
    assert entries and not problems, problems
    assert {e.split for e in entries} <= set(recipes[name].splits)
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys)) and not any("." in key for key in keys)
    assert all(e.audio.is_file() for e in entries)
    rates = {sf.info(e.audio).samplerate for e in entries}
    assert rates == {recipes[name].sample_rate}


# -- M4Singer ----------------------------------------------------------------------------------------------
def test_m4singer_scores_splits_and_audio(raw: Path, recipes: dict[str, Recipe]) -> None:
    entries, _ = read_entries(raw / "m4singer", recipes["m4singer"])
    found = by_key(entries)
    assert sorted(found) == [
        "Alto-2/岁月神偷/0000",
        "Alto-2/岁月神偷/0001",
        "Bass-1/月亮/0000",
        "Soprano-3/春风/0000",
        "Soprano-3/春风/0001",
        "Tenor-1/童话/0000",
    ]
    assert {k for k, e in found.items() if e.split == "test"} == {
        "Alto-2/岁月神偷/0000",
        "Alto-2/岁月神偷/0001",
        "Tenor-1/童话/0000",
    }
    meta = json.loads((raw / "m4singer/parts/m4singer/m4singer/meta.json").read_text(encoding="utf-8"))
    for item in meta:
        entry = found[item["item_name"].replace("#", "/")]
        assert entry.text == item["txt"] and entry.speaker == item["item_name"].split("#")[0]
        assert entry.score == {field: item[field] for field in ("phs", "ph_dur", "notes", "notes_dur", "is_slur")}
        assert "AP" in entry.score["phs"] and 1 in entry.score["is_slur"]
        # The sung-note stand-in is rendered from the score, so its length is the phones' total.
        assert sf.info(entry.audio).duration == pytest.approx(sum(item["ph_dur"]), abs=0.01)
        # Paths relative to the raw role (the corpus folder's parent), like manifest audio paths.
        assert entry.extra["midi"].startswith("m4singer/parts/") and entry.extra["midi"].endswith(".mid")
        assert (raw / entry.extra["textgrid"]).is_file()
    assert found["Bass-1/月亮/0000"].gender == "male" and found["Alto-2/岁月神偷/0000"].gender == "female"


def test_m4singer_broken_items_are_problems(editable, recipes: dict[str, Recipe]) -> None:
    corpus = editable("m4singer")
    root = corpus / "parts/m4singer/m4singer"
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    meta[0]["notes"] = meta[0]["notes"][:-1]  # lists of different lengths
    (root / "Bass-1#月亮" / "0000.wav").unlink()  # wav missing
    (root / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    entries, problems = read_entries(corpus, recipes["m4singer"])
    assert len(entries) == len(meta) - 2 and len(problems) == 2
    reasons = {p.key: p.reason for p in problems}
    assert "differ in length" in reasons["Alto-2/岁月神偷/0000"]
    assert "wav file is missing" in reasons["Bass-1/月亮/0000"]


# -- Opencpop ----------------------------------------------------------------------------------------------
def test_opencpop_official_split_and_midi_notes(raw: Path, recipes: dict[str, Recipe]) -> None:
    from uniflow.corpora.readers.opencpop import note_to_midi

    entries, _ = read_entries(raw / "opencpop", recipes["opencpop"])
    assert {e.key: e.split for e in entries} == {
        "2001000001": "train",
        "2001000002": "train",
        "2002000001": "train",
        "2002000002": "train",
        "2044000001": "test",
    }
    assert note_to_midi("C#4/Db4") == 61 and note_to_midi("A4") == 69 and note_to_midi("rest") == 0
    for entry in entries:
        score = entry.score
        assert len({len(score[f]) for f in ("phs", "ph_dur", "notes", "note_names", "notes_dur", "is_slur")}) == 1
        assert score["notes"] == [note_to_midi(name) for name in score["note_names"]]
        assert entry.speaker == "opencpop" and entry.text
        assert sf.info(entry.audio).duration == pytest.approx(sum(score["ph_dur"]), abs=0.01)


def test_opencpop_broken_lines_are_problems(editable, recipes: dict[str, Recipe]) -> None:
    corpus = editable("opencpop")
    segments = corpus / "parts/opencpop/Opencpop/segments"
    train = segments / "train.txt"
    train.write_text(train.read_text(encoding="utf-8") + "2001000009|坏|a b|C4|0.1 0.1|0.1 0.1|0 0\n", encoding="utf-8")
    (segments / "wavs" / "2002000002.wav").unlink()
    entries, problems = read_entries(corpus, recipes["opencpop"])
    assert len(entries) == 4
    assert any("line 5" in p.reason and "differ in length" in p.reason for p in problems)
    assert any(p.key == "2002000002" and "missing" in p.reason for p in problems)


# -- PopCS and OpenSinger ---------------------------------------------------------------------------------
def test_popcs_texts_and_phones(raw: Path, recipes: dict[str, Recipe]) -> None:
    entries, _ = read_entries(raw / "popcs", recipes["popcs"])
    assert sorted(e.key for e in entries) == [
        "popcs-说散就散/0000",
        "popcs-说散就散/0001",
        "popcs-隐形的翅膀/0000",
        "popcs-隐形的翅膀/0001",
    ]
    for entry in entries:
        assert entry.split == "train" and entry.audio.name.endswith("_wf0.wav")
        assert entry.text in [text for text, _ in m4singer_mirror.LYRICS]
        assert entry.extra["phones"][0] == "SP" and entry.extra["phones"][-1] == "AP"


def test_popcs_missing_lyrics_is_a_problem(editable, recipes: dict[str, Recipe]) -> None:
    corpus = editable("popcs")
    (corpus / "parts/popcs/popcs/popcs-说散就散/0001.txt").unlink()
    entries, problems = read_entries(corpus, recipes["popcs"])
    assert len(entries) == 3 and [p.key for p in problems] == ["popcs-说散就散/0001"]


def test_opensinger_speakers_and_genders(raw: Path, recipes: dict[str, Recipe]) -> None:
    entries, _ = read_entries(raw / "opensinger", recipes["opensinger"])
    assert sorted((e.key, e.speaker, e.gender) for e in entries) == [
        ("ManRaw/0_光年之外_0", "ManRaw_0", "male"),
        ("ManRaw/0_光年之外_1", "ManRaw_0", "male"),
        ("ManRaw/12_凉凉_0", "ManRaw_12", "male"),
        ("WomanRaw/4_遇见_0", "WomanRaw_4", "female"),
        ("WomanRaw/4_遇见_1", "WomanRaw_4", "female"),
    ]
    assert all(e.split == "train" and e.text and e.extra["lab"].endswith(".lab") for e in entries)


def test_opensinger_missing_text_is_a_problem(editable, recipes: dict[str, Recipe]) -> None:
    corpus = editable("opensinger")
    (corpus / "parts/opensinger/OpenSinger/WomanRaw/4_遇见/4_遇见_1.txt").unlink()
    entries, problems = read_entries(corpus, recipes["opensinger"])
    assert len(entries) == 4 and [p.key for p in problems] == ["WomanRaw/4_遇见_1"]


# -- WavCaps FreeSound -----------------------------------------------------------------------------------
def test_wavcaps_captions_come_from_the_json(raw: Path, recipes: dict[str, Recipe]) -> None:
    from uniflow.mirror.builders.wavcaps_freesound import CLIPS

    entries, _ = read_entries(raw / "wavcaps_freesound", recipes["wavcaps_freesound"])
    assert {e.key: e.caption for e in entries} == {clip[0]: clip[5] for clip in CLIPS}
    assert {e.key: e.extra["author"] for e in entries} == {clip[0]: clip[2] for clip in CLIPS}
    for entry in entries:
        assert entry.split == "train" and entry.subset == "FreeSound"
        assert sf.info(entry.audio).duration == pytest.approx(entry.extra["listed_seconds"], abs=0.01)


def test_wavcaps_unmatched_json_and_audio_are_problems(editable, recipes: dict[str, Recipe]) -> None:
    corpus = editable("wavcaps_freesound")
    json_path = corpus / "hf/json_files/FreeSound/fsd_final.json"
    metadata = json.loads(json_path.read_text())
    removed = metadata["data"].pop(0)["id"]
    metadata["data"].append({"id": "999999", "caption": "A clip that was never extracted.", "duration": 2.0})
    json_path.write_text(json.dumps(metadata))
    entries, problems = read_entries(corpus, recipes["wavcaps_freesound"])
    assert len(entries) == 3
    assert {p.key: ("no caption" in p.reason or "missing" in p.reason) for p in problems} == {
        removed: True,
        "999999": True,
    }


# -- LP-MusicCaps-MSD + MSD -------------------------------------------------------------------------------
def test_msd_audio_joined_with_lp_musiccaps_captions(raw: Path, recipes: dict[str, Recipe]) -> None:
    pytest.importorskip("pyarrow")
    lp_entries, lp_problems = read_entries(raw / "lp_musiccaps_msd", recipes["lp_musiccaps_msd"])
    assert lp_entries == [] and lp_problems == [], "a caption-only corpus yields no recordings and no problems"

    entries, problems = read_entries(raw / "msd", recipes["msd"])
    tracks = {track["track_id"]: track for track in lp_mirror.TRACKS}
    assert sorted(e.key for e in entries) == sorted(tracks)
    for entry in entries:
        track = tracks[entry.key]
        assert entry.split == track["split"] and entry.caption == track["caption_writing"]
        assert entry.audio.relative_to(raw / "msd/parts/msd_audio/msd_audio").as_posix() == track["path"]
        assert entry.extra["caption_summary"] == track["caption_summary"] and entry.extra["tags"] == track["tag"]
        assert sf.info(entry.audio).format == "MP3"
    assert {e.split for e in entries} == {"train", "valid", "test"}
    assert [(p.key, p.reason) for p in problems] == [("6021984", "no LP-MusicCaps-MSD caption row has this path")]


def test_msd_without_captions_is_one_clear_problem(editable, recipes: dict[str, Recipe]) -> None:
    pytest.importorskip("pyarrow")
    corpus = editable("msd")  # copied alone: no lp_musiccaps_msd beside it
    entries, problems = read_entries(corpus, recipes["msd"])
    assert entries == [] and len(problems) == 1 and "acquire lp_musiccaps_msd first" in problems[0].reason
