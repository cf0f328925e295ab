"""Tiny frozen encoders saved once per session; transformers may only read local files here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before transformers is imported: a hub name must fail fast instead of reaching the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uniflow.features.text import save_tiny_text_encoder

    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uniflow.features.video import save_tiny_video_encoder

    return save_tiny_video_encoder(tmp_path_factory.mktemp("tiny-clip"))
