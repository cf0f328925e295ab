"""Shared fixtures: one mini mirror served on 127.0.0.1 and one Prefect harness per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from support import DATASETS


@pytest.fixture(scope="session")
def recipes():
    from uniflow.corpora.recipe import load_recipes

    return load_recipes(DATASETS)


@pytest.fixture(scope="session")
def mirror_dir(tmp_path_factory: pytest.TempPathFactory, recipes) -> Path:
    """The mini mirror of every recipe, built once per session."""
    from uniflow.mirror.build import build_mirror

    root = tmp_path_factory.mktemp("mirror")
    build_mirror(recipes, root, progress=False)
    return root


@pytest.fixture(scope="session")
def mirror_url(mirror_dir: Path) -> Iterator[str]:
    from uniflow.mirror.serve import serve_in_background

    server = serve_in_background(mirror_dir)
    yield server.url
    server.shutdown()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throw-away Prefect server for tests that run real flows (about 20-30 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
