"""Launch a 2-process VAE run with accelerate.debug_launcher, in a fresh interpreter.

The tests start this as a subprocess: debug_launcher forks, and a fork of a process whose OpenMP pool has
already run (any earlier training in the pytest process) can hang in the child.
Usage: python two_rank_run.py <storage root> <steps> <resume 0|1>
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py

from accelerate import debug_launcher

from support import make_storage
from uniflow.model.discriminator import DiscriminatorConfig
from uniflow.train.vae import VaeOptimizerConfig, VaeTrainConfig, train_vae


def run(root: str, steps: int, resume: bool) -> None:
    """Each process: the tiny VAE with the discriminator active from step 0, checkpoints every 2 steps."""
    tiny = VaeTrainConfig.tiny()
    data = tiny.data.model_copy(update={"corpora": {"speech": ["libritts"]}, "crop_seconds": 0.1, "heldout_seconds": 1.0})
    config = tiny.model_copy(
        update={
            "steps": steps,
            "data": data,
            "optimizer": VaeOptimizerConfig(lr=3e-3, discriminator_lr=3e-3),
            "discriminator": DiscriminatorConfig.tiny(),
            "discriminator_warmup_steps": 0,
            "checkpoint_every": 2,
            "log_every": 1,
            "evaluate_at_start": False,
        }
    )
    train_vae(config, make_storage(Path(root)), "two-ranks", resume=resume, progress=False)


if __name__ == "__main__":
    debug_launcher(run, args=(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"), num_processes=2)
