"""The UniFlow-Audio trainer: two ranks agree, a resumed run repeats the uninterrupted losses, NaN steps are skipped."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file
from torch import nn
from training_setup import feature_storage, quick_config, tiny_model

from support import make_storage, one_torch_thread
from uniflow.config import ConfigError
from uniflow.model.uniflow_audio import UniflowAudio
from uniflow.storage import Storage
from uniflow.train.checkpoints import latest_checkpoint
from uniflow.train.data import DataPlanError
from uniflow.train.trainer import (
    NonFiniteLossError,
    TrainConfig,
    constant_with_warmup,
    load_train_config,
    read_log,
    run_dir,
    train,
)

TWO_RANK_TRAIN = Path(__file__).with_name("two_rank_train.py")


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    return feature_storage(tmp_path_factory.mktemp("train-features"))


@pytest.fixture(autouse=True)
def one_thread_then_nondeterministic():
    """Tiny models run much faster on one thread on a busy 2-core machine; the runs switch deterministic
    algorithms on for the whole process, so switch them off again for other tests."""
    with one_torch_thread():
        yield
    torch.use_deterministic_algorithms(False)


def step_rows(storage: Storage, run_name: str) -> dict[int, dict]:
    return {row["step"]: row for row in read_log(run_dir(storage, run_name)) if "loss" in row}


def test_two_processes_train_and_end_with_identical_weights(storage: Storage) -> None:
    """MUST-SHOW: a 2-process gloo run (debug_launcher) trains a few steps; both ranks hold the same weights."""
    root = Path(storage.url("features")).parent
    subprocess.run([sys.executable, str(TWO_RANK_TRAIN), str(root), "3"], check=True, timeout=300)
    weights = [torch.load(root / f"weights-rank{rank}.pt") for rank in range(2)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    checkpoint = latest_checkpoint(run_dir(storage, "two-ranks"))
    assert checkpoint.name == "step-3"
    # Every rank's data position and RNG state is in the checkpoint.
    assert sorted(p.name for p in (checkpoint / "data").iterdir()) == ["rank-0.json", "rank-1.json"]
    assert sorted(p.name for p in (checkpoint / "state").glob("random_states_*")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]
    positions = [json.loads((checkpoint / "data" / f"rank-{rank}.json").read_text()) for rank in range(2)]
    assert [p["rank"] for p in positions] == [0, 1] and all(p["batches"] == 3 for p in positions)
    rows = step_rows(storage, "two-ranks")
    # Samples of both ranks are counted: 2 ranks x 4 per step, and the weights moved (the loss is finite).
    assert sorted(rows) == [1, 2, 3] and all(row["samples"] == 8 and math.isfinite(row["loss"]) for row in rows.values())


def test_stopped_and_resumed_run_repeats_the_uninterrupted_losses(storage: Storage) -> None:
    """MUST-SHOW: stop after step 3, resume, and steps 4-6 have exactly the losses of an uninterrupted run."""
    train(quick_config(6, checkpoint_every=3), storage, "whole", progress=False, model_factory=tiny_model)
    train(quick_config(3), storage, "halves", progress=False, model_factory=tiny_model)
    assert latest_checkpoint(run_dir(storage, "halves")).name == "step-3"
    resumed = train(quick_config(6), storage, "halves", resume=True, progress=False, model_factory=tiny_model)
    assert resumed.start_step == 3 and resumed.step == 6
    whole, halves = step_rows(storage, "whole"), step_rows(storage, "halves")
    assert sorted(halves) == [1, 2, 3, 4, 5, 6]

    def losses(row: dict) -> dict:
        return {
            name: value for name, value in row.items() if name.startswith(("loss", "task_loss/", "ratio/", "grad_norm", "lr"))
        }

    assert {"loss", "loss/flow", "loss/sequence_duration", "grad_norm", "lr", "ratio/t2m"} <= set(losses(whole[4]))
    assert any(name.startswith("task_loss/") for name in losses(whole[4]))
    for step in (4, 5, 6):
        assert losses(halves[step]) == losses(whole[step]), step
    # Validation at step 6 saw the same weights, and the final weights are bit-identical.
    validation = [json.loads((run_dir(storage, name) / "step-6" / "validation.json").read_text()) for name in ("whole", "halves")]
    assert validation[0] == validation[1] and set(validation[0]["losses"]) == {"tts", "svs", "t2a", "t2m", "se", "sr", "v2a"}
    final = [load_file(run_dir(storage, name) / "step-6" / "model" / "model.safetensors") for name in ("whole", "halves")]
    assert all(torch.equal(final[0][name], final[1][name]) for name in final[0])
    # A second launch without --resume refuses to overwrite the run.
    with pytest.raises(ConfigError, match="already has checkpoints"):
        train(quick_config(7), storage, "halves", progress=False, model_factory=tiny_model)


class NanAt(nn.Module):
    """Wraps a model and makes the loss of the given training forward calls (1-based) NaN."""

    def __init__(self, inner: nn.Module, calls: set[int] | None = None, after: int | None = None) -> None:
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.calls, self.after, self.count = calls or set(), after, 0

    def forward(self, batch, generator: torch.Generator | None = None, sigma: float | None = None):
        output = self.inner(batch, generator=generator, sigma=sigma)
        if not self.training:
            return output
        self.count += 1
        if self.count in self.calls or (self.after is not None and self.count > self.after):
            return output._replace(loss=output.loss * float("nan"))
        return output

    def generate(self, *args, **kwargs):
        return self.inner.generate(*args, **kwargs)

    def save_pretrained(self, directory):
        return self.inner.save_pretrained(directory)


def weights_at(storage: Storage, run_name: str, step: int) -> dict[str, torch.Tensor]:
    return load_file(run_dir(storage, run_name) / f"step-{step}" / "model" / "model.safetensors")


def test_a_nan_step_is_skipped_and_counted(storage: Storage) -> None:
    """MUST-SHOW: a NaN loss at step 3 changes no weight (no AdamW step, not even weight decay) and is counted."""
    config = quick_config(4, checkpoint_every=1, keep_checkpoints=10, generate_items=0)
    result = train(config, storage, "nan-once", progress=False, model_factory=lambda c: NanAt(tiny_model(c), calls={3}))
    assert result.nonfinite_steps == 1 and result.step == 4
    rows = step_rows(storage, "nan-once")
    assert math.isnan(rows[3]["loss"]) and rows[3]["nonfinite_steps"] == 1 and math.isfinite(rows[4]["loss"])
    before, skipped, after = (weights_at(storage, "nan-once", step) for step in (2, 3, 4))
    assert all(torch.equal(before[name], skipped[name]) for name in before)
    assert not all(torch.equal(skipped[name], after[name]) for name in skipped)
    assert all(torch.isfinite(value).all() for value in after.values())
    assert json.loads((run_dir(storage, "nan-once") / "step-4" / "trainer.json").read_text())["nonfinite_steps"] == 1


def test_repeated_nan_steps_stop_the_run_with_the_last_checkpoint_intact(storage: Storage) -> None:
    config = quick_config(10, checkpoint_every=2, max_consecutive_nonfinite=3, keep_checkpoints=10, generate_items=0)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        train(config, storage, "nan-always", progress=False, model_factory=lambda c: NanAt(tiny_model(c), after=2))
    run = run_dir(storage, "nan-always")
    # Steps 3-5 were NaN: the run stopped at step 5; the step-4 checkpoint holds step 2's finite weights.
    assert latest_checkpoint(run).name == "step-4" and not (run / "step-6").exists()
    assert json.loads((run / "step-4" / "trainer.json").read_text())["consecutive_nonfinite"] == 2
    good, latest = weights_at(storage, "nan-always", 2), weights_at(storage, "nan-always", 4)
    assert all(torch.equal(good[name], latest[name]) and torch.isfinite(good[name]).all() for name in good)
    assert [row["step"] for row in read_log(run) if "loss" in row] == [1, 2, 3, 4]


def test_checkpoints_hold_model_validation_samples_and_keep_the_last_k(storage: Storage) -> None:
    vae = Path(storage.url("features")).parent / "vae"  # the tiny 128-channel VAE the latents came from
    config = quick_config(6, checkpoint_every=2, keep_checkpoints=2, vae_dir=str(vae))
    result = train(config, storage, "checkpoints", progress=False, model_factory=tiny_model)
    run = run_dir(storage, "checkpoints")
    assert sorted(p.name for p in run.glob("step-*")) == ["step-4", "step-6"] and result.checkpoint == run / "step-6"
    latest = latest_checkpoint(run)
    assert (latest / "model" / "config.json").is_file() and (latest / "model" / "model.safetensors").is_file()
    # Two validation items generated: the first item of the first two tasks, in task order.
    names = ["svs_corpus_valid_00_00", "tts_corpus_valid_00_00"]
    assert sorted(p.stem for p in (latest / "samples").glob("*.npy")) == names
    # Decoded by the VAE: 24 kHz audio, 480 samples per generated latent frame.
    for name in names:
        frames = np.load(latest / "samples" / f"{name}.npy").shape[0]
        info = soundfile.info(latest / "samples" / f"{name}.wav")
        assert info.samplerate == 24000 and info.frames == 480 * frames and frames > 0
    rows = read_log(run)
    valid_rows = [row for row in rows if "valid/tts" in row]
    assert [row["step"] for row in valid_rows] == [2, 4, 6]
    last = [row for row in rows if "loss" in row][-1]
    # 24 samples served: 2.4 cycles of tts svs t2a t2m se sr v2a t2a t2m t2m.
    assert last["ratio/t2m"] == pytest.approx(7 / 24) and last["target_ratio/t2m"] == pytest.approx(0.3)
    assert 0.0 <= last["data_wait_fraction"] < 1.0 and last["lr"] == pytest.approx(1e-3)
    reloaded = UniflowAudio.from_pretrained(latest / "model")
    saved = load_file(latest / "model" / "model.safetensors")
    assert reloaded.config == tiny_model(config).config and reloaded.config.latent_dim == 128
    assert all(torch.equal(value, saved[name]) for name, value in reloaded.state_dict().items())


def test_a_rank_without_data_is_caught_before_the_model_is_built(tmp_path: Path) -> None:
    built = []
    with pytest.raises(DataPlanError, match="no train feature shards for any task"):
        train(quick_config(2), make_storage(tmp_path), "empty", progress=False, model_factory=built.append)
    assert built == []


def test_learning_rate_warms_up_linearly_then_stays_constant() -> None:
    factor = constant_with_warmup(10_000)
    assert [factor(step) for step in (0, 5_000, 10_000, 400_000)] == [0.0, 0.5, 1.0, 1.0]


def test_presets_and_yaml(tmp_path: Path) -> None:
    small = TrainConfig.preset("small")
    assert small.optimizer.lr == 5e-5 and small.optimizer.weight_decay == 0.01 and small.optimizer.warmup_steps == 10_000
    assert small.optimizer.grad_clip == 1.0 and small.data.batch_size == 24 and small.model == "small"
    from uniflow.corpora.recipe import load_plan, load_recipes

    plan = load_plan("datasets/plan.yaml", load_recipes("datasets"))
    planned = TrainConfig.preset("large", plan)
    assert planned.model == "large" and planned.data.weights["t2m"] == 3 and planned.data.weights["t2a"] == 2
    path = tmp_path / "run.yaml"
    path.write_text("model: medium\nsteps: 50\ndata: {batch_size: 8}\n", encoding="utf-8")
    loaded = load_train_config(path)
    assert loaded.model == "medium" and loaded.steps == 50 and loaded.data.batch_size == 8 and loaded.optimizer.lr == 5e-5
    path.write_text("model: huge\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="huge"):
        load_train_config(path)


def test_uniflow_train_command_runs_here_and_exits_1_without_data(storage: Storage, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from support import write_profile
    from uniflow.cli import app

    config = tmp_path / "run.yaml"
    config.write_text("model: tiny\ntrackers: []\ngenerate_items: 0\ndeterministic: true\ndata: {batch_size: 4, workers: 0}\n")
    profile = write_profile(Path(storage.url("features")).parent, None)
    arguments = ["train", "--config", str(config), "--steps", "2", "--run-name", "cli"]
    result = CliRunner().invoke(app, [*arguments, "--storage", profile])
    assert result.exit_code == 0, result.output
    assert "step 2; 0 non-finite step(s) skipped" in " ".join(result.output.split())
    assert latest_checkpoint(run_dir(storage, "cli")).name == "step-2"
    result = CliRunner().invoke(app, [*arguments, "--storage", write_profile(tmp_path, None)])
    assert result.exit_code == 1 and "no train feature shards for any task" in " ".join(result.output.split())
