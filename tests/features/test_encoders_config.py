"""The encoders file: paper defaults, ${ENV} model paths, and loading only the encoders the tasks need."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS
from uniflow.config import ConfigError
from uniflow.features.config import (
    EncodersConfig,
    encoders_for_tasks,
    load_encoders,
    load_encoders_config,
)


def test_shipped_file_holds_the_paper_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIFLOW_MODELS", "/models")
    config = load_encoders_config(DATASETS / "features.yaml")
    assert config.text.name == "google/flan-t5-large" and config.text.dtype == "fp32"
    assert config.text.path == "/models/flan-t5-large"
    assert config.video.name == "openai/clip-vit-large-patch14"
    assert (config.video.fps, config.video.size) == (10, 224)
    assert config.video.path == "/models/clip-vit-large-patch14"
    assert config.speaker.kind == "resemblyzer"
    assert config.vae.path == "/models/uniflow-vae" and config.vae.sample is False
    # The defaults of the schema are the same paper choices.
    defaults = EncodersConfig()
    assert (defaults.text.name, defaults.video.name, defaults.video.fps) == (config.text.name, config.video.name, 10)


def test_model_root_defaults_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIFLOW_MODELS", raising=False)
    assert load_encoders_config(DATASETS / "features.yaml").text.path == "./models/flan-t5-large"


def test_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad_dtype = tmp_path / "fp16.yaml"
    bad_dtype.write_text("text: {dtype: fp16}\n")
    with pytest.raises(ConfigError, match=r"fp16.yaml: text.dtype"):
        load_encoders_config(bad_dtype)
    unset = tmp_path / "unset.yaml"
    unset.write_text("video:\n  path: ${NO_SUCH_MODELS_DIR}/clip\n")
    with pytest.raises(ConfigError, match=r"unset.yaml: video.path: environment variable NO_SUCH_MODELS_DIR"):
        load_encoders_config(unset)


def test_tasks_select_their_encoders() -> None:
    assert encoders_for_tasks(["tts"]) == {"speaker"}
    assert encoders_for_tasks(["t2a", "t2m", "se", "sr", "svs"]) == {"text"}
    assert encoders_for_tasks(["v2a", "tts", "t2a"]) == {"video", "speaker", "text"}
    with pytest.raises(ValueError, match="unknown task"):
        encoders_for_tasks(["asr"])


def test_load_encoders_loads_only_what_is_needed(tiny_text_dir: Path, tiny_video_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(
        f"text: {{name: tiny-t5, path: {tiny_text_dir}, dtype: bf16}}\n"
        f"video: {{name: tiny-clip, path: {tiny_video_dir}, fps: 10}}\n"
    )
    config = load_encoders_config(path)
    encoders = load_encoders(config, encoders_for_tasks(["t2a", "v2a"]))
    assert encoders.speaker is None
    assert encoders.text.identity.encoder_id == "tiny-t5" and encoders.text.identity.dtype == "bf16"
    assert encoders.video.identity.encoder_id == "tiny-clip@10fps/32px"
    assert set(encoders.identities()) == {"text", "video"}
    assert encoders.identities()["text"]["weights_hash"] == encoders.text.identity.weights_hash
    with pytest.raises(ConfigError, match="unknown encoder"):
        load_encoders(config, ["vae"])
