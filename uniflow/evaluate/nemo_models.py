"""The paper's WER and SIM backbones: NVIDIA NeMo models restored from their ``.nemo`` files.

NeMo is not installed by uniflow (it is large and pins its own torch); where it is, the paper's Conformer-
Transducer XL (WER) and TitaNet-Large (SIM) load through here, pinned by the ``.nemo`` file's sha256.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

import torch

from uniflow.evaluate.backbones import BackboneSpec, backbone_card, check_pin, path_digest, require_path
from uniflow.evaluate.signal_metrics import MetricUnavailable


def restore_nemo_model(spec: BackboneSpec, metric: str, model_class: str, device: str = "cpu", **card: Any) -> tuple[Any, dict[str, Any]]:
    """``nemo.collections.asr.models.<model_class>`` restored from ``spec.path`` in eval mode, and its card.

    MetricUnavailable when NeMo or the file is missing; BackbonePinError when the file is not the pinned one."""
    try:
        nemo_asr = importlib.import_module("nemo.collections.asr")
    except ImportError as error:
        raise MetricUnavailable(
            f"{metric} with backbone {spec.name!r} needs NVIDIA NeMo, which is not installed "
            f'(pip install "nemo_toolkit[asr]"; uniflow does not install it): {error}'
        ) from error
    path = require_path(spec, metric)
    digest = path_digest(path)
    check_pin(spec, digest, metric)
    model = getattr(nemo_asr.models, model_class).restore_from(str(path), map_location=torch.device(device))
    model.eval()
    package = {"name": "nemo_toolkit", "version": importlib.metadata.version("nemo_toolkit")}
    return model, backbone_card(spec, digest, package=package, **card)
