"""Where a build stands, read from its outputs: per stage and task, what is done, partial, missing or failed.

Every answer comes from the files the stages write, never from a database, so ``uniflow status`` tells
the truth after a crash, on another machine, or when someone deleted a folder by hand. Only small
files are read: manifest summaries, completion markers (``.completed``, ``.done``), alignment
summaries, ledgers and ``trainer.json``; no audio is decoded and no manifest is parsed.

Stages and what makes a row ``done``:

* ``acquire``: per corpus of the plan, every part has its ``parts/<part>.completed`` marker (a
  Hugging Face snapshot: its ``hf/`` folder and a marker for every extracted archive), and per split
  the manifest summary counts recordings. Quarantined recordings and failed YouTube clips are counts.
* ``align``: per TTS corpus and split, the merged ``<split>.align_summary.json``; an unmerged run
  shows its ``.done`` chunks. SVS corpora show their frame-level scores (``<split>.score.jsonl.gz``).
* ``simulate``: per SE/SR split, every batch of ``plan.json`` has its ``batch_*.done``.
* ``shards``: per task and split, a ledger whose shards are all present at their recorded sizes, no
  finished shard missing from the ledger, and no temporary file of an interrupted write.
* ``features``: per task and split, a feature shard in the feature ledger for every audio shard of
  the shard ledger, made from that very audio shard (its sha256).
* ``train``: per run under ``<checkpoints>/uniflow/`` and ``<checkpoints>/vae/``, ``latest`` at the
  configured number of steps.

``failed`` means a stage ran and produced nothing usable (e.g. every utterance failed alignment, a
``latest`` that points at an incomplete checkpoint); per-item failures are counts, since a real build
always quarantines a few recordings.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from uniflow.config import ConfigError
from uniflow.corpora.manifest import SUMMARY_NAME, read_summary
from uniflow.corpora.recipe import SPLITS, HuggingFaceSource, ManualSource, Plan, Recipe, YoutubeSource, load_recipes
from uniflow.shards.ledger import LEDGER_NAME, ShardSet, ledger_totals, read_ledger
from uniflow.storage import Storage

State = Literal["done", "partial", "missing", "failed"]
STAGES: tuple[str, ...] = ("acquire", "align", "simulate", "shards", "features", "train")
NO_SPLIT = "-"
ALL_SPLITS = "all"  # a corpus's manifests as a whole, when there are no per-split files to speak of
PAIR_TASKS = ("se", "sr")
TRAIN_FOLDERS = ("vae", "uniflow")  # <checkpoints>/<folder>/<run>/latest


@dataclass
class StatusRow:
    """One line of the status: a stage's state for one corpus or task and split."""

    stage: str
    name: str  # corpus (acquire, align), task (simulate, shards, features) or run (train)
    split: str
    state: State
    counts: dict[str, int] = field(default_factory=dict)
    hours: float | None = None
    detail: str = ""


@dataclass
class StatusReport:
    rows: list[StatusRow]

    def row(self, stage: str, name: str, split: str = NO_SPLIT) -> StatusRow:
        """The row of ``stage``, ``name`` and ``split`` (KeyError when there is none)."""
        for row in self.rows:
            if (row.stage, row.name, row.split) == (stage, name, split):
                return row
        raise KeyError(f"no status row for {stage} {name} {split}")

    def stage_rows(self, stage: str) -> list[StatusRow]:
        return [row for row in self.rows if row.stage == stage]

    def exit_code(self) -> int:
        """0 when everything is done, 1 when something failed, 2 when something is missing or partial."""
        states = {row.state for row in self.rows}
        if "failed" in states:
            return 1
        return 2 if states & {"missing", "partial"} else 0

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in self.rows]

    def markdown(self) -> str:
        """One table per stage, with a line of state totals on top."""
        totals = {state: sum(row.state == state for row in self.rows) for state in ("done", "partial", "missing", "failed")}
        lines = ["# Build status", "", " · ".join(f"{count} {state}" for state, count in totals.items()), ""]
        for stage in STAGES:
            rows = self.stage_rows(stage)
            if not rows:
                continue
            lines += [f"## {stage}", "", "| name | split | state | counts | hours | detail |", "|---|---|---|---|---:|---|"]
            for row in rows:
                counts = ", ".join(f"{key} {value}" for key, value in row.counts.items())
                hours = "" if row.hours is None else f"{row.hours:.4f}"
                detail = row.detail.replace("|", "\\|")
                lines.append(f"| {row.name} | {row.split} | {row.state} | {counts} | {hours} | {detail} |")
            lines.append("")
        return "\n".join(lines)


