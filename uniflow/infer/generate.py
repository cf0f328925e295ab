"""From each task's natural input to 24 kHz audio: frozen encoders -> UniFlow-Audio -> VAE decoder -> file.

=====  =========================================  ==========================================================
task   input                                      content the model gets (as the feature shards hold it)
=====  =========================================  ==========================================================
tts    text (+ optional reference audio)          phones from `uniflow.align.g2p` (ids of
                                                  `uniflow.align.phones`) + a 256-d speaker embedding of the
                                                  reference (resemblyzer / WeSpeaker); no reference: zeros
svs    score JSON file (below)                    singing phones, MIDI notes, note seconds, slurs, singer
t2a    caption                                    Flan-T5 last hidden states
t2m    caption                                    Flan-T5 last hidden states
se     noisy speech file (any rate, mono-mixed)   VAE posterior mean of the input resampled to 24 kHz
sr     low-resolution audio file (any rate)       VAE posterior mean of the input resampled to 24 kHz
v2a    video file                                 CLIP pooled features of the frames at 10 fps
=====  =========================================  ==========================================================

The instruction is either free text (embedded with the same Flan-T5) or an index into the task's instructions:
read from the precomputed table (``features/instructions/t5_embeddings.safetensors``, keys ``{task}_{index}``)
when one is given, otherwise the text of ``datasets/instructions.yaml`` at that index, embedded live.

Score file (SVS): the ``score`` of our SVS shards, per phone, with the singer beside it::

    {"phones": ["SP", "n", "i", "h", "ao", "AP"],   # M4Singer pinyin initials/finals, AP breath, SP pause
     "midi": [0, 60, 60, 62, 62, 0],                # MIDI note per phone, 0 = rest
     "note_seconds": [0.3, 0.4, 0.4, 0.5, 0.5, 0.2],# duration of the note the phone belongs to
     "slur": [0, 0, 0, 0, 1, 0],                    # 1 = the phone continues the previous note
     "singer": "Tenor-1",                           # optional; unknown or absent = <unk>
     "frames": [10, 5, 15, 6, 19, 10]}              # optional latent frames per phone (50/s); absent = predicted

A shard sample's json (``{"score": {...}, "speaker": "Tenor-1", ...}``) is accepted as it is.
All model directories are local; nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from uniflow.features.config import EncodersConfig, load_encoders
from uniflow.model.content import ContentSample, collate_content
from uniflow.model.tasks import TASKS
from uniflow.model.uniflow_audio import UniflowAudio

DEFAULT_INSTRUCTIONS = "datasets/instructions.yaml"
# The task's natural input: which argument of `Generator.generate` it is.
TASK_INPUT: dict[str, str] = {
    "tts": "text",
    "svs": "score",
    "t2a": "caption",
    "t2m": "caption",
    "se": "audio",
    "sr": "audio",
    "v2a": "video",
}


class GenerationError(ValueError):
    """An input, a model directory or an encoder that does not fit the request (the message says which)."""


@dataclass
class GeneratedAudio:
    """Mono float32 audio at `sample_rate`, with the latent frames it was decoded from."""

    audio: np.ndarray
    sample_rate: int
    latent_frames: int

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def read_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """An audio file as mono float32 at `sample_rate` (channels averaged, soxr resampling)."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise GenerationError(f"{path}: cannot read audio: {exc}") from None
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_score(path: str | Path) -> dict[str, Any]:
    """A score file (see the module docstring) as a dict with phones, midi, note_seconds, slur, singer, frames."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GenerationError(f"{path}: cannot read the score: {exc}") from None
    if not isinstance(data, dict):
        raise GenerationError(f"{path}: a score is a JSON object")
    score = dict(data["score"]) if isinstance(data.get("score"), dict) else dict(data)
    score.setdefault("singer", data.get("singer", data.get("speaker")))
    missing = [name for name in ("phones", "midi", "note_seconds", "slur") if name not in score]
    if missing:
        raise GenerationError(f"{path}: the score lacks {', '.join(missing)}")
    lengths = {name: len(score[name]) for name in ("phones", "midi", "note_seconds", "slur", "frames") if score.get(name)}
    if len(set(lengths.values())) != 1 or not score["phones"]:
        raise GenerationError(f"{path}: the score's lists must be non-empty and equally long, got {lengths}")
    return score


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write FLAC or WAV (from the suffix) as 16-bit PCM, clipped to [-1, 1]."""
    path = Path(path)
    formats = {".flac": "FLAC", ".wav": "WAV"}
    if path.suffix.lower() not in formats:
        raise GenerationError(f"{path}: the output must end in .flac or .wav")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, format=formats[path.suffix.lower()], subtype="PCM_16")
    return path


