"""Train the tiny model on 2 CPU processes (accelerate.debug_launcher, gloo) in a fresh interpreter.

The tests start this as a subprocess: debug_launcher forks, and a fork of a process whose OpenMP pool has
already run can hang in the child. Each rank saves its final weights to ``<root>/weights-rank<r>.pt``.
Usage: python two_rank_train.py <storage root> <steps>
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Two processes on two cores: one thread each (Accelerate would otherwise set 2 threads per CPU process).
os.environ["OMP_NUM_THREADS"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/train, for training_setup.py

import torch  # noqa: E402
import torch._inductor.config  # noqa: E402, F401  (imported lazily by each rank otherwise: seconds per fork)
from accelerate import debug_launcher  # noqa: E402
from accelerate.state import PartialState  # noqa: E402
from training_setup import quick_config, tiny_model  # noqa: E402

from support import make_storage  # noqa: E402
from uniflow.train.trainer import train  # noqa: E402


def run(root: str, steps: int) -> None:
    """Each rank: train, then save the weights its own model object ended with."""
    built = []

    def factory(config):
        built.append(tiny_model(config))
        return built[0]

    config = quick_config(steps, checkpoint_every=steps, generate_items=0)
    train(config, make_storage(Path(root)), "two-ranks", progress=False, model_factory=factory)
    rank = PartialState().process_index
    torch.save(
        {name: value.detach().clone() for name, value in built[0].state_dict().items()}, Path(root) / f"weights-rank{rank}.pt"
    )


if __name__ == "__main__":
    debug_launcher(run, args=(sys.argv[1], int(sys.argv[2])), num_processes=2)
