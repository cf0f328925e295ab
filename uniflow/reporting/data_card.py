"""The data card of a build: what its shards hold, where it came from and what changed, as JSON and HTML.

``collect_data_card`` gathers the facts from the outputs the stages already wrote, reusing their
readers: the corpus table of the shard ledgers (``uniflow.shards.report``) for hours against the
paper's Table 4, ``uniflow.status``'s row readers for alignment coverage and the quarantine and skip counts, the
recipes for licenses, the ``json`` member of every shard sample for durations (only those small
members are read; tar headers let the reader seek past the audio), and the simulation parameter
manifests (``batch_*.params.jsonl`` of rendered batches, quarantined pairs left out) for SNRs,
cutoffs and augmentations.

``publish_data_card`` writes ``<reports>/data_card.json`` and ``data_card.html``. The previous
``data_card.json`` is first kept as ``data_card.previous.json`` and the new card says what changed
against it. The HTML is one self-contained file: inline CSS and SVG, no script, no external resource.
"""

from __future__ import annotations

import json
import math
import tarfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from uniflow.corpora.recipe import SPLITS, TASKS, Plan, Recipe, load_recipes
from uniflow.reporting.svg_charts import bar_chart_svg, histogram_svg, nice_step
from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.shards.report import corpus_table, corpus_table_markdown
from uniflow.status import NO_SPLIT, StatusReport, plan_corpora, status
from uniflow.storage import Storage

CARD_VERSION = 1
CARD_NAME = "data_card"
JSON_NAME = f"{CARD_NAME}.json"
PREVIOUS_NAME = f"{CARD_NAME}.previous.json"
HTML_NAME = f"{CARD_NAME}.html"
ARTIFACT_KEY = "data-card"
MAX_BINS = 20
# Status counts that say recordings, pairs or samples were lost on the way (not work still to do).
LOSS_COUNTS: tuple[str, ...] = ("quarantined", "clips_failed", "failed", "skipped", "skipped_sources")
SIMULATED_TASKS: tuple[str, ...] = ("se", "sr")


# -- the card's parts ------------------------------------------------------------------------------------
@dataclass
class Histogram:
    """Counts over numeric bins (``edges``, one more than counts) or named categories (``labels``)."""

    id: str
    title: str
    x_label: str
    counts: list[int]
    edges: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    values: int = 0
    mean: float | None = None
    note: str = ""


@dataclass
class LicenseRow:
    corpus: str
    title: str
    license: str
    homepage: str
    access: str  # the recipe's source kind: http, huggingface, youtube or manual


@dataclass
class AlignmentRow:
    """Utterances of a corpus and split with a phone alignment (TTS) or a frame-level score (SVS)."""

    corpus: str
    split: str
    method: str
    aligned: int
    failed: int
    total: int | None  # recordings in the manifest; None when the manifest summary is missing

    @property
    def coverage(self) -> float | None:
        return self.aligned / self.total if self.total else None


@dataclass
class LossRow:
    """What one stage dropped for one corpus or task and split, with the status's explanation."""

    stage: str
    name: str
    split: str
    counts: dict[str, int]
    detail: str = ""


@dataclass
class ChangeRow:
    task: str
    corpus: str
    split: str
    change: str  # added, removed or changed
    hours_before: float | None
    hours_after: float | None
    samples_before: int | None
    samples_after: int | None


@dataclass
class Changes:
    """The difference to the previous card: rows of the hours table, and corpora new or gone."""

    first_build: bool
    previous_created: str | None = None
    rows: list[ChangeRow] = field(default_factory=list)
    corpora_new: list[str] = field(default_factory=list)
    corpora_gone: list[str] = field(default_factory=list)


@dataclass
class DataCard:
    created: str
    profile: str
    shards_url: str
    paper_total_hours: float | None
    hours: list[dict[str, Any]]  # the corpus table's rows, each with its ``ratio`` to the paper's hours
    histograms: list[Histogram]
    licenses: list[LicenseRow]
    alignment: list[AlignmentRow]
    losses: list[LossRow]
    changes: Changes
    version: int = CARD_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- collection -----------------------------------------------------------------------------------------
