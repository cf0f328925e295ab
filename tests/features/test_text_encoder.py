"""Flan-T5 text features: fp32 and bf16 only, one vector per token, batching by length changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support import DATASETS
from uniflow.corpora.instructions import load_instructions
from uniflow.corpora.recipe import TASKS
from uniflow.features.frozen import FrozenEncoderError
from uniflow.features.text import TextEncoder, encode_instructions

CAPTIONS = [
    "A dog barks.",
    "Rain falls steadily on a tin roof while thunder rumbles far away and a car passes by.",
    "Piano",
    "An upbeat pop song with female vocals, a driving drum beat and bright synthesizers.",
    "Birds chirp in the morning.",
]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_fp32_and_bf16_encode_every_token(tiny_text_dir: Path, dtype: str) -> None:
    encoder = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5", dtype=dtype)
    assert encoder.identity.dtype == dtype
    outputs = encoder.encode(CAPTIONS)
    # ByT5 gives one token per UTF-8 byte plus the end-of-sequence token; padding positions are dropped.
    assert [output.shape for output in outputs] == [(len(text.encode()) + 1, 32) for text in CAPTIONS]
    assert all(output.dtype == np.float32 and np.isfinite(output).all() for output in outputs)


def test_bf16_is_close_to_fp32(tiny_text_dir: Path) -> None:
    full = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5", dtype="fp32").encode(CAPTIONS[:2])
    half = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5", dtype="bf16").encode(CAPTIONS[:2])
    for a, b in zip(full, half, strict=True):
        assert np.abs(a - b).max() < 0.1


def test_fp16_is_refused_with_the_reason(tiny_text_dir: Path) -> None:
    with pytest.raises(FrozenEncoderError, match="fp16.*overflow"):
        TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5", dtype="fp16")


def test_batching_by_length_matches_one_by_one(tiny_text_dir: Path) -> None:
    batched = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5", batch_size=3).encode(CAPTIONS)
    single = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5", batch_size=1)
    for text, output in zip(CAPTIONS, batched, strict=True):
        (alone,) = single.encode([text])
        assert output.shape == alone.shape
        np.testing.assert_allclose(output, alone, atol=1e-5)
    # Different texts must give different features (the comparison above is not vacuous).
    assert not np.allclose(batched[0][:3], batched[4][:3])


def test_instruction_embeddings_cover_every_task(tiny_text_dir: Path) -> None:
    encoder = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5")
    instructions = load_instructions(DATASETS / "instructions.yaml")
    embeddings = encode_instructions(encoder, DATASETS / "instructions.yaml")
    assert sorted(embeddings) == sorted(f"{task}_{index}" for task in TASKS for index in range(10))
    assert len(embeddings) == 70
    for task in TASKS:
        text = instructions[task][3]
        assert embeddings[f"{task}_3"].shape == (len(text.encode()) + 1, 32)
        np.testing.assert_allclose(embeddings[f"{task}_3"], encoder.encode([text])[0], atol=1e-5)


def test_loads_the_encoder_of_a_full_seq2seq_checkpoint(tmp_path: Path) -> None:
    """google/flan-t5-large is published as T5ForConditionalGeneration: only its encoder must be used, unchanged."""
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    full = T5ForConditionalGeneration(config).eval()
    full.save_pretrained(tmp_path)
    ByT5Tokenizer().save_pretrained(tmp_path)
    encoder = TextEncoder.from_pretrained(tmp_path, encoder_id="tiny-flan")
    tokens = encoder.tokenizer(["A dog barks."], return_tensors="pt")
    with torch.no_grad():
        expected = full.encoder(**tokens).last_hidden_state[0].numpy()
    np.testing.assert_allclose(encoder.encode(["A dog barks."])[0], expected, atol=1e-6)