def status(
    storage: Storage,
    plan: Plan,
    datasets_dir: str | Path = "datasets",
    recipes: dict[str, Recipe] | None = None,
    training: bool = True,
) -> StatusReport:
    """The state of every stage of ``plan``'s build under ``storage`` (the training runs too, with ``training``)."""
    recipes = recipes if recipes is not None else load_recipes(datasets_dir)
    summaries = {corpus: read_summary(storage, corpus) for corpus in plan_corpora(plan)}
    rows: list[StatusRow] = []
    rows += acquire_rows(storage, plan, recipes, summaries)
    rows += align_rows(storage, plan, summaries)
    rows += simulate_rows(storage, plan, summaries)
    shard_splits = {task: expected_shard_splits(storage, plan, task, summaries) for task in plan.tasks}
    rows += shard_rows(storage, shard_splits)
    rows += feature_rows(storage, shard_splits)
    if training:
        rows += train_rows(storage)
    return StatusReport(rows)


def plan_corpora(plan: Plan) -> list[str]:
    """Every corpus the plan names (sources, the noise they are mixed with, evaluation, VAE), in plan order."""
    names: list[str] = []
    for task in plan.tasks.values():
        for source in task.sources:
            names += [source.corpus, *source.mix_with]
        names += task.evaluation
    for corpora in plan.vae_corpora.values():
        names += corpora
    return list(dict.fromkeys(names))


def _splits_with_recordings(summary: dict[str, Any] | None) -> list[str]:
    recordings = (summary or {}).get("recordings", {})
    return [split for split in SPLITS if recordings.get(split, 0) > 0]


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _count_gz_lines(path: Path) -> int:
    with gzip.open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _state_of(done: int, total: int) -> State:
    if total and done >= total:
        return "done"
    return "partial" if done else "missing"


# -- acquire ---------------------------------------------------------------------------------------------
def _download_row(storage: Storage, recipe: Recipe, summary: dict[str, Any] | None) -> StatusRow:
    root = storage.path("raw", recipe.name)
    parts_dir, downloads = root / "parts", root / "downloads"
    source = recipe.source
    # Parts a download or extraction stopped in: a ``.part`` file, or an extracted folder without its marker.
    in_flight = sorted(path.name for path in downloads.glob("*.part")) if downloads.is_dir() else []
    names = [part.name for part in recipe.parts]
    if isinstance(source, HuggingFaceSource) and parts_dir.is_dir():
        names += [path.name for path in parts_dir.iterdir() if path.is_dir() and path.name not in names]
    done = sum((parts_dir / f"{name}.completed").exists() for name in names)
    unfinished = [name for name in names if (parts_dir / name).is_dir() and not (parts_dir / f"{name}.completed").exists()]
    total = len(names)
    if isinstance(source, HuggingFaceSource):  # the snapshot itself is one more item to fetch
        total += 1
        done += (root / "hf").is_dir() and any((root / "hf").iterdir())
    counts = {"parts": total, "parts_done": done}
    if summary is not None:
        counts["quarantined"] = int(summary.get("quarantined", 0))
    details: list[str] = []
    if isinstance(source, YoutubeSource):
        from uniflow.corpora.youtube import CLIPS_DIR, read_failures

        failures = read_failures(root / CLIPS_DIR)
        counts["clips_failed"] = len(failures)
        if failures:
            details.append(f"{len(failures)} clip(s) could not be fetched (clips/failed.jsonl)")
    state = _state_of(done, total)
    if in_flight or unfinished:
        state = "partial"
        details.append(f"interrupted: {', '.join(in_flight + unfinished)}")
    if state == "missing" and summary is not None and not root.exists():
        state = "done"  # the raw files were cleared after their manifests were written
        details.append("raw files removed; manifests present")
    elif state == "missing" and isinstance(source, ManualSource):
        details.append(f"manual step: place {', '.join(p.local_name for p in recipe.parts)} in {downloads}")
    if summary is not None and summary.get("quarantine_reasons"):
        reasons = ", ".join(f"{reason} {count}" for reason, count in summary["quarantine_reasons"].items())
        details.append(f"quarantined: {reasons}")
    return StatusRow("acquire", recipe.name, NO_SPLIT, state, counts, None, "; ".join(details))


