"""Frozen Flan-T5 text encoder: T2A/T2M captions and the task instructions (paper section 3.2).

The backbone reads T5's `last_hidden_state` (1024-d for Flan-T5-large), one vector per token with
the padding positions removed. Weights and tokenizer come from a LOCAL directory only (the layout
`save_pretrained` writes, or a downloaded hub snapshot), so a run never reaches the network.
T5 runs in fp32 or bf16: its feed-forward activations overflow fp16's range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, ByT5Tokenizer, PreTrainedTokenizerBase, T5Config, T5EncoderModel

from uniflow.corpora.instructions import load_instructions
from uniflow.features.config import PAPER_TEXT_ENCODER
from uniflow.features.frozen import EncoderIdentity, FrozenEncoderError, freeze, resolve_dtype, start_frozen

# Bump when tokenization or the way hidden states are taken changes: it is part of the cache key.
PREPROCESSING_VERSION = 1
TEXT_DTYPES: tuple[str, ...] = ("fp32", "bf16")
# The known input of the start-up sanity check.
SANITY_TEXT = "A dog barks while rain falls on a tin roof."


def require_weights(directory: Path, encoder_id: str) -> None:
    """Raise naming `directory` unless it holds safetensors weights (single file or shards)."""
    if not directory.is_dir():
        raise FrozenEncoderError(f"{encoder_id}: model directory {directory} does not exist")
    if not any(directory.glob("*.safetensors")):
        raise FrozenEncoderError(f"{encoder_id}: no *.safetensors weights in {directory}")


def _hidden_states(
    model: T5EncoderModel, tokenizer: PreTrainedTokenizerBase, device: torch.device, texts: Sequence[str]
) -> list[torch.Tensor]:
    """Hidden states of one padded batch, each cut to its own token count."""
    batch = tokenizer(list(texts), padding=True, return_tensors="pt")
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    with torch.inference_mode():
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    lengths = attention_mask.sum(dim=1).tolist()
    return [hidden[row, :length] for row, length in enumerate(lengths)]


class TextEncoder:
    """A frozen T5 encoder with its tokenizer; `encode` gives one (tokens, d_model) array per text."""

    def __init__(
        self,
        model: T5EncoderModel,
        tokenizer: PreTrainedTokenizerBase,
        identity: EncoderIdentity,
        device: torch.device,
        batch_size: int = 16,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.identity = identity
        self.device = device
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(self.model.config.d_model)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        encoder_id: str = PAPER_TEXT_ENCODER,
        dtype: str = "fp32",
        device: str | torch.device = "cpu",
        batch_size: int = 16,
    ) -> TextEncoder:
        """Load model and tokenizer from `directory` (no network), freeze them and run the start-up check."""
        if dtype == "fp16":
            raise FrozenEncoderError(
                f"{encoder_id}: dtype 'fp16' is refused: T5's feed-forward activations overflow fp16 (inf/NaN); "
                "use 'bf16' or 'fp32'"
            )
        torch_dtype = resolve_dtype(dtype, encoder_id, TEXT_DTYPES)
        if batch_size < 1:
            raise ValueError(f"{encoder_id}: batch_size must be >= 1 (got {batch_size})")
        directory = Path(directory)
        require_weights(directory, encoder_id)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = T5EncoderModel.from_pretrained(directory, local_files_only=True, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise FrozenEncoderError(f"{encoder_id}: cannot load model/tokenizer from {directory}: {exc}") from exc
        device = torch.device(device)
        model = freeze(model.to(device))
        identity = start_frozen(
            model, encoder_id, dtype, PREPROCESSING_VERSION, lambda: _hidden_states(model, tokenizer, device, [SANITY_TEXT])[0]
        )
        return cls(model, tokenizer, identity, device, batch_size)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text (including T5's end-of-sequence token)."""
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One float32 (tokens, d_model) array per text, in input order.

        Texts are sorted by token count and batched in that order, so each batch pads only up to
        texts of similar length.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not a single string")
        counts = self.token_counts(texts)
        order = sorted(range(len(texts)), key=lambda index: counts[index])
        outputs: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            hidden_states = _hidden_states(self.model, self.tokenizer, self.device, [texts[i] for i in chunk])
            for index, hidden in zip(chunk, hidden_states, strict=True):
                outputs[index] = hidden.float().cpu().numpy()
        return outputs  # type: ignore[return-value]


def instruction_key(task: str, index: int) -> str:
    """Key of one instruction embedding, as in the authors' pre-extracted file: `{task}_{index}`."""
    return f"{task}_{index}"


def encode_instructions(encoder: TextEncoder, instructions_yaml_path: str | Path) -> dict[str, np.ndarray]:
    """Embed every task instruction (10 per task, 0-based index) once, keyed `{task}_{index}`."""
    instructions = load_instructions(instructions_yaml_path)
    keys = [instruction_key(task, index) for task, items in instructions.items() for index in range(len(items))]
    texts = [text for items in instructions.values() for text in items]
    return dict(zip(keys, encoder.encode(texts), strict=True))


def save_tiny_text_encoder(directory: str | Path, seed: int = 0) -> Path:
    """Save a tiny random T5 encoder and a ByT5 tokenizer (needs no vocabulary files) for tests and demos."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # ByT5's ids: 0 pad, 1 eos, 2 unk, then 256 bytes and 125 extra ids: 384 in all.
    config = T5Config(vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=0, eos_token_id=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    model.save_pretrained(directory)
    ByT5Tokenizer().save_pretrained(directory)
    return directory
