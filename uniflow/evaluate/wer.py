"""Word error rate (TTS): transcribe generated speech with an ASR model and align it with the input text.

WER = (substitutions + deletions + insertions) / reference words, over the whole test set (the sum of
every utterance's errors over the sum of its reference words, so long utterances weigh more), after
both texts went through :mod:`uniflow.evaluate.text_normalizer`. The card records the ASR backbone and
the digest of its weights, the normalizer version and the counts, so a WER can be reproduced or its
difference to another explained.

ASR backbones (``WerSettings.asr``):

- ``pocketsphinx`` (default here): CMU pocketsphinx 5 with the en-us acoustic model, dictionary and
  trigram language model that its wheel ships; needs no download and runs on a CPU. Pinned by the
  digest of the model directory. It is a weak recognizer (a WER of about 0.2 on clean read speech), so
  its numbers compare systems with each other, not with the paper.
- ``transformers-ctc``: any CTC model with a processor, loaded from a local directory with
  ``AutoModelForCTC`` and ``AutoProcessor`` (e.g. ``facebook/wav2vec2-base-960h`` or
  ``facebook/hubert-large-ls960-ft``), greedy decoding. Pinned by the digest of the loaded weights.
- ``nemo``: the paper's recognizer, NVIDIA NeMo ``stt_en_conformer_transducer_xlarge``
  (https://huggingface.co/nvidia/stt_en_conformer_transducer_xlarge), from its ``.nemo`` file. Needs
  the NeMo toolkit (``pip install "nemo_toolkit[asr]"``), which uniflow does not install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import torch

from uniflow.evaluate import text_normalizer
from uniflow.evaluate.backbones import (
    BackboneChoice,
    BackboneSpec,
    backbone_card,
    check_pin,
    module_digest,
    path_digest,
    require_path,
)
from uniflow.evaluate.cards import mono_at_rate, own_implementation
from uniflow.evaluate.nemo_models import restore_nemo_model
from uniflow.evaluate.signal_metrics import MetricUnavailable, Score
from uniflow.hashing import sha256_file

AsrName = Literal["pocketsphinx", "transformers-ctc", "nemo"]
ASR_SAMPLE_RATE = 16000
METRIC = "WER"

# Where each recognizer's weights are looked for unless the settings name another place.
# The .nemo pin is the sha256 Hugging Face publishes for nvidia/stt_en_conformer_transducer_xlarge
# (file stt_en_conformer_transducer_xlarge.nemo, 2.58 GB, Git LFS details of the main branch).
# facebook/wav2vec2-base-960h publishes no checksum we could find: that default is unpinned.
DEFAULT_BACKBONES: dict[str, BackboneSpec] = {
    "pocketsphinx": BackboneSpec(name="pocketsphinx/en-us", path=None),
    "transformers-ctc": BackboneSpec(name="facebook/wav2vec2-base-960h", path="models/eval/wav2vec2-base-960h"),
    "nemo": BackboneSpec(
        name="nvidia/stt_en_conformer_transducer_xlarge",
        path="models/eval/stt_en_conformer_transducer_xlarge.nemo",
        sha256="79b8cb6110dc3816f4a70fc97b332c2063207200fdb0f2b94191ed167164ebf7",
    ),
}


class WerSettings(BackboneChoice):
    """Which recognizer transcribes the generated speech, and where its weights are.

    ``backbone`` defaults to ``DEFAULT_BACKBONES[asr]``: for ``pocketsphinx`` a ``path`` of None means
    the model directory inside the pocketsphinx wheel; another ``path`` is a directory laid out like it
    (one acoustic-model folder holding ``mdef``, one ``*.dict``, one ``*.lm.bin``). For
    ``transformers-ctc`` it is a ``save_pretrained`` directory (``huggingface-cli download
    facebook/wav2vec2-base-960h --local-dir models/eval/wav2vec2-base-960h``); for ``nemo`` the ``.nemo``
    file (download ``stt_en_conformer_transducer_xlarge.nemo`` from the model page above).
    """

    asr: AsrName = "pocketsphinx"
    device: str = "cpu"

    CHOICE_FIELD = "asr"
    DEFAULT_BACKBONES = DEFAULT_BACKBONES


class AsrBackbone(Protocol):
    """A loaded recognizer: what it is (``card``), the rate it listens at, and a transcriber."""

    card: dict[str, Any]
    sample_rate: int

    def transcribe(self, audio: np.ndarray) -> str:
        """Raw transcript of mono float32 audio at ``sample_rate``."""
        ...


class EditCounts(NamedTuple):
    """Word edits between a reference and a hypothesis along one minimal alignment."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def hits(self) -> int:
        return self.reference_words - self.substitutions - self.deletions


