"""Folder helpers several readers share (a leading underscore: this module is not a reader)."""

from __future__ import annotations

import os
from pathlib import Path


def subfolders(path: str | Path) -> list[str]:
    """Names of the subfolders of ``path`` that are not hidden (no leading dot), sorted."""
    with os.scandir(path) as listing:
        return sorted(item.name for item in listing if item.is_dir() and not item.name.startswith("."))


def top_folder_candidates(part_dir: Path) -> list[Path]:
    """The part folder, then each of its subfolders in name order: where a release's root may lie.

    Archives of the same corpus differ in whether they add one enclosing folder, so a reader tries
    these in turn and takes the first that has the layout it expects.
    """
    if not part_dir.is_dir():
        return [part_dir]
    return [part_dir] + sorted(path for path in part_dir.iterdir() if path.is_dir())


def raw_relative(path: Path, raw_root: Path) -> str:
    """``path`` relative to the raw storage root, as the manifest writes paths (absolute when outside it)."""
    try:
        return path.relative_to(raw_root).as_posix()
    except ValueError:
        return path.as_posix()
