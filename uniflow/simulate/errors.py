"""The one error simulators raise for an unusable input, so the stage can quarantine it and go on."""

from __future__ import annotations

from pathlib import Path


class SimulationInputError(ValueError):
    """A source (file path or manifest id) cannot be used to render a pair, and why."""

    def __init__(self, source: str | Path, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self):  # keep both fields across process boundaries (pickling for worker pools)
        return (type(self), (self.source, self.reason))