class AlignedWord(NamedTuple):
    """One step of a word alignment: ``op`` is match, substitution, deletion or insertion."""

    op: Literal["match", "substitution", "deletion", "insertion"]
    reference: str | None
    hypothesis: str | None


# -- edit distance ---------------------------------------------------------------------------------


def align_words(reference: Sequence[str], hypothesis: Sequence[str]) -> list[AlignedWord]:
    """A minimal-cost word alignment (unit costs). Among equally cheap alignments the backtrace from the
    end prefers a match or substitution, then a deletion, then an insertion, so the split into S/D/I is
    deterministic."""
    rows, cols = len(reference) + 1, len(hypothesis) + 1
    cost = np.zeros((rows, cols), dtype=np.int64)
    cost[:, 0] = np.arange(rows)
    cost[0, :] = np.arange(cols)
    for i in range(1, rows):
        ref_word = reference[i - 1]
        # Row i from row i-1 in vector form for the diagonal and vertical moves; the horizontal move
        # (insertion) depends on the row being built, so it is a running minimum.
        diagonal = cost[i - 1, :-1] + np.fromiter((word != ref_word for word in hypothesis), dtype=np.int64, count=cols - 1)
        vertical = cost[i - 1, 1:] + 1
        best = np.minimum(diagonal, vertical)
        row = cost[i]
        for j in range(1, cols):
            row[j] = min(best[j - 1], row[j - 1] + 1)
    steps: list[AlignedWord] = []
    i, j = rows - 1, cols - 1
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            same = reference[i - 1] == hypothesis[j - 1]
            if cost[i, j] == cost[i - 1, j - 1] + (0 if same else 1):
                steps.append(AlignedWord("match" if same else "substitution", reference[i - 1], hypothesis[j - 1]))
                i, j = i - 1, j - 1
                continue
        if i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            steps.append(AlignedWord("deletion", reference[i - 1], None))
            i -= 1
        else:
            steps.append(AlignedWord("insertion", None, hypothesis[j - 1]))
            j -= 1
    steps.reverse()
    return steps


def edit_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> EditCounts:
    """Substitutions, deletions and insertions turning ``reference`` into ``hypothesis`` (word lists)."""
    ops = [step.op for step in align_words(reference, hypothesis)]
    return EditCounts(ops.count("substitution"), ops.count("deletion"), ops.count("insertion"), len(reference))


# -- scoring ---------------------------------------------------------------------------------------


