"""Speaker similarity (TTS, SIM): cosine similarity of speaker embeddings of generated and reference speech.

For each ``(generated, reference)`` pair both clips are embedded by one speaker encoder and the cosine
of the two embeddings is taken (1 for the same voice print, near 0 for unrelated ones); SIM is the
mean over pairs. The two clips of a pair need not have the same length or text.

Encoders (``SpeakerSimilaritySettings.encoder``):

- ``resemblyzer`` (default here): resemblyzer's GE2E voice encoder (3-layer LSTM over 40 mel bands at
  16 kHz, 256-d), whose weights ship inside its wheel; loaded through
  :class:`uniflow.features.speaker.ResemblyzerSpeakerEncoder`, which also applies resemblyzer's own
  preprocessing (volume normalization, long silences trimmed). Pinned by the digest of its weights.
- ``transformers-xvector``: an x-vector head from a local ``save_pretrained`` directory, loaded with
  ``AutoModelForAudioXVector`` and ``AutoFeatureExtractor`` (e.g. ``microsoft/wavlm-base-plus-sv``).
  Pinned by the digest of its weights.
- ``nemo``: the paper's encoder, NVIDIA NeMo TitaNet-Large
  (https://huggingface.co/nvidia/speakerverification_en_titanet_large), from its ``.nemo`` file. Needs
  the NeMo toolkit (``pip install "nemo_toolkit[asr]"``), which uniflow does not install.

Numbers from different encoders are not comparable (each has its own scale); the card names the one used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from uniflow.evaluate.backbones import BackboneChoice, BackboneSpec, backbone_card, check_pin, module_digest, require_path
from uniflow.evaluate.cards import mono_at_rate, own_implementation
from uniflow.evaluate.nemo_models import restore_nemo_model
from uniflow.evaluate.signal_metrics import MetricUnavailable, Score

EncoderName = Literal["resemblyzer", "transformers-xvector", "nemo"]
SPEAKER_SAMPLE_RATE = 16000
METRIC = "SIM"

# The TitaNet pin is the sha256 Hugging Face publishes for speakerverification_en_titanet_large.nemo
# (101,621,760 bytes, uploaded in the model's PR #3, commit fa8ee5d; the earlier 94.8 MB file had
# 296e0e1d542e7059f99f8bcddcec16edb254a8e7e71b064f24b7cefe9e699c2a). microsoft/wavlm-base-plus-sv
# publishes no checksum we could find: that default is unpinned.
DEFAULT_BACKBONES: dict[str, BackboneSpec] = {
    "resemblyzer": BackboneSpec(name="resemblyzer/voice-encoder", path=None),
    "transformers-xvector": BackboneSpec(name="microsoft/wavlm-base-plus-sv", path="models/eval/wavlm-base-plus-sv"),
    "nemo": BackboneSpec(
        name="nvidia/speakerverification_en_titanet_large",
        path="models/eval/speakerverification_en_titanet_large.nemo",
        sha256="e838520693f269e7984f55bc8eb3c2d60ccf246bf4b896d4be9bcabe3e4b0fe3",
    ),
}


class SpeakerSimilaritySettings(BackboneChoice):
    """Which speaker encoder embeds the clips, and where its weights are.

    ``backbone`` defaults to ``DEFAULT_BACKBONES[encoder]``: for ``resemblyzer`` a ``path`` of None means
    the ``pretrained.pt`` inside the resemblyzer wheel (another ``path`` is such a file, or a directory
    holding it); for ``transformers-xvector`` a ``save_pretrained`` directory (``huggingface-cli download
    microsoft/wavlm-base-plus-sv --local-dir models/eval/wavlm-base-plus-sv``); for ``nemo`` the ``.nemo``
    file (download ``speakerverification_en_titanet_large.nemo`` from the model page above).
    """

    encoder: EncoderName = "resemblyzer"
    device: str = "cpu"

    CHOICE_FIELD = "encoder"
    DEFAULT_BACKBONES = DEFAULT_BACKBONES


class SpeakerBackbone(Protocol):
    """A loaded speaker encoder: what it is (``card``), the rate it listens at, and an embedder."""

    card: dict[str, Any]
    sample_rate: int

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Unit-norm embedding of mono float32 audio at ``sample_rate``."""
        ...


def load_speaker_backbone(settings: SpeakerSimilaritySettings) -> SpeakerBackbone:
    """The configured speaker encoder, loaded once for many clips.

    Raises MetricUnavailable when its package or weights are missing and BackbonePinError when the
    weights are not the pinned ones.
    """
    if settings.encoder == "resemblyzer":
        return ResemblyzerBackbone.load(settings.backbone, settings.device)
    if settings.encoder == "transformers-xvector":
        return XVectorBackbone.load(settings.backbone, settings.device)
    return TitaNetBackbone.load(settings.backbone, settings.device)


