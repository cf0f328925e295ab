"""What "frozen" means for every encoder the backbone reads features from (VAE, Flan-T5, CLIP, speaker).

A frozen encoder is in eval mode, has no parameter that requires a gradient, and is identified by an
`EncoderIdentity`: its configured name, the sha256 of its weights, the dtype it runs in and the version
of the preprocessing in front of it. That identity is logged at start-up together with the output of a
fixed known input, and it is part of every feature shard's cache key, so a changed checkpoint or a
changed preprocessing step always leads to recomputation and an unchanged one never does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

log = logging.getLogger(__name__)

# Half precision is allowed only where the encoder is known to be stable in it; T5 overflows in fp16.
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class FrozenEncoderError(RuntimeError):
    """An encoder is missing its weights, is not frozen, or fails its known-input sanity check."""


@dataclass(frozen=True)
class EncoderIdentity:
    """Everything that decides an encoder's outputs; feature shards are recomputed when any of it changes."""

    encoder_id: str
    weights_hash: str
    dtype: str
    preprocessing_version: int

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


def weights_hash(module: nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes) in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        # bf16 has no numpy dtype: hash its raw 16-bit words.
        raw = value.view(torch.int16) if value.dtype == torch.bfloat16 else value
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()


def resolve_dtype(name: str, encoder_id: str, allowed: tuple[str, ...] = ("fp32", "bf16", "fp16")) -> torch.dtype:
    """Map a configured dtype name to torch, refusing the ones this encoder must not run in."""
    if name not in allowed:
        raise FrozenEncoderError(f"{encoder_id}: dtype {name!r} is not allowed; use one of {', '.join(allowed)}")
    return DTYPES[name]


def freeze(module: nn.Module) -> nn.Module:
    """Put `module` in eval mode and switch off gradients of all its parameters."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def check_frozen(module: nn.Module, encoder_id: str) -> None:
    """Raise if any submodule is in training mode or any parameter still requires a gradient."""
    training = [name or "<root>" for name, sub in module.named_modules() if sub.training]
    if training:
        raise FrozenEncoderError(f"{encoder_id}: not in eval mode (training: {', '.join(training[:5])})")
    trainable = [name for name, parameter in module.named_parameters() if parameter.requires_grad]
    if trainable:
        raise FrozenEncoderError(f"{encoder_id}: parameters still require gradients: {', '.join(trainable[:5])}")


def start_frozen(
    module: nn.Module,
    encoder_id: str,
    dtype: str,
    preprocessing_version: int,
    sanity: Callable[[], torch.Tensor],
) -> EncoderIdentity:
    """Check `module` is frozen, run its known-input `sanity` call, log the identity, and return it.

    `sanity` runs the encoder on a fixed input; its output must be finite and not all zero, which
    catches weights that were never loaded (e.g. a zero-initialised projection) or overflowed dtypes.
    """
    check_frozen(module, encoder_id)
    identity = EncoderIdentity(encoder_id, weights_hash(module), dtype, preprocessing_version)
    with torch.inference_mode():
        output = sanity().float()
    if not torch.isfinite(output).all():
        raise FrozenEncoderError(f"{encoder_id}: known-input sanity output is not finite (dtype {dtype})")
    if not output.abs().sum() > 0:
        raise FrozenEncoderError(f"{encoder_id}: known-input sanity output is all zeros")
    log.info(
        "frozen encoder %s: weights sha256 %s, dtype %s, preprocessing v%d, sanity mean %.6g std %.6g",
        encoder_id,
        identity.weights_hash[:16],
        dtype,
        preprocessing_version,
        output.mean().item(),
        output.std().item() if output.numel() > 1 else 0.0,
    )
    return identity
