"""Prefect flow: evaluate a UniFlow-Audio checkpoint with the paper's objective metrics, as a Table 1.

The flow generates every test item of every task from the feature shards, scores it against the audio
shards (``uniflow.evaluate.run``), and publishes the table (markdown, in the layout of the paper's Table 1 with
the inference settings beside it), the rows as a table artifact, and a link to ``evaluation.json`` where every
score has its full metric card. Progress per task shows on the run's page while it works.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from uniflow.config import ConfigError
from uniflow.evaluate.config import EvaluationConfig, load_evaluation_config
from uniflow.evaluate.run import evaluate_checkpoint
from uniflow.storage import Storage, build_once
from uniflow.train.checkpoints import TRAINER_FILE, latest_checkpoint


def resolve_checkpoint(path: str | Path, vae_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(model dir, VAE dir) of a training run folder (its latest checkpoint), a ``step-N`` checkpoint, or a model
    directory; the VAE is the one the run trained with unless ``vae_dir`` is given."""
    path = Path(path)
    if (path / "latest").exists():
        latest = latest_checkpoint(path)
        if latest is None:
            raise ConfigError(f"{path}: the run has no complete checkpoint yet")
        path = latest
    model_dir = path / "model" if (path / "model" / "config.json").is_file() else path
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{path}: neither a training run, a checkpoint (step-N/model) nor a model directory")
    if vae_dir is None:
        trainer = path / TRAINER_FILE
        configured = json.loads(trainer.read_text())["config"].get("vae_dir") if trainer.is_file() else None
        if not configured:
            raise ConfigError(f"{path}: no VAE recorded with the checkpoint; give the VAE directory")
        vae_dir = configured
    return model_dir, Path(vae_dir)


def prepare_demo_backbones(models: Path) -> None:
    """The demo's FD and CLAP backbones (``datasets/evaluation_demo.yaml``): a tiny CNN14 checkpoint in the
    published file layout and a tiny CLAP directory, random weights, each renamed into place once complete."""
    from uniflow.evaluate.clap_score import save_tiny_clap
    from uniflow.evaluate.panns import save_tiny_cnn14

    for name, save in (("tiny-cnn14.pth", save_tiny_cnn14), ("tiny-clap", save_tiny_clap)):
        build_once(models / name, save)


def _artifact_key(name: str) -> str:
    return "".join(char if char.isalnum() else "-" for char in name.lower())


@flow(name="evaluate")
def evaluate_flow(
    checkpoint: str,
    vae_dir: str | None = None,
    profile: str = "storage_config/local.yaml",
    config_path: str = "datasets/evaluation.yaml",
    name: str | None = None,
    max_items: int | None = None,
    tasks: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a run folder, a ``step-N`` checkpoint or a model directory) on the feature and
    audio shards of ``profile``; ``max_items`` and ``tasks`` override the config (a quick look)."""
    logger = get_run_logger()
    model_dir, vae = resolve_checkpoint(checkpoint, vae_dir)
    config = load_evaluation_config(config_path)
    overrides = {key: value for key, value in (("max_items", max_items), ("tasks", tasks)) if value is not None}
    config = EvaluationConfig.model_validate({**config.model_dump(), **overrides}) if overrides else config
    if name is None:  # <run>-step-N for a checkpoint, the folder name for a bare model directory
        name = f"{model_dir.parent.parent.name}-{model_dir.parent.name}" if model_dir.name == "model" else model_dir.name
    key = _artifact_key(f"evaluation-{name}")
    progress = create_progress_artifact(0.0, key=f"{key}-progress", description=f"evaluation {name}: tasks done")

    def report(task: str, index: int, total: int) -> None:
        logger.info("evaluating %s (%d of %d)", task, index + 1, total)
        update_progress_artifact(progress, 100.0 * index / total)

    result = evaluate_checkpoint(model_dir, vae, Storage.from_file(profile), config, name, progress=report)
    update_progress_artifact(progress, 100.0)
    markdown = result.markdown_path.read_text()
    create_markdown_artifact(markdown, key=key, description=f"Table 1 layout for {model_dir}")
    create_table_artifact(
        [{k: v for k, v in row.items() if k not in ("card", "skip_reasons")} for row in result.rows],
        key=f"{key}-rows",
        description="every score; full metric cards in evaluation.json",
    )
    create_link_artifact(result.json_path.resolve().as_uri(), link_text="evaluation.json (metric cards)", key=f"{key}-cards")
    logger.info("evaluation of %s written to %s (Table 1 layout: artifact %s)", model_dir, result.markdown_path, key)
    return {"name": name, "directory": str(result.directory), "rows": result.rows, "settings": result.settings,
            "generated": result.generated}  # fmt: skip
