"""Tiny frozen encoders saved once per session; transformers may only read local files here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Not HF_HUB_OFFLINE: the encoders load with local_files_only=True, and the mirror's Hugging Face tests
# in the same session must reach the loopback Hub.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uniflow.features.text import save_tiny_text_encoder

    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uniflow.features.video import save_tiny_video_encoder

    return save_tiny_video_encoder(tmp_path_factory.mktemp("tiny-clip"))