def sample_seconds(storage: Storage, task: str) -> list[float]:
    """``seconds`` of every sample in ``task``'s shards (all splits), read from the samples' json members."""
    durations: list[float] = []
    for split in SPLITS:
        shard_set = ShardSet(storage, "shards", task, split)
        for record in read_ledger(shard_set):
            with storage.open("shards", task, split, record.name) as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
                for member in tar:  # "r:" seeks over the audio members instead of reading them
                    if member.isfile() and member.name.endswith(".json"):
                        extracted = tar.extractfile(member)
                        assert extracted is not None
                        durations.append(float(json.loads(extracted.read()).get("seconds") or 0.0))
    return durations


def simulation_parameters(storage: Storage, task: str) -> Iterator[dict[str, Any]]:
    """The parameter lines of every rendered pair of ``task`` (se or sr), quarantined pairs left out."""
    for split in SPLITS:
        folder = storage.path("work", "simulate", task, split)
        if not folder.is_dir():
            continue
        for done in sorted(folder.glob("batch_*.done")):  # a batch not rendered yet is not part of the build
            batch = done.name.removesuffix(".done")
            quarantine = folder / f"{batch}.quarantine.jsonl"
            dropped = {json.loads(line)["key"] for line in _lines(quarantine)}
            for line in _lines(folder / f"{batch}.params.jsonl"):
                params = json.loads(line)
                if params["key"] not in dropped:
                    yield params


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def numeric_histogram(identifier: str, title: str, x_label: str, values: Sequence[float], note: str = "") -> Histogram:
    """Values counted in at most MAX_BINS bins of a round width."""
    if not values:
        return Histogram(identifier, title, x_label, counts=[], note=note or "nothing to count")
    low, high = min(values), max(values)
    step = nice_step(high - low, MAX_BINS) if high > low else nice_step(max(abs(low), 1.0), 4)
    first = math.floor(low / step)
    bins = max(math.floor(high / step) - first + 1, 1)
    counts = [0] * bins
    for value in values:
        counts[min(math.floor(value / step) - first, bins - 1)] += 1
    edges = [round((first + index) * step, 10) for index in range(bins + 1)]
    return Histogram(identifier, title, x_label, counts, edges=edges, values=len(values),
                     mean=sum(values) / len(values), note=note)


def category_histogram(identifier: str, title: str, x_label: str, counter: Counter[str], order: Sequence[str] | None = None) -> Histogram:
    labels = list(order) if order is not None else sorted(counter)
    return Histogram(identifier, title, x_label, [counter[label] for label in labels], labels=labels,
                     values=sum(counter.values()), note="" if counter else "nothing to count")


def collect_histograms(storage: Storage, tasks: Sequence[str]) -> list[Histogram]:
    """Sample durations per task with shards, then SNRs, cutoffs and augmentations of the simulated pairs."""
    histograms = []
    for task in tasks:
        seconds = sample_seconds(storage, task)
        if seconds:
            histograms.append(numeric_histogram(f"durations-{task}", f"{task}: sample durations (all splits)", "seconds", seconds))
    se = list(simulation_parameters(storage, "se"))
    simulated = [params for params in se if "snr_db" in params]
    if se:
        recorded = len(se) - len(simulated)
        note = f"{recorded} recorded pair(s) (e.g. VoiceBank+DEMAND) have no simulated SNR" if recorded else ""
        histograms.append(numeric_histogram("snr", "se: SNR of the simulated pairs", "SNR (dB)",
                                            [float(params["snr_db"]) for params in simulated], note))
        per_pair = Counter(str(len(params.get("augmentations") or [])) for params in simulated)
        order = [str(count) for count in range(max(map(int, per_pair), default=0) + 1)]
        histograms.append(category_histogram("augmentations-per-pair", "se: augmentations per simulated pair",
                                             "augmentations applied", per_pair, order))
        kinds = Counter(str(item.get("name", "?")) for params in simulated for item in params.get("augmentations") or [])
        histograms.append(category_histogram("augmentation-kinds", "se: pairs per augmentation", "augmentation", kinds))
    sr = list(simulation_parameters(storage, "sr"))
    if sr:
        histograms.append(numeric_histogram("cutoff", "sr: low-pass cutoff of the pairs", "cutoff (Hz)",
                                            [float(params["cutoff_hz"]) for params in sr if "cutoff_hz" in params]))
    return histograms


