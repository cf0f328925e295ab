"""Prefect flow: train UniFlow-Audio with ``accelerate launch`` in a subprocess and publish what it did.

The flow builds ``accelerate launch ... -m uniflow.cli train ...`` (an Accelerate config from
``configs/accelerate/`` or N local processes), streams the subprocess's output line by line into the
Prefect log, and, when the launch ends, publishes the run's checkpoints (table) and final metrics
(markdown, with a training-curve image when matplotlib is installed, else a table of the loss by step).
A non-zero exit fails the flow run, after the artifacts of what was reached are published.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from uniflow.storage import Storage
from uniflow.train.data import require_data_plan
from uniflow.train.trainer import (
    TRAINER_FILE,
    VALIDATION_FILE,
    accelerate_command,
    launch_world_size,
    read_log,
    resolve_train_config,
    run_dir,
)

CURVE_POINTS = 20  # rows of the loss table when there is no plot


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


def _curve_markdown(rows: list[dict[str, Any]]) -> str:
    """The training loss by step: an embedded PNG with matplotlib, else a table of about CURVE_POINTS rows."""
    steps = [row for row in rows if "loss" in row]
    if not steps:
        return "No training step was logged.\n"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        every = max(1, len(steps) // CURVE_POINTS)
        picked = steps[::every] + ([steps[-1]] if (len(steps) - 1) % every else [])
        lines = ["| step | loss | lr | grad norm |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['step']} | {r['loss']:.4f} | {r['lr']:.2e} | {r['grad_norm']:.3f} |" for r in picked]
        return "\n".join(lines) + "\n"
    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="train")
    valid = [r for r in rows if any(name.startswith("valid/") for name in r)]
    if valid:
        means = [sum(v for k, v in r.items() if k.startswith("valid/")) / sum(k.startswith("valid/") for k in r) for r in valid]
        axis.plot([r["step"] for r in valid], means, "o-", label="valid (mean over tasks)")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return f"![training curve](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})\n"


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
) -> dict[str, Any]:
    """Train ``model_size`` (tiny/small/medium/large, or ``config_path``: a training YAML) on the feature shards of
    ``profile`` (the data version) up to ``steps``. ``run_name`` None starts a run named after the size and the
    date (a scheduled retraining); ``resume`` continues an existing run from its latest checkpoint."""
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
    if returncode != 0:
        raise RuntimeError(f"training run {name} failed (exit code {returncode}); see the log above")
    last = next((row for row in reversed(rows) if "loss" in row), {})
    return {
        "run_name": name,
        "run_dir": str(run),
        "step": last.get("step", 0),
        "loss": last.get("loss"),
        "checkpoints": checkpoints,
    }
