"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DATASETS = PROJECT / "datasets"


def make_storage(root: Path, mirror_url: str | None = None):
    """A storage whose roles all live under ``root``, optionally fetching from a mirror."""
    from uniflow.storage import ROLES, Storage, StorageProfile

    return Storage(StorageProfile(name="test", roles={role: str(root / role) for role in ROLES}, mirror_url=mirror_url))