def hours_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The corpus table's rows with ``ratio`` = measured hours / the paper's hours (None without paper hours)."""
    with_ratio = []
    for row in rows:
        paper = row.get("paper_hours")
        with_ratio.append({**row, "ratio": row["hours"] / paper if paper else None})
    return with_ratio


def built_corpora(report: StatusReport, plan: Plan, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Corpora of this build: plan corpora acquired at least in part, then any corpus the shards hold."""
    acquired = [row.name for row in report.stage_rows("acquire") if row.split == NO_SPLIT and row.state != "missing"]
    in_shards = [row["corpus"] for row in rows if row["level"] == "corpus" and row["shards"]]
    ordered = [corpus for corpus in plan_corpora(plan) if corpus in acquired or corpus in in_shards]
    return ordered + sorted(set(in_shards) - set(ordered))


def license_rows(corpora: Sequence[str], recipes: dict[str, Recipe]) -> list[LicenseRow]:
    rows = []
    for corpus in corpora:
        recipe = recipes.get(corpus)
        if recipe is None:
            rows.append(LicenseRow(corpus, "(no recipe)", "unknown: no recipe in the datasets folder", "", "unknown"))
        else:
            rows.append(LicenseRow(corpus, recipe.title, recipe.license, recipe.homepage, recipe.source.kind))
    return rows


def alignment_rows(report: StatusReport) -> list[AlignmentRow]:
    """Per TTS / SVS target corpus and split, aligned (or scored) utterances out of the manifest's recordings."""
    recordings = {(row.name, row.split): row.counts.get("recordings") for row in report.stage_rows("acquire") if row.split != NO_SPLIT}
    rows = []
    for row in report.stage_rows("align"):
        if row.split == NO_SPLIT:
            continue
        if "scored" in row.counts:
            method, aligned, failed = "singing score", row.counts["scored"], row.counts.get("quarantined", 0)
        else:
            method, aligned, failed = row.detail.split(";")[0] or "alignment", row.counts.get("aligned", 0), row.counts.get("failed", 0)
        rows.append(AlignmentRow(row.name, row.split, method, aligned, failed, recordings.get((row.name, row.split))))
    return rows


def loss_rows(report: StatusReport) -> list[LossRow]:
    """Status rows that record quarantined, failed or skipped items, with only those counts."""
    rows = []
    for row in report.rows:
        counts = {key: int(row.counts[key]) for key in LOSS_COUNTS if row.counts.get(key)}
        if counts:
            rows.append(LossRow(row.stage, row.name, row.split, counts, row.detail))
    return rows