def _manifest_rows(storage: Storage, recipe: Recipe, summary: dict[str, Any] | None) -> list[StatusRow]:
    expected = list(recipe.splits) or ["train"]
    if summary is None:
        present = [name for name in storage.list("manifests", recipe.name) if name.endswith(".jsonl.gz")]
        if present:  # split files but no summary: the summary is written last, so the run was interrupted
            return [StatusRow("acquire", recipe.name, ALL_SPLITS, "partial", {}, None,
                              f"manifests without {SUMMARY_NAME}: an interrupted run; run it again")]
        if not recipe.has_audio:
            return [StatusRow("acquire", recipe.name, ALL_SPLITS, "missing", {}, None, "no manifest summary")]
        return [StatusRow("acquire", recipe.name, split, "missing", {}, None, "no manifest") for split in expected]
    if not recipe.has_audio:
        return []  # caption-only corpora: the download row says it all
    recordings, seconds = summary.get("recordings", {}), summary.get("seconds", {})
    nothing_usable = not any(recordings.values()) and summary.get("quarantined", 0) > 0
    rows = []
    for split in [*expected, *(s for s in SPLITS if s in recordings and s not in expected)]:
        count = int(recordings.get(split, 0))
        if count:
            rows.append(StatusRow("acquire", recipe.name, split, "done", {"recordings": count},
                                  float(seconds.get(split, 0.0)) / 3600.0))
        elif nothing_usable:
            rows.append(StatusRow("acquire", recipe.name, split, "failed", {"recordings": 0}, 0.0,
                                  "every recording was quarantined"))
        else:
            rows.append(StatusRow("acquire", recipe.name, split, "missing", {"recordings": 0}, 0.0,
                                  "the manifest has no recording of this split"))
    return rows


def acquire_rows(
    storage: Storage, plan: Plan, recipes: dict[str, Recipe], summaries: dict[str, dict[str, Any] | None]
) -> list[StatusRow]:
    rows: list[StatusRow] = []
    for corpus in plan_corpora(plan):
        recipe = recipes[corpus]
        rows.append(_download_row(storage, recipe, summaries.get(corpus)))
        rows += _manifest_rows(storage, recipe, summaries.get(corpus))
    return rows


# -- align -----------------------------------------------------------------------------------------------
def _alignment_row(storage: Storage, corpus: str, split: str) -> StatusRow:
    summary_path = storage.path("manifests", corpus, f"{split}.align_summary.json")
    summary = _read_json(summary_path)
    if summary is not None:
        aligned, failed = int(summary["aligned"]), int(summary["failed"])
        counts = {"aligned": aligned, "failed": failed, "chunks": int(summary.get("chunks", 0))}
        reasons = ", ".join(f"{reason} {count}" for reason, count in summary.get("failures_by_reason", {}).items())
        state: State = "failed" if failed and not aligned else "done"
        return StatusRow("align", corpus, split, state, counts, float(summary["hours_aligned"]),
                         f"{summary.get('aligner', '')}" + (f"; failures: {reasons}" if reasons else ""))
    folder = storage.path("work", "align", corpus, split)
    plan = _read_json(folder / "plan.json")
    if plan is None:
        return StatusRow("align", corpus, split, "missing", {}, None, "not aligned")
    chunks = int(plan["chunks"])
    aligned = failed = done = 0
    seconds = 0.0
    for index in range(chunks):
        marker = _read_json(folder / f"chunk_{index:05d}.done")
        if marker is not None:
            done += 1
            aligned += int(marker["aligned"])
            failed += int(marker["failed"])
            seconds += float(marker["seconds"])
    counts = {"aligned": aligned, "failed": failed, "chunks": chunks, "chunks_done": done}
    detail = f"{done} of {chunks} chunks aligned, not merged"
    return StatusRow("align", corpus, split, "partial", counts, seconds / 3600.0, detail)


def _score_row(storage: Storage, corpus: str, split: str) -> StatusRow:
    scores = storage.path("manifests", corpus, f"{split}.score.jsonl.gz")
    if not scores.exists():
        return StatusRow("align", corpus, split, "missing", {}, None, "no singing scores")
    scored = _count_gz_lines(scores)
    quarantined = _count_lines(storage.path("manifests", corpus, f"{split}.score_quarantine.jsonl"))
    state: State = "failed" if quarantined and not scored else "done"
    return StatusRow("align", corpus, split, state, {"scored": scored, "quarantined": quarantined}, None, "singing scores")


