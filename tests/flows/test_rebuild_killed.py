"""A demo rebuild SIGKILLed in the middle of any stage and run again ends with the ledgers of an uninterrupted one.

One uninterrupted reference rebuild, then one interrupted tree: the CLI rebuild is started as a process group
and killed as soon as the stage under test has finished some but not all of its work items (part markers,
alignment chunks, simulation batches, shards, feature shards); the next start resumes it and goes on until the
next stage is killed in the same way, and a last run completes the rebuild. Each kill thus interrupts real work of
its stage (and every resume but the first starts from a tree another kill left), and the cost is about one
rebuild more than the reference, not five.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import DATASETS, PROJECT, make_storage
from uniflow.corpora.recipe import SPLITS, TASKS

pytestmark = pytest.mark.prefect

STAGES = ("acquire", "align", "simulate", "shard", "features")
DEMO_VAE_STEPS = 2
POLL_SECONDS = 0.05
STAGE_TIMEOUT_SECONDS = 300


def _count(pattern: str) -> Callable[[Path], int]:
    def count(data: Path) -> int:
        return sum(1 for path in data.glob(pattern) if not path.name.startswith("."))

    return count


# What each stage has finished, counted from the files that mark one finished work item of it.
FINISHED_ITEMS: dict[str, Callable[[Path], int]] = {
    "acquire": _count("raw/*/parts/*.completed"),
    "align": _count("work/align/*/*/chunk_*.done"),
    "simulate": _count("work/simulate/*/*/batch_*.done"),
    "shard": _count("shards/*/*/*.tar"),
    "features": _count("features/*/*/*.tar"),
}


def leftovers(data: Path) -> list[str]:
    """Files and folders an interrupted writer leaves: atomic-write temporaries, download and extraction partials."""
    found = []
    for directory, folders, files in os.walk(data):
        for name in folders + files:
            if (
                (name.startswith(".") and name.endswith(".tmp"))
                or name.endswith((".part", ".incomplete"))
                or ".partial-" in name
                or name.startswith(".fetch-")
                or name.endswith(".joined.zip")
            ):
                found.append(str(Path(directory, name).relative_to(data)))
    return sorted(found)


def _environment(data: Path, home: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    # The harness's server: a run of the CLI reports to it instead of starting its own (20-30 s on 2 cores).
    return {**os.environ, "UNIFLOW_DATA": str(data), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _rebuild_command(mirror: Path) -> list[str]:
    return [sys.executable, "-m", "uniflow.cli", "rebuild", "--profile", "demo", "--datasets", str(DATASETS),
            "--mirror-dir", str(mirror), "--demo-vae-steps", str(DEMO_VAE_STEPS)]


@dataclass
class Kill:
    """Where a kill caught its stage: items finished at the kill, out of the reference's total."""

    stage: str
    finished: int
    total: int
    seconds: float


