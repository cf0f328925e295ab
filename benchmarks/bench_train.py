"""Training throughput of UniFlow-Audio on this machine's CPU, the data loader included.

Feature shards of all seven tasks are written first (the trainer tests' format: tiny-VAE posteriors of real
LibriVox speech, 2-5 s = 100-250 latent frames; T5/CLIP/instruction arrays at the model's widths: 16 for tiny,
1024 for small). Then ``uniflow.train.trainer.train`` runs a few optimizer steps per config, one process, with
its usual task-balanced ``TrainStream`` (decoding in ``--workers`` DataLoader processes). From the per-step log:
samples/s, latent frames/s, and the share of step time spent waiting for the next batch (target: under 5%).
The first ``--warmup`` steps are left out. Other jobs on a 2-core machine slow every figure down: see `uptime`.

    .venv/bin/python benchmarks/bench_train.py [--sizes tiny small] [--steps 12 4] [--batch 16 4] [--workers 1]
                                               [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(PROJECT / "tests" / "train"))

import feature_sets  # noqa: E402
import torch  # noqa: E402

from support import make_storage  # noqa: E402
from uniflow.features.latents import LatentEncoder, LatentSettings  # noqa: E402
from uniflow.model.tasks import TASKS  # noqa: E402
from uniflow.storage import Storage  # noqa: E402
from uniflow.train.data import TrainDataConfig  # noqa: E402
from uniflow.train.trainer import OptimizerConfig, TrainConfig, read_log, run_dir, train  # noqa: E402

WIDTHS = {"tiny": 16, "small": 1024, "medium": 1024, "large": 1024}  # text, video and instruction dims


def write_features(root: Path, width: int) -> Storage:
    """4 train and 2 valid shards of 4 samples per task, with 2-5 s targets."""
    feature_sets.TEXT_DIM = feature_sets.VIDEO_DIM = feature_sets.INSTRUCTION_DIM = width
    storage = make_storage(root)
    encoder = LatentEncoder(LatentSettings(directory=str(feature_sets.save_vae(root / "vae"))), "cpu")
    arrays = encoder.encode([feature_sets.speech(index, 2.0 + index % 4) for index in range(8)])
    feature_sets.write_task_sets(storage, arrays, dict.fromkeys(TASKS, 4), per_shard=4)
    feature_sets.write_task_sets(storage, arrays, dict.fromkeys(TASKS, 2), split="valid", per_shard=4)
    feature_sets.write_instructions(storage, TASKS)
    return storage


def measure(size: str, steps: int, batch: int, workers: int, warmup: int, root: Path) -> dict[str, float]:
    storage = write_features(root / size, WIDTHS[size])
    data = TrainDataConfig(weights={"t2a": 2, "t2m": 3}, batch_size=batch, batches_per_epoch=1000, workers=workers, seed=0)
    config = TrainConfig(
        model=size,
        data=data,
        optimizer=OptimizerConfig(lr=1e-4, warmup_steps=0),
        steps=steps,
        checkpoint_every=10**9,
        checkpoint_at_end=False,
        valid_max_batches=1,
        generate_items=0,
        trackers=[],
        keep_checkpoints=1,
    )
    started = time.perf_counter()
    train(config, storage, f"bench-{size}", progress=False)
    rows = [row for row in read_log(run_dir(storage, f"bench-{size}")) if "loss" in row][warmup:]
    seconds = sum(row["step_seconds"] for row in rows)
    return {
        "steps": len(rows),
        "seconds_per_step": seconds / len(rows),
        "samples_per_s": sum(row["samples"] for row in rows) / seconds,
        "latent_frames_per_s": sum(row["latent_frames"] for row in rows) / seconds,
        "data_wait_fraction": statistics.mean(row["data_wait_fraction"] for row in rows),
        "wall_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--steps", nargs="+", type=int, default=[12, 4], help="optimizer steps per size")
    parser.add_argument("--batch", nargs="+", type=int, default=[16, 4], help="samples per step per size")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the figures")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: cores minus workers)")
    args = parser.parse_args()
    # The DataLoader workers decode on their own cores; more compute threads than the rest only contend.
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) - args.workers))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        for size, steps, batch in zip(args.sizes, args.steps, args.batch, strict=True):
            result = measure(size, steps + args.warmup, batch, args.workers, args.warmup, Path(folder))
            print(
                f"{size:>6}: batch {batch}, {result['steps']} steps: {result['seconds_per_step']:.3f} s/step, "
                f"{result['samples_per_s']:.2f} samples/s, {result['latent_frames_per_s']:.0f} latent frames/s, "
                f"waiting for data {100 * result['data_wait_fraction']:.2f}% of step time "
                f"({'under' if result['data_wait_fraction'] < 0.05 else 'OVER'} the 5% target); wall {result['wall_seconds']:.0f} s"
            )


if __name__ == "__main__":
    main()
