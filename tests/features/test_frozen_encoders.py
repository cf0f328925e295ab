"""Every frozen encoder fails loudly when its weights are missing or it is not frozen, and is identified by its weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from uniflow.features.frozen import FrozenEncoderError, check_frozen, weights_hash
from uniflow.features.speaker import load_speaker_encoder
from uniflow.features.text import TextEncoder
from uniflow.features.video import VideoEncoder


def _copy_without_weights(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for weights in target.glob("*.safetensors"):
        weights.unlink()
    return target


def test_missing_text_weights_name_the_directory(tiny_text_dir: Path, tmp_path: Path) -> None:
    empty = _copy_without_weights(tiny_text_dir, tmp_path / "t5")
    with pytest.raises(FrozenEncoderError, match=f"no \\*.safetensors weights in {empty}"):
        TextEncoder.from_pretrained(empty, encoder_id="tiny-t5")
    with pytest.raises(FrozenEncoderError, match="does not exist"):
        TextEncoder.from_pretrained(tmp_path / "nowhere", encoder_id="tiny-t5")


def test_missing_video_weights_name_the_directory(tiny_video_dir: Path, tmp_path: Path) -> None:
    empty = _copy_without_weights(tiny_video_dir, tmp_path / "clip")
    with pytest.raises(FrozenEncoderError, match=f"no \\*.safetensors weights in {empty}"):
        VideoEncoder.from_pretrained(empty, encoder_id="tiny-clip")


def test_missing_speaker_weights_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FrozenEncoderError, match=str(tmp_path / "pretrained.pt")):
        load_speaker_encoder("resemblyzer", tmp_path)


def test_loaded_encoder_is_frozen_and_check_fails_after_train_mode(tiny_text_dir: Path) -> None:
    encoder = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5")
    check_frozen(encoder.model, "tiny-t5")
    assert not encoder.model.training
    assert not any(parameter.requires_grad for parameter in encoder.model.parameters())
    encoder.model.train()
    with pytest.raises(FrozenEncoderError, match="tiny-t5: not in eval mode"):
        check_frozen(encoder.model, "tiny-t5")


def test_check_fails_when_a_parameter_requires_grad(tiny_video_dir: Path) -> None:
    encoder = VideoEncoder.from_pretrained(tiny_video_dir, encoder_id="tiny-clip")
    name, parameter = next(iter(encoder.model.named_parameters()))
    parameter.requires_grad_(True)
    with pytest.raises(FrozenEncoderError, match=f"require gradients: {name}"):
        check_frozen(encoder.model, "tiny-clip")


def test_weights_hash_follows_one_weight_and_survives_save_load(tiny_text_dir: Path, tmp_path: Path) -> None:
    first = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5")
    again = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5")
    assert first.identity == again.identity

    # Saved and reloaded: the same hash.
    first.model.save_pretrained(tmp_path / "resaved")
    first.tokenizer.save_pretrained(tmp_path / "resaved")
    reloaded = TextEncoder.from_pretrained(tmp_path / "resaved", encoder_id="tiny-t5")
    assert reloaded.identity.weights_hash == first.identity.weights_hash

    # One changed weight: a different hash, also after saving and loading it.
    with torch.no_grad():
        first.model.encoder.final_layer_norm.weight[0] += 1e-3
    changed_hash = weights_hash(first.model)
    assert changed_hash != again.identity.weights_hash
    first.model.save_pretrained(tmp_path / "changed")
    first.tokenizer.save_pretrained(tmp_path / "changed")
    changed = TextEncoder.from_pretrained(tmp_path / "changed", encoder_id="tiny-t5")
    assert changed.identity.weights_hash == changed_hash
