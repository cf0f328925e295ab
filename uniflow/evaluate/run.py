"""Evaluate a UniFlow-Audio checkpoint on the test split of every task: generate, score, write the table.

Outputs, under ``<reports>/evaluation/<run name>/``: the generated audio (``<task>/<key>.wav``),
``evaluation.json`` (every row with its full metric card and the card's sha256, the inference settings, the
checkpoint) and ``evaluation.md`` (the Table 1 layout). A metric whose backbone is missing is a row with
``value: null`` and the reason; an item a metric cannot score is counted as skipped with its reason.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from uniflow.evaluate.clip_store import ClipStore, moved_to_store
from uniflow.evaluate.config import EvaluationConfig
from uniflow.evaluate.generation import generate_task, resolve_device
from uniflow.evaluate.reference_items import read_reference_items
from uniflow.evaluate.table import table1_markdown
from uniflow.evaluate.task_metrics import Backbones, score_task
from uniflow.model.uniflow_audio import UniflowAudio
from uniflow.model.vae import UniflowVae
from uniflow.storage import Storage, atomic_write

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """The rows of the table, where they were written, and what was generated."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    directory: Path
    generated: dict[str, int] = field(default_factory=dict)

    @property
    def markdown_path(self) -> Path:
        return self.directory / "evaluation.md"

    @property
    def json_path(self) -> Path:
        return self.directory / "evaluation.json"


def inference_settings(config: EvaluationConfig, model_dir: Path, vae_dir: Path, device: torch.device, model: UniflowAudio) -> dict[str, Any]:
    """What the table prints beside the scores: everything that changes a generated sample."""
    settings = config.inference
    return {
        "checkpoint": str(model_dir),
        "vae": str(vae_dir),
        "parameters (M)": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}",
        "split": config.split,
        "steps (NFE per guidance branch)": settings.steps,
        "CFG scale": f"{settings.guidance_scale:g} (SE, SR: 1, unguided)",
        "solver": f"{settings.solver}, sway coefficient {settings.sway_coefficient}",
        "durations": f"predicted; given for {', '.join(settings.reference_durations) or 'none'}",
        "dtype": settings.dtype,
        "device": f"{device.type} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()})",
        "seed": settings.seed,
        "instruction": settings.instruction_index,
        "torch": torch.__version__,
    }


def evaluate_checkpoint(
    model_dir: str | Path,
    vae_dir: str | Path,
    storage: Storage,
    config: EvaluationConfig,
    name: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvaluationResult:
    """Generate and score every configured task; write ``evaluation.json`` and ``evaluation.md`` atomically."""
    model_dir, vae_dir = Path(model_dir), Path(vae_dir)
    device = resolve_device(config.inference.device)
    model = UniflowAudio.from_pretrained(model_dir, map_location=device).eval()
    vae = UniflowVae.from_pretrained(vae_dir).to(device).eval()
    if vae.config.latent_dim != model.config.latent_dim:
        raise ValueError(f"{vae_dir}: the VAE has {vae.config.latent_dim} latent channels, the model {model.config.latent_dim}")
    directory = storage.path("reports") / "evaluation" / name
    backbones = Backbones()
    rows: list[dict[str, Any]] = []
    generated: dict[str, int] = {}
    for index, task in enumerate(config.tasks):
        if progress:
            progress(task, index, len(config.tasks))
        # Both sides' audio lives in scratch files read by memory map, so a full test split never sits in memory.
        scratch = directory / task
        with ClipStore(scratch / ".generated.f32") as generated_clips, ClipStore(scratch / ".reference.f32") as reference_clips:
            items = generate_task(model, vae, storage, task, config.split, config.inference, directory / task, config.max_items)
            outputs = moved_to_store(items, generated_clips, "audio")
            generated[task] = len(outputs)
            references = read_reference_items(storage, task, config.split, [item.key for item in outputs], reference_clips)
            log.info("%s: %d items generated, %d references", task, len(outputs), len(references))
            rows += [result.as_row() for result in score_task(task, outputs, references, config, backbones)]
    settings = inference_settings(config, model_dir, vae_dir, device, model)
    result = EvaluationResult(rows, settings, directory, generated)
    document = {"name": name, "settings": settings, "generated": generated, "rows": rows, "config": config.model_dump(mode="json")}
    with atomic_write(result.json_path, "w") as handle:
        handle.write(json.dumps(document, indent=1, ensure_ascii=False))
    with atomic_write(result.markdown_path, "w") as handle:
        handle.write(table1_markdown(rows, settings, f"Evaluation of {model_dir} ({config.split} split)"))
    return result
