"""Mini MSD audio: msd_audio.tar with ``msd_audio/<d1>/<d2>/<7digital id>.clip.mp3``.

The clips sit at exactly the ``path`` values of the LP-MusicCaps-MSD mirror (its ``TRACKS``), so the
msd reader can join them to their captions; one more clip has no caption, as most MSD tracks have
none in LP-MusicCaps. MP3 at 22.05 kHz mono, written with soundfile's libsndfile MP3 encoder; the
music is the synth's drums/bass/other/vocals mixture.
"""

from __future__ import annotations

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext
from uniflow.mirror.builders.lp_musiccaps_msd import TRACKS

SAMPLE_RATE = 22_050
UNCAPTIONED = "6/0/6021984.clip.mp3"


def build(ctx: MirrorContext) -> None:
    for path in [track["path"] for track in TRACKS] + [UNCAPTIONED]:
        stems = synth.music(ctx.rng, float(ctx.rng.uniform(2.0, 3.5)), SAMPLE_RATE)
        mixture = sum(stems.values())
        mixture = 0.8 * mixture / max(float(abs(mixture).max()), 1e-9)
        ctx.write_audio(f"msd_audio/{path}", mixture, SAMPLE_RATE)
    ctx.pack("msd_audio", ctx.staging)
