"""Task instructions (``datasets/instructions.yaml``): 10 per task, ordered from simple to complex.

The model receives one of its task's instructions with every sample (paper Appendix C); a missing,
empty or repeated instruction would silently shrink that variety, so loading checks all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from uniflow.config import StrictModel, load_yaml
from uniflow.corpora.recipe import TASKS

INSTRUCTIONS_PER_TASK = 10

Instruction = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
TaskInstructions = Annotated[
    list[Instruction], Field(min_length=INSTRUCTIONS_PER_TASK, max_length=INSTRUCTIONS_PER_TASK)
]


class Instructions(StrictModel):
    """The instructions of every task; each list holds exactly 10 distinct, non-empty sentences."""

    tts: TaskInstructions
    svs: TaskInstructions
    t2a: TaskInstructions
    t2m: TaskInstructions
    se: TaskInstructions
    sr: TaskInstructions
    v2a: TaskInstructions

    @field_validator("*")
    @classmethod
    def _distinct(cls, instructions: list[str]) -> list[str]:
        # Case and spacing differences do not make a different instruction.
        first_seen: dict[str, int] = {}
        for index, instruction in enumerate(instructions):
            normalized = " ".join(instruction.split()).casefold()
            if normalized in first_seen:
                raise ValueError(f"instruction [{index}] repeats instruction [{first_seen[normalized]}]")
            first_seen[normalized] = index
        return instructions


def load_instructions(path: str | Path = "datasets/instructions.yaml") -> dict[str, list[str]]:
    """Load and check the instructions file; returns task -> its 10 instructions, simple to complex."""
    instructions = load_yaml(path, Instructions)
    return {task: list(getattr(instructions, task)) for task in TASKS}
