"""The dual-fusion flow-matching Transformer (paper section 3.4, appendix D.2): the backbone that predicts the
velocity of noisy VAE latents from the flow time, the time-aligned (TA) content and the non-time-aligned context.

Tensors inside the model are batch-first and channels-last: latents and velocities are (B, T, latent_dim=128),
TA content is (B, T, content_dim=1024) on the latent time axis, context is (B, N, content_dim), and masks are
bool (B, T) / (B, N) with True marking valid positions.

Where the paper and the authors' code differ, the paper is the default and the code's behaviour is an option:
- gating: the paper (eq. 12) gates both the self-attention and the feed-forward branch by tanh(1 - alpha);
  the authors use tanh(1 - alpha) on self-attention and a plain (1 - alpha) on the feed-forward (`gating="authors"`).
  Eq. 12 literally adds the branch to the *normalised* input; we read it as the usual residual on the stream A
  (as the authors' code does), since the block must carry A forward.
- layout: the paper says nothing about long skips; the authors' U-DiT runs depth//2 input blocks, one middle block
  and depth//2 output blocks that first fuse a long skip (LayerNorm(2D) -> Linear(2D->D)). This `skip_layout="u"` is
  the default because it is what gives the paper's parameter counts (Table 8); `"plain"` stacks `depth` blocks.

Ablations of the paper's Table 3 are `fusion` values: "dual" (the paper), "double" (same backbone; the top model
feeds real content to both streams instead of dummies), "cross_attention_only" (no TA addition: the top model
passes every content through the context) and "input" (TA content added once, at the input).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import model_validator
from torch import nn
from torch.utils.checkpoint import checkpoint

from uniflow.config import StrictModel

FusionVariant = Literal["dual", "double", "cross_attention_only", "input"]
SkipLayout = Literal["u", "plain"]
Gating = Literal["paper", "authors"]


class DitConfig(StrictModel):
    """Sizes and variants of the backbone. Presets `small`/`medium`/`large` follow Table 8; `tiny` is for tests."""

    depth: int = 12
    dim: int = 512
    heads: int = 8
    latent_dim: int = 128
    content_dim: int = 1024
    # GEGLU feed-forward: D -> 2 * ff_mult * D (value and gate) -> ff_mult * D -> D.
    ff_mult: int = 4
    rope_base: float = 10000.0
    time_embed_dim: int = 256
    # sigma in [0, 1] is scaled to a 0-1000 "timestep" before the sinusoid, as the authors do.
    time_scale: float = 1000.0
    fusion: FusionVariant = "dual"
    skip_layout: SkipLayout = "u"
    gating: Gating = "paper"
    qk_norm: bool = True
    final_conv: bool = True
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _check_sizes(self) -> DitConfig:
        for name in ("depth", "dim", "heads", "latent_dim", "content_dim", "ff_mult", "time_embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if (self.dim // self.heads) % 2 or self.time_embed_dim % 2:
            raise ValueError("head_dim and time_embed_dim must be even (rotary pairs, sin/cos halves)")
        return self

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def num_blocks(self) -> int:
        """The U layout has depth//2 in + 1 middle + depth//2 out blocks (depth + 1 for even depth)."""
        return 2 * (self.depth // 2) + 1 if self.skip_layout == "u" else self.depth

    @property
    def uses_dummies(self) -> bool:
        """Only dual fusion replaces the ineffective stream by learnable dummies (held by the top model)."""
        return self.fusion == "dual"

    @property
    def ta_in_every_block(self) -> bool:
        return self.fusion in ("dual", "double")

    @property
    def uses_ta_content(self) -> bool:
        return self.fusion != "cross_attention_only"

    @classmethod
    def small(cls, **overrides: object) -> DitConfig:
        return cls(**{"depth": 12, "dim": 512, "heads": 8, **overrides})

    @classmethod
    def medium(cls, **overrides: object) -> DitConfig:
        return cls(**{"depth": 16, "dim": 768, "heads": 12, **overrides})

    @classmethod
    def large(cls, **overrides: object) -> DitConfig:
        return cls(**{"depth": 24, "dim": 1024, "heads": 16, **overrides})

    @classmethod
    def tiny(cls, **overrides: object) -> DitConfig:
        return cls(**{"depth": 2, "dim": 32, "heads": 2, "latent_dim": 8, "content_dim": 16, "ff_mult": 2, **overrides})


def timestep_sinusoid(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) float timesteps -> (B, dim) [cos | sin] features with geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    angles = timesteps.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def rotary_table(length: int, head_dim: int, base: float, device: torch.device) -> torch.Tensor:
    """Complex rotations (length, head_dim // 2) for adjacent channel pairs: e^{i * pos * base^(-2j/head_dim)}."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq[None]
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (B, T, H, head_dim) by position; one complex product instead of sin/cos algebra."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotations[:, None]).flatten(-2).type_as(x)


def _attention_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Key padding mask (B, K) -> (B, 1, 1, K) for SDPA; None when nothing is padded (lets SDPA take its fast path)."""
    if mask is None or bool(mask.all()):
        return None
    return mask[:, None, None, :]


class SelfAttention(nn.Module):
    """Multi-head self-attention with per-head qk-LayerNorm, rotary positions and no qkv bias."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.q_norm = nn.LayerNorm(config.head_dim) if config.qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(config.head_dim) if config.qk_norm else nn.Identity()
        self.out = nn.Linear(config.dim, config.dim)

    def forward(self, x: torch.Tensor, rotations: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim).unbind(2)
        q = apply_rotary(self.q_norm(q), rotations)
        k = apply_rotary(self.k_norm(k), rotations)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=key_mask)
        return self.out(out.transpose(1, 2).reshape(batch, length, dim))


class CrossAttention(nn.Module):
    """Latent queries over context keys/values (already embedded to `dim`), qk-norm, zero-initialised output."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.q = nn.Linear(config.dim, config.dim, bias=False)
        self.kv = nn.Linear(config.dim, 2 * config.dim, bias=False)
        self.q_norm = nn.LayerNorm(config.head_dim) if config.qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(config.head_dim) if config.qk_norm else nn.Identity()
        self.out = nn.Linear(config.dim, config.dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q = self.q_norm(self.q(x).view(batch, length, self.heads, self.head_dim))
        k, v = self.kv(context).view(batch, context.shape[1], 2, self.heads, self.head_dim).unbind(2)
        k = self.k_norm(k)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=key_mask)
        return self.out(out.transpose(1, 2).reshape(batch, length, dim))


class GegluFeedForward(nn.Module):
    """value * GELU(gate) with value and gate from one projection, then back to `dim`."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        hidden = config.ff_mult * config.dim
        self.proj_in = nn.Linear(config.dim, 2 * hidden)
        self.proj_out = nn.Linear(hidden, config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.gelu(gate))


class DualFusionBlock(nn.Module):
    """One block (eqs. 3-6): AdaLN self-attention, + projected TA content, + cross-attention, AdaLN feed-forward.

    The TA projection (LayerNorm(content_dim) -> Linear(content_dim -> dim, no bias)) lives here but is evaluated
    for all blocks at once by the backbone (`DualFusionDit.time_aligned_terms`), which gives the same numbers with
    one matrix product instead of one per block.
    """

    def __init__(self, config: DitConfig, long_skip: bool) -> None:
        super().__init__()
        dim = config.dim
        self.gating = config.gating
        self.skip_norm = nn.LayerNorm(2 * dim) if long_skip else None
        self.skip_proj = nn.Linear(2 * dim, dim) if long_skip else None
        # shift/scale/gate for self-attention and feed-forward (eq. 10), from the activated time embedding.
        self.ada = nn.Linear(dim, 6 * dim)
        self.norm_sa = nn.LayerNorm(dim)
        self.attn = SelfAttention(config)
        if config.ta_in_every_block:
            self.ta_norm = nn.LayerNorm(config.content_dim)
            self.ta_proj = nn.Linear(config.content_dim, dim, bias=False)
        self.norm_ca = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(config)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = GegluFeedForward(config)

    def forward(
        self,
        x: torch.Tensor,
        time: torch.Tensor,
        rotations: torch.Tensor,
        latent_key_mask: torch.Tensor | None,
        ta_term: torch.Tensor | None,
        context: torch.Tensor,
        context_key_mask: torch.Tensor | None,
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.skip_proj is not None:
            x = self.skip_proj(self.skip_norm(torch.cat([x, skip], dim=-1)))
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = self.ada(time)[:, None].chunk(6, dim=-1)
        h = torch.addcmul(shift_sa, self.norm_sa(x), 1 + scale_sa)
        x = x + torch.tanh(1 - gate_sa) * self.attn(h, rotations, latent_key_mask)
        if ta_term is not None:
            x = x + ta_term
        x = x + self.cross_attn(self.norm_ca(x), self.norm_context(context), context_key_mask)
        h = torch.addcmul(shift_ff, self.norm_ff(x), 1 + scale_ff)
        ff_gate = torch.tanh(1 - gate_ff) if self.gating == "paper" else 1 - gate_ff
        return x + ff_gate * self.ff(h)


class DualFusionDit(nn.Module):
    """Velocity network v(z_sigma, sigma, C_T, C): latents (B, T, 128) in, velocity (B, T, 128) out."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.latent_in = nn.Linear(config.latent_dim, dim)
        self.time_mlp = nn.Sequential(nn.Linear(config.time_embed_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.context_embed = nn.Sequential(nn.Linear(config.content_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        if config.fusion == "input":
            self.input_ta_norm = nn.LayerNorm(config.content_dim)
            self.input_ta_proj = nn.Linear(config.content_dim, dim, bias=False)
        half = config.depth // 2
        if config.skip_layout == "u":
            self.in_blocks = nn.ModuleList(DualFusionBlock(config, long_skip=False) for _ in range(half))
            self.mid_block = DualFusionBlock(config, long_skip=False)
            self.out_blocks = nn.ModuleList(DualFusionBlock(config, long_skip=True) for _ in range(half))
        else:
            self.in_blocks = nn.ModuleList(DualFusionBlock(config, long_skip=False) for _ in range(config.depth))
            self.mid_block = None
            self.out_blocks = nn.ModuleList()
        self.final_norm = nn.LayerNorm(dim)
        self.final_ada = nn.Linear(dim, 2 * dim)
        self.final_proj = nn.Linear(dim, config.latent_dim)
        self.final_conv = nn.Conv1d(config.latent_dim, config.latent_dim, 3, padding=1) if config.final_conv else None
        self.reset_parameters()

    def blocks(self) -> list[DualFusionBlock]:
        """All blocks in execution order."""
        middle = [self.mid_block] if self.mid_block is not None else []
        return [*self.in_blocks, *middle, *self.out_blocks]

    def reset_parameters(self) -> None:
        """Xavier for linear layers; zeros for AdaLN projections and cross-attention outputs (authors' scheme)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        zeroed = [self.final_ada] + [layer for block in self.blocks() for layer in (block.ada, block.cross_attn.out)]
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def compile_blocks(self) -> DualFusionDit:
        """torch.compile each block in place (state-dict keys unchanged). On this project's 2-core CPU it fuses the
        LayerNorm/modulation/gate/GEGLU element-wise work and trains the small backbone ~15% faster after a ~30 s
        compile (benchmarks/bench_model.py); blocks of the same kind share one compiled graph."""
        for block in self.blocks():
            block.compile()
        return self

    def num_trainable_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters() if parameter.requires_grad)

    def time_aligned_terms(self, ta_content: torch.Tensor) -> list[torch.Tensor]:
        """Per-block Linear(LayerNorm_b(C_T)) for every block, as one matrix product over the shared normalisation.

        LayerNorm_b(c) = n * g_b + b_b with n the affine-free normalisation, so
        Linear_b(LayerNorm_b(c)) = n @ (W_b * g_b)^T + W_b @ b_b: the blocks differ only in weight and bias.
        """
        blocks = self.blocks()
        first = blocks[0].ta_norm
        normalized = F.layer_norm(ta_content, first.normalized_shape, eps=first.eps)
        weight = torch.cat([block.ta_proj.weight * block.ta_norm.weight for block in blocks])
        bias = torch.cat([block.ta_proj.weight @ block.ta_norm.bias for block in blocks])
        return list(F.linear(normalized, weight, bias).split(self.config.dim, dim=-1))

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        latent_mask: torch.Tensor | None,
        ta_content: torch.Tensor | None,
        context: torch.Tensor,
        context_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Velocity (B, T, latent_dim) for noisy latents x (B, T, latent_dim) at flow time sigma (B,) in [0, 1].

        ta_content (B, T, content_dim) is ignored by "cross_attention_only" (may be None there). Padded latent
        positions (latent_mask False) do not influence valid ones, and their output is zero.
        """
        config = self.config
        batch, length, _ = x.shape
        if ta_content is None and config.uses_ta_content:
            raise ValueError(f"fusion {config.fusion!r} needs ta_content (B, T, {config.content_dim})")
        if ta_content is not None and ta_content.shape[:2] != (batch, length):
            raise ValueError(f"ta_content {tuple(ta_content.shape)} must match latents {tuple(x.shape)} in (B, T)")
        if sigma.dim() == 0:
            sigma = sigma.expand(batch)
        valid = latent_mask[..., None].to(x.dtype) if latent_mask is not None else None

        hidden = self.latent_in(x)
        if config.fusion == "input":
            hidden = hidden + self.input_ta_proj(self.input_ta_norm(ta_content))
        time = F.silu(self.time_mlp(timestep_sinusoid(sigma * config.time_scale, config.time_embed_dim).to(x.dtype)))
        context_hidden = self.context_embed(context)
        if context_mask is not None and not bool(context_mask.any(dim=-1).all()):
            # SDPA gives NaN for a query with no key; dual fusion always passes at least the dummy token.
            raise ValueError("every sample needs at least one valid context token (a dummy or zeros)")
        context_key_mask = _attention_mask(context_mask)
        latent_key_mask = _attention_mask(latent_mask)
        rotations = rotary_table(length, config.head_dim, config.rope_base, x.device)
        blocks = self.blocks()
        ta_terms = self.time_aligned_terms(ta_content) if config.ta_in_every_block else [None] * len(blocks)

        skips: list[torch.Tensor] = []
        for index, block in enumerate(blocks):
            skip = skips.pop() if block.skip_proj is not None else None
            args = (hidden, time, rotations, latent_key_mask, ta_terms[index], context_hidden, context_key_mask, skip)
            if config.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden = checkpoint(block, *args, use_reentrant=False)
            else:
                hidden = block(*args)
            if index < len(self.in_blocks) and self.mid_block is not None:
                skips.append(hidden)
        shift, scale = self.final_ada(time)[:, None].chunk(2, dim=-1)
        out = self.final_proj(torch.addcmul(shift, self.final_norm(hidden), 1 + scale))
        if valid is not None:
            # The k=3 convolution mixes neighbours: zero padding so the last valid frame sees what it would unpadded.
            out = out * valid
        if self.final_conv is not None:
            out = self.final_conv(out.transpose(1, 2)).transpose(1, 2)
            if valid is not None:
                out = out * valid
        return out
