"""Small pieces both simulators share: per-key seeds, length fitting, parameter records."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import Any, TypeVar

import numpy as np

ParamsT = TypeVar("ParamsT")


def key_seed(global_seed: int, key: str) -> int:
    """A 63-bit seed from the global seed and the key alone (independent of order and batch)."""
    digest = hashlib.sha256(f"{global_seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` cut or zero-padded at the end to ``length`` samples (resamplers and codecs round lengths)."""
    if len(x) == length:
        return x
    if len(x) > length:
        return x[:length]
    return np.concatenate((x, np.zeros(length - len(x), dtype=x.dtype)))


def params_values(cls: type[ParamsT], record: dict[str, Any], label: str) -> dict[str, Any]:
    """The dataclass fields of ``cls`` taken from a JSON record; a missing field is an error naming the key."""
    names = {f.name for f in fields(cls)}
    missing = names - record.keys()
    if missing:
        raise ValueError(f"{label} parameters {record.get('key', '?')!r} lack {sorted(missing)}")
    return {name: record[name] for name in names}
