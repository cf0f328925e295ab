"""The seven tasks and the groups the model treats differently (paper section 3.3).

Time-aligned (TA) tasks have content that maps onto the target's time axis (phones, notes, input
latents, video frames): their content is expanded by per-token durations and added to the latent.
Non-time-aligned (NTA) tasks (captions) only reach the latent through cross-attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

Task = Literal["tts", "svs", "t2a", "t2m", "se", "sr", "v2a"]
TASKS: tuple[str, ...] = ("tts", "svs", "t2a", "t2m", "se", "sr", "v2a")
TIME_ALIGNED_TASKS: frozenset[str] = frozenset({"tts", "svs", "se", "sr", "v2a"})
NON_TIME_ALIGNED_TASKS: frozenset[str] = frozenset({"t2a", "t2m"})
# TA tasks whose per-token durations are fixed by the input's frame rate, not predicted from content.
FIXED_DURATION_TASKS: frozenset[str] = frozenset({"se", "sr", "v2a"})
# TA tasks whose durations come from an aligner or a score (and are predicted at inference).
ALIGNED_DURATION_TASKS: frozenset[str] = frozenset({"tts", "svs"})
# Tasks whose output has the input's length (one target latent per input latent).
SAME_LENGTH_TASKS: frozenset[str] = frozenset({"se", "sr"})


def check_tasks(tasks: Sequence[str]) -> None:
    """Raise ValueError naming the first task that is not one of TASKS."""
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def time_aligned_mask(tasks: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """(B,) bool: True where the sample's task is time-aligned."""
    check_tasks(tasks)
    return torch.tensor([task in TIME_ALIGNED_TASKS for task in tasks], dtype=torch.bool, device=device)
