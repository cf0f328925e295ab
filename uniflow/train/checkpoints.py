"""Checkpoint folders of a training run, shared by the VAE and the UniFlow-Audio trainers.

A run folder holds ``step-<N>/`` checkpoints; ``trainer.json`` is written last inside each, so a checkpoint
without it is incomplete (a launch stopped while writing). ``latest`` is a relative symlink to the newest
complete checkpoint, repointed atomically; older checkpoints beyond the configured number are pruned.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from uniflow.config import ConfigError

TRAINER_FILE = "trainer.json"


def latest_checkpoint(run: Path) -> Path | None:
    """The checkpoint `latest` points at, or None for a run with no checkpoint yet."""
    latest = run / "latest"
    if not latest.is_symlink() and not latest.exists():
        return None
    target = latest.resolve()
    if not (target / TRAINER_FILE).is_file():
        raise ConfigError(f"{latest}: points at {target}, which is not a complete checkpoint (no {TRAINER_FILE})")
    return target


def point_latest(run: Path, checkpoint: Path) -> None:
    """Repoint `latest` atomically: a new relative symlink renamed over the old one."""
    temporary = run / ".latest.tmp"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(checkpoint.name, temporary)
    os.replace(temporary, run / "latest")


def prune_checkpoints(run: Path, keep: int) -> None:
    """Delete all but the newest `keep` ``step-<N>`` folders (never the one `latest` points at)."""
    steps = sorted((p for p in run.glob("step-*") if p.name.split("-", 1)[1].isdigit()), key=lambda p: int(p.name[5:]))
    current = (run / "latest").resolve()
    for old in steps[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