def diff_builds(previous: dict[str, Any] | None, hours: Sequence[dict[str, Any]]) -> Changes:
    """Rows of the hours table added, removed or changed since ``previous`` (a card's JSON), and corpora new or gone.

    A row without shards (a plan corpus not built yet) counts as absent.
    """
    if previous is None:
        return Changes(first_build=True)

    def present(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        return {(row["level"], row["task"], row["corpus"], row["split"]): row for row in rows if row.get("shards")}

    before, after = present(previous.get("hours", [])), present(hours)
    changes = Changes(first_build=False, previous_created=previous.get("created"))
    order = {task: index for index, task in enumerate(TASKS)}
    for key in sorted(before.keys() | after.keys(), key=lambda k: (order.get(k[1], len(order)), k[1], k[3], k[0] != "corpus", k[2])):
        old, new = before.get(key), after.get(key)
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif not math.isclose(old["hours"], new["hours"], rel_tol=1e-9, abs_tol=1e-12) or old.get("samples") != new.get("samples"):
            change = "changed"
        else:
            continue
        changes.rows.append(ChangeRow(
            key[1], key[2], key[3], change,
            old["hours"] if old else None, new["hours"] if new else None,
            old.get("samples") if old else None, new.get("samples") if new else None,
        ))
    corpora_before = {key[2] for key in before if key[0] == "corpus"}
    corpora_after = {key[2] for key in after if key[0] == "corpus"}
    changes.corpora_new = sorted(corpora_after - corpora_before)
    changes.corpora_gone = sorted(corpora_before - corpora_after)
    return changes


def collect_data_card(
    storage: Storage,
    plan: Plan,
    datasets_dir: str | Path = "datasets",
    rows: Sequence[dict[str, Any]] | None = None,
    previous: dict[str, Any] | None = None,
) -> DataCard:
    """The card of the build under ``storage``; ``rows`` are the corpus table's (computed when not given),
    ``previous`` the last card's JSON to diff against (None: a first build)."""
    table = list(rows) if rows is not None else corpus_table(storage, plan)
    recipes = load_recipes(datasets_dir)
    report = status(storage, plan, datasets_dir, recipes, training=False)  # training runs are not data
    hours = hours_rows(table)
    tasks = [task for task in TASKS if any(row["task"] == task and row["shards"] for row in table)]
    return DataCard(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        profile=storage.profile.name,
        shards_url=storage.url("shards"),
        paper_total_hours=plan.paper_total_hours,
        hours=hours,
        histograms=collect_histograms(storage, tasks),
        licenses=license_rows(built_corpora(report, plan, table), recipes),
        alignment=alignment_rows(report),
        losses=loss_rows(report),
        changes=diff_builds(previous, hours),
    )


# -- HTML -----------------------------------------------------------------------------------------------
STYLE = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 20px; color: #111;
       background: #fff; margin: 24px 32px; line-height: 1.4; }
h1 { font-size: 36px; margin: 0 0 8px 0; }
h2 { font-size: 30px; margin: 40px 0 12px 0; border-bottom: 2px solid #333; padding-bottom: 4px; }
p.meta { color: #333; margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0 16px 0; max-width: 100%; }
td { overflow-wrap: anywhere; }
th, td { padding: 6px 16px; text-align: left; border-bottom: 1px solid #ccc; }
th { background: #e8eef5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, table#hours td { white-space: nowrap; }
table#hours { font-size: 24px; }
table#hours th, table#hours td { padding: 5px 12px; }
table#hours tr.task td, table#hours tr.total td { font-weight: bold; background: #f3f6f9; }
table#hours tr.total td { border-top: 2px solid #333; }
.note { color: #444; font-style: italic; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart p { margin: 0 0 4px 0; font-size: 16px; }
"""


def format_hours(hours: float | None) -> str:
    """Hours as the card prints them: 3 significant digits (a mini build's hours are small, keep them visible)."""
    if hours is None:
        return "–"
    if hours == 0:
        return "0"
    if hours >= 100:
        return f"{hours:,.0f}"
    if hours >= 0.001:
        return f"{hours:.3g}"
    return f"{hours:.2e}"


def format_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else format_hours(ratio)


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _cell(value: Any, numeric: bool = False) -> str:
    return f'<td class="num">{escape(str(value))}</td>' if numeric else f"<td>{escape(str(value))}</td>"


def _header(*columns: str, numeric_from: int = 99) -> str:
    cells = "".join(f'<th class="num">{escape(c)}</th>' if i >= numeric_from else f"<th>{escape(c)}</th>" for i, c in enumerate(columns))
    return f"<thead><tr>{cells}</tr></thead>"


def _hours_section(card: DataCard) -> str:
    rows = []
    for row in card.hours:
        cells = [row["task"], row["corpus"], row["split"]]
        numbers = [format_hours(row["hours"]), format_hours(row["paper_hours"]), format_ratio(row["ratio"]),
                   _count(row["shards"]), _count(row["samples"])]
        rows.append(f'<tr class="{escape(row["level"])}">' + "".join(_cell(c) for c in cells)
                    + "".join(_cell(n, numeric=True) for n in numbers) + "</tr>")
    return (
        '<h2 id="hours-heading">Hours per task</h2>'
        f'<p class="meta">Summed from the shard ledgers under {escape(card.shards_url)}; paper hours are the training hours '
        f"of Table 4 (total {format_hours(card.paper_total_hours)} h). Bold rows: task totals and the grand total.</p>"
        '<table id="hours">'
        + _header("Task", "Corpus", "Split", "Hours", "Paper hours", "Ratio", "Shards", "Samples", numeric_from=3)
        + "<tbody>" + "".join(rows) + "</tbody></table>"
    )


def _changes_section(changes: Changes) -> str:
    head = '<h2 id="changes">What changed since the previous build</h2>'
    if changes.first_build:
        return head + "<p>First build: there is no previous data card to compare with.</p>"
    parts = [head, f'<p class="meta">Compared with the card of {escape(changes.previous_created or "an unknown time")}.</p>']
    if changes.corpora_new:
        parts.append(f"<p>New corpora: {escape(', '.join(changes.corpora_new))}</p>")
    if changes.corpora_gone:
        parts.append(f"<p>Corpora gone: {escape(', '.join(changes.corpora_gone))}</p>")
    if not changes.rows:
        parts.append("<p>No change in hours or samples.</p>")
        return "".join(parts)
    body = "".join(
        "<tr>" + "".join(_cell(c) for c in (row.task, row.corpus, row.split, row.change))
        + "".join(_cell(n, numeric=True) for n in (format_hours(row.hours_before), format_hours(row.hours_after),
                                                   _count(row.samples_before), _count(row.samples_after)))
        + "</tr>"
        for row in changes.rows
    )
    parts.append('<table id="changes-table">'
                 + _header("Task", "Corpus", "Split", "Change", "Hours before", "Hours now", "Samples before", "Samples now",
                           numeric_from=4)
                 + f"<tbody>{body}</tbody></table>")
    return "".join(parts)


def _histogram_section(histograms: Sequence[Histogram]) -> str:
    parts = ['<h2 id="histograms">Durations, SNRs, cutoffs and augmentations</h2>']
    if not histograms:
        return parts[0] + "<p>No shards or simulated pairs yet.</p>"
    parts.append('<div class="charts">')
    for histogram in histograms:
        summary = f"{histogram.values:,} values" + (f", mean {histogram.mean:.4g}" if histogram.mean is not None else "")
        if histogram.note:
            summary += f"; {histogram.note}"
        if histogram.labels:
            svg = bar_chart_svg(histogram.labels, histogram.counts, title=histogram.title, x_label=histogram.x_label)
        elif histogram.counts:
            svg = histogram_svg(histogram.edges, histogram.counts, title=histogram.title, x_label=histogram.x_label)
        else:
            svg = f"<p><strong>{escape(histogram.title)}</strong></p>"
        parts.append(f'<div class="chart" id="chart-{escape(histogram.id)}">{svg}<p>{escape(summary)}</p></div>')
    parts.append("</div>")
    return "".join(parts)


def _alignment_section(rows: Sequence[AlignmentRow]) -> str:
    head = '<h2 id="alignment">Alignment coverage</h2>'
    if not rows:
        return head + "<p>No TTS alignment or SVS score in this build.</p>"
    totals: dict[str, list[int]] = {}
    body = []
    for row in rows:
        coverage = "–" if row.coverage is None else f"{100 * row.coverage:.1f} %"
        body.append("<tr>" + "".join(_cell(c) for c in (row.corpus, row.split, row.method))
                    + "".join(_cell(n, numeric=True) for n in (_count(row.aligned), _count(row.failed), _count(row.total), coverage))
                    + "</tr>")
        total = totals.setdefault(row.corpus, [0, 0, 0])
        total[0] += row.aligned
        total[1] += row.failed
        total[2] += row.total or 0
    for corpus, (aligned, failed, total) in totals.items():
        coverage = f"{100 * aligned / total:.1f} %" if total else "–"
        body.append('<tr class="task">' + "".join(_cell(c) for c in (corpus, "all", ""))
                    + "".join(_cell(n, numeric=True) for n in (_count(aligned), _count(failed), _count(total), coverage)) + "</tr>")
    return (head + '<table id="alignment-table">'
            + _header("Corpus", "Split", "Method", "Aligned", "Failed", "Utterances", "Coverage", numeric_from=3)
            + "<tbody>" + "".join(body) + "</tbody></table>")


def _losses_section(rows: Sequence[LossRow]) -> str:
    head = '<h2 id="losses">Quarantined and skipped</h2>'
    if not rows:
        return head + "<p>Nothing was quarantined, failed or skipped in any stage's outputs.</p>"
    by_stage: dict[str, Counter[str]] = {}
    for row in rows:
        by_stage.setdefault(row.stage, Counter()).update(row.counts)
    summary = "".join(
        "<tr>" + _cell(stage) + "".join(_cell(_count(counts.get(key, 0)), numeric=True) for key in LOSS_COUNTS) + "</tr>"
        for stage, counts in by_stage.items()
    )
    detail = "".join(
        "<tr>" + "".join(_cell(c) for c in (row.stage, row.name, row.split))
        + _cell(", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in row.counts.items())) + _cell(row.detail) + "</tr>"
        for row in rows
    )
    return (head + '<table id="losses-by-stage">' + _header("Stage", *(k.replace("_", " ") for k in LOSS_COUNTS), numeric_from=1)
            + f"<tbody>{summary}</tbody></table>"
            + '<table id="losses-table">' + _header("Stage", "Name", "Split", "Counts", "Detail") + f"<tbody>{detail}</tbody></table>")


def _licenses_section(rows: Sequence[LicenseRow]) -> str:
    body = "".join(
        "<tr>" + _cell(row.corpus) + _cell(row.title) + _cell(row.license)
        + (f'<td><a href="{escape(row.homepage)}">{escape(row.homepage)}</a></td>' if row.homepage else "<td>–</td>")
        + _cell(row.access) + "</tr>"
        for row in rows
    )
    return ('<h2 id="licenses">Licenses</h2><table id="licenses-table">' + _header("Corpus", "Title", "License", "Homepage", "Access")
            + f"<tbody>{body}</tbody></table>")


def render_html(card: DataCard) -> str:
    """The card as one self-contained HTML page, readable top to bottom."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Data card: {escape(card.profile)}</title><style>{STYLE}</style></head><body>"
        "<h1>UniFlow-Audio data card</h1>"
        f'<p class="meta">Build profile <strong>{escape(card.profile)}</strong>, card made {escape(card.created)}.</p>'
        + _hours_section(card) + _changes_section(card.changes) + _histogram_section(card.histograms)
        + _alignment_section(card.alignment) + _losses_section(card.losses) + _licenses_section(card.licenses)
        + "</body></html>\n"
    )


# -- writing and publishing -----------------------------------------------------------------------------
def read_previous_card(storage: Storage) -> dict[str, Any] | None:
    """The last ``data_card.json``; None when there is none (a first build)."""
    if not storage.exists("reports", JSON_NAME):
        return None
    return json.loads(storage.read_text("reports", JSON_NAME))


def write_data_card(storage: Storage, card: DataCard) -> str:
    """Keep the last card as ``data_card.previous.json``, then write the new JSON and HTML (each atomically);
    returns the HTML's URL (a plain path on local storage)."""
    if storage.exists("reports", JSON_NAME):
        storage.write_text("reports", PREVIOUS_NAME, text=storage.read_text("reports", JSON_NAME))
    storage.write_text("reports", JSON_NAME, text=json.dumps(card.to_json(), indent=1, ensure_ascii=False) + "\n")
    storage.write_text("reports", HTML_NAME, text=render_html(card))
    return storage.url("reports", HTML_NAME)


def artifact_markdown(card: DataCard, html_url: str) -> str:
    """The markdown artifact: the hours table and where the HTML card is."""
    link = f"file://{html_url}" if html_url.startswith("/") else html_url
    return (f"# Data card of the `{card.profile}` build\n\nFull card (histograms, licenses, alignment coverage, changes): "
            f"[{html_url}]({link})\n\n" + corpus_table_markdown(card.hours))


def publish_data_card(storage: Storage, plan: Plan, datasets_dir: str | Path = "datasets",
                      rows: Sequence[dict[str, Any]] | None = None) -> str:
    """Collect, write (``data_card.json``, ``data_card.html``, the previous JSON kept) and, inside a Prefect
    run, publish a markdown artifact with the hours table and the HTML's location. Returns the HTML's URL."""
    from uniflow.orchestration import in_prefect_run

    card = collect_data_card(storage, plan, datasets_dir, rows, previous=read_previous_card(storage))
    html_url = write_data_card(storage, card)
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(artifact_markdown(card, html_url), key=ARTIFACT_KEY,
                                 description="Data card: hours per task, corpus and split beside Table 4, and the HTML card")
    return html_url