def wer_of_transcripts(
    references: Sequence[str], hypotheses: Sequence[str], *, asr_card: dict[str, Any] | None = None
) -> Score:
    """Corpus WER of raw transcripts against raw references (both normalized here), with its card.

    The card lists every utterance's normalized texts and counts under ``utterances``.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("WER needs at least one utterance")
    utterances = []
    totals = [0, 0, 0, 0]
    for index, (reference, hypothesis) in enumerate(zip(references, hypotheses, strict=True)):
        reference_words = text_normalizer.normalize_words(reference)
        if not reference_words:
            raise ValueError(f"utterance {index}: reference {reference!r} has no words after normalization")
        hypothesis_words = text_normalizer.normalize_words(hypothesis)
        counts = edit_counts(reference_words, hypothesis_words)
        totals = [total + count for total, count in zip(totals, counts, strict=True)]
        utterances.append(
            {
                "wer": counts.errors / counts.reference_words,
                **counts._asdict(),
                "reference": " ".join(reference_words),
                "hypothesis": " ".join(hypothesis_words),
            }
        )
    total = EditCounts(*totals)
    card: dict[str, Any] = {
        "metric": "wer",
        "implementation": own_implementation(__name__, __file__, normalizer_sha256=sha256_file(text_normalizer.__file__)),
        "normalizer": {"version": text_normalizer.NORMALIZER_VERSION, "module": text_normalizer.__name__},
        "backbone": asr_card,
        "settings": {
            "unit": "fraction of reference words (x100 for percent)",
            "alignment": "word-level Levenshtein, unit costs; ties: match/substitution, then deletion, then insertion",
            "aggregation": "corpus: total errors / total reference words",
        },
        "counts": {**total._asdict(), "errors": total.errors, "utterances": len(utterances)},
        "utterances": utterances,
    }
    return Score(total.errors / total.reference_words, card)


def word_error_rate(asr: AsrBackbone, items: Sequence[tuple[np.ndarray, int, str]]) -> Score:
    """Corpus WER of ``(audio, sample_rate, reference_text)`` items transcribed by ``asr``."""
    if not items:
        raise ValueError("WER needs at least one utterance")
    hypotheses = [transcribe(asr, audio, sample_rate) for audio, sample_rate, _ in items]
    score = wer_of_transcripts([text for _, _, text in items], hypotheses, asr_card=asr.card)
    rates = sorted({int(sample_rate) for _, sample_rate, _ in items})
    score.card["sample_rate"] = asr.sample_rate
    score.card["input_sample_rate"] = rates[0] if len(rates) == 1 else rates
    score.card["audio_seconds"] = round(sum(len(audio) / sample_rate for audio, sample_rate, _ in items), 3)
    if rates != [asr.sample_rate]:
        score.card["resampler"] = {"package": "soxr", "version": importlib.metadata.version("soxr"), "quality": "VHQ"}
    return score


def transcribe(asr: AsrBackbone, audio: np.ndarray, sample_rate: int) -> str:
    """Raw transcript of mono float audio at ``sample_rate`` (resampled to the recognizer's rate with soxr)."""
    return asr.transcribe(mono_at_rate(audio, sample_rate, asr.sample_rate))


# -- loading ---------------------------------------------------------------------------------------


def load_asr(settings: WerSettings) -> AsrBackbone:
    """The configured recognizer, loaded once for many utterances.

    Raises MetricUnavailable when its package or weights are missing and BackbonePinError when the
    weights are not the pinned ones.
    """
    if settings.asr == "pocketsphinx":
        return PocketsphinxAsr.load(settings.backbone)
    if settings.asr == "transformers-ctc":
        return TransformersCtcAsr.load(settings.backbone, settings.device)
    return NemoAsr.load(settings.backbone, settings.device)


class PocketsphinxAsr:
    """pocketsphinx 5 large-vocabulary decoding (n-gram language model, the package's default beams)."""

    sample_rate = ASR_SAMPLE_RATE

    def __init__(self, decoder: Any, card: dict[str, Any]) -> None:
        self._decoder = decoder
        self.card = card

    @classmethod
    def load(cls, spec: BackboneSpec) -> PocketsphinxAsr:
        try:
            pocketsphinx = importlib.import_module("pocketsphinx")
        except ImportError as error:
            raise MetricUnavailable(f"{METRIC} with asr 'pocketsphinx' needs pip install pocketsphinx==5.1.1") from error
        if spec.path is None:
            model_dir = Path(pocketsphinx.get_model_path()) / "en-us"
            if not model_dir.is_dir():
                raise MetricUnavailable(f"{METRIC}: the pocketsphinx package has no en-us model at {model_dir}")
        else:
            model_dir = require_path(spec, METRIC)
        acoustic, dictionary, language_model = _pocketsphinx_files(model_dir)
        digest = path_digest(model_dir)
        check_pin(spec, digest, METRIC)
        config = pocketsphinx.Config(
            hmm=str(acoustic), dict=str(dictionary), lm=str(language_model), samprate=ASR_SAMPLE_RATE, loglevel="FATAL"
        )
        decoder = pocketsphinx.Decoder(config)
        card = backbone_card(
            spec,
            digest,
            asr="pocketsphinx",
            package={"name": "pocketsphinx", "version": importlib.metadata.version("pocketsphinx")},
            model_dir=str(model_dir),
            files={"acoustic_model": acoustic.name, "dictionary": dictionary.name, "language_model": language_model.name},
            decoding="n-gram LM search with pocketsphinx's default beams; front end re-initialized per utterance",
        )
        return cls(decoder, card)

    def transcribe(self, audio: np.ndarray) -> str:
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16).tobytes()
        decoder = self._decoder
        # The feature front end carries its cepstral mean over from the previous utterance; without a
        # reset a transcript would depend on the order of the test set.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return "" if hypothesis is None else str(hypothesis.hypstr)


