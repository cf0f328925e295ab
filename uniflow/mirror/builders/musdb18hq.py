"""Mirror of MUSDB18-HQ: musdb18hq.zip with {train,test}/<Artist - Title>/<stem>.wav at its top.

Real format: 44.1 kHz stereo 16-bit wav; every track folder holds mixture.wav and the drums, bass,
other and vocals stems, which sum to the mixture.
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 44_100
SECONDS = 1.0
TRACKS = (
    ("train", "A Classic Education - NightOwl"),
    ("train", "Actions - One Minute Smile"),
    ("test", "Al James - Schoolboy Facination"),
)
# Stereo placement of the mono synthesized stems (left gain, right gain).
PANNING = {"drums": (0.9, 0.9), "bass": (1.0, 1.0), "other": (0.6, 1.0), "vocals": (1.0, 0.8)}


def build(ctx: MirrorContext) -> None:
    for folder, track in TRACKS:
        stems = synth.music(ctx.rng, SECONDS, SAMPLE_RATE)
        stereo = {
            name: np.stack([left * stems[name], right * stems[name]], axis=1) for name, (left, right) in PANNING.items()
        }
        mixture = sum(stereo.values())
        scale = 0.9 / max(float(np.abs(mixture).max()), 1e-9)
        for name, audio in stereo.items():
            ctx.write_audio(f"{folder}/{track}/{name}.wav", (scale * audio).astype(np.float32), SAMPLE_RATE, "PCM_16")
        ctx.write_audio(f"{folder}/{track}/mixture.wav", (scale * mixture).astype(np.float32), SAMPLE_RATE, "PCM_16")
    ctx.pack("musdb18hq", ctx.staging)
