"""CLAP score: how well generated audio matches its text prompt (paper: T2A and T2M, reference-free).

For every (caption, generated clip) pair the caption's CLAP text embedding and the clip's CLAP audio
embedding are compared by cosine similarity, and the score is the mean over pairs, as in AudioLDM and
Make-An-Audio. It is a plain cosine in [-1, 1], NOT multiplied by 100: the paper's Table 1 reports 0.476
for T2A and 0.241 for T2M on that scale.

Backbone: the transformers port of LAION CLAP (``ClapModel`` + ``ClapProcessor``), by default
``laion/clap-htsat-unfused`` (HTSAT audio tower, RoBERTa text tower) downloaded once with
``huggingface-cli download laion/clap-htsat-unfused --local-dir models/eval/clap-htsat-unfused`` and read
from that directory with ``local_files_only=True``. (AudioLDM's own ``audioldm_eval`` computes its CLAP
score with the laion_clap checkpoint ``music_speech_audioset_epoch_15_esc_89.98.pt``, HTSAT-base, from
https://huggingface.co/lukewys/laion_clap; any transformers-format CLAP directory can be configured.)

Audio is resampled with soxr to the feature extractor's rate (48 kHz). A clip longer than the extractor's
window (10 s) is cut to its first 10 s here, because the extractor would otherwise take a random crop;
shorter clips are padded the extractor's way (``repeatpad`` for the unfused model). Each clip is
featurised on its own, so a clip's embedding does not depend on the other clips in the batch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uniflow.config import StrictModel
from uniflow.evaluate.backbones import BackboneSpec, backbone_card, check_pin, module_digest, require_path
from uniflow.evaluate.cards import AudioItem, mono_at_rate, package_implementation
from uniflow.evaluate.signal_metrics import MetricUnavailable, Score
from uniflow.hashing import sha256_file

METRIC = "clap_score"
TRANSFORMERS_PIN = "5.23.0"
# Files that hold weights; everything else in the model directory is configuration of the preprocessing.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


class ClapScoreSettings(StrictModel):
    """Which CLAP model scores text-audio agreement and how it runs.

    The default directory is filled by ``huggingface-cli download laion/clap-htsat-unfused --local-dir
    models/eval/clap-htsat-unfused``. ``backbone.sha256`` pins the loaded weights
    (``backbones.module_digest``); no checksum of that repository's files is published besides the Hub's
    own LFS hashes.
    """

    backbone: BackboneSpec = BackboneSpec(name="clap-htsat-unfused", path="models/eval/clap-htsat-unfused")
    device: str = "cpu"
    batch_size: int = 16


@dataclass
class ClapBackbone:
    """A loaded CLAP model and processor with the card that identifies them."""

    model: Any  # transformers.ClapModel
    processor: Any  # transformers.ClapProcessor
    settings: ClapScoreSettings
    card: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @property
    def max_samples(self) -> int:
        return int(self.processor.feature_extractor.nb_max_samples)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, shape (len(texts), dim)."""
        rows = []
        for start in range(0, len(texts), self.settings.batch_size):
            batch = list(texts[start : start + self.settings.batch_size])
            inputs = self.processor.tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                output = self.model.get_text_features(**inputs.to(self.settings.device))
            rows.append(output.pooler_output.double().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.dim))

    def audio_embeddings(self, audios: Sequence[AudioItem]) -> np.ndarray:
        """L2-normalised audio embeddings of (mono clip, sample rate) pairs, shape (len(audios), dim)."""
        extractor = self.processor.feature_extractor
        rows = []
        # Features are made one batch at a time: a fused 10 s clip's features take about 1 MB, too much to hold
        # for a whole test set.
        for start in range(0, len(audios), self.settings.batch_size):
            batch = []
            for index in range(start, min(start + self.settings.batch_size, len(audios))):
                audio, sample_rate = audios[index]
                clip = mono_at_rate(audio, sample_rate, self.sample_rate, f"clip {index}")[: self.max_samples]
                # One clip per call: in "fusion" mode the extractor flags a random clip of the batch as longer.
                batch.append(extractor(clip, sampling_rate=self.sample_rate, return_tensors="pt"))
            input_features = torch.cat([item["input_features"] for item in batch]).to(self.settings.device)
            is_longer = torch.cat([item["is_longer"] for item in batch]).to(self.settings.device)
            with torch.inference_mode():
                output = self.model.get_audio_features(input_features=input_features, is_longer=is_longer)
            rows.append(output.pooler_output.double().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.dim))