class TransformersCtcAsr:
    """A CTC model and its processor from a local ``save_pretrained`` directory, greedy (argmax) decoding."""

    def __init__(self, model: torch.nn.Module, processor: Any, card: dict[str, Any], device: torch.device) -> None:
        self.model = model
        self.processor = processor
        self.card = card
        self.device = device
        self.sample_rate = int(processor.feature_extractor.sampling_rate)

    @classmethod
    def load(cls, spec: BackboneSpec, device: str = "cpu") -> TransformersCtcAsr:
        path = require_path(spec, METRIC)
        from transformers import AutoModelForCTC, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            model = AutoModelForCTC.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise MetricUnavailable(f"{METRIC}: {path} is not a usable CTC model directory: {error}") from error
        model.eval()
        digest = module_digest(model)
        check_pin(spec, digest, METRIC)
        torch_device = torch.device(device)
        card = backbone_card(
            spec,
            digest,
            asr="transformers-ctc",
            architecture=type(model).__name__,
            package={"name": "transformers", "version": importlib.metadata.version("transformers")},
            decoding="greedy CTC (argmax per frame, repeats and blanks collapsed by the tokenizer)",
        )
        return cls(model.to(torch_device), processor, card, torch_device)

    def transcribe(self, audio: np.ndarray) -> str:
        inputs = self.processor(audio=audio, sampling_rate=self.sample_rate, return_tensors="pt")
        values = inputs["input_values"].to(self.device)
        mask = inputs.get("attention_mask")
        with torch.inference_mode():
            logits = self.model(values, attention_mask=None if mask is None else mask.to(self.device)).logits
        ids = logits.argmax(dim=-1).cpu()
        return str(self.processor.batch_decode(ids)[0])


class NemoAsr:
    """A NeMo ASR model restored from its ``.nemo`` file (the paper's Conformer-Transducer XL)."""

    sample_rate = ASR_SAMPLE_RATE

    def __init__(self, model: Any, card: dict[str, Any]) -> None:
        self.model = model
        self.card = card

    @classmethod
    def load(cls, spec: BackboneSpec, device: str = "cpu") -> NemoAsr:
        decoding = "the model's own transcribe() with its default decoding"
        return cls(*restore_nemo_model(spec, METRIC, "ASRModel", device, asr="nemo", decoding=decoding))

    def transcribe(self, audio: np.ndarray) -> str:
        result = self.model.transcribe([audio], batch_size=1)
        # RNN-T models of NeMo 1.x return (best hypotheses, all hypotheses); 2.x returns the list.
        if isinstance(result, tuple):
            result = result[0]
        first = result[0]
        return str(getattr(first, "text", first))


# -- helpers ---------------------------------------------------------------------------------------


def _pocketsphinx_files(model_dir: Path) -> tuple[Path, Path, Path]:
    """The acoustic-model folder, dictionary and language model inside a pocketsphinx model directory."""
    acoustic = sorted(path for path in model_dir.iterdir() if (path / "mdef").is_file())
    dictionaries = sorted(model_dir.glob("*.dict"))
    models = sorted(path for path in model_dir.glob("*.lm.bin") if not path.name.endswith("-phone.lm.bin"))
    found = {"acoustic model folder (with mdef)": acoustic, "*.dict": dictionaries, "*.lm.bin": models}
    problems = [f"{len(paths)} {what}" for what, paths in found.items() if len(paths) != 1]
    if problems:
        raise MetricUnavailable(f"{METRIC}: pocketsphinx model directory {model_dir} needs exactly one of each, found {', '.join(problems)}")
    return acoustic[0], dictionaries[0], models[0]

