"""`uniflow plan` reads the ledger and refuses a launch in which a rank or worker would get no shard."""

from __future__ import annotations

from pathlib import Path

from shard_set_builder import build_set
from typer.testing import CliRunner

from support import write_profile
from uniflow.cli import EXIT_FAILED, app
from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.storage import Storage


def test_plan_passes_and_fails_with_advice(tmp_path: Path) -> None:
    build_set(tmp_path)
    profile = write_profile(tmp_path, mirror_url=None)
    shards = len(read_ledger(ShardSet(Storage.from_file(profile), "shards", "se", "train")))
    assert shards >= 2

    ok = CliRunner().invoke(app, ["plan", "--world-size", "1", "--workers", str(shards), "--task", "se", "--profile", profile])
    assert ok.exit_code == 0, ok.output
    assert "se/train" in ok.output

    crowded = ["plan", "--world-size", str(shards), "--workers", "2", "--task", "se", "--profile", profile]
    refused = CliRunner().invoke(app, crowded, env={"COLUMNS": "250"})
    assert refused.exit_code == EXIT_FAILED, refused.output
    assert "lower --workers to 1" in refused.output.replace("\n", " ")
