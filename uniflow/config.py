"""Typed configuration loaded from YAML, with errors that name the file, the field and the expectation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is missing, unparsable or does not match its schema."""


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _field_path(location: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<top level>"


def format_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem: `file: field: what was expected (got ...)`."""
    lines = [f"{source}: {error.error_count()} invalid field(s)"]
    for problem in error.errors(include_url=False):
        got = problem.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {source}: {_field_path(problem['loc'])}: {problem['msg']}{got_text}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, naming the file (and line) when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None


def validate_data(data: Any, model: type[ModelT], source: str) -> ModelT:
    """Validate already-parsed data against `model`, naming `source` in every error."""
    if data is None:
        raise ConfigError(f"{source}: is empty; expected a mapping for {model.__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_yaml(path: str | Path, model: type[ModelT]) -> ModelT:
    """Load `path` and validate it as `model`."""
    return validate_data(read_yaml(path), model, str(path))
