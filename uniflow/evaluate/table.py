"""The evaluation table in the layout of the paper's Table 1, with the inference settings beside it.

One row per task and objective metric, the value of this checkpoint next to UniFlow-Audio large's from Table 1,
in the paper's units (WER and SA in %, SIM and IB x100); a metric that could not run shows its reason instead
of a number. Every value links to its metric card by the card's sha256 prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricColumn:
    """How Table 1 prints a metric: its label (with the better direction), scale and the paper's value."""

    task: str
    metric: str
    label: str
    scale: float
    decimals: int
    paper: float | None


# Table 1, UniFlow-Audio (large). SYNC is Synchformer's mean |offset|, read as ms (the VisualSound evaluation averages
# |offset| in seconds; 1145 only makes sense in ms); uniflow's onset-xcorr estimator is not comparable (see its card).
TABLE1: tuple[MetricColumn, ...] = (
    MetricColumn("tts", "wer", "WER↓ (%)", 100.0, 2, 3.09),
    MetricColumn("tts", "speaker_similarity", "SIM↑ (x100)", 100.0, 1, 55.8),
    MetricColumn("svs", "f0_rmse", "F0↓", 1.0, 3, 0.147),
    MetricColumn("svs", "semitone_accuracy", "SA↑ (%)", 100.0, 1, 59.9),
    MetricColumn("t2a", "fd", "FD↓", 1.0, 1, 17.2),
    MetricColumn("t2a", "clap", "CLAP↑", 1.0, 3, 0.476),
    MetricColumn("t2m", "fd", "FD↓", 1.0, 1, 27.1),
    MetricColumn("t2m", "clap", "CLAP↑", 1.0, 3, 0.241),
    MetricColumn("se", "pesq_wb", "PESQ↑", 1.0, 2, 2.91),
    MetricColumn("se", "stoi", "STOI↑", 1.0, 3, 0.944),
    MetricColumn("sr", "lsd", "LSD↓", 1.0, 2, 1.49),
    MetricColumn("v2a", "imagebind", "IB↑ (x100)", 100.0, 1, 28.6),
    MetricColumn("v2a", "sync_offset", "SYNC↓ (ms, Synchformer)", 1.0, 0, 1145.0),
    MetricColumn("v2a", "sync_offset_onset", "abs. offset↓ (ms, onset-xcorr: not the paper's SYNC)", 1.0, 0, None),
)
COLUMNS = {(column.task, column.metric): column for column in TABLE1}


def column(task: str, metric: str) -> MetricColumn:
    return COLUMNS[(task, metric)]


def _value(row: dict[str, Any], spec: MetricColumn) -> str:
    if row.get("value") is None:
        return f"not computed: {row.get('reason') or 'no result'}".replace("|", "\\|")
    text = f"{row['value'] * spec.scale:.{spec.decimals}f}"
    if row.get("card_sha256"):
        text += f" [{row['card_sha256'][:8]}]"
    return text


def table1_markdown(rows: list[dict[str, Any]], settings: dict[str, Any], title: str) -> str:
    """Markdown: the Table 1 layout for ``rows`` (from ``uniflow.evaluate.run``), then the inference settings."""
    by_key = {(row["task"], row["metric"]): row for row in rows}
    lines = [f"## {title}", "", "| Task | Metric | this checkpoint | items | UniFlow-Audio large (paper) |", "|---|---|---|---|---|"]
    last_task = None
    for spec in TABLE1:
        row = by_key.get((spec.task, spec.metric))
        if row is None:
            continue
        task = spec.task.upper() if spec.task != last_task else ""
        last_task = spec.task
        items = f"{row.get('items', 0)}" + (f" ({row['skipped']} skipped)" if row.get("skipped") else "")
        paper = "" if spec.paper is None else f"{spec.paper:g}"
        lines.append(f"| {task} | {spec.label} | {_value(row, spec)} | {items} | {paper} |")
    lines += ["", "**Inference settings**", "", "| setting | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in settings.items()]
    lines += ["", "Values in brackets are the first 8 hex digits of the metric card's sha256 (evaluation.json)."]
    return "\n".join(lines) + "\n"
