"""Mirror of ESC-50: GitHub's master.zip with ESC-50-master/audio/ and ESC-50-master/meta/esc50.csv.

Real format: 5 s, 44.1 kHz, mono 16-bit wav named {fold}-{Freesound clip id}-{take}-{target}.wav;
esc50.csv columns filename,fold,target,category,esc10,src_file,take (target = class index 0-49).
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 44_100
CLIP_SECONDS = 5.0
TOP = "ESC-50-master"
# (fold, Freesound clip id, take, target, category, esc10, synthesized event)
CLIPS = (
    (1, "100032", "A", 0, "dog", True, "knock"),
    (2, "118206", "B", 14, "chirping_birds", False, "chirp"),
    (3, "141240", "A", 37, "clock_alarm", False, "beep"),
    (5, "200334", "A", 30, "door_wood_knock", False, "knock"),
    (4, "181286", "A", 16, "wind", False, "whoosh"),
)


def _clip(ctx: MirrorContext, event: str) -> np.ndarray:
    """A 5 s clip: a short event (repeated) over quiet background, as in most ESC-50 clips."""
    clip = 0.05 * synth.noise(ctx.rng, CLIP_SECONDS, SAMPLE_RATE, "pink")
    event_audio = synth.event_sound(ctx.rng, event, 0.6 if event != "whoosh" else 2.5, SAMPLE_RATE)
    for start in (0.3, 2.4) if event != "whoosh" else (1.0,):
        offset = int(start * SAMPLE_RATE)
        clip[offset : offset + len(event_audio)] += event_audio[: len(clip) - offset]
    return clip.astype(np.float32)


def build(ctx: MirrorContext) -> None:
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold, clip_id, take, target, category, esc10, event in CLIPS:
        filename = f"{fold}-{clip_id}-{take}-{target}.wav"
        ctx.write_audio(f"{TOP}/audio/{filename}", _clip(ctx, event), SAMPLE_RATE, "PCM_16")
        rows.append(f"{filename},{fold},{target},{category},{esc10},{clip_id},{take}")
    ctx.write_text(f"{TOP}/meta/esc50.csv", "\n".join(rows) + "\n")
    ctx.pack("ESC-50-master", ctx.staging)
