"""The instruction content adapter and the two duration predictors (paper section 3.2, eq. 1; appendix D.2).

Instructions arrive as precomputed Flan-T5 hidden states ``(B, M, instruction_dim)`` with a bool mask
(True = valid token). The adapter lets the content C (``(B, N, dim)``, from `ContentEncoder`) attend to
them and returns the task-involved content C^I, plus from a gradient-scaled copy of it:

- the clip duration, log(seconds + 1) of the whole output, one per sample (``(B,)``): masked mean over
  tokens -> MLP (Linear, ReLU, Dropout, Linear -> 1), as the authors' clip predictor;
- the sequence duration, one log-domain value per content token (``(B, N)``): FastSpeech2's duration
  predictor (conv k3 blocks with ReLU, LayerNorm and dropout, then Linear -> 1); the authors' sizes (5 blocks
  of 512 filters, dropout 0.5) are the defaults. Units: see `uniflow.model.durations`.

Paper eq. 1 is C^I = Attn(C, I, I) + C. The authors normalise the sum, LN(Attn(C, I, I) + C), and project
it with a 1x1 conv (a Linear); `output_norm` (default True, the authors') chooses between the two.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from uniflow.config import StrictModel


class AdapterConfig(StrictModel):
    """Sizes of the adapter and predictors; the defaults are the paper model's (all three sizes)."""

    dim: int = Field(default=1024, ge=1)  # content_dim of the content encoders
    instruction_dim: int = Field(default=1024, ge=1)  # Flan-T5-large d_model
    heads: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    output_norm: bool = True  # LN(attn + C) as the authors; False is eq. 1 as printed
    gradient_scale: float = Field(default=0.1, ge=0.0, le=1.0)  # lambda of appendix D.2
    clip_hidden: int = Field(default=1024, ge=1)
    clip_dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    sequence_layers: int = Field(default=5, ge=1)
    sequence_filters: int = Field(default=512, ge=1)
    sequence_kernel: int = Field(default=3, ge=1)
    sequence_dropout: float = Field(default=0.5, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> AdapterConfig:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.sequence_kernel % 2 == 0:
            raise ValueError("sequence_kernel must be odd so the predictor keeps the length")
        return self

    @classmethod
    def paper(cls) -> AdapterConfig:
        return cls()

    @classmethod
    def tiny(cls, dim: int = 32, instruction_dim: int = 16) -> AdapterConfig:
        return cls(
            dim=dim,
            instruction_dim=instruction_dim,
            heads=4,
            clip_hidden=16,
            sequence_layers=2,
            sequence_filters=16,
        )


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """scale * x + (1 - scale) * stopgrad(x): equals x forward, passes `scale` times the gradient back.

    Written as stopgrad(x) + scale * (x - stopgrad(x)) so that the forward value is exactly x (the printed
    form rounds differently in floating point)."""
    frozen = x.detach()
    return frozen + (x - frozen) * scale


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, N, dim) over keys/values (B, M, kv_dim) with a key padding mask."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(kv_dim, dim)
        self.value = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        if not bool(key_mask.any(dim=1).all()):
            raise ValueError("every sample needs at least one valid instruction token")
        attended = F.scaled_dot_product_attention(
            self._split(self.query(queries)),
            self._split(self.key(keys)),
            self._split(self.value(keys)),
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        batch, _, length, _ = attended.shape
        return self.out(attended.transpose(1, 2).reshape(batch, length, -1))


class ClipDurationPredictor(nn.Module):
    """Masked mean over content tokens -> Linear, ReLU, Dropout, Linear -> (B,) log(seconds + 1)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.mlp(pooled).squeeze(-1)


class SequenceDurationPredictor(nn.Module):
    """FastSpeech2's duration predictor: blocks of [Conv1d k, ReLU, LayerNorm, Dropout], then Linear -> 1.

    Padded positions are zeroed before every conv so they cannot shift valid predictions; output (B, N),
    zero at padding.
    """

    def __init__(self, dim: int, filters: int, layers: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(dim if index == 0 else filters, filters, kernel, padding=kernel // 2) for index in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(filters) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(filters, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = self.dropout(norm(F.relu(conv((x * keep).transpose(1, 2)).transpose(1, 2))))
        return self.output(x).squeeze(-1) * mask.to(x.dtype)


class AdapterOutput(NamedTuple):
    content: torch.Tensor  # (B, N, dim) C^I, zero at padding
    clip_log_duration: torch.Tensor  # (B,)
    sequence_log_duration: torch.Tensor  # (B, N), zero at padding


class CrossAttentionAdapter(nn.Module):
    """Eq. 1 with the authors' LayerNorm and output projection, and the two duration predictors."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        self.attention = CrossAttention(config.dim, config.instruction_dim, config.heads, config.dropout)
        self.norm = nn.LayerNorm(config.dim) if config.output_norm else nn.Identity()
        self.output = nn.Linear(config.dim, config.dim)
        self.clip_predictor = ClipDurationPredictor(config.dim, config.clip_hidden, config.clip_dropout)
        self.sequence_predictor = SequenceDurationPredictor(
            config.dim, config.sequence_filters, config.sequence_layers, config.sequence_kernel, config.sequence_dropout
        )

    def forward(
        self,
        content: torch.Tensor,
        content_mask: torch.Tensor,
        instruction: torch.Tensor,
        instruction_mask: torch.Tensor,
    ) -> AdapterOutput:
        """content (B, N, dim) + mask (B, N); instruction (B, M, instruction_dim) + mask (B, M); True = valid."""
        keep = content_mask[..., None].to(content.dtype)
        attended = self.attention(content, instruction.to(content.dtype), instruction_mask) * keep
        fused = self.norm(attended + content) * keep
        # The duration losses reach the shared encoders only at lambda strength (appendix D.2).
        scaled = scale_gradient(fused, self.config.gradient_scale)
        return AdapterOutput(
            content=self.output(fused) * keep,
            clip_log_duration=self.clip_predictor(scaled, content_mask),
            sequence_log_duration=self.sequence_predictor(scaled, content_mask),
        )
