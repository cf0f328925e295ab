"""Training and evaluating the waveform VAE (paper appendix D.1, Tables 6 and 7) on Accelerate.

Data: random crops (1.5 s in the paper) of the corpora of ``plan.vae_corpora``, by domain. Losses:
multi-resolution STFT, waveform L1, KL, and after a warm-up an STFT discriminator with feature matching.
Checkpoints go to the ``checkpoints`` role under ``vae/<run>/step-<N>/`` (``state/`` for Accelerate,
``vae/`` with config.json + model.safetensors, ``evaluation.json``/``.md``) and ``vae/<run>/latest`` points at
the newest one. Evaluation reports MSE and SNR (dB) of the posterior-mean reconstruction per domain.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from uniflow.config import ConfigError, StrictModel, load_yaml
from uniflow.corpora.recipe import VAE_DOMAINS, VaeDomain, load_plan, load_recipes
from uniflow.model.discriminator import DiscriminatorConfig, MultiScaleStftDiscriminator
from uniflow.model.vae import UniflowVae, VaeConfig
from uniflow.model.vae_losses import (
    AdversarialKind,
    MultiResolutionStftLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    kl_loss,
    waveform_l1,
)
from uniflow.storage import Storage
from uniflow.train.checkpoints import TRAINER_FILE, latest_checkpoint, point_latest, prune_checkpoints
from uniflow.train.vae_data import RandomCropDataset, heldout_clips, load_heldout, manifest_clips

log = logging.getLogger(__name__)

EVALUATION_JSON = "evaluation.json"
EVALUATION_MD = "evaluation.md"
LOG_FILE = "log.jsonl"


class VaeLossConfig(StrictModel):
    """Weights of the loss terms (a weight of 0 switches a term off) and the STFT loss's resolutions."""

    stft: float = 1.0
    waveform_l1: float = 1.0
    kl: float = 1e-4
    adversarial: float = 0.1
    feature_matching: float = 5.0
    adversarial_kind: AdversarialKind = "hinge"
    stft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128)
    stft_hop_fraction: float = 0.25
    pre_emphasis: float | None = None


class VaeOptimizerConfig(StrictModel):
    """AdamW for the VAE (generator) and the discriminator, with gradient clipping."""

    lr: float = 1.5e-4
    discriminator_lr: float = 3e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 1e-3
    grad_clip: float = 1.0


class VaeDataConfig(StrictModel):
    """Where the audio comes from and how it is cut."""

    plan: str = "datasets/plan.yaml"
    datasets: str = "datasets"
    # None: the plan's vae_corpora (Table 6); else domain -> corpus names, e.g. for a run on speech only.
    corpora: dict[VaeDomain, list[str]] | None = None
    crop_seconds: float = Field(1.5, gt=0)
    heldout_clips_per_domain: int = Field(16, ge=1)
    heldout_seconds: float = Field(5.0, gt=0)
    num_workers: int = Field(2, ge=0)


