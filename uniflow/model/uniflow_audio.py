"""The whole UniFlow-Audio model (paper section 3, eqs. 1-9): content encoders, instruction adapter with the
duration predictors, duration adapter, dual-fusion flow-matching Transformer, and generation.

Tensors: latents and velocities are ``(B, T, latent_dim=128)`` (batch-first, channels-last, 50 frames per second),
content is ``(B, N, content_dim)``, masks are bool with True = valid.

One training step (`UniflowAudio.forward`):

1. content encoders -> C (``(B, N, D)``); the adapter attends over the instruction -> C^I, the clip duration
   (``(B,)``, log seconds) and the sequence durations (``(B, N)``, log units) (eq. 1);
2. per-token latent frames: ground truth for TTS/SVS, fixed for SE/SR/V2A, a dummy constant for T2A/T2M; the
   length regulator expands C^I to the latent length -> C_T^I (``(B, T, D)``) (eq. 2);
3. the two streams the backbone fuses (eqs. 3-6), per fusion variant (`UniflowAudioConfig.fusion`):

   =======================  =============================================  ==============================================
   variant                  time-aligned stream (added in the blocks)      context (cross-attention)
   =======================  =============================================  ==============================================
   dual (paper)             TA: C_T^I; NTA: learnable dummy at every frame  TA: learnable dummy, only position 0 valid;
                                                                           NTA: C^I
   input (Table 3)          as dual, but added once at the input           as dual
   double (Table 3)         C_T^I for every task (no dummies)              C^I for every task
   cross_attention_only     none                                           C^I for every task
   =======================  =============================================  ==============================================

   (the TA-context dummy with only position 0 valid is the authors' detail; the paper says "dummy embedding");
4. classifier-free-guidance dropout (probability 0.2 per sample, both streams at once);
5. flow matching (eqs. 7-8): sigma from a logit-normal, z_sigma = (1 - sigma) z0 + sigma eps, the backbone's
   velocity regressed on eps - z0 with a masked MSE; plus the duration losses (eq. 9). The paper sums the three
   losses unweighted (the default); the authors weight both duration losses by 0.1 (`UniflowAudioConfig.authors`).

What "no condition" (the CFG empty input) is: the paper writes v(z, None, None) without saying; with dummies the
default reads it as "both streams are their dummy" (``flow.cfg_drop_mode = "dummies"``); the authors use zeros
(``"zeros"``, the only choice for the variants without dummies).

Generation (`UniflowAudio.generate`): predicted durations -> output lengths -> C_T^I -> Euler sampling from noise
with sway sampling and per-task CFG (`uniflow.infer.sampler`) -> latents ``(B, T, 128)`` and their lengths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from pydantic import Field, model_validator
from torch import nn

from uniflow.config import StrictModel
from uniflow.infer.sampler import DEFAULT_GUIDANCE_SCALE, EulerSampler, guidance_scales
from uniflow.model.adapter import AdapterConfig, CrossAttentionAdapter
from uniflow.model.content import ContentBatch, ContentConfig, ContentEncoder, MidiEncoderConfig, PhonemeEncoderConfig
from uniflow.model.dit import DitConfig, DualFusionDit, FusionVariant
from uniflow.model.durations import (
    DurationConfig,
    duration_losses,
    inference_token_frames,
    length_regulate,
    output_lengths,
    target_token_frames,
)
from uniflow.model.flow_matching import (
    FlowMatchingConfig,
    cfg_drop_mask,
    drop_conditions,
    flow_matching_loss,
    make_training_batch,
)
from uniflow.model.pretrained import PretrainedLoadError, load_weights, read_config, save_config_and_weights
from uniflow.model.tasks import time_aligned_mask
from uniflow.train.vocab import SvsVocab

if TYPE_CHECKING:
    from uniflow.train.data import TrainBatch

PRESETS: tuple[str, ...] = ("small", "medium", "large", "tiny")
# Variants whose ineffective stream is a learnable dummy: dual fusion, and input fusion (Table 3 changes only
# where the time-aligned content enters, so it keeps the dummies).
DUMMY_VARIANTS: frozenset[str] = frozenset({"dual", "input"})


class UniflowAudioConfig(StrictModel):
    """Sizes and choices of the whole model. Presets: `small` / `medium` / `large` (Table 8) and `tiny` (tests).

    The fusion variant lives in `dit.fusion` (read it as `fusion`). `flow.cfg_drop_prob` is the CFG dropout (0.2).
    """

    content: ContentConfig = ContentConfig()
    adapter: AdapterConfig = AdapterConfig()
    durations: DurationConfig = DurationConfig()
    dit: DitConfig = DitConfig.small()
    flow: FlowMatchingConfig = FlowMatchingConfig(cfg_drop_mode="dummies")
    # Paper eq. 9: L = L_FM + L_dur-clip + L_dur-seq (weights 1); the authors use 0.1 for both duration terms.
    sequence_duration_weight: float = Field(default=1.0, ge=0.0)
    clip_duration_weight: float = Field(default=1.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> UniflowAudioConfig:
        dim = self.content.content_dim
        if self.adapter.dim != dim or self.dit.content_dim != dim:
            raise ValueError(
                f"content.content_dim ({dim}), adapter.dim ({self.adapter.dim}) and dit.content_dim "
                f"({self.dit.content_dim}) must be equal"
            )
        if self.content.latent_dim != self.dit.latent_dim:
            raise ValueError(
                f"content.latent_dim ({self.content.latent_dim}) (SE/SR input latents) must equal dit.latent_dim "
                f"({self.dit.latent_dim}) (the VAE's latents)"
            )
        if self.flow.cfg_drop_mode == "dummies" and not self.uses_dummies:
            raise ValueError(f'fusion {self.fusion!r} has no dummy embeddings: set flow.cfg_drop_mode to "zeros"')
        return self

    @property
    def fusion(self) -> FusionVariant:
        return self.dit.fusion

    @property
    def uses_dummies(self) -> bool:
        return self.fusion in DUMMY_VARIANTS

    @property
    def latent_dim(self) -> int:
        return self.dit.latent_dim

    @classmethod
    def _paper(cls, dit: DitConfig, fusion: FusionVariant) -> UniflowAudioConfig:
        mode = "dummies" if fusion in DUMMY_VARIANTS else "zeros"
        return cls(
            content=ContentConfig.paper(),
            adapter=AdapterConfig.paper(),
            dit=dit.model_copy(update={"fusion": fusion}),
            flow=FlowMatchingConfig(cfg_drop_mode=mode),
        )

    @classmethod
    def small(cls, fusion: FusionVariant = "dual") -> UniflowAudioConfig:
        """Table 8 small: depth 12, width 512, 8 heads (208M trainable)."""
        return cls._paper(DitConfig.small(), fusion)

    @classmethod
    def medium(cls, fusion: FusionVariant = "dual") -> UniflowAudioConfig:
        """Table 8 medium: depth 16, width 768, 12 heads (395M trainable)."""
        return cls._paper(DitConfig.medium(), fusion)

    @classmethod
    def large(cls, fusion: FusionVariant = "dual") -> UniflowAudioConfig:
        """Table 8 large: depth 24, width 1024, 16 heads (847M trainable)."""
        return cls._paper(DitConfig.large(), fusion)

    @classmethod
    def tiny(
        cls,
        fusion: FusionVariant = "dual",
        latent_dim: int = 8,
        text_dim: int = 16,
        video_dim: int = 16,
        instruction_dim: int = 16,
        speaker_dim: int = 256,
    ) -> UniflowAudioConfig:
        """A toy width of the same code. The phone, singer and speaker tables keep their real sizes (72 TTS
        phones, 61 singing phones, 21 singers, 256-d speaker vectors), so real feature shards fit."""
        content_dim = 16
        base = ContentConfig.tiny(content_dim=content_dim, text_dim=text_dim, latent_dim=latent_dim, video_dim=video_dim)
        content = base.model_copy(
            update={
                "phoneme": PhonemeEncoderConfig(speaker_dim=speaker_dim, fft=base.phoneme.fft),
                "midi": MidiEncoderConfig(fft=base.midi.fft),
            }
        )
        return cls(
            content=content,
            adapter=AdapterConfig.tiny(dim=content_dim, instruction_dim=instruction_dim),
            dit=DitConfig.tiny(latent_dim=latent_dim, content_dim=content_dim, fusion=fusion),
            flow=FlowMatchingConfig(cfg_drop_mode="dummies" if fusion in DUMMY_VARIANTS else "zeros"),
        )

    @classmethod
    def preset(cls, name: str, fusion: FusionVariant = "dual") -> UniflowAudioConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}")
        return getattr(cls, name)(fusion=fusion)

    def authors(self) -> UniflowAudioConfig:
        """This config with the authors' code choices where they differ from the paper: duration units and
        inversion (`DurationConfig.authors`), 0.1-weighted duration losses, zeros as the CFG empty input, and
        the authors' feed-forward gating."""
        return self.model_copy(
            update={
                "durations": DurationConfig.authors(),
                "dit": self.dit.model_copy(update={"gating": "authors"}),
                "flow": self.flow.model_copy(update={"cfg_drop_mode": "zeros"}),
                "sequence_duration_weight": 0.1,
                "clip_duration_weight": 0.1,
            }
        )


