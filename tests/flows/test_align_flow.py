"""The alignment flow on a throw-away Prefect server: LibriTTS and M4Singer from the mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS, latest_artifact, make_storage, write_profile
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests

pytestmark = pytest.mark.prefect


def test_align_flow_aligns_scores_and_reports(prefect_harness, recipes, mirror_url: str, tmp_path: Path) -> None:
    from flows.align import align_flow

    storage = make_storage(tmp_path, mirror_url)
    for name in ("libritts", "m4singer"):
        assert acquire_corpus(storage, recipes[name], progress=False).status == "done"
        prepare_manifests(recipes[name], storage, progress=False)
    profile = write_profile(tmp_path, mirror_url)

    outcome = align_flow(profile=profile, datasets_dir=str(DATASETS), aligner="pocketsphinx", chunk_size=4)
    assert outcome["aligner"] == "pocketsphinx"
    by_split = {summary["split"]: summary for summary in outcome["alignments"]}
    assert set(by_split) == {"train", "valid", "test"}
    assert all(summary["aligned"] > 0 for summary in by_split.values())
    assert {summary["corpus"] for summary in outcome["scores"]} == {"m4singer"}
    assert (tmp_path / "manifests" / "libritts" / "train.align.jsonl.gz").exists()

    table = latest_artifact("alignment")
    assert table is not None and "libritts" in str(table["data"]) and "singing score" in str(table["data"])

    again = align_flow(profile=profile, datasets_dir=str(DATASETS), aligner="pocketsphinx", chunk_size=4)
    assert again["alignments"] == outcome["alignments"], "a rerun finds every chunk done and changes nothing"
