"""The acquisition flow on a real (throw-away) Prefect server, against the loopback mirror."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from support import DATASETS, latest_artifact, write_profile

pytestmark = pytest.mark.prefect


def test_flow_acquires_and_publishes_artifacts(prefect_harness, mirror_url: str, tmp_path: Path) -> None:
    from flows.acquire import acquire_flow

    profile = write_profile(tmp_path, mirror_url)
    outcome = acquire_flow(corpora=["ljspeech", "msd", "hq_tts"], profile=profile, datasets_dir=str(DATASETS))
    assert outcome["failed"] == [] and outcome["manual"] == []
    corpora = {summary["corpus"] for summary in outcome["manifests"]}
    assert corpora == {"ljspeech", "msd", "lp_musiccaps_msd", "hq_tts"}, "msd pulls in the captions it requires"
    assert (tmp_path / "manifests" / "ljspeech" / "train.jsonl.gz").exists()

    hours = latest_artifact("corpus-hours")
    assert hours is not None and hours["type"] == "table"
    assert "ljspeech" in str(hours["data"])
    actions = latest_artifact("acquisition-actions")
    assert actions is not None and "Quarantine" in str(actions["data"])
    assert latest_artifact("acquisition-progress")["data"] == 100.0


def test_gated_corpus_without_files_explains_the_manual_step(prefect_harness, tmp_path: Path) -> None:
    from uniflow.cli import EXIT_MANUAL, app

    profile = write_profile(tmp_path, mirror_url=None)
    result = CliRunner().invoke(app, ["download", "m4singer", "--profile", profile, "--datasets", str(DATASETS)])
    assert result.exit_code == EXIT_MANUAL, result.output
    assert "cannot be downloaded automatically" in result.output
    assert str(tmp_path / "raw" / "m4singer" / "downloads") in result.output.replace("\n", "")
    actions = latest_artifact("acquisition-actions")
    assert "Manual action required" in str(actions["data"]) and "m4singer" in str(actions["data"])
