"""What an evaluation runs: the test split, the inference settings, and each metric's backbone.

Defaults are the paper's (appendix B, D.3): 25 Euler steps with sway sampling, CFG 5 for every task but SE and SR,
PANNs CNN14 for FD, CLAP for the CLAP score; ``datasets/evaluation.yaml`` says where the backbones' weights are
on this machine. The inference settings are printed beside every table, because a score without its NFE, CFG,
solver, dtype and device is not comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from uniflow.config import StrictModel, load_yaml
from uniflow.evaluate.av_sync import SyncSettings
from uniflow.evaluate.clap_score import ClapScoreSettings
from uniflow.evaluate.frechet import FrechetSettings
from uniflow.evaluate.imagebind_score import ImageBindSettings
from uniflow.evaluate.speaker_similarity import SpeakerSimilaritySettings
from uniflow.evaluate.wer import WerSettings
from uniflow.model.tasks import TASKS


class InferenceSettings(StrictModel):
    """How the audio under evaluation is generated."""

    steps: int = Field(default=25, ge=1)
    guidance_scale: float = 5.0  # SE and SR always run unguided (scale 1), as in the paper
    solver: Literal["euler"] = "euler"
    sway_coefficient: float | None = -1.0
    dtype: Literal["fp32", "bf16"] = "fp32"
    device: str = "auto"  # auto = cuda when present, else cpu
    seed: int = 0
    batch_size: int = Field(default=8, ge=1)
    instruction_index: int = Field(default=0, ge=0)
    # Tasks generated with the test item's own durations (SVS: the score's note/phone timing), so that frame-wise
    # metrics (F0 RMSE, semitone accuracy) compare corresponding frames; the others use predicted durations.
    reference_durations: list[str] = Field(default_factory=lambda: ["svs"])


class EvaluationConfig(StrictModel):
    """The whole evaluation: which items, how they are generated, and how each metric is computed."""

    split: str = "test"
    tasks: list[str] = Field(default_factory=lambda: list(TASKS))
    max_items: int | None = Field(default=None, ge=1)  # per task; None = the whole split
    inference: InferenceSettings = InferenceSettings()
    f0_unit: Literal["log", "cents", "hz"] = "log"  # log = ESPnet's log-F0 RMSE, the paper's Table 1 unit
    frechet: FrechetSettings = FrechetSettings()
    clap: ClapScoreSettings = ClapScoreSettings()
    wer: WerSettings = WerSettings()
    speaker_similarity: SpeakerSimilaritySettings = SpeakerSimilaritySettings()
    imagebind: ImageBindSettings = ImageBindSettings()
    sync: SyncSettings = SyncSettings()

    @model_validator(mode="after")
    def _check(self) -> EvaluationConfig:
        unknown = sorted((set(self.tasks) | set(self.inference.reference_durations)) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; expected some of {', '.join(TASKS)}")
        return self


def load_evaluation_config(path: str | Path) -> EvaluationConfig:
    """``datasets/evaluation.yaml`` (errors name the file and the field)."""
    return load_yaml(path, EvaluationConfig)
