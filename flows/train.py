"""Prefect flow: train UniFlow-Audio with ``accelerate launch`` in a subprocess and publish what it did.

The flow builds ``accelerate launch ... -m uniflow.cli train ...`` (an Accelerate config from
``configs/accelerate/`` or N local processes), streams the subprocess's output line by line into the
Prefect log, and, when the launch ends, publishes the run's checkpoints (table) and final metrics
(markdown, with the training curves as an SVG image, also written to ``<run>/curves.svg``).
A non-zero exit fails the flow run, after the artifacts of what was reached are published.
"""

from __future__ import annotations

import base64
import math
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from uniflow.reporting.svg_charts import line_chart_svg
from uniflow.storage import Storage, atomic_write
from uniflow.train.checkpoints import TRAINER_FILE
from uniflow.train.data import require_data_plan
from uniflow.train.trainer import (
    VALIDATION_FILE,
    accelerate_command,
    launch_world_size,
    read_log,
    resolve_train_config,
    run_dir,
)


def _checkpoint_rows(run: Path) -> list[dict[str, Any]]:
    import json

    rows = []
    for checkpoint in sorted(run.glob("step-*"), key=lambda path: int(path.name.split("-", 1)[1])):
        if not (checkpoint / TRAINER_FILE).is_file():
            continue  # incomplete: a launch stopped while writing it
        validation = json.loads((checkpoint / VALIDATION_FILE).read_text()) if (checkpoint / VALIDATION_FILE).is_file() else {}
        losses = validation.get("losses", {})
        mean = sum(losses.values()) / len(losses) if losses else float("nan")
        samples = sorted(p.name for p in (checkpoint / "samples").glob("*")) if (checkpoint / "samples").is_dir() else []
        rows.append(
            {"step": int(checkpoint.name[5:]), "path": str(checkpoint), "mean valid loss": round(mean, 5),
             **{f"valid {task}": round(value, 5) for task, value in losses.items()}, "samples": len(samples)}
        )  # fmt: skip
    return rows


def training_curves_svg(rows: list[dict[str, Any]]) -> str | None:
    """The training loss and the mean validation loss by step as an SVG line chart (None before any step)."""
    steps = [row for row in rows if "loss" in row and math.isfinite(row["loss"])]
    if not steps:
        return None
    series = {"train": [(row["step"], row["loss"]) for row in steps]}
    valid = [row for row in rows if any(name.startswith("valid/") for name in row)]
    if valid:
        series["valid (mean over tasks)"] = [
            (row["step"], sum(v for k, v in row.items() if k.startswith("valid/")) / sum(k.startswith("valid/") for k in row))
            for row in valid
        ]
    return line_chart_svg(series, title="UniFlow-Audio flow-matching loss", x_label="step", y_label="loss")


def _curve_markdown(rows: list[dict[str, Any]]) -> str:
    svg = training_curves_svg(rows)
    if svg is None:
        return "No training step was logged.\n"
    return f"![training curve](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})\n"


def _metrics_markdown(run_name: str, rows: list[dict[str, Any]], returncode: int) -> str:
    last = next((row for row in reversed(rows) if "loss" in row), None)
    lines = [f"# Training run `{run_name}`", "", f"Exit code: {returncode}", ""]
    if last is not None:
        lines += ["| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.6g} |" for name, value in last.items() if isinstance(value, int | float)]
        lines.append("")
    return "\n".join(lines) + "\n## Training loss\n\n" + _curve_markdown(rows)


@flow(name="train", log_prints=True)
def train_flow(
    model_size: str = "small",
    steps: int | None = None,
    profile: str = "storage_config/local.yaml",
    run_name: str | None = None,
    resume: bool = True,
    num_processes: int = 1,
    accelerate_config: str | None = None,
    config_path: str | None = None,
    datasets_dir: str = "datasets",
    vae_dir: str | None = None,
    evaluation_config: str | None = None,
) -> dict[str, Any]:
    """Train ``model_size`` (tiny/small/medium/large, or ``config_path``: a training YAML) on the feature shards of
    ``profile`` (the data version) up to ``steps``. ``run_name`` None starts a run named after the size and the
    date (a scheduled retraining); ``resume`` continues an existing run from its latest checkpoint;
    ``evaluation_config`` (e.g. ``datasets/evaluation.yaml``) evaluates the final checkpoint as a subflow."""
    logger = get_run_logger()
    name = run_name or f"{model_size}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    args = ["--config", config_path or model_size, "--profile", profile, "--datasets", datasets_dir, "--run-name", name]
    args += (["--steps", str(steps)] if steps is not None else []) + (["--resume"] if resume else [])
    args += ["--vae", vae_dir] if vae_dir else []
    storage = Storage.from_file(profile)
    settings = resolve_train_config(config_path or model_size, datasets_dir)
    settings = settings if steps is None else settings.model_copy(update={"steps": steps})
    # Before launch: the data must feed every rank and worker (the error names what to change).
    require_data_plan(storage, settings.data, launch_world_size(num_processes, accelerate_config))
    command = accelerate_command(args, num_processes=num_processes, accelerate_config=accelerate_config)
    logger.info("launching: %s", " ".join(command))
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            logger.info("%s", line.rstrip())
    returncode = process.wait()

    run = run_dir(storage, name)
    rows = read_log(run)
    checkpoints = _checkpoint_rows(run)
    key = "".join(char if char.isalnum() else "-" for char in name.lower())
    if checkpoints:
        create_table_artifact(checkpoints, key=f"train-checkpoints-{key}", description=f"checkpoints of run {name}")
    create_markdown_artifact(_metrics_markdown(name, rows, returncode), key=f"train-metrics-{key}", description=f"run {name}")
    svg = training_curves_svg(rows)
    if svg is not None:
        with atomic_write(run / "curves.svg", "w") as handle:
            handle.write(svg)
        create_image_artifact(
            f"data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}", key=f"train-curves-{key}",
            description=f"loss curves of run {name} ({run / 'curves.svg'})",
        )
    if returncode != 0:
        raise RuntimeError(f"training run {name} failed (exit code {returncode}); see the log above")
    last = next((row for row in reversed(rows) if "loss" in row), {})
    outcome = {
        "run_name": name,
        "run_dir": str(run),
        "step": last.get("step", 0),
        "loss": last.get("loss"),
        "checkpoints": checkpoints,
    }
    if evaluation_config:
        from flows.evaluate import evaluate_flow

        outcome["evaluation"] = evaluate_flow(checkpoint=str(run), vae_dir=vae_dir, profile=profile, config_path=evaluation_config)
    return outcome