def embed(backbone: SpeakerBackbone, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Unit-norm float32 speaker embedding of mono float audio at ``sample_rate`` (resampled with soxr)."""
    return backbone.embed(mono_at_rate(audio, sample_rate, backbone.sample_rate))


def cosine_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Cosine of the angle between two embeddings (-1..1)."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    norms = float(np.linalg.norm(first) * np.linalg.norm(second))
    if norms == 0.0:
        raise ValueError("cosine similarity of a zero embedding is undefined")
    return float(np.dot(first, second) / norms)


def speaker_similarity(backbone: SpeakerBackbone, pairs: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> Score:
    """Mean cosine similarity over ``(generated, reference, sample_rate)`` pairs, with its card."""
    if not pairs:
        raise ValueError("speaker similarity needs at least one pair")
    # Test sets often pair many generated clips with one reference prompt: embed each array object once.
    # Keys are object ids, valid because `pairs` keeps every array alive during the call.
    embeddings: dict[tuple[int, int], np.ndarray] = {}

    def embedding_of(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        key = (id(audio), int(sample_rate))
        if key not in embeddings:
            embeddings[key] = embed(backbone, audio, sample_rate)
        return embeddings[key]

    values = [
        cosine_similarity(embedding_of(generated, sample_rate), embedding_of(reference, sample_rate))
        for generated, reference, sample_rate in pairs
    ]
    rates = sorted({int(sample_rate) for _, _, sample_rate in pairs})
    card: dict[str, Any] = {
        "metric": "speaker_similarity",
        "implementation": own_implementation(__name__, __file__),
        "backbone": backbone.card,
        "sample_rate": backbone.sample_rate,
        "input_sample_rate": rates[0] if len(rates) == 1 else rates,
        "settings": {
            "similarity": "cosine of the generated and the reference clip's embeddings",
            "aggregation": "mean over pairs",
        },
        "pairs": len(values),
        "std": float(np.std(values)),
        "per_pair": values,
    }
    if rates != [backbone.sample_rate]:
        card["resampler"] = {"package": "soxr", "version": importlib.metadata.version("soxr"), "quality": "VHQ"}
    return Score(float(np.mean(values)), card)


class ResemblyzerBackbone:
    """resemblyzer's voice encoder via the feature stage's loader (same weights, same preprocessing)."""

    sample_rate = SPEAKER_SAMPLE_RATE

    def __init__(self, encoder: Any, card: dict[str, Any]) -> None:
        self.encoder = encoder
        self.card = card

    @classmethod
    def load(cls, spec: BackboneSpec, device: str = "cpu") -> ResemblyzerBackbone:
        from uniflow.features import speaker

        package = importlib.util.find_spec("resemblyzer")
        if package is None or package.origin is None:
            raise MetricUnavailable(f"{METRIC} with encoder 'resemblyzer' needs pip install resemblyzer==0.1.4")
        if spec.path is None:
            weights = Path(package.origin).resolve().parent / "pretrained.pt"
            if not weights.is_file():
                raise MetricUnavailable(f"{METRIC}: the resemblyzer package has no pretrained.pt at {weights}")
        else:
            weights = require_path(spec, METRIC)
        encoder = speaker.ResemblyzerSpeakerEncoder.load(weights, device)
        digest = encoder.identity.weights_hash  # the same hash as backbones.module_digest of its network
        check_pin(spec, digest, METRIC)
        card = backbone_card(
            spec,
            digest,
            encoder="resemblyzer",
            package={"name": "resemblyzer", "version": importlib.metadata.version("resemblyzer")},
            embedding_dim=speaker.SPEAKER_DIM,
            preprocessing=f"uniflow.features.speaker v{speaker.PREPROCESSING_VERSION}: volume normalized "
            "(increase only), long silences trimmed, partial utterances averaged",
        )
        return cls(encoder, card)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.encoder.embed(audio, self.sample_rate)


class XVectorBackbone:
    """An ``AutoModelForAudioXVector`` model and its feature extractor from a local directory."""

    def __init__(self, model: torch.nn.Module, feature_extractor: Any, card: dict[str, Any], device: torch.device) -> None:
        self.model = model
        self.feature_extractor = feature_extractor
        self.card = card
        self.device = device
        self.sample_rate = int(feature_extractor.sampling_rate)

    @classmethod
    def load(cls, spec: BackboneSpec, device: str = "cpu") -> XVectorBackbone:
        path = require_path(spec, METRIC)
        from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

        try:
            feature_extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
            model = AutoModelForAudioXVector.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise MetricUnavailable(f"{METRIC}: {path} is not a usable x-vector model directory: {error}") from error
        model.eval()
        digest = module_digest(model)
        check_pin(spec, digest, METRIC)
        torch_device = torch.device(device)
        card = backbone_card(
            spec,
            digest,
            encoder="transformers-xvector",
            architecture=type(model).__name__,
            package={"name": "transformers", "version": importlib.metadata.version("transformers")},
            embedding_dim=int(model.config.xvector_output_dim),
        )
        return cls(model.to(torch_device), feature_extractor, card, torch_device)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        inputs = self.feature_extractor(audio, sampling_rate=self.sample_rate, return_tensors="pt")
        values = inputs["input_values"].to(self.device)
        mask = inputs.get("attention_mask")
        with torch.inference_mode():
            output = self.model(values, attention_mask=None if mask is None else mask.to(self.device))
        return _unit(output.embeddings[0].float().cpu().numpy())


class TitaNetBackbone:
    """NeMo's speaker model restored from its ``.nemo`` file (the paper's TitaNet-Large)."""

    sample_rate = SPEAKER_SAMPLE_RATE

    def __init__(self, model: Any, card: dict[str, Any]) -> None:
        self.model = model
        self.card = card

    @classmethod
    def load(cls, spec: BackboneSpec, device: str = "cpu") -> TitaNetBackbone:
        return cls(*restore_nemo_model(spec, METRIC, "EncDecSpeakerLabelModel", device, encoder="nemo"))

    def embed(self, audio: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            embedding, _logits = self.model.infer_segment(audio)
        return _unit(embedding[0].float().cpu().numpy())


def _unit(embedding: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(embedding)):
        raise ValueError("the speaker encoder returned a non-finite embedding")
    norm = float(np.linalg.norm(embedding))
    if norm == 0.0:
        raise ValueError("the speaker encoder returned a zero embedding")
    return (embedding / norm).astype(np.float32)

