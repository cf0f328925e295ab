"""The `save_pretrained` / `from_pretrained` directory format every uniflow model uses.

A directory holds `config.json` (the model's pydantic config) and `model.safetensors` (its state dict).
Loading is strict: a missing file, invalid JSON, a config that fails validation, an unreadable
safetensors file or weights that do not fit the config raise `PretrainedLoadError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file
from torch import nn

from uniflow.config import ConfigError, validate_data

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class PretrainedLoadError(ValueError):
    """A pretrained directory is missing a file or its weights do not fit the config beside them."""


def save_config_and_weights(model: nn.Module, config: BaseModel, directory: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    return directory


def read_config(directory: str | Path, config_type: type[ConfigT], what: str) -> ConfigT:
    """The validated config of a pretrained directory; `what` names the model in the missing-file error."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise PretrainedLoadError(f"{path}: file not found ({what} needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PretrainedLoadError(f"{config_path}: invalid JSON: {exc}") from None
    try:
        return validate_data(data, config_type, str(config_path))
    except ConfigError as exc:
        raise PretrainedLoadError(str(exc)) from None


def load_weights(model: nn.Module, directory: str | Path, map_location: str | torch.device = "cpu") -> None:
    """Load `model.safetensors` into `model` strictly, listing every missing, unexpected or misshapen tensor."""
    weights_path = Path(directory) / WEIGHTS_FILE
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise PretrainedLoadError(f"{weights_path}: cannot read safetensors: {exc}") from None
    problems = state_mismatches(model.state_dict(), state)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PretrainedLoadError(f"{weights_path}: weights do not match {CONFIG_FILE}: {listed}")
    model.load_state_dict(state, strict=True)


def state_mismatches(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape differences, one line each."""
    problems = [f"missing {name}" for name in expected if name not in found]
    problems += [f"unexpected {name}" for name in found if name not in expected]
    problems += [
        f"{name} has shape {tuple(found[name].shape)}, expected {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    return problems
