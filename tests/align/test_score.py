"""Singing scores -> per-phone frame counts, with bad scores quarantined with the reason."""

from pathlib import Path

import pytest

from support import make_storage
from uniflow.align.score import ScoreError, prepare_scores, score_from_record
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests, read_manifest
from uniflow.jsonl import iter_jsonl_gz

GOOD = {
    "id": "m4singer/Alto-1/song/0000",
    "seconds": 1.0,
    "score": {"phs": ["SP", "n", "i", "AP"], "ph_dur": [0.1, 0.2, 0.5, 0.2], "notes": [0, 64, 64, 0],
              "notes_dur": [0.1, 0.7, 0.7, 0.2], "is_slur": [0, 0, 0, 0]},
}


def with_score(**changes) -> dict:
    return {**GOOD, "score": {**GOOD["score"], **changes}}


def test_frames_follow_phone_durations_and_sum_to_latent_length() -> None:
    score = score_from_record(GOOD)
    assert score.phones == ["SP", "n", "i", "AP"]
    assert score.frames == [5, 10, 25, 10] and sum(score.frames) == 50
    assert score.midi == [0, 64, 64, 0] and score.slur == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (with_score(notes=[0, 64, 64]), "score lists differ in length"),
        (with_score(ph_dur=[0.1, 0.2, 0.0, 0.7]), "not positive"),
        (with_score(notes=[0, 64, 200, 0]), "MIDI note outside 0-127"),
        (with_score(is_slur=[0, 2, 0, 0]), "is_slur must be 0 or 1"),
        (with_score(ph_dur=[0.1, 0.2, 0.5, 1.2]), "score lasts 2.000 s but the recording 1.000 s"),
        (with_score(notes=["x", 1, 2, 3]), "non-numeric"),
        ({"id": "m4singer/x", "seconds": 1.0}, "record has no score"),
    ],
)
def test_bad_scores_name_the_reason(record: dict, reason: str) -> None:
    with pytest.raises(ScoreError) as error:
        score_from_record(record)
    assert reason in error.value.reason


def test_mirror_m4singer_scores_round_trip(recipes, mirror_url: str, tmp_path: Path) -> None:
    storage = make_storage(tmp_path, mirror_url)
    assert acquire_corpus(storage, recipes["m4singer"], progress=False).status == "done"
    prepare_manifests(recipes["m4singer"], storage, progress=False)
    summary = prepare_scores(storage, "m4singer", "train")
    assert summary.scores == len(list(read_manifest(storage, "m4singer", "train"))) and summary.quarantined == 0
    with storage.open("manifests", "m4singer", "train.score.jsonl.gz") as handle:
        lines = list(iter_jsonl_gz(handle))
    seconds = {r["id"]: r["seconds"] for r in read_manifest(storage, "m4singer", "train")}
    for line in lines:
        assert sum(line["frames"]) == int(round(seconds[line["id"]] * 24000)) // 480
        assert len(line["frames"]) == len(line["phones"]) == len(line["midi"])
