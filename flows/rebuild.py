"""The data rebuild as one Prefect flow: acquire -> align -> simulate -> shard -> features.

Each stage is its own flow, run here as a subflow in order, so the dashboard shows one parent run
with the five stage runs under it, and each stage resumes from what its outputs already hold (a
rerun after a kill redoes only what is missing). Two profiles:

- ``full``: the real sources of ``datasets/`` into the storage profile given (default
  ``storage_config/local.yaml``); features use the encoders of ``datasets/features.yaml``, whose
  VAE must already be trained (``uniflow vae train``).
- ``demo``: the mini mirror, (re)built and served on 127.0.0.1 while corpora download,
  into ``storage_config/demo.yaml``; the simulation keeps the mirror's short clips
  (``simulation_demo.yaml``); before the features, a short tiny-VAE run and the tiny T5 and CLIP of
  ``features_demo.yaml`` are made, since nothing may be downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.acquire import acquire_flow
from flows.align import run_alignment
from flows.features import run_features
from flows.shard import DEFAULT_MAX_SAMPLES, run_sharding
from flows.simulate import run_simulation
from uniflow.storage import Storage, build_once

STAGES: tuple[str, ...] = ("acquire", "align", "simulate", "shard", "features")
RebuildProfile = Literal["demo", "full"]


@dataclass(frozen=True)
class ProfileSettings:
    storage: str
    simulation: str  # file in the datasets folder
    encoders: str  # file in the datasets folder
    mirror: bool
    max_samples: int
    demo_vae_steps: int = 0


PROFILES: dict[str, ProfileSettings] = {
    "full": ProfileSettings("storage_config/local.yaml", "simulation.yaml", "features.yaml", False, DEFAULT_MAX_SAMPLES),
    "demo": ProfileSettings("storage_config/demo.yaml", "simulation_demo.yaml", "features_demo.yaml", True, 8, 60),
}


def prepare_demo_models(storage: Storage, datasets_dir: str, vae_steps: int) -> dict[str, Any]:
    """The demo's frozen models: the tiny T5 and CLIP (random-initialised, saved with ``save_pretrained`` and
    loaded back by the real code) and a short run of the tiny VAE on the Table 6 corpora, continued by reruns."""
    from uniflow.features.text import save_tiny_text_encoder
    from uniflow.features.video import save_tiny_video_encoder
    from uniflow.train.vae import VaeTrainConfig, train_vae

    models = storage.path("checkpoints").parent / "models"
    for name, save in (("tiny-t5", save_tiny_text_encoder), ("tiny-clip", save_tiny_video_encoder)):
        build_once(models / name, save)
    settings = VaeTrainConfig.tiny()
    data = settings.data.model_copy(update={"datasets": datasets_dir, "plan": f"{datasets_dir}/plan.yaml"})
    settings = settings.model_copy(update={"data": data, "steps": vae_steps, "checkpoint_every": vae_steps})
    result = train_vae(settings, storage, "demo", resume=True, progress=False)
    return {"step": result.step, "checkpoint": str(result.checkpoint), "evaluation": result.final_evaluation}


def _acquire(settings: ProfileSettings, storage_profile: str, datasets_dir: str, mirror_dir: str) -> dict[str, Any]:
    if not settings.mirror:
        return acquire_flow(profile=storage_profile, datasets_dir=datasets_dir, download=True, manifests=True)
    from uniflow.corpora.recipe import load_recipes
    from uniflow.mirror.build import build_mirror
    from uniflow.mirror.serve import serve_in_background

    build_mirror(load_recipes(datasets_dir), Path(mirror_dir))  # byte-identical rebuilds; never stale
    server = serve_in_background(Path(mirror_dir))
    os.environ["UNIFLOW_MIRROR_URL"] = server.url
    try:
        return acquire_flow(profile=storage_profile, datasets_dir=datasets_dir, download=True, manifests=True)
    finally:
        server.shutdown()


@flow(name="rebuild", log_prints=True)
def rebuild_flow(
    profile: RebuildProfile = "full",
    storage_profile: str | None = None,
    datasets_dir: str = "datasets",
    mirror_dir: str = "data/mirror",
    stages: list[str] | None = None,
    demo_vae_steps: int | None = None,
    runner: Literal["processes", "dask", "ray"] = "processes",
    runner_address: str | None = None,
) -> dict[str, Any]:
    """Run the data stages in order (``stages``: a subset of acquire, align, simulate, shard, features);
    ``demo_vae_steps`` overrides the demo profile's tiny-VAE steps. Alignment, simulation and sharding run on
    ``runner``: local processes, Dask or Ray (``runner_address`` of a running cluster, else a local one); the
    downloads run on threads and the features on the flow's node, one process per GPU."""
    logger = get_run_logger()
    settings = PROFILES[profile]
    storage_profile = storage_profile or settings.storage
    chosen = list(stages or STAGES)
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    outcome: dict[str, Any] = {"profile": profile, "storage_profile": storage_profile, "stages": chosen}
    if "acquire" in chosen:
        outcome["acquire"] = _acquire(settings, storage_profile, datasets_dir, mirror_dir)
    if "align" in chosen:
        outcome["align"] = run_alignment(runner, address=runner_address, profile=storage_profile, datasets_dir=datasets_dir)
    if "simulate" in chosen:
        outcome["simulate"] = run_simulation(
            runner, address=runner_address, profile=storage_profile, datasets_dir=datasets_dir,
            config_path=f"{datasets_dir}/{settings.simulation}",
        )
    if "shard" in chosen:
        outcome["shard"] = run_sharding(
            runner, address=runner_address, profile=storage_profile, datasets_dir=datasets_dir, max_samples=settings.max_samples
        )
    if "features" in chosen:
        vae_steps = demo_vae_steps if demo_vae_steps is not None and settings.demo_vae_steps else settings.demo_vae_steps
        if vae_steps:
            logger.info("demo: tiny VAE (%d steps) and tiny text/video encoders before the features", vae_steps)
            outcome["vae"] = prepare_demo_models(Storage.from_file(storage_profile), datasets_dir, vae_steps)
        outcome["features"] = run_features(
            profile=storage_profile,
            encoders_path=f"{datasets_dir}/{settings.encoders}",
            instructions_path=f"{datasets_dir}/instructions.yaml",
        )
    if "shard" in chosen:  # the data card describes the shards: rewrite it when they may have changed
        from uniflow.corpora.recipe import load_plan, load_recipes
        from uniflow.reporting.data_card import publish_data_card

        plan = load_plan(f"{datasets_dir}/plan.yaml", load_recipes(datasets_dir))
        outcome["data_card"] = publish_data_card(Storage.from_file(storage_profile), plan, datasets_dir)
    create_markdown_artifact(_summary(outcome), key="rebuild", description=f"Data rebuild ({profile})")
    return outcome


