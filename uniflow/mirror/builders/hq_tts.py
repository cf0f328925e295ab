"""Mini HQ-TTS equivalent: hq_tts.tar.gz in the layout the recipe's steps tell users to assemble.

Three speakers x two utterances of 44.1 kHz mono 16-bit WAV under ``hq_tts/<speaker>/``.
"""

from __future__ import annotations

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import SENTENCES, speak

SAMPLE_RATE = 44100
SPEAKERS: tuple[str, ...] = ("speaker_a", "speaker_b", "speaker_c")
UTTERANCES_PER_SPEAKER = 2


def build(ctx: MirrorContext) -> None:
    """Write and pack hq_tts.tar.gz."""
    sentence = 3
    for voice, speaker in enumerate(SPEAKERS, start=4):
        for number in range(1, UTTERANCES_PER_SPEAKER + 1):
            audio = speak(SENTENCES[sentence % len(SENTENCES)], voice, SAMPLE_RATE)
            sentence += 1
            ctx.write_audio(f"hq_tts/{speaker}/{speaker}_{number:04d}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    ctx.pack("hq_tts", ctx.staging)