def align_rows(storage: Storage, plan: Plan, summaries: dict[str, dict[str, Any] | None]) -> list[StatusRow]:
    """Alignments of the TTS targets and singing scores of the SVS targets, per split with recordings."""
    rows: list[StatusRow] = []
    for task, row_of in (("tts", _alignment_row), ("svs", _score_row)):
        if task not in plan.tasks:
            continue
        for source in plan.tasks[task].sources:  # type: ignore[index]
            if source.role != "target":
                continue
            splits = _splits_with_recordings(summaries.get(source.corpus))
            if not splits:
                rows.append(StatusRow("align", source.corpus, NO_SPLIT, "missing", {}, None, "no manifests yet"))
            rows += [row_of(storage, source.corpus, split) for split in splits]
    return rows


# -- simulate --------------------------------------------------------------------------------------------
def _simulation_inputs(plan: Plan, task: str) -> list[str]:
    """The corpora whose recordings become the task's pairs (clean or paired speech; SR targets)."""
    roles = ("clean", "paired") if task == "se" else ("target",)
    return [source.corpus for source in plan.tasks[task].sources if source.role in roles]  # type: ignore[index]


def _expected_pair_splits(storage: Storage, plan: Plan, task: str, summaries: dict[str, dict[str, Any] | None]) -> list[str]:
    """Splits with simulated batches, or with recordings of the task's input corpora."""
    with_inputs = {split for corpus in _simulation_inputs(plan, task) for split in _splits_with_recordings(summaries.get(corpus))}
    planned = set()
    for split in SPLITS:  # a plan without pairs or skips had nothing to simulate: nothing is expected there
        plan_json = _read_json(storage.path("work", "simulate", task, split, "plan.json"))
        if plan_json is not None and (plan_json.get("batches") or plan_json.get("skipped")):
            planned.add(split)
    return [split for split in SPLITS if split in with_inputs | planned]


def _simulation_row(storage: Storage, task: str, split: str) -> StatusRow:
    folder = storage.path("work", "simulate", task, split)
    plan = _read_json(folder / "plan.json")
    if plan is None:
        return StatusRow("simulate", task, split, "missing", {}, None, "not simulated")
    batches = int(plan["batches"])
    if batches == 0:  # its inputs exist (or it would not be listed), yet every one was skipped
        return StatusRow("simulate", task, split, "failed", {"batches": 0, "skipped_sources": int(plan["skipped"])}, 0.0,
                         "the plan has no pairs; skipped.jsonl says why")
    done = pairs = quarantined = 0
    seconds = 0.0
    for index in range(batches):
        marker = _read_json(folder / f"batch_{index:05d}.done")
        if marker is not None:
            done += 1
            pairs += int(marker["pairs"])
            quarantined += int(marker["quarantined"])
            seconds += float(marker["seconds"])
    counts = {"batches": batches, "batches_done": done, "pairs": pairs, "quarantined": quarantined}
    state: State = _state_of(done, batches)
    if done == batches and quarantined and not pairs:
        state = "failed"
    detail = "" if done == batches else f"{batches - done} of {batches} batches not rendered"
    return StatusRow("simulate", task, split, state, counts, seconds / 3600.0, detail)


def simulate_rows(storage: Storage, plan: Plan, summaries: dict[str, dict[str, Any] | None]) -> list[StatusRow]:
    rows: list[StatusRow] = []
    for task in PAIR_TASKS:
        if task not in plan.tasks:
            continue
        splits = _expected_pair_splits(storage, plan, task, summaries)
        rows += [_simulation_row(storage, task, split) for split in splits or ["train"]]
    return rows


# -- shards ---------------------------------------------------------------------------------------------
def expected_shard_splits(storage: Storage, plan: Plan, task: str, summaries: dict[str, dict[str, Any] | None]) -> list[str]:
    """Splits the task should have shards for (its inputs have them), plus any that already has shards."""
    if task in PAIR_TASKS:
        expected = set(_expected_pair_splits(storage, plan, task, summaries))
    else:
        targets = [source.corpus for source in plan.tasks[task].sources if source.role == "target"]  # type: ignore[index]
        expected = {split for corpus in targets for split in _splits_with_recordings(summaries.get(corpus))}
    present = {split for split in SPLITS if storage.list("shards", task, split)}
    return [split for split in SPLITS if split in expected | present] or ["train"]


def _listing(shard_set: ShardSet) -> tuple[dict[str, int], int]:
    """Finished shards with their sizes, and the number of temporaries an interrupted writer left."""
    temporaries = sum(name.startswith(".") and name.endswith(".tmp")
                      for name in shard_set.storage.list(shard_set.role, shard_set.task, shard_set.split))
    return shard_set.tar_sizes(), temporaries


