"""Mini VoiceBank+DEMAND: the six zips of DataShare 2791 used by the paper, two speakers per set.

Each zip holds one folder named like it (clean_trainset_28spk_wav/p226_001.wav ...). Clean speech is
synthesized at 48 kHz; its noisy twin is the same speech plus noise at one of the set's SNRs
(0/5/10/15 dB for training, 2.5/7.5/12.5/17.5 dB for test), so each pair is sample-aligned.
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import SENTENCES, noise, speak

SAMPLE_RATE = 48000
UTTERANCES_PER_SPEAKER = 2

# (clean zip, noisy zip, transcript zip, speakers, SNRs in dB)
SETS: tuple[tuple[str, str, str, tuple[str, ...], tuple[float, ...]], ...] = (
    ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "trainset_28spk_txt", ("p226", "p287"), (0.0, 5.0, 10.0, 15.0)),
    ("clean_testset_wav", "noisy_testset_wav", "testset_txt", ("p232", "p257"), (2.5, 7.5, 12.5, 17.5)),
)


def build(ctx: MirrorContext) -> None:
    """Write and pack the clean, noisy and transcript zips of both sets."""
    sentence = 0
    voice = 0
    for clean, noisy, transcripts, speakers, snrs in SETS:
        for speaker in speakers:
            for number in range(1, UTTERANCES_PER_SPEAKER + 1):
                utterance = f"{speaker}_{number:03d}"
                text = SENTENCES[(sentence * 5) % len(SENTENCES)]
                sentence += 1
                speech = speak(text, voice, SAMPLE_RATE)
                snr = float(ctx.rng.choice(snrs))
                ctx.write_audio(f"{clean}/{clean}/{utterance}.wav", speech, SAMPLE_RATE, subtype="PCM_16")
                ctx.write_audio(f"{noisy}/{noisy}/{utterance}.wav", _add_noise(ctx, speech, snr), SAMPLE_RATE, subtype="PCM_16")
                ctx.write_text(f"{transcripts}/{transcripts}/{utterance}.txt", text + "\n")
            voice += 1
        for part in (clean, noisy, transcripts):
            ctx.pack(part, ctx.staging / part)


def _add_noise(ctx: MirrorContext, speech: np.ndarray, snr_db: float) -> np.ndarray:
    background = noise(ctx.rng, len(speech) / SAMPLE_RATE + 0.01, SAMPLE_RATE)[: len(speech)]
    speech_power = float(np.mean(speech**2)) + 1e-12
    noise_power = float(np.mean(background**2)) + 1e-12
    mixture = speech + background * np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    peak = float(np.abs(mixture).max())
    return (mixture / peak * 0.9 if peak > 0.99 else mixture).astype(np.float32)