def kill_in_the_middle_of(stage: str, total: int, data: Path, mirror: Path, home: Path, log: Path) -> Kill:
    """Start the rebuild and SIGKILL its whole process group once ``stage`` finished some but not all items."""
    finished = FINISHED_ITEMS[stage]
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(_rebuild_command(mirror), cwd=PROJECT, env=_environment(data, home),
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while process.poll() is None and finished(data) == 0:
                if time.monotonic() - started > STAGE_TIMEOUT_SECONDS:
                    break
                time.sleep(POLL_SECONDS)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the CLI and its task-runner workers, at once
            process.wait()
    # Counted after the kill: the tree can no longer change, so this is what the rerun finds.
    kill = Kill(stage, finished(data), total, time.monotonic() - started)
    assert process.returncode == -signal.SIGKILL, (
        f"the rebuild ended (exit {process.returncode}) before {stage} was caught mid-work:\n"
        + log.read_text(errors="replace")[-4000:]
    )
    return kill


def complete_rebuild(data: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The whole demo rebuild in this process (the harness's Prefect server), into ``data``."""
    from flows.rebuild import rebuild_flow

    monkeypatch.setenv("UNIFLOW_DATA", str(data))
    monkeypatch.setenv("UNIFLOW_MIRROR_URL", "http://127.0.0.1:9")  # the flow sets its own while it serves
    return rebuild_flow(profile="demo", storage_profile=str(PROJECT / "storage_config" / "demo.yaml"),
                        datasets_dir=str(DATASETS), mirror_dir=str(mirror), demo_vae_steps=DEMO_VAE_STEPS)


# The fields of a ledger line that depend only on the inputs. Every field of both ledgers is compared: the lines
# carry no timestamps or wall times (those live in the stages' summaries and markers, which are not compared).
def audio_ledgers(data: Path) -> dict[str, list[dict[str, Any]]]:
    from uniflow.shards.ledger import ShardSet, read_ledger

    storage = make_storage(data)  # the demo profile's layout: <UNIFLOW_DATA>/<role>
    found = {f"{task}/{split}": [record.model_dump() for record in read_ledger(ShardSet(storage, "shards", task, split))]
             for task in TASKS for split in SPLITS}
    return {name: records for name, records in found.items() if records}


def feature_ledgers(data: Path) -> dict[str, list[dict[str, Any]]]:
    from uniflow.features.stage import feature_set, read_feature_ledger

    storage = make_storage(data)  # the demo profile's layout: <UNIFLOW_DATA>/<role>
    found = {f"{task}/{split}": [record.model_dump() for record in read_feature_ledger(feature_set(storage, task, split))]
             for task in TASKS for split in SPLITS}
    return {name: records for name, records in found.items() if records}


@dataclass
class Interrupted:
    data: Path
    kills: dict[str, Kill] = field(default_factory=dict)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("killed")


# Both rebuilds run in this folder, one after the other: the singing readers keep absolute MIDI and TextGrid paths
# in the manifests' ``extra``, which the SVS samples carry, so two trees in different folders differ in those bytes.
BUILD_FOLDER = "data"


@pytest.fixture(scope="module")
def reference(prefect_harness, workspace: Path) -> Path:
    """The uninterrupted rebuild (it also builds the mirror every later run serves), moved aside when done."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        outcome = complete_rebuild(workspace / BUILD_FOLDER, workspace / "mirror", monkeypatch)
    assert not [part for part in outcome["acquire"]["parts"] if part["status"] == "failed"]
    return (workspace / BUILD_FOLDER).rename(workspace / "reference")


@pytest.fixture(scope="module")
def interrupted(prefect_harness, reference: Path, workspace: Path) -> Interrupted:
    """A rebuild killed once in the middle of every stage, in order, then run to completion."""
    result = Interrupted(workspace / BUILD_FOLDER)
    home = workspace / "prefect-home"
    home.mkdir()
    for stage in STAGES:
        total = FINISHED_ITEMS[stage](reference)
        result.kills[stage] = kill_in_the_middle_of(stage, total, result.data, workspace / "mirror", home,
                                                    workspace / f"killed-in-{stage}.log")
    with pytest.MonkeyPatch.context() as monkeypatch:
        complete_rebuild(result.data, workspace / "mirror", monkeypatch)
    return result


@pytest.mark.parametrize("stage", STAGES)
def test_the_kill_caught_the_stage_with_work_done_and_work_left(interrupted: Interrupted, stage: str) -> None:
    kill = interrupted.kills[stage]
    print(f"{stage}: killed after {kill.seconds:.1f} s with {kill.finished} of {kill.total} work items finished")
    assert kill.total >= 2, f"{stage}: the reference has {kill.total} work item(s); nothing can be interrupted"
    assert 0 < kill.finished < kill.total, kill


def test_the_resumed_rebuild_writes_the_audio_ledgers_of_the_uninterrupted_one(
    interrupted: Interrupted, reference: Path
) -> None:
    expected = audio_ledgers(reference)
    assert {"tts/train", "se/train", "v2a/train"} <= set(expected)
    assert audio_ledgers(interrupted.data) == expected


def test_the_resumed_rebuild_writes_the_feature_ledgers_of_the_uninterrupted_one(
    interrupted: Interrupted, reference: Path
) -> None:
    expected = feature_ledgers(reference)
    assert set(expected) == set(audio_ledgers(reference))
    assert feature_ledgers(interrupted.data) == expected


def test_no_temporary_or_partial_file_survives_the_resumed_rebuild(interrupted: Interrupted, reference: Path) -> None:
    assert leftovers(reference) == []
    assert leftovers(interrupted.data) == []