def _shard_row(storage: Storage, task: str, split: str) -> StatusRow:
    shard_set = ShardSet(storage, "shards", task, split)
    records = read_ledger(shard_set)
    sizes, temporaries = _listing(shard_set)
    if not records and not sizes and not temporaries:
        return StatusRow("shards", task, split, "missing", {}, None, "no shards")
    totals = ledger_totals(records)
    damaged = [record.name for record in records if sizes.get(record.name) != record.bytes]
    unlisted = [name for name in sizes if shard_set.is_shard(name) and name not in {r.name for r in records}]
    counts = {"shards": totals.shards, "samples": totals.samples, "temporaries": temporaries}
    details: list[str] = []
    if damaged:
        details.append(f"{len(damaged)} ledger shard(s) missing or of another size (first: {damaged[0]})")
    if unlisted:
        details.append(f"{len(unlisted)} shard(s) not in the ledger (first: {unlisted[0]})")
    if temporaries:
        details.append(f"{temporaries} temporary file(s) of an interrupted write")
    state: State = "partial" if damaged or unlisted or temporaries or not records else "done"
    return StatusRow("shards", task, split, state, counts, totals.hours, "; ".join(details))


def shard_rows(storage: Storage, splits_by_task: dict[str, list[str]]) -> list[StatusRow]:
    return [_shard_row(storage, task, split) for task, splits in splits_by_task.items() for split in splits]


# -- features -------------------------------------------------------------------------------------------
def _feature_row(storage: Storage, task: str, split: str) -> StatusRow:
    audio = read_ledger(ShardSet(storage, "shards", task, split))
    features = ShardSet(storage, "features", task, split)
    ledger = {}
    if storage.exists("features", task, split, LEDGER_NAME):
        from uniflow.features.stage import read_feature_ledger  # here, and only then: it loads torch (seconds)

        ledger = {record.name: record for record in read_feature_ledger(features)}
    if not audio:
        state: State = "missing"
        return StatusRow("features", task, split, state, {"feature_shards": len(ledger)}, None, "no audio shards")
    sizes = features.tar_sizes()
    current = [
        ledger[record.name]
        for record in audio
        if record.name in ledger
        and ledger[record.name].input_sha256 == record.sha256
        and sizes.get(record.name) == ledger[record.name].bytes
    ]
    missing = len(audio) - len(current)
    totals = ledger_totals(current)  # type: ignore[arg-type]  # feature records carry the same totals fields
    skipped = sum(len(record.skipped) for record in current)
    counts = {"audio_shards": len(audio), "feature_shards": len(current), "missing": missing,
              "samples": totals.samples, "skipped": skipped}
    detail = f"{missing} audio shard(s) without a current feature shard" if missing else ""
    return StatusRow("features", task, split, _state_of(len(current), len(audio)), counts, totals.hours, detail)


def feature_rows(storage: Storage, splits_by_task: dict[str, list[str]]) -> list[StatusRow]:
    return [_feature_row(storage, task, split) for task, splits in splits_by_task.items() for split in splits]


# -- train ----------------------------------------------------------------------------------------------
def _run_row(folder: str, run: Path) -> StatusRow:
    name = f"{folder}/{run.name}"
    latest = run / "latest"
    if not latest.is_symlink() and not latest.exists():
        return StatusRow("train", name, NO_SPLIT, "partial", {}, None, "started, no checkpoint yet")
    trainer = _read_json(latest.resolve() / "trainer.json")
    if trainer is None:
        return StatusRow("train", name, NO_SPLIT, "failed", {}, None,
                         f"latest points at {latest.resolve().name}, which has no trainer.json")
    step = int(trainer["step"])
    target = int((trainer.get("config") or {}).get("steps", step))
    state: State = "done" if step >= target else "partial"
    return StatusRow("train", name, NO_SPLIT, state, {"step": step, "steps": target}, None, latest.resolve().name)


def train_rows(storage: Storage) -> list[StatusRow]:
    """One row per run of the VAE and of UniFlow-Audio; a model with no run is missing."""
    rows: list[StatusRow] = []
    for folder in TRAIN_FOLDERS:
        try:
            root = storage.path("checkpoints", folder)
        except ConfigError as exc:  # checkpoints on an object store: runs are read from their mounted path
            rows.append(StatusRow("train", folder, NO_SPLIT, "missing", {}, None, str(exc)))
            continue
        runs = sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
        if not runs:
            rows.append(StatusRow("train", folder, NO_SPLIT, "missing", {}, None, "no run"))
        rows += [_run_row(folder, run) for run in runs]
    return rows

