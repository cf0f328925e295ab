"""Fréchet distance (FD) between the embeddings of reference and generated audio (paper: T2A and T2M).

Each set of embeddings is summarised by a Gaussian (mean and unbiased covariance) and

    FD = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)).

The paper follows AudioLDM 2 and embeds with PANNs CNN14 at 16 kHz (the 2048-d embedding, see
:mod:`uniflow.evaluate.panns`); the audio tower of the CLAP model of :mod:`uniflow.evaluate.clap_score` is the
pluggable alternative. The number depends on the embedder, its weights, the sample rate and the set sizes,
so all of them go into the metric card.

The matrix square root is where FD implementations silently differ. Here it is ``scipy.linalg.sqrtm`` of
the product; if that root is not finite or does not square back to the product (the product is singular
when a set has fewer items than dimensions), ``eps`` is added to both covariance diagonals and the root is
taken again, and the card says so. A root's imaginary part is numerical noise and is dropped when it is
below ``max_imaginary`` on the diagonal (the part that enters the trace); a larger one is an error.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy
import scipy.linalg
import torch

from uniflow.config import StrictModel
from uniflow.evaluate import clap_score, panns
from uniflow.evaluate.backbones import BackboneSpec, backbone_card, check_pin, module_digest, require_path
from uniflow.evaluate.cards import AudioItem, mono_at_rate, own_implementation
from uniflow.evaluate.signal_metrics import Score
from uniflow.hashing import file_digest

METRIC = "fd"
# How closely the square root must square back to the covariance product (relative Frobenius norm).
SQRTM_TOLERANCE = 1e-6



class FrechetSettings(StrictModel):
    """How FD is computed; the defaults are the paper's (AudioLDM 2's) configuration.

    ``backbone`` for the default embedder is the public PANNs checkpoint ``Cnn14_16k_mAP=0.438.pth``
    (download: https://zenodo.org/records/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1, Zenodo
    record 3987831, md5 362fc5ff18f1d6ad2f6d464b45893f2c), placed at ``models/eval/`` under the working
    directory. ``backbone.sha256`` pins the loaded weights (``backbones.module_digest``). With
    ``embedder: clap-audio`` the backbone is a CLAP model directory as in
    :class:`uniflow.evaluate.clap_score.ClapScoreSettings`, and ``architecture`` is not used.
    """

    embedder: Literal["panns-cnn14", "clap-audio"] = "panns-cnn14"
    backbone: BackboneSpec = BackboneSpec(name="panns-cnn14-16k", path=f"models/eval/{panns.CHECKPOINT_NAME}")
    architecture: Literal["cnn14-16k", "cnn14-tiny"] = "cnn14-16k"
    device: str = "cpu"
    eps: float = 1e-6
    max_imaginary: float = 1e-3


@dataclass(frozen=True)
class Embedder:
    """A loaded embedding network: one vector per clip, at its own sample rate."""

    kind: str
    sample_rate: int
    dim: int
    card: dict[str, Any]  # backbone_card: name, path, weights digest, pinned, architecture details
    settings: FrechetSettings
    embed_clip: Callable[[np.ndarray], np.ndarray]  # mono float32 at sample_rate -> (dim,)
    min_samples: int = 1


def load_embedder(settings: FrechetSettings) -> Embedder:
    """Load the configured embedder once; raises MetricUnavailable when its weights are missing and
    BackbonePinError when they are not the pinned ones."""
    path = require_path(settings.backbone, METRIC)
    if settings.embedder == "clap-audio":
        return _clap_audio_embedder(settings, path)
    return _panns_embedder(settings, path)


def _panns_embedder(settings: FrechetSettings, path: Path) -> Embedder:
    if not path.is_file():
        raise ValueError(f"{METRIC}: the panns-cnn14 embedder needs the checkpoint file, got directory {path}")
    config = panns.CONFIGS[settings.architecture]
    model = panns.load_cnn14(path, config, settings.device)
    digest = module_digest(model)
    check_pin(settings.backbone, digest, METRIC)
    card = backbone_card(
        settings.backbone,
        digest,
        architecture=settings.architecture,
        config=config.as_dict(),
        output="embedding: ReLU(fc1) after max+mean pooling over time",
        checkpoint_md5=file_digest(path, "md5"),
    )

    def embed_clip(audio: np.ndarray) -> np.ndarray:
        waveform = torch.from_numpy(audio)[None].to(settings.device)
        with torch.inference_mode():
            return model(waveform).embedding[0].double().cpu().numpy()

    return Embedder("panns-cnn14", config.sample_rate, config.embedding_dim, card, settings, embed_clip, config.min_samples)


def _clap_audio_embedder(settings: FrechetSettings, path: Path) -> Embedder:
    if not path.is_dir():
        raise ValueError(f"{METRIC}: the clap-audio embedder needs a CLAP model directory, got file {path}")
    backbone = clap_score.load_clap(clap_score.ClapScoreSettings(backbone=settings.backbone, device=settings.device))
    card = {**backbone.card, "output": "L2-normalised audio embedding (get_audio_features)"}

    def embed_clip(audio: np.ndarray) -> np.ndarray:
        return backbone.audio_embeddings([(audio, backbone.sample_rate)])[0]

    return Embedder("clap-audio", backbone.sample_rate, backbone.dim, card, settings, embed_clip)




def embed(embedder: Embedder, audios: Sequence[AudioItem]) -> tuple[np.ndarray, int]:
    """One embedding per clip, shape (number of clips, embedder.dim), float64, and how many clips were padded.

    A clip shorter than the embedder's receptive field is padded with trailing silence to it: a generated
    clip may legitimately be that short (NTA lengths are predicted), and dropping it would bias the set."""
    rows, padded = [], 0
    for index, (audio, sample_rate) in enumerate(audios):
        clip = mono_at_rate(audio, sample_rate, embedder.sample_rate, f"clip {index}")
        if len(clip) < embedder.min_samples:
            clip = np.pad(clip, (0, embedder.min_samples - len(clip)))
            padded += 1
        rows.append(embedder.embed_clip(clip))
    return (np.stack(rows) if rows else np.zeros((0, embedder.dim))), padded


def frechet_distance(
    reference_embeddings: np.ndarray,
    generated_embeddings: np.ndarray,
    *,
    eps: float = 1e-6,
    max_imaginary: float = 1e-3,
) -> Score:
    """FD between two embedding sets of shape (items, dim), with the statistics that went into it."""
    reference = _embedding_matrix(reference_embeddings, "reference")
    generated = _embedding_matrix(generated_embeddings, "generated")
    if reference.shape[1] != generated.shape[1]:
        raise ValueError(f"embedding dimensions differ: reference {reference.shape[1]}, generated {generated.shape[1]}")
    mean_difference = reference.mean(axis=0) - generated.mean(axis=0)
    reference_cov = np.atleast_2d(np.cov(reference, rowvar=False))
    generated_cov = np.atleast_2d(np.cov(generated, rowvar=False))
    root, offset_used, discarded_imaginary = _product_sqrtm(reference_cov, generated_cov, eps, max_imaginary)
    trace_term = np.trace(reference_cov) + np.trace(generated_cov) - 2.0 * np.trace(root)
    value = float(mean_difference @ mean_difference + trace_term)
    card = {
        "metric": METRIC,
        "implementation": own_implementation(__name__, __file__, numpy=np.__version__, scipy=scipy.__version__),
        "n_reference": int(reference.shape[0]),
        "n_generated": int(generated.shape[0]),
        "embedding_dim": int(reference.shape[1]),
        "settings": {
            "statistics": "mean and unbiased covariance (N - 1) per set, float64",
            "sqrtm": "scipy.linalg.sqrtm of S_ref @ S_gen",
            "sqrtm_tolerance": SQRTM_TOLERANCE,
            "eps": eps,
            "eps_offset_used": offset_used,
            "max_imaginary": max_imaginary,
            "discarded_imaginary": discarded_imaginary,
        },
    }
    return Score(value, card)


def fd_score(embedder: Embedder, reference_audios: Sequence[AudioItem], generated_audios: Sequence[AudioItem]) -> Score:
    """FD between reference and generated clips (lists of (mono audio, sample rate)) under ``embedder``."""
    _require_items(len(reference_audios), "reference")
    _require_items(len(generated_audios), "generated")
    reference, reference_padded = embed(embedder, reference_audios)
    generated, generated_padded = embed(embedder, generated_audios)
    score = frechet_distance(reference, generated, eps=embedder.settings.eps, max_imaginary=embedder.settings.max_imaginary)
    input_rates = sorted({int(rate) for _, rate in (*reference_audios, *generated_audios)})
    card = {
        **score.card,
        "embedder": embedder.kind,
        "backbone": embedder.card,
        "sample_rate": embedder.sample_rate,
        "input_sample_rates": input_rates,
        "padded_to_min_seconds": {"min_seconds": embedder.min_samples / embedder.sample_rate,
                                  "reference": reference_padded, "generated": generated_padded},
    }
    if any(rate != embedder.sample_rate for rate in input_rates):
        card["resampler"] = {"package": "soxr", "version": importlib.metadata.version("soxr"), "quality": "VHQ"}
    return Score(score.value, card)


def _require_items(count: int, side: str) -> None:
    if count < 2:
        raise ValueError(f"FD needs at least 2 {side} items to estimate a covariance, got {count}")


def _embedding_matrix(embeddings: np.ndarray, side: str) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{side} embeddings must be a 2-D array (items, dim), got shape {matrix.shape}")
    _require_items(matrix.shape[0], side)
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{side} embeddings hold NaN or infinite values")
    return matrix


def _product_sqrtm(first: np.ndarray, second: np.ndarray, eps: float, max_imaginary: float) -> tuple[np.ndarray, bool, float]:
    """Square root of ``first @ second``: (root, whether the eps offset was needed, imaginary part dropped)."""
    root = _checked_sqrtm(first @ second)
    offset_used = root is None
    if root is None:
        offset = eps * np.eye(first.shape[0])
        root = _checked_sqrtm((first + offset) @ (second + offset))
        if root is None:
            raise ValueError(f"FD: no accurate square root of the covariance product even with eps={eps} added to the diagonals")
    discarded = 0.0
    if np.iscomplexobj(root):
        discarded = float(np.max(np.abs(np.diagonal(root).imag)))
        if discarded > max_imaginary:
            raise ValueError(
                f"FD: the covariance product's square root has an imaginary diagonal part of {discarded:.3g} "
                f"(allowed {max_imaginary}); the embeddings are degenerate or not from the same network"
            )
        root = root.real
    return root, offset_used, discarded


def _checked_sqrtm(product: np.ndarray) -> np.ndarray | None:
    """scipy's root of ``product``, or None when it is not finite or does not square back to ``product``."""
    with warnings.catch_warnings():
        # Singular products make scipy warn; the residual below decides whether the root is usable.
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(product)
    if not np.all(np.isfinite(root)):
        return None
    scale = max(float(np.linalg.norm(product)), np.finfo(np.float64).tiny)
    if float(np.linalg.norm(root @ root - product)) / scale > SQRTM_TOLERANCE:
        return None
    return root

