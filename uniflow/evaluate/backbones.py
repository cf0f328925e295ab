"""Metric backbones: the model a metric runs on, found on local disk and pinned by checksum.

Model-based metrics (Fréchet distance, CLAP score, WER, speaker similarity, ImageBind score, sync offset)
are only comparable between runs when the backbone is exactly the same. A :class:`BackboneSpec` names it,
says where its weights are, and may pin their sha256; the digest actually used is written into every
metric card. A missing backbone is not an error of the evaluation: the metric is reported as
:class:`NotComputed` with the reason. A backbone whose weights do not match the pin is an error, since
a number from other weights would be silently incomparable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import model_validator
from torch import nn

from uniflow.config import StrictModel
from uniflow.evaluate.signal_metrics import MetricUnavailable
from uniflow.features.frozen import weights_hash
from uniflow.hashing import sha256_file
from uniflow.storage import expand_env


class BackboneSpec(StrictModel):
    """One metric backbone: a name for the card, where its weights are, and optionally their pinned sha256."""

    name: str
    path: str | None = None  # a local file or directory; None where the weights ship inside a package
    sha256: str | None = None  # the pin: weights_hash of the loaded module, or the digest of `path`


class BackboneChoice(StrictModel):
    """Settings that choose one of several backbones by name and default its ``backbone`` to that choice's.

    A subclass names the choosing field (``CHOICE_FIELD``, a field with a default) and the default spec of
    every choice (``DEFAULT_BACKBONES``); a ``backbone`` given in the settings wins.
    """

    CHOICE_FIELD: ClassVar[str]
    DEFAULT_BACKBONES: ClassVar[dict[str, BackboneSpec]]

    backbone: BackboneSpec

    @model_validator(mode="before")
    @classmethod
    def _default_backbone(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("backbone") is None:
            choice = data.get(cls.CHOICE_FIELD, cls.model_fields[cls.CHOICE_FIELD].default)
            return {**data, "backbone": cls.DEFAULT_BACKBONES[choice]}
        return data


class NotComputed(NamedTuple):
    """A metric that could not run here, and why (shown in the table in place of a number)."""

    metric: str
    reason: str


class BackbonePinError(ValueError):
    """A backbone's weights are not the pinned ones."""


def require_path(spec: BackboneSpec, metric: str) -> Path:
    """The backbone's local weights, or :class:`MetricUnavailable` saying what is missing and where."""
    if spec.path is None:
        raise MetricUnavailable(f"{metric}: no local weights configured for backbone {spec.name!r} (set its path)")
    # ${VAR} and ${VAR:-default} as in storage profiles, so a config can follow UNIFLOW_DATA.
    path = Path(expand_env(spec.path, f"backbone {spec.name!r} of {metric}")).expanduser()
    if not path.exists():
        raise MetricUnavailable(f"{metric}: weights of backbone {spec.name!r} not found at {path}")
    return path


def module_digest(module: nn.Module) -> str:
    """sha256 over the module's parameters and buffers: the same for the same weights in any file format."""
    return weights_hash(module)


def path_digest(path: Path) -> str:
    """sha256 of a weights file, or of a directory's files (relative names and contents, in name order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def check_pin(spec: BackboneSpec, digest: str, metric: str) -> None:
    """Refuse weights that differ from the pinned digest, naming both digests and where the weights are."""
    if spec.sha256 is not None and spec.sha256.lower() != digest:
        raise BackbonePinError(
            f"{metric}: backbone {spec.name!r} at {spec.path or '(package)'} has weights sha256 {digest}, "
            f"but the evaluation config pins {spec.sha256}; scores from other weights are not comparable"
        )


def backbone_card(spec: BackboneSpec, digest: str, **details: Any) -> dict[str, Any]:
    """What a metric card says about its backbone: name, location, the digest used, and whether it was pinned."""
    return {"name": spec.name, "path": spec.path, "sha256": digest, "pinned": spec.sha256 is not None, **details}
