"""Mini VCTK 0.92: six speakers x two utterances, 48 kHz FLAC from both microphones, in the real zip.

The zip has no top-level folder, like ``VCTK-Corpus-0.92.zip``: speaker-info.txt, README.txt,
license_text.txt, wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic{1,2}.flac and txt/<spk>/<spk>_<nnn>.txt.
The release's gaps are kept: p280 has no mic2 files and p315 no transcripts. p360 and s5 are two of
the SR-evaluation (test) speakers.
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import SENTENCES, speak

SAMPLE_RATE = 48000
UTTERANCES_PER_SPEAKER = 2

# speaker-info.txt rows (ID AGE GENDER ACCENTS REGION COMMENTS), as the release formats them.
SPEAKER_INFO: tuple[tuple[str, str, str, str, str], ...] = (
    ("p225", "23", "F", "English", "Southern England"),
    ("p226", "22", "M", "English", "Surrey"),
    ("p280", "25", "F", "France", "(mic2 files unavailable)"),
    ("p315", "18", "M", "American", "Connecticut (Text missing)"),
    ("p360", "19", "M", "American", "New Jersey"),
    ("s5", "22", "F", "British", ""),
)
NO_MIC2 = {"p280"}
NO_TEXT = {"p315"}


def build(ctx: MirrorContext) -> None:
    """Write and pack VCTK-Corpus-0.92.zip."""
    info_rows = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS "]
    sentence = 0
    for voice, (speaker, age, gender, accent, region) in enumerate(SPEAKER_INFO):
        info_rows.append(f"{speaker}  {age}  {gender}    {accent}  {region}".rstrip())
        for number in range(1, UTTERANCES_PER_SPEAKER + 1):
            utterance = f"{speaker}_{number:03d}"
            text = SENTENCES[sentence % len(SENTENCES)]
            sentence += 1
            close_mic = speak(text, voice, SAMPLE_RATE)
            ctx.write_audio(f"wav48_silence_trimmed/{speaker}/{utterance}_mic1.flac", _with_rumble(ctx, close_mic), SAMPLE_RATE)
            if speaker not in NO_MIC2:
                ctx.write_audio(f"wav48_silence_trimmed/{speaker}/{utterance}_mic2.flac", close_mic, SAMPLE_RATE)
            if speaker not in NO_TEXT:
                ctx.write_text(f"txt/{speaker}/{utterance}.txt", text + "\n")
    ctx.write_text("speaker-info.txt", "\n".join(info_rows) + "\n")
    ctx.write_text("README.txt", "CSTR VCTK Corpus (version 0.92), mini mirror: the layout of the release with synthetic speech.\n")
    ctx.write_text("license_text.txt", "Creative Commons Attribution 4.0 International Public License\n")
    ctx.pack("VCTK-Corpus-0.92", ctx.staging)


def _with_rumble(ctx: MirrorContext, audio: np.ndarray) -> np.ndarray:
    # mic1 (DPA 4035) picks up very low-frequency noise that mic2 does not.
    t = np.arange(len(audio)) / SAMPLE_RATE
    rumble = 0.02 * np.sin(2 * np.pi * float(ctx.rng.uniform(8, 20)) * t)
    return np.clip(audio + rumble, -1.0, 1.0).astype(np.float32)