class Generator:
    """A loaded UniFlow-Audio model, its VAE and the frozen encoders, loaded when a task first needs them."""

    def __init__(
        self,
        model_dir: str | Path,
        vae_dir: str | Path,
        encoders: EncodersConfig | None = None,
        device: str | torch.device = "cpu",
        instruction_table: str | Path | None = None,
        instructions_yaml: str | Path = DEFAULT_INSTRUCTIONS,
    ) -> None:
        from uniflow.features.latents import LatentEncoder, LatentSettings

        self.device = torch.device(device)
        self.model = UniflowAudio.from_pretrained(model_dir, map_location=self.device).eval()
        self.latents = LatentEncoder(LatentSettings(directory=str(vae_dir)), self.device)
        self.vae = self.latents.model
        self.encoders_config = encoders or EncodersConfig()
        self.instruction_table = Path(instruction_table) if instruction_table else None
        self.instructions_yaml = Path(instructions_yaml)
        self._encoders: dict[str, Any] = {}
        vae_dim, model_dim = self.vae.config.latent_dim, self.model.config.latent_dim
        if vae_dim != model_dim:
            raise GenerationError(f"{vae_dir}: the VAE has {vae_dim} latent channels but the model {model_dim}")

    @property
    def sample_rate(self) -> int:
        return self.vae.config.sample_rate

    def _encoder(self, name: str) -> Any:
        if name not in self._encoders:
            self._encoders[name] = getattr(load_encoders(self.encoders_config, {name}, self.device), name)
        return self._encoders[name]

    # -- content ------------------------------------------------------------------------------------------
    def _check_dim(self, what: str, found: int, expected: int) -> None:
        if found != expected:
            raise GenerationError(f"the {what} gives {found}-d vectors but the model expects {expected}")

    def content_sample(
        self,
        task: str,
        *,
        text: str | None = None,
        speaker_audio: str | Path | None = None,
        score: str | Path | None = None,
        caption: str | None = None,
        audio: str | Path | None = None,
        video: str | Path | None = None,
    ) -> ContentSample:
        """The content input of `task` from its natural input (durations are left to the model unless the
        score carries frames)."""
        given = {"text": text, "score": score, "caption": caption, "audio": audio, "video": video}
        if task not in TASK_INPUT:
            raise GenerationError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if given[TASK_INPUT[task]] is None:
            raise GenerationError(f"{task} needs --{TASK_INPUT[task]}")
        config = self.model.config.content
        if task == "tts":
            return self._tts(text, speaker_audio, config.phoneme.speaker_dim)
        if task == "svs":
            return self._svs(read_score(score))
        if task in ("t2a", "t2m"):
            encoder = self._encoder("text")
            self._check_dim("text encoder", encoder.dim, config.text_dim)
            return ContentSample(task, features=torch.from_numpy(encoder.encode([caption])[0]))
        if task in ("se", "sr"):
            clip = read_mono(audio, self.sample_rate)
            posterior = self.latents.encode([clip])[0]
            return ContentSample(task, features=torch.from_numpy(posterior.mean))
        encoder = self._encoder("video")
        self._check_dim("video encoder", encoder.dim, config.video_dim)
        return ContentSample(task, features=torch.from_numpy(encoder.encode(Path(video))))

    def _tts(self, text: str, speaker_audio: str | Path | None, speaker_dim: int) -> ContentSample:
        from uniflow.align.g2p import EnglishG2p
        from uniflow.align.phones import phone_ids

        phones = EnglishG2p().phonemize(text)
        if len(phones) <= 2 and set(phones) == {"sil"}:
            raise GenerationError(f"the text {text!r} has no words to speak")
        if speaker_audio is None:
            # No reference: the zero vector (the phoneme encoder then adds only its speaker bias).
            speaker = np.zeros(speaker_dim, dtype=np.float32)
        else:
            encoder = self._encoder("speaker")
            reference = read_mono(speaker_audio, 16000)
            speaker = encoder.embed(reference, 16000)
            self._check_dim("speaker encoder", speaker.shape[0], speaker_dim)
        return ContentSample("tts", phones=torch.tensor(phone_ids(phones)), speaker=torch.from_numpy(speaker))

    def _svs(self, score: dict[str, Any]) -> ContentSample:
        vocab = self.model.svs_vocab
        try:
            phones = vocab.phone_ids(score["phones"])
        except ValueError as exc:
            raise GenerationError(f"score: {exc}") from None
        frames = score.get("frames")
        return ContentSample(
            "svs",
            phones=torch.tensor(phones),
            midi=torch.tensor([int(note) for note in score["midi"]]),
            note_seconds=torch.tensor([float(value) for value in score["note_seconds"]]),
            slur=torch.tensor([int(value) for value in score["slur"]]),
            singer=vocab.singer_id(score.get("singer")),
            frames=torch.tensor([int(value) for value in frames]) if frames else None,
        )

    # -- instruction --------------------------------------------------------------------------------------
    def instruction(self, task: str, text: str | None = None, index: int = 0) -> np.ndarray:
        """(tokens, dim) float32 instruction embedding: of `text`, else of the task's instruction `index`."""
        expected = self.model.config.adapter.instruction_dim
        if text is None and self.instruction_table is not None:
            from safetensors.numpy import load_file

            try:
                table = load_file(str(self.instruction_table))
            except Exception as exc:  # safetensors raises its own error types for corrupt files
                raise GenerationError(f"{self.instruction_table}: cannot read the instruction table: {exc}") from None
            key = f"{task}_{index}"
            if key not in table:
                raise GenerationError(f"{self.instruction_table}: no instruction {key}")
            embedding = np.asarray(table[key], dtype=np.float32)
        else:
            if text is None:
                from uniflow.corpora.instructions import load_instructions

                items = load_instructions(self.instructions_yaml)[task]
                if not 0 <= index < len(items):
                    raise GenerationError(f"{self.instructions_yaml}: {task} has instructions 0-{len(items) - 1}, not {index}")
                text = items[index]
            embedding = self._encoder("text").encode([text])[0]
        self._check_dim("instruction embedding", embedding.shape[-1], expected)
        return embedding

    # -- the whole way ------------------------------------------------------------------------------------
    def generate(
        self,
        task: str,
        *,
        instruction: str | None = None,
        instruction_index: int = 0,
        steps: int = 25,
        guidance_scale: float = 5.0,
        sway_coefficient: float | None = -1.0,
        seed: int = 0,
        **inputs: Any,
    ) -> GeneratedAudio:
        """Audio for one input of `task` (keyword inputs as `content_sample`). SE and SR get no guidance."""
        sample = self.content_sample(task, **inputs)
        embedding = torch.from_numpy(self.instruction(task, instruction, instruction_index))[None].to(self.device)
        mask = torch.ones(embedding.shape[:2], dtype=torch.bool, device=self.device)
        content = collate_content([sample]).to(self.device)
        output = self.model.generate(
            content,
            embedding,
            mask,
            guidance_scale=guidance_scale,
            steps=steps,
            sway_coefficient=sway_coefficient,
            seed=seed,
            use_given_durations=sample.frames is not None,
        )
        frames = int(output.lengths[0])
        latents = output.latents[:, :frames].transpose(1, 2).to(next(self.vae.parameters()).dtype)
        with torch.inference_mode():
            audio = self.vae.decode(latents)[0].mean(dim=0)
        return GeneratedAudio(audio.float().cpu().numpy(), self.sample_rate, frames)


def generate_to_file(generator: Generator, task: str, out: str | Path, **options: Any) -> tuple[Path, GeneratedAudio]:
    """`Generator.generate` and write the result to `out` (.flac or .wav)."""
    result = generator.generate(task, **options)
    return write_audio(out, result.audio, result.sample_rate), result