class ModelOutput(NamedTuple):
    """`loss`: the scalar to minimise; `losses`: its terms (flow, sequence_duration, clip_duration);
    `per_task`: the flow loss of each task in the batch (detached, for logging)."""

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    per_task: dict[str, torch.Tensor]


@dataclass
class Conditions:
    """What the backbone is conditioned on: time-aligned stream ``(B, T, D)`` (None without TA fusion) and the
    context ``(B, N, D)`` with its mask ``(B, N)``."""

    ta_content: torch.Tensor | None
    context: torch.Tensor
    context_mask: torch.Tensor


@dataclass
class GenerationPlan:
    """Everything fixed before sampling: conditional and unconditional inputs, per-token frames ``(B, N)``,
    output lengths ``(B,)`` and the latent mask ``(B, T)``."""

    tasks: tuple[str, ...]
    conditions: Conditions
    unconditional: Conditions
    token_frames: torch.Tensor
    lengths: torch.Tensor
    latent_mask: torch.Tensor


@dataclass
class GenerationOutput:
    """Generated latents ``(B, T, latent_dim)`` (zero past each length), lengths ``(B,)`` in latent frames,
    the latent mask ``(B, T)`` and the per-token frames ``(B, N)`` used for expansion."""

    latents: torch.Tensor
    lengths: torch.Tensor
    latent_mask: torch.Tensor
    token_frames: torch.Tensor