def _summary(outcome: dict[str, Any]) -> str:
    lines = [f"# Data rebuild ({outcome['profile']}, {outcome['storage_profile']})", "", "| stage | result |", "|---|---|"]
    if "acquire" in outcome:
        parts = outcome["acquire"]["parts"]
        failed = sum(part["status"] == "failed" for part in parts)
        lines.append(f"| acquire | {len(parts)} parts, {failed} failed, {len(outcome['acquire']['manifests'])} manifests |")
    if "align" in outcome:
        aligned = sum(summary["aligned"] for summary in outcome["align"]["alignments"])
        lines.append(f"| align | {aligned} utterances aligned, {len(outcome['align']['scores'])} score sets |")
    if "simulate" in outcome:
        pairs = sum(summary["pairs"] for summary in outcome["simulate"]["summaries"])
        lines.append(f"| simulate | {pairs} pairs |")
    if "shard" in outcome:
        lines.append(f"| shard | {len(outcome['shard']['sets'])} shard sets |")
    if "vae" in outcome:
        lines.append(f"| demo VAE | step {outcome['vae']['step']} |")
    if "features" in outcome:
        computed = sum(row["computed"] for row in outcome["features"]["sets"])
        lines.append(f"| features | {len(outcome['features']['sets'])} sets, {computed} shards computed |")
    if "data_card" in outcome:
        lines.append(f"| data card | {outcome['data_card']} |")
    return "\n".join(lines) + "\n"
