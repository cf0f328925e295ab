"""ImageBind score: a missing package or checkpoint is reported by name; the cosine x100 has known answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from uniflow.evaluate.backbones import BackboneSpec
from uniflow.evaluate.imagebind_score import CHECKPOINT_URL, ImageBindSettings, cosine_x100, load_imagebind
from uniflow.evaluate.signal_metrics import MetricUnavailable

imagebind_missing = pytest.mark.skipif(
    importlib.util.find_spec("imagebind") is not None, reason="the imagebind package is installed here"
)


@imagebind_missing
def test_missing_checkpoint_and_package_are_both_named(tmp_path: Path) -> None:
    checkpoint = tmp_path / "imagebind_huge.pth"
    settings = ImageBindSettings(backbone=BackboneSpec(name="imagebind_huge", path=str(checkpoint)))
    with pytest.raises(MetricUnavailable) as raised:
        load_imagebind(settings)
    message = str(raised.value)
    assert f"not found at {checkpoint}" in message
    assert CHECKPOINT_URL in message
    assert "'imagebind' package cannot be imported" in message
    assert "pip install git+https://github.com/facebookresearch/ImageBind" in message


@imagebind_missing
def test_present_checkpoint_leaves_only_the_package(tmp_path: Path) -> None:
    checkpoint = tmp_path / "imagebind_huge.pth"
    checkpoint.write_bytes(b"placeholder weights")
    settings = ImageBindSettings(backbone=BackboneSpec(name="imagebind_huge", path=str(checkpoint)))
    with pytest.raises(MetricUnavailable) as raised:
        load_imagebind(settings)
    message = str(raised.value)
    assert "'imagebind' package cannot be imported" in message
    assert "not found" not in message and CHECKPOINT_URL not in message


def test_unset_checkpoint_path_is_named() -> None:
    settings = ImageBindSettings(backbone=BackboneSpec(name="imagebind_huge", path=None))
    with pytest.raises(MetricUnavailable, match="no local weights configured for backbone 'imagebind_huge'"):
        load_imagebind(settings)


def test_default_checkpoint_location() -> None:
    assert ImageBindSettings().backbone.path == "models/eval/imagebind/imagebind_huge.pth"


def test_cosine_x100_known_answers() -> None:
    vision = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [3.0, 4.0]])
    audio = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0], [4.0, 3.0]])
    # Same direction, opposite, orthogonal, and cos = 24/25.
    np.testing.assert_allclose(cosine_x100(vision, audio), [100.0, -100.0, 0.0, 96.0])
    with pytest.raises(ValueError, match="all zeros"):
        cosine_x100(np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="one shape"):
        cosine_x100(np.ones((2, 3)), np.ones((2, 4)))