class VaeTrainConfig(StrictModel):
    """Everything a VAE training run needs. Field defaults are the paper's setup (``paper()``)."""

    vae: VaeConfig = Field(default_factory=VaeConfig.paper)
    discriminator: DiscriminatorConfig | None = Field(default_factory=DiscriminatorConfig.paper)
    discriminator_warmup_steps: int = Field(0, ge=0, description="Steps of reconstruction-only training first.")
    losses: VaeLossConfig = Field(default_factory=VaeLossConfig)
    optimizer: VaeOptimizerConfig = Field(default_factory=VaeOptimizerConfig)
    data: VaeDataConfig = Field(default_factory=VaeDataConfig)
    batch_size: int = Field(16, ge=1, description="Crops per process and step.")
    steps: int = Field(1_000_000, ge=0)
    checkpoint_every: int = Field(10_000, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    log_every: int = Field(100, ge=1)
    evaluate_at_start: bool = True
    seed: int = 0

    @property
    def adversarial_enabled(self) -> bool:
        return self.discriminator is not None and (self.losses.adversarial > 0 or self.losses.feature_matching > 0)

    @classmethod
    def paper(cls) -> VaeTrainConfig:
        """Paper D.1: the Oobleck VAE at 24 kHz, 1.5 s random crops, 1M steps."""
        return cls()

    @classmethod
    def tiny(cls) -> VaeTrainConfig:
        """The tiny VAE and discriminator on 0.5 s crops: a few hundred steps run in minutes on a CPU."""
        return cls(
            vae=VaeConfig.tiny(),
            discriminator=DiscriminatorConfig.tiny(),
            discriminator_warmup_steps=200,
            losses=VaeLossConfig(stft_fft_sizes=(512, 256, 128)),
            optimizer=VaeOptimizerConfig(lr=2e-3, discriminator_lr=2e-3),
            data=VaeDataConfig(crop_seconds=0.5, heldout_clips_per_domain=4, heldout_seconds=2.0, num_workers=0),
            batch_size=4,
            steps=400,
            checkpoint_every=200,
            log_every=20,
        )

    @classmethod
    def preset(cls, name: str) -> VaeTrainConfig:
        presets = {"paper": cls.paper, "tiny": cls.tiny}
        if name not in presets:
            raise ConfigError(f"unknown VAE preset {name!r}; choose one of {', '.join(presets)}")
        return presets[name]()


def load_vae_train_config(path: str | Path) -> VaeTrainConfig:
    """A YAML run config; fields it leaves out take the paper's values."""
    return load_yaml(path, VaeTrainConfig)


def vae_corpora(config: VaeDataConfig) -> dict[str, list[str]]:
    """Domain -> corpus names: the config's own, else the plan's Table 6 list (checked against the recipes)."""
    if config.corpora is not None:
        return {domain: list(names) for domain, names in config.corpora.items()}
    plan = load_plan(config.plan, load_recipes(config.datasets))
    return {domain: list(names) for domain, names in plan.vae_corpora.items()}


# -- evaluation -----------------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction_metrics(vae: UniflowVae, clips: list[torch.Tensor]) -> dict[str, float]:
    """Mean over clips of MSE and SNR (dB) between each clip and its decoded posterior mean (paper Table 7)."""
    was_training = vae.training
    vae.eval()
    device = next(vae.parameters()).device
    mses, snrs = [], []
    try:
        for clip in clips:
            audio = clip.to(device)
            _, mean, _ = vae.encode(audio, sample=False)
            decoded = vae.decode(mean)[..., : audio.shape[-1]]
            error = (decoded - audio).pow(2).sum().item()
            energy = audio.pow(2).sum().item()
            mses.append(error / audio.numel())
            snrs.append(10 * math.log10(max(energy, 1e-12) / max(error, 1e-12)))
    finally:
        vae.train(was_training)
    if not clips:
        return {"clips": 0, "mse": float("nan"), "snr_db": float("nan")}
    return {"clips": len(clips), "mse": sum(mses) / len(mses), "snr_db": sum(snrs) / len(snrs)}


def evaluate(vae: UniflowVae, heldout: dict[str, list[torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Domain -> {clips, mse, snr_db}, in Table 6 order."""
    return {domain: reconstruction_metrics(vae, heldout[domain]) for domain in _ordered(heldout)}


def _ordered(domains: dict[str, Any]) -> list[str]:
    return sorted(domains, key=lambda d: (VAE_DOMAINS.index(d) if d in VAE_DOMAINS else len(VAE_DOMAINS), d))


def evaluation_markdown(results: dict[str, dict[str, float]], step: int | None = None) -> str:
    """A Table 7-style markdown table: one row per domain."""
    title = "VAE reconstruction" + (f" at step {step}" if step is not None else "")
    lines = [f"# {title}", "", "| Domain | Clips | MSE | SNR (dB) |", "|---|---:|---:|---:|"]
    for domain, row in results.items():
        lines.append(f"| {domain} | {row['clips']} | {row['mse']:.3e} | {row['snr_db']:.2f} |")
    return "\n".join(lines) + "\n"


def write_evaluation(directory: Path, results: dict[str, dict[str, float]], step: int | None = None) -> None:
    """evaluation.json and evaluation.md into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"step": step, "domains": results}
    (directory / EVALUATION_JSON).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    (directory / EVALUATION_MD).write_text(evaluation_markdown(results, step), encoding="utf-8")


def load_heldout_set(storage: Storage, config: VaeTrainConfig) -> dict[str, list[torch.Tensor]]:
    """Domain -> fixed held-out clips: the `test` split of each corpus, `valid` where a corpus has no test."""
    by_domain = manifest_clips(storage, vae_corpora(config.data), ("test", "valid"))
    data = config.data
    ratio = config.vae.downsampling_ratio
    return {
        domain: load_heldout(
            heldout_clips(clips, data.heldout_clips_per_domain), data.heldout_seconds, config.vae.sample_rate, ratio
        )
        for domain, clips in by_domain.items()
        if clips
    }


def evaluate_pretrained(
    storage: Storage, vae_dir: str | Path, config: VaeTrainConfig, out_dir: str | Path | None = None
) -> dict[str, dict[str, float]]:
    """Evaluate a saved VAE (config.json + model.safetensors) on the held-out clips; write the report beside it."""
    vae = UniflowVae.from_pretrained(vae_dir)
    config = config.model_copy(update={"vae": vae.config})
    results = evaluate(vae, load_heldout_set(storage, config))
    write_evaluation(Path(out_dir or vae_dir), results)
    return results


# -- checkpoints ------------------------------------------------------------------------------------------
def run_dir(storage: Storage, run_name: str) -> Path:
    """``<checkpoints>/vae/<run name>`` (Accelerate's save_state needs a local or mounted path)."""
    return storage.path("checkpoints", "vae", run_name)


# -- training -------------------------------------------------------------------------------------------
@dataclass
class VaeTrainResult:
    """What a training call did: the step reached, its checkpoint, and the evaluations it ran."""

    step: int
    start_step: int
    checkpoint: Path | None
    initial_evaluation: dict[str, dict[str, float]] | None = None
    final_evaluation: dict[str, dict[str, float]] | None = None
    losses: list[dict[str, float]] = field(default_factory=list)


def _set_requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def train_vae(
    config: VaeTrainConfig,
    storage: Storage,
    run_name: str,
    *,
    init_from: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> VaeTrainResult:
    """Train (or continue training) the VAE up to ``config.steps``; works in one process or under
    ``accelerate launch`` / ``debug_launcher``, each process drawing its own crops."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    run = run_dir(storage, run_name)
    resume_from = latest_checkpoint(run) if resume else None
    if resume and resume_from is None:
        log.info("VAE run %s has no checkpoint yet; starting from step 0", run_name)
    if not resume and latest_checkpoint(run) is not None:
        raise ConfigError(f"{run}: run {run_name!r} already has checkpoints; pass resume or choose another run name")
    start_step = json.loads((resume_from / TRAINER_FILE).read_text())["step"] if resume_from else 0

    set_seed(config.seed)
    if init_from is not None and resume_from is None:
        vae = UniflowVae.from_pretrained(init_from)
        if vae.config != config.vae:
            log.info("VAE initialised from %s takes that directory's architecture", init_from)
            config = config.model_copy(update={"vae": vae.config})
    else:
        vae = UniflowVae(config.vae)
    adversarial = config.adversarial_enabled
    discriminator = MultiScaleStftDiscriminator(config.discriminator) if adversarial else None

    opt = config.optimizer
    gen_optimizer = torch.optim.AdamW(vae.parameters(), lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay)
    prepared: list[Any] = [vae, gen_optimizer]
    if discriminator is not None:
        disc_optimizer = torch.optim.AdamW(
            discriminator.parameters(), lr=opt.discriminator_lr, betas=opt.betas, weight_decay=opt.weight_decay
        )
        prepared += [discriminator, disc_optimizer]
    prepared = accelerator.prepare(*prepared)
    vae, gen_optimizer = prepared[0], prepared[1]
    if discriminator is not None:
        discriminator, disc_optimizer = prepared[2], prepared[3]
    if resume_from is not None:
        accelerator.load_state(str(resume_from / "state"))
        log.info("resumed VAE run %s from %s (step %d)", run_name, resume_from, start_step)

    losses_config = config.losses
    stft_loss = MultiResolutionStftLoss(losses_config.stft_fft_sizes, losses_config.stft_hop_fraction, losses_config.pre_emphasis)
    train_clips = [clip for clips in manifest_clips(storage, vae_corpora(config.data), ("train",)).values() for clip in clips]
    dataset = RandomCropDataset(
        train_clips,
        config.data.crop_seconds,
        config.vae.sample_rate,
        config.seed,
        rank=accelerator.process_index,
        start_step=start_step,
        multiple_of=config.vae.downsampling_ratio,
    )
    # Not passed to accelerator.prepare: every process already draws its own crops, so nothing is dispatched.
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.data.num_workers,
        persistent_workers=config.data.num_workers > 0,
    )

    result = VaeTrainResult(step=start_step, start_step=start_step, checkpoint=resume_from)
    heldout: dict[str, list[torch.Tensor]] = {}
    if accelerator.is_main_process:
        heldout = load_heldout_set(storage, config)
        run.mkdir(parents=True, exist_ok=True)
        if config.evaluate_at_start and start_step == 0:
            result.initial_evaluation = evaluate(accelerator.unwrap_model(vae), heldout)
            write_evaluation(run / "initial", result.initial_evaluation, 0)
            log.info("VAE at step 0:\n%s", evaluation_markdown(result.initial_evaluation, 0))

    def save_checkpoint(step: int) -> Path:
        target = run / f"step-{step}"
        accelerator.save_state(str(target / "state"))
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(vae)
            unwrapped.save_pretrained(target / "vae")
            evaluation = evaluate(unwrapped, heldout)
            write_evaluation(target, evaluation, step)
            result.final_evaluation = evaluation
            trainer = {"step": step, "run_name": run_name, "config": json.loads(config.model_dump_json())}
            (target / TRAINER_FILE).write_text(json.dumps(trainer, indent=1) + "\n", encoding="utf-8")
            point_latest(run, target)
            prune_checkpoints(run, config.keep_checkpoints)
        accelerator.wait_for_everyone()
        return target

    vae.train()
    if discriminator is not None:
        discriminator.train()
    step = start_step
    bar = tqdm(
        total=config.steps, initial=start_step, desc=f"vae {run_name}", disable=not (progress and accelerator.is_main_process)
    )
    batches = iter(loader)
    log_path = run / LOG_FILE
    while step < config.steps:
        audio = next(batches).to(accelerator.device)
        reconstruction, mean, std = vae(audio)
        gan_active = discriminator is not None and step >= config.discriminator_warmup_steps
        values: dict[str, torch.Tensor] = {}

        if gan_active:
            # Discriminator step on real vs detached reconstructions, in one forward so DDP syncs once.
            pairs = discriminator(torch.cat([audio, reconstruction.detach()]))
            real_logits = [logits[: audio.shape[0]] for logits, _ in pairs]
            fake_logits = [logits[audio.shape[0] :] for logits, _ in pairs]
            values["discriminator"] = discriminator_loss(real_logits, fake_logits, losses_config.adversarial_kind)
            disc_optimizer.zero_grad(set_to_none=True)
            accelerator.backward(values["discriminator"])
            accelerator.clip_grad_norm_(discriminator.parameters(), opt.grad_clip)
            disc_optimizer.step()

        values["stft"] = stft_loss(reconstruction, audio)
        values["waveform_l1"] = waveform_l1(reconstruction, audio)
        values["kl"] = kl_loss(mean, std)
        total = (
            losses_config.stft * values["stft"]
            + losses_config.waveform_l1 * values["waveform_l1"]
            + losses_config.kl * values["kl"]
        )
        if gan_active:
            # The generator sees the discriminator frozen and unwrapped: no gradients for it, no DDP sync.
            critic = accelerator.unwrap_model(discriminator)
            _set_requires_grad(critic, False)
            pairs = critic(torch.cat([audio, reconstruction]))
            batch = audio.shape[0]
            fake_logits = [logits[batch:] for logits, _ in pairs]
            real_features = [f[:batch] for _, features in pairs for f in features]
            fake_features = [f[batch:] for _, features in pairs for f in features]
            values["adversarial"] = generator_adversarial_loss(fake_logits, losses_config.adversarial_kind)
            values["feature_matching"] = feature_matching_loss(real_features, fake_features)
            total = total + losses_config.adversarial * values["adversarial"]
            total = total + losses_config.feature_matching * values["feature_matching"]
            _set_requires_grad(critic, True)
        values["total"] = total
        gen_optimizer.zero_grad(set_to_none=True)
        accelerator.backward(total)
        accelerator.clip_grad_norm_(vae.parameters(), opt.grad_clip)
        gen_optimizer.step()
        step += 1
        bar.update(1)

        if step % config.log_every == 0 or step == config.steps:
            logged = {name: accelerator.reduce(value.detach(), reduction="mean").item() for name, value in values.items()}
            if accelerator.is_main_process:
                bar.set_postfix({name: f"{value:.4g}" for name, value in logged.items()})
                result.losses.append({"step": step, **logged})
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": step, **logged}) + "\n")
        if step % config.checkpoint_every == 0 or step == config.steps:
            result.checkpoint = save_checkpoint(step)
    bar.close()
    result.step = step
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result
