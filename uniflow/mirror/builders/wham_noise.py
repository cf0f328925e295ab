"""Mirror of WHAM! noise, 48 kHz release: high_res_wham.zip with audio/ and high_res_metadata.csv.

Real format: 48 kHz, 2-channel (binaural), 24-bit PCM wav; the CSV names every file and its
official split ("WHAM! Split": Train / Valid / Test). The mirror's CSV carries only the columns
confirmed from public code (Filename, WHAM! Split, File Length (sec)); the real file names are not
published anywhere reachable, so the mirror's names are neutral and the reader takes names from the
CSV only.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 48_000
# (file name, split): three Train, one Valid and one Test recording.
RECORDINGS: tuple[tuple[str, str], ...] = (
    ("wham_noise_mirror_001.wav", "Train"),
    ("wham_noise_mirror_002.wav", "Train"),
    ("wham_noise_mirror_003.wav", "Train"),
    ("wham_noise_mirror_004.wav", "Valid"),
    ("wham_noise_mirror_005.wav", "Test"),
)


def _binaural_noise(ctx: MirrorContext, seconds: float) -> np.ndarray:
    """Two partly correlated noise channels, like a binaural pair in one room."""
    shared = synth.noise(ctx.rng, seconds, SAMPLE_RATE, color="pink")
    left = 0.7 * shared + 0.3 * synth.noise(ctx.rng, seconds, SAMPLE_RATE, color="brown")
    right = 0.7 * shared + 0.3 * synth.noise(ctx.rng, seconds, SAMPLE_RATE, color="brown")
    return np.stack([left, right], axis=1).astype(np.float32)


def build(ctx: MirrorContext) -> None:
    rows = []
    for name, split in RECORDINGS:
        seconds = round(float(ctx.rng.uniform(1.0, 2.0)), 3)
        audio = _binaural_noise(ctx, seconds)
        ctx.write_audio(f"high_res_wham/audio/{name}", audio, SAMPLE_RATE, subtype="PCM_24")
        rows.append((name, split, f"{len(audio) / SAMPLE_RATE:.3f}"))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["Filename", "WHAM! Split", "File Length (sec)"])
    writer.writerows(rows)
    ctx.write_text("high_res_wham/high_res_metadata.csv", text.getvalue())
    ctx.pack("high_res_wham", ctx.staging)
