"""The corpus table: hours per task, corpus and split summed from the shard ledgers, beside Table 4.

Every number comes from the ledgers (``<role>/<task>/<split>/ledger.jsonl``), which record for
each shard the seconds of every corpus it holds, so the table says what the shards really contain
rather than what was planned. The paper's hours (Table 4, via ``datasets/plan.yaml``) are training
hours, so they appear on train rows only.

Row kinds (``level``): ``corpus`` (one task, corpus and split), ``task`` (a task's total for one
split) and ``total`` (all tasks for one split). Per-corpus ``samples`` is exact only where every
shard holding the corpus holds nothing else: the ledger counts samples per shard, not per corpus,
so a corpus sharing a shard with another gets ``None`` there. Task and grand totals are always exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from uniflow.corpora.recipe import SPLITS, TASKS, Plan
from uniflow.orchestration import in_prefect_run
from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.storage import Role, Storage

ALL = "all"
ARTIFACT_KEY = "corpus-hours-ledger"
REPORT_NAME = "corpus"
COLUMNS: tuple[str, ...] = ("level", "task", "corpus", "split", "hours", "paper_hours", "shards", "samples")


@dataclass
class _Tally:
    seconds: float = 0.0
    shards: int = 0
    samples: int | None = 0

    def row(self, level: str, task: str, corpus: str, split: str, paper_hours: float | None) -> dict[str, Any]:
        return {
            "level": level,
            "task": task,
            "corpus": corpus,
            "split": split,
            "hours": self.seconds / 3600.0,
            "paper_hours": paper_hours,
            "shards": self.shards,
            "samples": self.samples,
        }


def paper_hours_by_corpus(plan: Plan, task: str) -> dict[str, float]:
    """Table 4's training hours of each source corpus of ``task`` (sources without hours left out)."""
    hours: dict[str, float] = {}
    task_plan = plan.tasks.get(task)  # type: ignore[call-overload]
    if task_plan is None:
        return hours
    for source in task_plan.sources:
        if source.paper_hours is not None:
            hours[source.corpus] = hours.get(source.corpus, 0.0) + source.paper_hours
    return hours


def corpus_table(storage: Storage, plan: Plan, role: Role = "shards") -> list[dict[str, Any]]:
    """Rows of the corpus table (see the module docstring), in task, split, corpus order.

    A plan corpus with paper hours but no shards yet still gets a train row with 0 measured hours,
    so a missing corpus shows up as a gap instead of disappearing from the table.
    """
    rows: list[dict[str, Any]] = []
    grand = {split: _Tally() for split in SPLITS}
    for task in TASKS:
        paper_by_corpus = paper_hours_by_corpus(plan, task)
        task_plan = plan.tasks.get(task)  # type: ignore[call-overload]
        for split in SPLITS:
            records = read_ledger(ShardSet(storage, role, task, split))
            corpora: dict[str, _Tally] = {}
            task_tally = _Tally()
            for record in records:
                task_tally.seconds += record.seconds
                task_tally.shards += 1
                task_tally.samples = (task_tally.samples or 0) + record.samples
                single_corpus = len(record.seconds_by_corpus) == 1
                for corpus, seconds in record.seconds_by_corpus.items():
                    tally = corpora.setdefault(corpus, _Tally())
                    tally.seconds += seconds
                    tally.shards += 1
                    # Samples per corpus are known only for shards holding one corpus.
                    tally.samples = tally.samples + record.samples if single_corpus and tally.samples is not None else None
            if split == "train":
                for corpus in paper_by_corpus:
                    corpora.setdefault(corpus, _Tally())
            if not corpora and split != "train":
                continue
            for corpus in sorted(corpora):
                paper = paper_by_corpus.get(corpus) if split == "train" else None
                rows.append(corpora[corpus].row("corpus", task, corpus, split, paper))
            task_paper = task_plan.paper_hours if task_plan is not None and split == "train" else None
            rows.append(task_tally.row("task", task, ALL, split, task_paper))
            total = grand[split]
            total.seconds += task_tally.seconds
            total.shards += task_tally.shards
            total.samples = (total.samples or 0) + (task_tally.samples or 0)
    for split in SPLITS:
        paper = plan.paper_total_hours if split == "train" else None
        if split == "train" or grand[split].shards:
            rows.append(grand[split].row("total", ALL, ALL, split, paper))
    return rows


def _hours_text(hours: float | None) -> str:
    if hours is None:
        return "–"
    if hours == 0:
        return "0"
    if hours >= 0.01:
        return f"{hours:,.2f}"
    return f"{hours:.2e}"  # mini builds hold seconds, not hours; keep them visible


def corpus_table_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table; task and grand totals in bold."""
    header = "| Task | Corpus | Split | Hours (shards) | Hours (paper, Table 4) | Shards | Samples |"
    lines = [header, "|---|---|---|---:|---:|---:|---:|"]
    for row in rows:
        cells = [
            row["task"],
            row["corpus"],
            row["split"],
            _hours_text(row["hours"]),
            _hours_text(row["paper_hours"]),
            f"{row['shards']:,}",
            "–" if row["samples"] is None else f"{row['samples']:,}",
        ]
        if row["level"] != "corpus":
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def publish_report(storage: Storage, plan: Plan, role: Role = "shards") -> list[dict[str, Any]]:
    """Write ``<reports>/corpus.md`` and ``corpus.json``; inside a Prefect run, also a table artifact."""
    rows = corpus_table(storage, plan, role)
    markdown = (
        "# Corpus hours from the shard ledgers\n\n"
        f"Hours summed from `{storage.url(role)}/<task>/<split>/ledger.jsonl`; paper hours are Table 4's "
        f"training hours (total {_hours_text(plan.paper_total_hours)} h).\n\n" + corpus_table_markdown(rows)
    )
    document = {"paper_total_hours": plan.paper_total_hours, "columns": list(COLUMNS), "rows": rows}
    storage.write_text("reports", f"{REPORT_NAME}.md", text=markdown)
    storage.write_text("reports", f"{REPORT_NAME}.json", text=json.dumps(document, indent=1) + "\n")
    if in_prefect_run():
        from prefect.artifacts import create_table_artifact

        create_table_artifact(rows, key=ARTIFACT_KEY, description="Hours per task, corpus and split from the shard ledgers, beside Table 4")
    return rows
