"""Readers of the YouTube-based corpora over their mirrors: clips fetched through yt-dlp, then read."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
import soundfile as sf

from support import DATASETS, place_parts, read_entries
from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe, load_recipe
from uniflow.corpora.youtube import (
    ClipIndex,
    ListedClip,
    YoutubeReport,
    fetch_youtube_clips,
    id_list_path,
    listed_clips,
)
from uniflow.mirror.build import build_mirror
from uniflow.mirror.serve import serve_in_background

CORPORA = ("audiocaps", "musiccaps", "visualsound", "audioset")
KEY = re.compile(r"^[A-Za-z0-9_-]{11}_\d+$")


@dataclass
class Fetched:
    recipe: Recipe
    corpus_dir: Path
    report: YoutubeReport
    entries: list[Entry]
    problems: list[Problem]


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fetched]]:
    recipes = {name: load_recipe(DATASETS / f"{name}.yaml") for name in CORPORA}
    mirror = tmp_path_factory.mktemp("mirror")
    build_mirror(recipes, mirror, progress=False)
    server = serve_in_background(mirror)
    raw = tmp_path_factory.mktemp("raw")
    result = {}
    for name, recipe in recipes.items():
        corpus_dir = raw / name
        lists = place_parts(mirror, recipe, corpus_dir)
        report = fetch_youtube_clips(
            recipe.source, lists, corpus_dir, url_template=f"{server.url}/youtube/{{id}}.mp4", progress=False
        )
        result[name] = Fetched(recipe, corpus_dir, report, *read_entries(corpus_dir, recipe))
    yield result
    server.shutdown()


@pytest.mark.parametrize("name", CORPORA)
def test_every_published_clip_is_an_entry_and_the_removed_one_is_counted(fetched, name: str) -> None:
    corpus = fetched[name]
    assert len(corpus.report.failed) == 1 and corpus.report.invalid_rows == []
    assert len(corpus.entries) == corpus.report.downloaded
    [problem] = corpus.problems
    assert problem.reason.startswith("unavailable on YouTube: ") and "404" in problem.reason
    assert problem.key == corpus.report.failed[0].key
    keys = [entry.key for entry in corpus.entries]
    assert len(set(keys)) == len(keys) and all(KEY.match(key) for key in keys)
    for entry in corpus.entries:
        info = sf.info(entry.audio)
        assert info.samplerate == 44100 and 1.9 <= info.duration <= 3.05  # 3-s videos, start 0 or 1 s
        assert entry.extra["youtube_id"] == entry.key.rsplit("_", 1)[0]


def test_audiocaps_splits_and_captions(fetched) -> None:
    corpus = fetched["audiocaps"]
    assert Counter(entry.split for entry in corpus.entries) == {"train": 2, "valid": 1, "test": 2}
    by_caption = {entry.caption: entry for entry in corpus.entries}
    train = by_caption["A whoosh passes by, then a short chirp rings out"]
    assert train.split == "train" and train.key.startswith("-") and train.key.endswith("_1000")
    assert train.extra["captions"] == [train.caption] and train.extra["audiocap_ids"] == ["91002"]
    valid = next(entry for entry in corpus.entries if entry.split == "valid")
    assert valid.caption == "A beep sounds while something knocks" and len(valid.extra["captions"]) == 5
    # Test rows of two clips are interleaved in the CSV; each clip still gets its own five captions.
    tests = [entry for entry in corpus.entries if entry.split == "test"]
    assert sorted(len(entry.extra["captions"]) for entry in tests) == [5, 5]
    assert {entry.caption for entry in tests} == {"A rapid whoosh, then knocking", "A chirp and a beep alternate"}
    assert all(entry.video is None for entry in corpus.entries)


def test_musiccaps_is_an_all_test_set_with_aspects_and_flags(fetched) -> None:
    corpus = fetched["musiccaps"]
    assert {entry.split for entry in corpus.entries} == {"test"}
    groove = next(entry for entry in corpus.entries if entry.key.endswith("_0"))
    assert groove.caption.startswith("An instrumental groove")
    assert groove.extra["aspects"] == ["drum groove", "bass line", "instrumental", "medium tempo"]
    assert groove.extra["audioset_labels"] == ["/m/04rlf", "/m/0l14md"]
    assert (groove.extra["is_audioset_eval"], groove.extra["is_balanced_subset"]) == (True, False)


def test_visualsound_splits_come_from_the_split_files_and_video_is_kept(fetched) -> None:
    corpus = fetched["visualsound"]
    # The three split files are not id lists: the fetch skips them, the reader uses them.
    assert sorted(Path(p).name for p in corpus.report.ignored_files) == [
        "visualsound_test.txt",
        "visualsound_train.txt",
        "visualsound_validation.txt",
    ]
    assert Counter(entry.split for entry in corpus.entries) == {"train": 3, "valid": 1, "test": 1}
    labels = {entry.extra["label"]: entry for entry in corpus.entries}
    assert labels["door slamming"].split == "valid" and labels["woodpecker pecking tree"].split == "test"
    # One video with two listed segments: two clips with their own time ranges.
    hammering = [entry for entry in corpus.entries if entry.extra["label"] == "hammering nails"]
    assert len({entry.extra["youtube_id"] for entry in hammering}) == 1
    # VGGSound names a segment <11-character id>_<start ms>_<end ms>.
    assert sorted(entry.extra["vggsound_id"][12:] for entry in hammering) == ["0_10000", "1000_11000"]
    for entry in corpus.entries:
        assert entry.video is not None and entry.video.suffix == ".mp4"
        with av.open(str(entry.video)) as container:
            assert container.streams.video[0].average_rate == 25
            assert len(container.streams.audio) == 1


def test_audioset_subsets_labels_and_captions(fetched) -> None:
    corpus = fetched["audioset"]
    assert [Path(p).name for p in corpus.report.ignored_files] == ["class_labels_indices.csv"]
    assert Counter(entry.subset for entry in corpus.entries) == {"balanced_train": 2, "unbalanced_train": 1, "eval": 1}
    assert {entry.split for entry in corpus.entries if entry.subset == "eval"} == {"test"}
    knock = next(entry for entry in corpus.entries if entry.extra["labels"] == ["/m/07r4wb8", "/m/02fs_r"])
    assert knock.caption == "Knock; Beep, bleep" and knock.key.startswith("-")
    assert (knock.extra["start_seconds"], knock.extra["end_seconds"]) == (0.0, 10.0)


def test_clips_not_fetched_yet_are_problems_not_entries(fetched, tmp_path: Path) -> None:
    corpus = fetched["audiocaps"]
    shutil.copytree(corpus.corpus_dir / "parts", tmp_path / "parts")
    entries, problems = read_entries(tmp_path, corpus.recipe)
    assert entries == [] and len(problems) == 6
    assert all(problem.reason.startswith("clip not downloaded yet") for problem in problems)


def test_listed_clips_reports_missing_lists_bad_rows_and_repeats(tmp_path: Path) -> None:
    """The id-list loop the YouTube readers share: first listing wins, the rest are Problems."""
    recipe = load_recipe(DATASETS / "audiocaps.yaml")
    first, second = "-aBcDeFgH_1", "Zyx987_-AbC"
    train, val = id_list_path(tmp_path, recipe, "train"), id_list_path(tmp_path, recipe, "val")
    for path, rows in (
        (train, [f"1,{first},0,a whoosh", f"2,{second},1,a knock", f"3,{second},1,again", "4,not an id,0,broken"]),
        (val, [f"5,{first},0.0,the train clip again"]),
    ):
        path.parent.mkdir(parents=True)
        path.write_text("audiocap_id,youtube_id,start_time,caption\n" + "\n".join(rows) + "\n")
    clips, parts = ClipIndex(tmp_path, keep_video=False), ["train", "val", "test"]  # test.csv is absent

    items = list(listed_clips(tmp_path, recipe, parts, clips))
    listed = [item for item in items if isinstance(item, ListedClip)]
    assert [(item.part, item.row, item.clip.key, item.fields["caption"]) for item in listed] == [
        ("train", 1, f"{first}_0", "a whoosh"),
        ("train", 2, f"{second}_1000", "a knock"),
    ]
    assert [(problem.key, problem.reason) for problem in items if isinstance(problem, Problem)] == [
        (f"{second}_1000", "train.csv: row 3: clip listed twice"),
        (None, "train.csv: row 4: 'not an id' is not a YouTube video id"),
        (f"{first}_0", "val.csv: row 1: clip listed twice"),
        (None, "id list of part 'test' is missing (run the download stage)"),
    ]

    quiet = list(listed_clips(tmp_path, recipe, parts, clips, list_name="segment list", report_duplicates=False))
    assert [item.clip.key for item in quiet if isinstance(item, ListedClip)] == [f"{first}_0", f"{second}_1000"]
    assert [problem.reason for problem in quiet if isinstance(problem, Problem)] == [
        "train.csv: row 4: 'not an id' is not a YouTube video id",
        "segment list of part 'test' is missing (run the download stage)",
    ]
