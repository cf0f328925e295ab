"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from uniflow.storage import ROLES, Storage, StorageProfile

if TYPE_CHECKING:
    from uniflow.corpora.entry import Entry, Problem
    from uniflow.corpora.recipe import Recipe

PROJECT = Path(__file__).resolve().parents[1]
DATASETS = PROJECT / "datasets"


def make_storage(root: Path, mirror_url: str | None = None):
    """A storage whose roles all live under ``root``, optionally fetching from a mirror."""
    return Storage(StorageProfile(name="test", roles={role: str(root / role) for role in ROLES}, mirror_url=mirror_url))


def place_parts(mirror: Path, recipe: Recipe, corpus_dir: Path) -> list[Path]:
    """Put every part of ``recipe`` from a built mirror where acquisition leaves it.

    An archive part is extracted (safely, as acquisition does) to ``corpus_dir/parts/<part>/``;
    a plain-file part (``extract: false``) is copied to ``corpus_dir/parts/<part>/<file>``.
    Returns what was placed, one path per part: the extraction folder or the copied file.
    """
    from uniflow.corpora.extract import extract_archive

    placed = []
    for part in recipe.parts:
        download = mirror / "files" / recipe.name / part.local_name
        target = corpus_dir / "parts" / part.name
        if part.extract:
            extract_archive(download, target, progress=False)
        else:
            target.mkdir(parents=True)
            target = target / part.local_name
            shutil.copyfile(download, target)
        placed.append(target)
    return placed


def read_entries(corpus_dir: Path, recipe: Recipe) -> tuple[list[Entry], list[Problem]]:
    """Run the recipe's reader over ``corpus_dir``: its entries and its problems, in reading order."""
    from uniflow.corpora.entry import Entry, Problem

    reader = importlib.import_module(f"uniflow.corpora.readers.{recipe.reader_name}")
    entries: list[Entry] = []
    problems: list[Problem] = []
    for item in reader.entries(corpus_dir, recipe):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            assert isinstance(item, Entry), f"reader yielded {item!r}"
            entries.append(item)
    return entries, problems


def by_key(entries: list[Entry]) -> dict[str, Entry]:
    """Entries by key; a key that occurs twice fails the test (keys name manifest rows)."""
    found: dict[str, Entry] = {}
    for entry in entries:
        assert entry.key not in found, f"duplicate key {entry.key}"
        found[entry.key] = entry
    return found


def write_profile(root: Path, mirror_url: str | None) -> str:
    """A storage profile YAML with every role under ``root`` (flows take profiles by path)."""
    profile = {"name": "test", "roles": {role: str(root / role) for role in ROLES}}
    if mirror_url:
        profile["mirror_url"] = mirror_url
    path = root / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def latest_artifact(key: str) -> dict | None:
    """The newest artifact with ``key``, read from the server's REST API."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    # Posted as JSON by hand: this Prefect client serialises omitted filters as null, which its server refuses.
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    found = response.json()
    return found[0] if found else None


def tiny_wav2vec2_config(**settings: Any) -> Any:
    """A Wav2Vec2Config small enough to build in milliseconds (the tiny ASR and speaker models of the tests)."""
    from transformers import Wav2Vec2Config

    tiny = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
            "conv_dim": (8, 8), "conv_stride": (5, 4), "conv_kernel": (10, 8), "num_conv_pos_embeddings": 8,
            "num_conv_pos_embedding_groups": 2}  # fmt: skip
    return Wav2Vec2Config(**tiny, **settings)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread: on a busy 2-core machine a second one only contends."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
