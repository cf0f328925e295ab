"""Which metrics score which task (the paper's appendix B), and how a task's generated items are scored.

Per-item metrics (PESQ, STOI, LSD, F0, SA, SIM, CLAP, IB, sync) are averaged over the items they could score;
an item a metric cannot score (too short for STOI, nothing voiced for F0) is skipped and counted with its reason.
Set metrics (FD, WER) are computed once over all items. A backbone that is not installed turns its metrics into
"not computed" rows carrying the reason; it is tried once per run.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uniflow.evaluate.av_sync import load_synchformer, onset_xcorr_sync, synchformer_sync
from uniflow.evaluate.cards import mono_at_rate
from uniflow.evaluate.clap_score import clap_score, load_clap
from uniflow.evaluate.config import EvaluationConfig
from uniflow.evaluate.frechet import fd_score, load_embedder
from uniflow.evaluate.generation import GeneratedItem
from uniflow.evaluate.imagebind_score import imagebind_score, load_imagebind
from uniflow.evaluate.reference_items import ReferenceItem
from uniflow.evaluate.signal_metrics import MetricUnavailable, Score, log_spectral_distance, pesq_wb, stoi, svs_pitch_metrics
from uniflow.evaluate.speaker_similarity import load_speaker_backbone, speaker_similarity
from uniflow.evaluate.wer import load_asr, word_error_rate

Pair = tuple[GeneratedItem, ReferenceItem]


@dataclass
class MetricResult:
    """One row of the table: a task's metric over its items, or the reason it was not computed."""

    task: str
    metric: str
    value: float | None
    card: dict[str, Any] | None = None
    reason: str | None = None
    items: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> items

    def as_row(self) -> dict[str, Any]:
        card_sha256 = None
        if self.card is not None:
            card_sha256 = hashlib.sha256(json.dumps(self.card, sort_keys=True, default=str).encode()).hexdigest()
        return {
            "task": self.task,
            "metric": self.metric,
            "value": self.value,
            "reason": self.reason,
            "items": self.items,
            "skipped": sum(self.skipped.values()),
            "skip_reasons": self.skipped,
            "card": self.card,
            "card_sha256": card_sha256,
        }


class Backbones:
    """Metric backbones loaded on first use and kept for the run; one that cannot load is not retried."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._missing: dict[str, str] = {}

    def get(self, name: str, load: Callable[[], Any]) -> Any:
        """The loaded backbone, or MetricUnavailable (again, with the first reason) when it could not load."""
        if name in self._missing:
            raise MetricUnavailable(self._missing[name])
        if name not in self._loaded:
            try:
                self._loaded[name] = load()
            except MetricUnavailable as exc:
                self._missing[name] = str(exc)
                raise
        return self._loaded[name]


def _aggregate(task: str, metric: str, scores: list[Score], skipped: Counter) -> MetricResult:
    """Mean over the scored items; the card is the first item's with the aggregation and the item count."""
    if not scores:
        reason = "; ".join(f"{count} x {why}" for why, count in skipped.items()) or "no items"
        return MetricResult(task, metric, None, reason=f"no item could be scored ({reason})", skipped=dict(skipped))
    card = {**scores[0].card, "aggregate": "mean over items", "items": len(scores)}
    card.pop("compared_seconds", None)
    value = float(np.mean([score.value for score in scores]))
    return MetricResult(task, metric, value, card=card, items=len(scores), skipped=dict(skipped))


def per_item(task: str, metrics: list[str], pairs: list[Pair], score: Callable[[GeneratedItem, ReferenceItem], dict[str, Score]]) -> list[MetricResult]:
    """Score every pair with ``score`` (one call gives every metric of ``metrics``) and average per metric."""
    collected: dict[str, list[Score]] = {metric: [] for metric in metrics}
    skipped: Counter = Counter()
    for generated, reference in pairs:
        try:
            scores = score(generated, reference)
        except MetricUnavailable as exc:
            return [MetricResult(task, metric, None, reason=str(exc)) for metric in metrics]
        except ValueError as exc:
            skipped[str(exc)] += 1
            continue
        for metric in metrics:
            collected[metric].append(scores[metric])
    return [_aggregate(task, metric, collected[metric], skipped) for metric in metrics]


def _reference_pair(generated: GeneratedItem, reference: ReferenceItem) -> tuple[np.ndarray, np.ndarray, int]:
    """(reference, estimate) at the reference's rate, cut to the shorter: a generated clip ends on a latent frame."""
    estimate = mono_at_rate(generated.audio, generated.sample_rate, reference.sample_rate, generated.key)
    length = min(len(estimate), len(reference.target))
    return reference.target[:length], estimate[:length], reference.sample_rate


# -- the tasks ----------------------------------------------------------------------------------------------
def _se(pairs: list[Pair], config: EvaluationConfig, backbones: Backbones) -> list[MetricResult]:
    def score(generated: GeneratedItem, reference: ReferenceItem) -> dict[str, Score]:
        clean, enhanced, rate = _reference_pair(generated, reference)
        return {"pesq_wb": pesq_wb(clean, enhanced, rate), "stoi": stoi(clean, enhanced, rate)}

    return per_item("se", ["pesq_wb", "stoi"], pairs, score)


def _sr(pairs: list[Pair], config: EvaluationConfig, backbones: Backbones) -> list[MetricResult]:
    def score(generated: GeneratedItem, reference: ReferenceItem) -> dict[str, Score]:
        return {"lsd": log_spectral_distance(*_reference_pair(generated, reference))}

    return per_item("sr", ["lsd"], pairs, score)