def load_clap(settings: ClapScoreSettings) -> ClapBackbone:
    """Load the CLAP model and processor from the configured local directory (no network).

    Raises MetricUnavailable when transformers or the directory is missing or unreadable, and
    BackbonePinError when the weights are not the pinned ones.
    """
    directory = require_path(settings.backbone, METRIC)
    try:
        transformers = importlib.import_module("transformers")
    except ImportError as error:
        raise MetricUnavailable(
            f"{METRIC} needs the 'transformers' package: pip install transformers=={TRANSFORMERS_PIN}"
        ) from error
    if not directory.is_dir():
        raise MetricUnavailable(f"{METRIC}: backbone {settings.backbone.name!r} must be a model directory, {directory} is a file")
    try:
        model = transformers.ClapModel.from_pretrained(directory, local_files_only=True)
        processor = transformers.ClapProcessor.from_pretrained(directory, local_files_only=True)
    except OSError as error:
        raise MetricUnavailable(f"{METRIC}: no loadable CLAP model and processor in {directory}: {error}") from error
    model.requires_grad_(False)
    model = model.eval().to(settings.device)
    digest = module_digest(model)
    check_pin(settings.backbone, digest, METRIC)
    extractor = processor.feature_extractor
    card = backbone_card(
        settings.backbone,
        digest,
        model_class=type(model).__name__,
        projection_dim=int(model.config.projection_dim),
        enable_fusion=bool(getattr(model.config.audio_config, "enable_fusion", False)),
        preprocessing_sha256=_preprocessing_digest(directory),
        feature_extractor={
            "sampling_rate": int(extractor.sampling_rate),
            "max_length_s": extractor.nb_max_samples / extractor.sampling_rate,
            "truncation": extractor.truncation,
            "padding": extractor.padding,
        },
        tokenizer=type(processor.tokenizer).__name__,
    )
    return ClapBackbone(model, processor, settings, card)


def clap_similarities(backbone: ClapBackbone, captions: Sequence[str], audios: Sequence[AudioItem]) -> np.ndarray:
    """Cosine similarity of each caption with its own clip, one value per pair."""
    if len(captions) != len(audios):
        raise ValueError(f"CLAP score pairs captions with clips: got {len(captions)} captions and {len(audios)} clips")
    if not captions:
        raise ValueError("CLAP score needs at least one (caption, clip) pair")
    for index, caption in enumerate(captions):
        if not caption.strip():
            raise ValueError(f"caption {index} is empty")
    text = backbone.text_embeddings(captions)
    audio = backbone.audio_embeddings(audios)
    # Both are unit vectors already; dividing again keeps the value a cosine whatever the model returns.
    norms = np.linalg.norm(text, axis=1) * np.linalg.norm(audio, axis=1)
    return np.einsum("ij,ij->i", text, audio) / norms


def clap_score(backbone: ClapBackbone, captions: Sequence[str], audios: Sequence[AudioItem]) -> Score:
    """Mean caption-clip cosine similarity (in [-1, 1], not x100) with its metric card."""
    similarities = clap_similarities(backbone, captions, audios)
    input_rates = sorted({int(rate) for _, rate in audios})
    card: dict[str, Any] = {
        "metric": METRIC,
        "implementation": package_implementation("transformers", torch=torch.__version__, module=__name__, module_sha256=sha256_file(__file__)),
        "backbone": backbone.card,
        "sample_rate": backbone.sample_rate,
        "input_sample_rates": input_rates,
        "n_pairs": len(similarities),
        "settings": {
            "similarity": "cosine of L2-normalised CLAP text and audio embeddings, mean over pairs",
            "scale": "[-1, 1], not multiplied by 100 (paper Table 1 T2A: 0.476)",
            "long_clips": f"cut to the first {backbone.max_samples / backbone.sample_rate:g} s",
            "featurisation": "one clip per feature-extractor call",
            "std": float(np.std(similarities)),
        },
    }
    if any(rate != backbone.sample_rate for rate in input_rates):
        card["resampler"] = {"package": "soxr", "version": importlib.metadata.version("soxr"), "quality": "VHQ"}
    return Score(float(np.mean(similarities)), card)


def save_tiny_clap(directory: str | Path, seed: int = 0) -> Path:
    """Save a tiny random CLAP model with a real processor (byte-level BPE tokenizer, no merges) for tests."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # RoBERTa's special tokens, then one token per byte-level character: every text encodes without <unk>.
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for character in sorted(ByteLevel.alphabet()):
        vocab[character] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    config = ClapConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 130,
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
        },
        audio_config={
            "depths": [1, 1],
            "num_attention_heads": [1, 2],
            "patch_embeds_hidden_size": 8,
            "hidden_size": 16,
            "enable_fusion": False,
        },
        projection_dim=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config)
    model.save_pretrained(directory)
    # The unfused model's extractor settings: one 10 s window, random crop of longer clips, repeat-padding.
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def _preprocessing_digest(directory: Path) -> str:
    """sha256 over the directory's non-weight files (tokenizer and feature-extractor configuration)."""
    entries = {
        file.relative_to(directory).as_posix(): sha256_file(file)
        for file in sorted(directory.rglob("*"))
        if file.is_file() and not file.name.endswith(_WEIGHT_SUFFIXES)
    }
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
