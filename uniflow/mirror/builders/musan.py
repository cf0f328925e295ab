"""Mirror of MUSAN (OpenSLR 17): musan.tar.gz with musan/{music,speech,noise}/<source>/.

Real format: 16 kHz mono 16-bit wav named <category>-<source>-NNNN.wav, one ANNOTATIONS file per
source folder (none in speech/us-gov) and one LICENSE file per source folder. ANNOTATIONS formats:
music "<id> <genres> <vocals Y|N> <artist>", speech "<id> <gender m|f> <language>", free-sound
noise a header line followed by the ids of the background noises. The LICENSE texts here are
short stand-ins for the real per-file attribution lists.
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 16_000


def _music(ctx: MirrorContext, seconds: float) -> np.ndarray:
    stems = synth.music(ctx.rng, seconds, SAMPLE_RATE)
    mixture = sum(stems.values())
    return (0.8 * mixture / (np.abs(mixture).max() + 1e-9)).astype(np.float32)


def _license(ctx: MirrorContext, folder: str, ids: list[str]) -> None:
    lines = [f"{file_id}: mirror recording made by uniflow (stand-in for the real attribution)" for file_id in ids]
    ctx.write_text(f"{folder}/LICENSE", "\n".join(lines) + "\n")


def build(ctx: MirrorContext) -> None:
    # Music: two fma tracks (one with vocals) and one hd-classical track.
    music = {
        "musan/music/fma": [
            ("music-fma-0000", "pop,rock Y The Mirror Band"),
            ("music-fma-0001", "electronic N Synth_Mirror"),
        ],
        "musan/music/hd-classical": [("music-hd-0000", "classical,western N Anonymous_Mirror_Composer")],
    }
    for folder, tracks in music.items():
        for file_id, _ in tracks:
            audio = _music(ctx, float(ctx.rng.uniform(1.5, 2.5)))
            ctx.write_audio(f"{folder}/{file_id}.wav", audio, SAMPLE_RATE, "PCM_16")
        ctx.write_text(f"{folder}/ANNOTATIONS", "".join(f"{file_id} {fields}\n" for file_id, fields in tracks))
        _license(ctx, folder, [file_id for file_id, _ in tracks])

    # Speech: librivox (annotated) and us-gov (no ANNOTATIONS file, as in the real corpus).
    speech = {
        "musan/speech/librivox": [("speech-librivox-0000", "m english", 0), ("speech-librivox-0001", "f english", 1)],
        "musan/speech/us-gov": [("speech-us-gov-0000", None, 2)],
    }
    for folder, recordings in speech.items():
        for number, (file_id, _, voice) in enumerate(recordings):
            audio = synth.speak(synth.SENTENCES[number + voice], voice, SAMPLE_RATE)
            ctx.write_audio(f"{folder}/{file_id}.wav", audio, SAMPLE_RATE, "PCM_16")
        annotated = [(file_id, fields) for file_id, fields, _ in recordings if fields]
        if annotated:
            ctx.write_text(f"{folder}/ANNOTATIONS", "".join(f"{file_id} {fields}\n" for file_id, fields in annotated))
        _license(ctx, folder, [file_id for file_id, _, _ in recordings])

    # Noise: free-sound (one background, one foreground event) and sound-bible.
    free_sound = "musan/noise/free-sound"
    knock = synth.event_sound(ctx.rng, "knock", 1.0, SAMPLE_RATE)
    ctx.write_audio(f"{free_sound}/noise-free-sound-0000.wav", knock, SAMPLE_RATE, "PCM_16")
    rumble = synth.noise(ctx.rng, 2.0, SAMPLE_RATE, "brown")
    ctx.write_audio(f"{free_sound}/noise-free-sound-0001.wav", rumble, SAMPLE_RATE, "PCM_16")
    ctx.write_text(f"{free_sound}/ANNOTATIONS", "Background noises:\nnoise-free-sound-0001\n")
    _license(ctx, free_sound, ["noise-free-sound-0000", "noise-free-sound-0001"])
    sound_bible = "musan/noise/sound-bible"
    whoosh = synth.event_sound(ctx.rng, "whoosh", 1.5, SAMPLE_RATE)
    ctx.write_audio(f"{sound_bible}/noise-sound-bible-0000.wav", whoosh, SAMPLE_RATE, "PCM_16")
    _license(ctx, sound_bible, ["noise-sound-bible-0000"])

    ctx.pack("musan", ctx.staging)