def _svs(pairs: list[Pair], config: EvaluationConfig, backbones: Backbones) -> list[MetricResult]:
    def score(generated: GeneratedItem, reference: ReferenceItem) -> dict[str, Score]:
        return svs_pitch_metrics(*_reference_pair(generated, reference), unit=config.f0_unit)

    return per_item("svs", ["f0_rmse", "semitone_accuracy"], pairs, score)


def set_metric(task: str, metric: str, items: int, compute: Callable[[], Score]) -> MetricResult:
    """A metric over the whole set (FD, WER, CLAP, IB, sync): one score, or the reason there is none."""
    if not items:
        return MetricResult(task, metric, None, reason="no items")
    try:
        score = compute()
    except MetricUnavailable as exc:
        return MetricResult(task, metric, None, reason=str(exc))
    except ValueError as exc:
        return MetricResult(task, metric, None, reason=f"could not be scored: {exc}", items=items)
    return MetricResult(task, metric, score.value, card=score.card, items=items)


def _tts(pairs: list[Pair], config: EvaluationConfig, backbones: Backbones) -> list[MetricResult]:
    with_text = [(generated, reference) for generated, reference in pairs if reference.text]

    def wer() -> Score:
        asr = backbones.get("wer", lambda: load_asr(config.wer))
        return word_error_rate(asr, [(generated.audio, generated.sample_rate, reference.text) for generated, reference in with_text])

    def similarity() -> Score:
        encoder = backbones.get("speaker_similarity", lambda: load_speaker_backbone(config.speaker_similarity))
        # Whole clips (no cut to a common length): TTS durations are predicted, so lengths legitimately differ.
        return speaker_similarity(encoder, [
            (mono_at_rate(generated.audio, generated.sample_rate, reference.sample_rate, generated.key), reference.target, reference.sample_rate)
            for generated, reference in pairs
        ])

    results = [set_metric("tts", "wer", len(with_text), wer), set_metric("tts", "speaker_similarity", len(pairs), similarity)]
    if len(with_text) < len(pairs):
        results[0].skipped["no transcript in the sample's json"] = len(pairs) - len(with_text)
    return results


def _text_to_audio(task: str) -> Callable[[list[Pair], EvaluationConfig, Backbones], list[MetricResult]]:
    """T2A and T2M: FD of generated against reference clips, and the CLAP score of each caption and its clip."""

    def scorer(pairs: list[Pair], config: EvaluationConfig, backbones: Backbones) -> list[MetricResult]:
        def fd() -> Score:
            embedder = backbones.get("frechet", lambda: load_embedder(config.frechet))
            return fd_score(embedder, [(ref.target, ref.sample_rate) for _, ref in pairs],
                            [(gen.audio, gen.sample_rate) for gen, _ in pairs])

        captioned = [(generated, reference) for generated, reference in pairs if reference.caption]

        def clap() -> Score:
            backbone = backbones.get("clap", lambda: load_clap(config.clap))
            return clap_score(backbone, [ref.caption for _, ref in captioned], [(gen.audio, gen.sample_rate) for gen, _ in captioned])

        return [set_metric(task, "fd", len(pairs), fd), set_metric(task, "clap", len(captioned), clap)]

    return scorer


def _v2a(pairs: list[Pair], config: EvaluationConfig, backbones: Backbones) -> list[MetricResult]:
    with_video = []
    for generated, reference in pairs:
        if reference.video is not None:
            video = generated.path.with_suffix(".mp4")  # beside the generated audio, to watch them together
            video.write_bytes(reference.video)
            with_video.append((str(video), generated.audio, generated.sample_rate))

    def imagebind() -> Score:
        return imagebind_score(backbones.get("imagebind", lambda: load_imagebind(config.imagebind)), with_video)

    def synchformer() -> Score:
        return synchformer_sync(backbones.get("synchformer", lambda: load_synchformer(config.sync.synchformer)), with_video)

    results = [set_metric("v2a", "imagebind", len(with_video), imagebind)]
    if "synchformer" in config.sync.estimators:
        results.append(set_metric("v2a", "sync_offset", len(with_video), synchformer))
    if "onset-xcorr" in config.sync.estimators:
        results.append(set_metric("v2a", "sync_offset_onset", len(with_video), lambda: onset_xcorr_sync(with_video, config.sync.onset_xcorr)))
    if len(with_video) < len(pairs):
        for result in results:
            result.skipped["no video in the audio shard sample"] = len(pairs) - len(with_video)
    return results


TASK_SCORERS: dict[str, Callable[[list[Pair], EvaluationConfig, Backbones], list[MetricResult]]] = {
    "tts": _tts,
    "svs": _svs,
    "t2a": _text_to_audio("t2a"),
    "t2m": _text_to_audio("t2m"),
    "se": _se,
    "sr": _sr,
    "v2a": _v2a,
}


def score_task(
    task: str,
    generated: list[GeneratedItem],
    references: dict[str, ReferenceItem],
    config: EvaluationConfig,
    backbones: Backbones,
) -> list[MetricResult]:
    """Every metric of ``task`` over the generated items that have a reference (others are skipped, counted)."""
    pairs = [(item, references[item.key]) for item in generated if item.key in references]
    results = TASK_SCORERS[task](pairs, config, backbones)
    missing = len(generated) - len(pairs)
    if missing:
        for result in results:
            result.skipped["no reference audio in the audio shards"] = missing
    return results
