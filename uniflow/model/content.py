"""Content encoders (paper section 3.2): every task's input becomes a sequence of content embeddings C.

One encoder per input modality, shared by the tasks that have that modality::

    modality  tasks     encoder
    --------  --------  --------------------------------------------------------------------------
    phones    tts       FastSpeech2 phoneme encoder (FFT stack) + x-vector Linear(256->512) added after
    score     svs       FastSpeech2 MIDI encoder: phone + pitch + Linear(note seconds) + slur, FFT stack,
                        singer embedding added after
    text      t2a, t2m  frozen Flan-T5 hidden states (precomputed), identity or Linear projection
    latents   se, sr    frozen VAE latents of the degraded input (precomputed), Linear(128->1024)
    video     v2a       frozen CLIP features at 10 fps (precomputed), L2-normalised, Linear(1024->1024)

The batch (`ContentBatch`) mixes tasks. It holds the per-sample task list and, per modality, one
padded sub-batch with the rows of the samples of that modality *in batch order* (the k-th row of
``batch.text`` is the k-th sample whose task is t2a or t2m). `ContentEncoder` runs each modality's
encoder once on its sub-batch, pads every group to the longest sequence and puts the rows back in
batch order: the output is ``(B, N, content_dim)`` with a bool mask ``(B, N)``, True = valid token,
and padded positions are exactly zero. Token ``i`` of a sample is token ``i`` of its modality input,
so per-token durations (`uniflow.model.durations`) line up with the content.

Unlike the authors' encoder, which loops over samples, this one never runs per sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from uniflow.align.phones import PHONES
from uniflow.config import StrictModel
from uniflow.model.tasks import check_tasks

MODALITY_OF_TASK: dict[str, str] = {
    "tts": "phones",
    "svs": "score",
    "t2a": "text",
    "t2m": "text",
    "se": "latents",
    "sr": "latents",
    "v2a": "video",
}
MODALITIES: tuple[str, ...] = ("phones", "score", "text", "latents", "video")
PHONE_PAD_ID = 0  # both phone tables reserve id 0 for padding (uniflow.align.phones.PAD is id 0)
MIDI_NOTES = 128  # MIDI 0-127 (M4Singer writes rests as 0); the padding index is 128


# -- configuration ---------------------------------------------------------------------------------------
class FftConfig(StrictModel):
    """A FastSpeech2 feed-forward Transformer stack: pre-LN self-attention and a conv1d feed-forward."""

    d_model: int = Field(default=512, ge=1)
    layers: int = Field(default=4, ge=1)
    heads: int = Field(default=2, ge=1)
    ff_dim: int = Field(default=2048, ge=1)
    kernel: int = Field(default=9, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    # Token embeddings are multiplied by sqrt(d_model) before the positions are added (fairseq/FastSpeech2).
    scale_embedding: bool = True

    @model_validator(mode="after")
    def _check(self) -> FftConfig:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.kernel % 2 == 0:
            raise ValueError("kernel must be odd so the feed-forward conv keeps the length")
        return self


class PhonemeEncoderConfig(StrictModel):
    """TTS: phone ids of `uniflow.align.phones` (72 ids, 0 = padding) and a 256-d speaker embedding."""

    vocab_size: int = Field(default=len(PHONES), ge=2)
    speaker_dim: int = Field(default=256, ge=1)
    fft: FftConfig = FftConfig()


class MidiEncoderConfig(StrictModel):
    """SVS: singing phone ids (0 = padding; the authors' M4Singer table has 61), MIDI notes, slurs, singer ids."""

    phone_vocab_size: int = Field(default=61, ge=2)
    num_singers: int = Field(default=21, ge=1)
    fft: FftConfig = FftConfig()


class ContentConfig(StrictModel):
    """Sizes of all content encoders. `paper()` is the authors' content side (1024-d for every model size).

    `text_projection`: False passes Flan-T5 states through unchanged (the authors' code: its text encoder has
    no projection, so `text_dim` must equal `content_dim`); True adds Linear(text_dim -> content_dim).
    """

    content_dim: int = Field(default=1024, ge=1)
    phoneme: PhonemeEncoderConfig = PhonemeEncoderConfig()
    midi: MidiEncoderConfig = MidiEncoderConfig()
    text_dim: int = Field(default=1024, ge=1)
    text_projection: bool = False
    latent_dim: int = Field(default=128, ge=1)
    video_dim: int = Field(default=1024, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ContentConfig:
        if not self.text_projection and self.text_dim != self.content_dim:
            raise ValueError(f"text_projection is off, so text_dim ({self.text_dim}) must equal content_dim ({self.content_dim})")
        return self

    @classmethod
    def paper(cls) -> ContentConfig:
        return cls()

    @classmethod
    def tiny(cls, content_dim: int = 32, text_dim: int = 16, latent_dim: int = 8, video_dim: int = 16) -> ContentConfig:
        """A toy width of the same code, for tests."""
        fft = FftConfig(d_model=16, layers=1, heads=2, ff_dim=32, kernel=3)
        return cls(
            content_dim=content_dim,
            phoneme=PhonemeEncoderConfig(speaker_dim=8, fft=fft),
            midi=MidiEncoderConfig(phone_vocab_size=12, num_singers=3, fft=fft),
            text_dim=text_dim,
            text_projection=text_dim != content_dim,
            latent_dim=latent_dim,
            video_dim=video_dim,
        )


# -- batch structure -------------------------------------------------------------------------------------
@dataclass
class PhoneInputs:
    """TTS sub-batch: phone ids (b, L) long, mask (b, L) bool, speaker (b, speaker_dim) float and, for
    training, the ground-truth latent frames per phone (b, L) long (padding 0)."""

    ids: torch.Tensor
    mask: torch.Tensor
    speaker: torch.Tensor
    frames: torch.Tensor | None = None


@dataclass
class ScoreInputs:
    """SVS sub-batch, per phone (b, L): phone ids, MIDI note (0-127), note seconds (float), slur (0/1), mask;
    singer id per sample (b,); for training the ground-truth latent frames per phone (b, L)."""

    phones: torch.Tensor
    midi: torch.Tensor
    note_seconds: torch.Tensor
    slur: torch.Tensor
    mask: torch.Tensor
    singer: torch.Tensor
    frames: torch.Tensor | None = None


@dataclass
class FeatureInputs:
    """A precomputed frozen-encoder sequence: features (b, L, dim) float, mask (b, L) bool."""

    features: torch.Tensor
    mask: torch.Tensor


@dataclass
class ContentBatch:
    """A mixed-task batch of content inputs; see the module docstring for the row order of sub-batches."""

    tasks: tuple[str, ...]
    phones: PhoneInputs | None = None
    score: ScoreInputs | None = None
    text: FeatureInputs | None = None
    latents: FeatureInputs | None = None
    video: FeatureInputs | None = None

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        check_tasks(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def rows(self, modality: str) -> list[int]:
        """Batch positions of the samples whose input is `modality`, in batch order."""
        return [index for index, task in enumerate(self.tasks) if MODALITY_OF_TASK[task] == modality]

    def inputs(self, modality: str) -> PhoneInputs | ScoreInputs | FeatureInputs | None:
        return getattr(self, modality)

    def token_mask(self, modality: str) -> torch.Tensor:
        """The (b, L) mask of a modality's sub-batch."""
        sub_batch = self.inputs(modality)
        if sub_batch is None:
            raise ValueError(f"the batch has no {modality} inputs")
        return sub_batch.mask

    def to(self, device: torch.device | str) -> ContentBatch:
        """A copy with every tensor on `device`."""

        def move(sub_batch: object) -> object:
            if sub_batch is None:
                return None
            changes = {
                item.name: getattr(sub_batch, item.name).to(device)
                for item in fields(sub_batch)
                if isinstance(getattr(sub_batch, item.name), torch.Tensor)
            }
            return replace(sub_batch, **changes)

        return replace(self, **{modality: move(self.inputs(modality)) for modality in MODALITIES})


@dataclass
class ContentSample:
    """One sample's content input, as the trainer reads it from a feature shard.

    tts: phones (L,) long, speaker (speaker_dim,), frames (L,) long when training.
    svs: phones, midi, note_seconds, slur (L,) each, singer (int), frames (L,) when training.
    t2a/t2m: features = T5 states (L, text_dim); se/sr: features = input latents (T, 128);
    v2a: features = CLIP features (F, video_dim).
    """

    task: str
    phones: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    speaker: torch.Tensor | None = None
    midi: torch.Tensor | None = None
    note_seconds: torch.Tensor | None = None
    slur: torch.Tensor | None = None
    singer: int | None = None
    features: torch.Tensor | None = None


def _pad(sequences: Sequence[torch.Tensor], value: float = 0) -> torch.Tensor:
    return nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=value)


def _lengths_mask(lengths: Sequence[int]) -> torch.Tensor:
    lengths_tensor = torch.tensor(lengths, dtype=torch.long)
    return torch.arange(int(lengths_tensor.max())) < lengths_tensor[:, None]


def _require(sample: ContentSample, *names: str) -> None:
    missing = [name for name in names if getattr(sample, name) is None]
    if missing:
        raise ValueError(f"a {sample.task} sample lacks {', '.join(missing)}")
    for name in names:
        value = getattr(sample, name)
        if isinstance(value, torch.Tensor) and name != "speaker" and value.shape[0] == 0:
            raise ValueError(f"a {sample.task} sample has an empty {name}")


def _frames(samples: Sequence[ContentSample]) -> torch.Tensor | None:
    """Padded ground-truth frames when every sample has them (training), else None (inference)."""
    if any(sample.frames is None for sample in samples):
        return None
    for sample in samples:
        if sample.frames.shape != sample.phones.shape:
            raise ValueError(f"a {sample.task} sample has {len(sample.frames)} frame counts for {len(sample.phones)} phones")
    return _pad([sample.frames.long() for sample in samples])


def collate_content(samples: Sequence[ContentSample]) -> ContentBatch:
    """Pad per-sample inputs into a `ContentBatch` (sub-batch rows in batch order)."""
    tasks = tuple(sample.task for sample in samples)
    check_tasks(tasks)
    groups: dict[str, list[ContentSample]] = {modality: [] for modality in MODALITIES}
    for sample in samples:
        groups[MODALITY_OF_TASK[sample.task]].append(sample)
    batch = ContentBatch(tasks)
    if tts := groups["phones"]:
        for sample in tts:
            _require(sample, "phones", "speaker")
        batch.phones = PhoneInputs(
            ids=_pad([sample.phones.long() for sample in tts]),
            mask=_lengths_mask([len(sample.phones) for sample in tts]),
            speaker=torch.stack([sample.speaker.float() for sample in tts]),
            frames=_frames(tts),
        )
    if svs := groups["score"]:
        for sample in svs:
            _require(sample, "phones", "midi", "note_seconds", "slur", "singer")
            if not len(sample.phones) == len(sample.midi) == len(sample.note_seconds) == len(sample.slur):
                raise ValueError("an svs sample's phones, midi, note_seconds and slur differ in length")
        batch.score = ScoreInputs(
            phones=_pad([sample.phones.long() for sample in svs]),
            midi=_pad([sample.midi.long() for sample in svs], MIDI_NOTES),
            note_seconds=_pad([sample.note_seconds.float() for sample in svs]),
            slur=_pad([sample.slur.long() for sample in svs]),
            mask=_lengths_mask([len(sample.phones) for sample in svs]),
            singer=torch.tensor([sample.singer for sample in svs], dtype=torch.long),
            frames=_frames(svs),
        )
    for modality in ("text", "latents", "video"):
        if group := groups[modality]:
            for sample in group:
                _require(sample, "features")
            setattr(
                batch,
                modality,
                FeatureInputs(
                    features=_pad([sample.features.float() for sample in group]),
                    mask=_lengths_mask([len(sample.features) for sample in group]),
                ),
            )
    return batch


# -- encoders --------------------------------------------------------------------------------------------
def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, dim) sine/cosine positions (first half sines, second half cosines, as fairseq)."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1)))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * frequencies[None, :]
    positions = torch.cat([angles.sin(), angles.cos()], dim=1)
    return F.pad(positions, (0, dim - 2 * half))  # an odd dim gets a zero last channel


class SelfAttention(nn.Module):
    """Multi-head self-attention over a padded sequence (SDPA with a key padding mask)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, dim))


class FftLayer(nn.Module):
    """Pre-LN FFT block: x + SA(LN(x)); x + Linear(GELU(Conv1d_k(LN(x)))). Padding is zeroed before the conv
    so that padded positions never reach valid ones through the kernel."""

    def __init__(self, config: FftConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config.d_model, config.heads, config.dropout)
        self.ff_norm = nn.LayerNorm(config.d_model)
        self.ff_conv = nn.Conv1d(config.d_model, config.ff_dim, config.kernel, padding=config.kernel // 2)
        self.ff_out = nn.Linear(config.ff_dim, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        hidden = self.ff_conv((self.ff_norm(x) * keep).transpose(1, 2)).transpose(1, 2)
        x = x + self.dropout(self.ff_out(self.dropout(F.gelu(hidden))))
        return x * keep


class FftStack(nn.Module):
    """Sinusoidal positions, dropout, the FFT layers and a final LayerNorm; padded outputs are zero.
    `embed_scale` (sqrt(d_model) or 1) is what encoders multiply their token embeddings by."""

    def __init__(self, config: FftConfig) -> None:
        super().__init__()
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(FftLayer(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (b, L, d) token embeddings (already scaled by `embed_scale` where wanted), mask: (b, L) True = valid."""
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        x = self.dropout(x) * mask[..., None].to(x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x) * mask[..., None].to(x.dtype)


class PhonemeEncoder(nn.Module):
    """TTS (FastSpeech2 encoder): phone embedding -> FFT stack -> + Linear(speaker) -> Linear to content_dim."""

    def __init__(self, config: PhonemeEncoderConfig, content_dim: int) -> None:
        super().__init__()
        d_model = config.fft.d_model
        self.embedding = nn.Embedding(config.vocab_size, d_model, padding_idx=PHONE_PAD_ID)
        self.stack = FftStack(config.fft)
        self.speaker = nn.Linear(config.speaker_dim, d_model)
        self.output = nn.Linear(d_model, content_dim)

    def forward(self, inputs: PhoneInputs) -> torch.Tensor:
        mask = inputs.mask
        hidden = self.stack(self.embedding(inputs.ids.masked_fill(~mask, PHONE_PAD_ID)) * self.stack.embed_scale, mask)
        # The speaker is added after the stack (as the authors do), so attention sees only the phones.
        hidden = hidden + self.speaker(inputs.speaker.to(hidden.dtype))[:, None, :]
        return self.output(hidden) * mask[..., None].to(hidden.dtype)


class MidiEncoder(nn.Module):
    """SVS (FastSpeech2 MIDI encoder): sqrt(d)-scaled phone + pitch + Linear(note seconds) + slur embeddings
    summed -> FFT stack -> + singer embedding -> Linear to content_dim (only the phone embedding is scaled, as
    in FastSpeech2's MIDI encoder)."""

    def __init__(self, config: MidiEncoderConfig, content_dim: int) -> None:
        super().__init__()
        d_model = config.fft.d_model
        self.phone_embedding = nn.Embedding(config.phone_vocab_size, d_model, padding_idx=PHONE_PAD_ID)
        self.pitch_embedding = nn.Embedding(MIDI_NOTES + 1, d_model, padding_idx=MIDI_NOTES)
        self.note_duration = nn.Linear(1, d_model)
        self.slur_embedding = nn.Embedding(2, d_model)
        self.stack = FftStack(config.fft)
        self.singer = nn.Embedding(config.num_singers, d_model)
        self.output = nn.Linear(d_model, content_dim)

    def forward(self, inputs: ScoreInputs) -> torch.Tensor:
        mask = inputs.mask
        phones = self.phone_embedding(inputs.phones.masked_fill(~mask, PHONE_PAD_ID))
        dtype = phones.dtype
        others = (
            self.pitch_embedding(inputs.midi.masked_fill(~mask, MIDI_NOTES))
            + self.note_duration(inputs.note_seconds.to(dtype).masked_fill(~mask, 0.0)[..., None])
            + self.slur_embedding(inputs.slur.masked_fill(~mask, 0))
        )
        hidden = self.stack(phones * self.stack.embed_scale + others, mask)
        hidden = hidden + self.singer(inputs.singer)[:, None, :]
        return self.output(hidden) * mask[..., None].to(dtype)


class FeatureProjection(nn.Module):
    """A frozen encoder's precomputed features -> content_dim: optional L2 normalisation, then Linear
    (or identity, for Flan-T5 states in the authors' setup)."""

    def __init__(self, in_dim: int, content_dim: int, *, project: bool = True, normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        self.projection = nn.Linear(in_dim, content_dim) if project else nn.Identity()

    def forward(self, inputs: FeatureInputs) -> torch.Tensor:
        features = inputs.features
        if isinstance(self.projection, nn.Linear):
            features = features.to(self.projection.weight.dtype)
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return self.projection(features) * inputs.mask[..., None].to(features.dtype)


class ContentOutput(NamedTuple):
    content: torch.Tensor  # (B, N, content_dim), zero at padding
    mask: torch.Tensor  # (B, N) bool, True = valid token


class ContentEncoder(nn.Module):
    """All content encoders; `forward` encodes a mixed-task `ContentBatch` with one call per modality."""

    def __init__(self, config: ContentConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict(
            {
                "phones": PhonemeEncoder(config.phoneme, config.content_dim),
                "score": MidiEncoder(config.midi, config.content_dim),
                "text": FeatureProjection(config.text_dim, config.content_dim, project=config.text_projection),
                "latents": FeatureProjection(config.latent_dim, config.content_dim),
                "video": FeatureProjection(config.video_dim, config.content_dim, normalize=True),
            }
        )

    def encode(self, modality: str, inputs: PhoneInputs | ScoreInputs | FeatureInputs) -> torch.Tensor:
        """One modality's sub-batch -> (b, L, content_dim), zero at padding."""
        return self.encoders[modality](inputs)

    def forward(self, batch: ContentBatch) -> ContentOutput:
        rows: list[int] = []
        outputs: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for modality in MODALITIES:
            modality_rows = batch.rows(modality)
            if not modality_rows:
                continue
            inputs = batch.inputs(modality)
            if inputs is None or inputs.mask.shape[0] != len(modality_rows):
                have = 0 if inputs is None else inputs.mask.shape[0]
                raise ValueError(f"the batch has {len(modality_rows)} {modality} samples but {have} {modality} input rows")
            outputs.append(self.encode(modality, inputs))
            masks.append(inputs.mask)
            rows.extend(modality_rows)
        length = max(output.shape[1] for output in outputs)
        content = torch.cat([F.pad(output, (0, 0, 0, length - output.shape[1])) for output in outputs])
        mask = torch.cat([F.pad(group_mask, (0, length - group_mask.shape[1])) for group_mask in masks])
        # Rows are grouped by modality; the inverse permutation restores batch order.
        order = torch.argsort(torch.tensor(rows, device=content.device))
        return ContentOutput(content[order], mask[order])
