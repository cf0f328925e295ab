"""What every metric card says about the code that computed it, and the checks every metric input passes.

A score computed by our own code is pinned by that code's sha256 (and the versions of the libraries it relies
on); a score computed by a package is pinned by the package's version. Inputs are checked the same way by every
metric: mono, non-empty, finite, resampled with soxr (VHQ) to the rate the metric runs at.
"""

from __future__ import annotations

import functools
import importlib.metadata

import numpy as np
import soxr

from uniflow.hashing import sha256_file

AudioItem = tuple[np.ndarray, int]  # mono audio and its sample rate


@functools.cache
def own_implementation(module: str, path: str, **details: str) -> dict[str, str]:
    """The card of a computation that is ours: uniflow's version, the module and its source digest, plus
    ``details`` (library versions, digests of helper modules)."""
    return {
        "package": "uniflow",
        "version": importlib.metadata.version("uniflow"),
        "module": module,
        "sha256": sha256_file(path),
        **details,
    }


def package_implementation(package: str, **details: str) -> dict[str, str]:
    """The card of a computation done by an installed package: its name and version."""
    return {"package": package, "version": importlib.metadata.version(package), **details}


def checked_mono(audio: np.ndarray, label: str = "audio") -> np.ndarray:
    """``audio`` as float64 after checking it is mono, non-empty and finite (the error names ``label``)."""
    array = np.asarray(audio, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{label} must be mono (1-D), got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{label} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{label} holds NaN or infinite samples")
    return array


def mono_at_rate(audio: np.ndarray, sample_rate: int, target_rate: int, label: str = "audio") -> np.ndarray:
    """A finite, non-empty mono clip as float32 at ``target_rate`` (soxr VHQ when the rates differ)."""
    array = checked_mono(audio, label)
    if sample_rate <= 0:
        raise ValueError(f"{label}: sample rate must be positive, got {sample_rate}")
    if sample_rate != target_rate:
        array = soxr.resample(array, sample_rate, target_rate, quality="VHQ")
    return array.astype(np.float32)