class UniflowAudio(nn.Module):
    """The UniFlow-Audio generator; see the module docstring for the data flow."""

    def __init__(self, config: UniflowAudioConfig) -> None:
        super().__init__()
        self.config = config
        self.content_encoder = ContentEncoder(config.content)
        self.adapter = CrossAttentionAdapter(config.adapter)
        self.backbone = DualFusionDit(config.dit)
        dim = config.content.content_dim
        if config.uses_dummies:
            # Zero-initialised, as the authors do: at the start a dummy adds nothing but the blocks' biases.
            self.dummy_ta = nn.Parameter(torch.zeros(dim))
            self.dummy_context = nn.Parameter(torch.zeros(dim))
        else:
            self.dummy_ta = self.dummy_context = None
        # The SVS phone/singer ids this model was trained with (saved beside the weights).
        self.svs_vocab = SvsVocab()

    def num_trainable_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters() if parameter.requires_grad)

    # -- the two streams --------------------------------------------------------------------------------------
    def conditions(
        self,
        tasks: tuple[str, ...],
        content: torch.Tensor,
        content_mask: torch.Tensor,
        ta_content: torch.Tensor,
        latent_mask: torch.Tensor,
    ) -> Conditions:
        """The backbone's inputs from C^I ``(B, N, D)`` and C_T^I ``(B, T, D)`` for the configured variant."""
        fusion = self.config.fusion
        if fusion == "cross_attention_only":
            return Conditions(None, content, content_mask)
        if not self.config.uses_dummies:  # double fusion: both real streams for every task
            return Conditions(ta_content, content, content_mask)
        time_aligned = time_aligned_mask(tasks, content.device)
        dummy_ta = self.dummy_ta.to(ta_content.dtype).expand_as(ta_content) * latent_mask[..., None].to(ta_content.dtype)
        ta_stream = torch.where(time_aligned[:, None, None], ta_content, dummy_ta)
        # TA samples see the dummy context at position 0 only; the context is cut to the longest one in use.
        first = torch.zeros_like(content_mask)
        first[:, 0] = True
        context_mask = torch.where(time_aligned[:, None], first, content_mask)
        length = max(1, int(context_mask.sum(dim=1).max()))
        context_mask = context_mask[:, :length]
        dummy_rows = first[:, :length, None].to(content.dtype) * self.dummy_context.to(content.dtype)
        context = torch.where(time_aligned[:, None, None], dummy_rows, content[:, :length])
        return Conditions(ta_stream, context, context_mask)

    def unconditional(self, conditions: Conditions) -> Conditions:
        """The CFG empty input for every sample (the same rule as training-time dropout)."""
        batch = conditions.context.shape[0]
        drop = torch.ones(batch, dtype=torch.bool, device=conditions.context.device)
        return Conditions(*self._drop(drop, conditions))

    def _drop(self, drop: torch.Tensor, conditions: Conditions) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        return drop_conditions(
            drop,
            conditions.ta_content,
            conditions.context,
            conditions.context_mask,
            self.config.flow.cfg_drop_mode,
            self.dummy_ta,
            self.dummy_context,
        )

    def velocity(
        self, noisy: torch.Tensor, sigma: torch.Tensor, conditions: Conditions, latent_mask: torch.Tensor
    ) -> torch.Tensor:
        """The backbone's velocity ``(B, T, latent_dim)`` at flow time ``sigma`` ``(B,)``."""
        return self.backbone(noisy, sigma, latent_mask, conditions.ta_content, conditions.context, conditions.context_mask)

    # -- training ---------------------------------------------------------------------------------------------
    def forward(
        self, batch: TrainBatch, generator: torch.Generator | None = None, sigma: float | None = None
    ) -> ModelOutput:
        """The training loss of a `uniflow.train.data.TrainBatch`. `generator` seeds sigma, noise and CFG dropout
        (it must live on the batch's device). CFG dropout happens only in training mode. A fixed `sigma` (validation
        at flow time 0.5) replaces the drawn flow times."""
        config = self.config
        content_batch: ContentBatch = batch.content
        tasks = tuple(batch.tasks)
        encoded = self.content_encoder(content_batch)
        adapted = self.adapter(encoded.content, encoded.mask, batch.instruction, batch.instruction_mask)
        latent_mask = batch.latent_mask
        lengths = latent_mask.sum(dim=1)
        frames = target_token_frames(content_batch, encoded.mask, config.durations)
        ta_content, _ = length_regulate(adapted.content, frames, lengths, max_length=batch.latents.shape[1])
        conditions = self.conditions(tasks, adapted.content, encoded.mask, ta_content, latent_mask)
        if self.training and config.flow.cfg_drop_prob > 0:
            drop = cfg_drop_mask(len(tasks), config.flow.cfg_drop_prob, latent_mask.device, generator)
            conditions = Conditions(*self._drop(drop, conditions))
        flow_batch = make_training_batch(batch.latents, config.flow, latent_mask, generator, sigma)
        prediction = self.velocity(flow_batch.noisy, flow_batch.sigma, conditions, latent_mask)
        flow, per_task = flow_matching_loss(prediction, flow_batch.target, latent_mask, tasks)
        durations = duration_losses(
            adapted.clip_log_duration,
            adapted.sequence_log_duration,
            lengths,
            frames,
            encoded.mask,
            time_aligned_mask(tasks, latent_mask.device),
            config.durations,
        )
        loss = flow + config.sequence_duration_weight * durations.sequence + config.clip_duration_weight * durations.clip
        if self.dummy_ta is not None:
            # A batch of one task group leaves one dummy unused; a zero term keeps it in the graph (DDP needs every
            # parameter to receive a gradient each step).
            loss = loss + 0.0 * (self.dummy_ta.sum() + self.dummy_context.sum())
        losses = {"flow": flow, "sequence_duration": durations.sequence, "clip_duration": durations.clip}
        return ModelOutput(loss, losses, per_task)

    # -- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def plan(
        self,
        content: ContentBatch,
        instruction: torch.Tensor,
        instruction_mask: torch.Tensor,
        use_given_durations: bool = False,
    ) -> GenerationPlan:
        """Durations, output lengths and both conditions for a batch of content inputs (no sampling yet).

        `use_given_durations`: expand TTS/SVS by the frames carried in the batch (``phones.frames`` /
        ``score.frames``) instead of the predicted ones."""
        tasks = tuple(content.tasks)
        encoded = self.content_encoder(content)
        adapted = self.adapter(encoded.content, encoded.mask, instruction, instruction_mask)
        durations = self.config.durations
        if use_given_durations:
            frames = target_token_frames(content, encoded.mask, durations)
        else:
            frames = inference_token_frames(content, encoded.mask, adapted.sequence_log_duration, durations)
        time_aligned = time_aligned_mask(tasks, encoded.mask.device)
        lengths = output_lengths(frames, adapted.clip_log_duration, time_aligned, durations)
        ta_content, latent_mask = length_regulate(adapted.content, frames, lengths)
        conditions = self.conditions(tasks, adapted.content, encoded.mask, ta_content, latent_mask)
        return GenerationPlan(tasks, conditions, self.unconditional(conditions), frames, lengths, latent_mask)

    @torch.no_grad()
    def generate(
        self,
        content: ContentBatch,
        instruction: torch.Tensor,
        instruction_mask: torch.Tensor,
        guidance_scale: float | torch.Tensor = DEFAULT_GUIDANCE_SCALE,
        steps: int = 25,
        sway_coefficient: float | None = -1.0,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        use_given_durations: bool = False,
    ) -> GenerationOutput:
        """Latents for a batch of content inputs; instruction ``(B, M, instruction_dim)`` with mask ``(B, M)``.

        `guidance_scale`: a number (every task gets it except SE and SR, which get no guidance, as in the paper)
        or a ``(B,)`` tensor of per-sample scales used as given. `seed` (or an explicit `generator`) fixes the
        starting noise. Runs in eval mode (dropout off) and restores the previous mode afterwards."""
        was_training = self.training
        self.eval()
        try:
            plan = self.plan(content, instruction, instruction_mask, use_given_durations)
            device = plan.latent_mask.device
            if isinstance(guidance_scale, torch.Tensor):
                scales = guidance_scale.to(device=device, dtype=torch.float32)
            else:
                scales = guidance_scales(plan.tasks, float(guidance_scale)).to(device)
            if generator is None and seed is not None:
                generator = torch.Generator(device=device).manual_seed(seed)
            dtype = plan.conditions.context.dtype
            shape = (len(plan.tasks), plan.latent_mask.shape[1], self.config.latent_dim)
            noise = EulerSampler.initial_noise(shape, generator, device, dtype)

            def velocity_fn(noisy: torch.Tensor, sigma: torch.Tensor, conditions: Conditions) -> torch.Tensor:
                return self.velocity(noisy, sigma, conditions, plan.latent_mask)

            sampler = EulerSampler(steps, sway_coefficient)
            latents = sampler.sample(velocity_fn, noise, plan.conditions, plan.unconditional, scales, plan.latent_mask)
        finally:
            self.train(was_training)
        return GenerationOutput(latents, plan.lengths, plan.latent_mask, plan.token_frames)

    # -- checkpoints --------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `config.json`, `model.safetensors` and the SVS vocabulary (`svs_vocab.json`) into `directory`."""
        midi = self.config.content.midi
        if len(self.svs_vocab.phones) > midi.phone_vocab_size or len(self.svs_vocab.singers) > midi.num_singers:
            raise ValueError(
                f"the SVS vocabulary ({len(self.svs_vocab.phones)} phones, {len(self.svs_vocab.singers)} singers) does "
                f"not fit the MIDI encoder ({midi.phone_vocab_size} phones, {midi.num_singers} singers)"
            )
        directory = save_config_and_weights(self, self.config, directory)
        self.svs_vocab.save(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> UniflowAudio:
        """Rebuild from `config.json`, load `model.safetensors` strictly and the SVS vocabulary; errors name the file."""
        directory = Path(directory)
        model = cls(read_config(directory, UniflowAudioConfig, "a UniFlow-Audio model"))
        load_weights(model, directory, map_location)
        try:
            model.svs_vocab = SvsVocab.load(directory)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise PretrainedLoadError(f"{directory / 'svs_vocab.json'}: {exc}") from None
        return model.to(map_location)
