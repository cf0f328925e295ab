"""Mini AISHELL-3: three speakers, Mandarin speech at 44.1 kHz, in data_aishell3.tgz's real tree.

The archive has no top-level folder: spk-info.txt, ReadMe.txt, train/content.txt, test/content.txt
and {train,test}/wav/<speaker>/<utterance>.wav. content.txt lines are "<id>.wav<TAB>" followed by
character/pinyin pairs. Speech is Mandarin from espeak-ng's cmn voice with speaker variants.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf
import soxr

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import SynthesizerMissing

SAMPLE_RATE = 44100

# (subset, speaker, age group, gender, accent, espeak-ng voice variant)
SPEAKERS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("train", "SSB0005", "B", "female", "north", "cmn+f3"),
    ("train", "SSB0009", "C", "male", "south", "cmn+m3"),
    ("test", "SSB0011", "B", "female", "north", "cmn+f5"),
)
UTTERANCES_PER_SPEAKER = 2

# Sentences as (character, tone-numbered pinyin) pairs, the way content.txt interleaves them.
SENTENCES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("今", "jin1"), ("天", "tian1"), ("天", "tian1"), ("气", "qi4"), ("很", "hen3"), ("好", "hao3")),
    (("我", "wo3"), ("们", "men5"), ("明", "ming2"), ("天", "tian1"), ("见", "jian4")),
    (("请", "qing3"), ("打", "da3"), ("开", "kai1"), ("窗", "chuang1"), ("户", "hu4")),
    (("这", "zhe4"), ("本", "ben3"), ("书", "shu1"), ("很", "hen3"), ("有", "you3"), ("意", "yi4"), ("思", "si5")),
    (("火", "huo3"), ("车", "che1"), ("八", "ba1"), ("点", "dian3"), ("出", "chu1"), ("发", "fa1")),
    (("春", "chun1"), ("天", "tian1"), ("花", "hua1"), ("开", "kai1"), ("了", "le5")),
)


def build(ctx: MirrorContext) -> None:
    """Write and pack data_aishell3.tgz."""
    content: dict[str, list[str]] = {"train": [], "test": []}
    info = [
        "# AISHELL-3 speaker info (mini mirror)",
        "# SpeakerID\tAgeGroup\tGender\tAccent",
        "# AgeGroup  A: < 14, B: 14 - 25, C: 26 - 40, D: > 41",
    ]
    sentence = 0
    for subset, speaker, age, gender, accent, voice in SPEAKERS:
        info.append(f"{speaker}\t{age}\t{gender}\t{accent}")
        for number in range(1, UTTERANCES_PER_SPEAKER + 1):
            utterance = f"{speaker}{number:04d}"
            pairs = SENTENCES[sentence % len(SENTENCES)]
            sentence += 1
            audio = _speak_mandarin("".join(char for char, _ in pairs), voice)
            ctx.write_audio(f"{subset}/wav/{speaker}/{utterance}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
            content[subset].append(f"{utterance}.wav\t" + " ".join(f"{char} {pinyin}" for char, pinyin in pairs) + "\n")
    for subset, lines in content.items():
        ctx.write_text(f"{subset}/content.txt", "".join(lines))
    ctx.write_text("spk-info.txt", "\n".join(info) + "\n")
    ctx.write_text("ReadMe.txt", "AISHELL-3 (mini mirror): the release's layout and metadata formats, with synthetic speech.\n")
    ctx.pack("data_aishell3", ctx.staging)


def _speak_mandarin(text: str, voice: str) -> np.ndarray:
    engine = shutil.which("espeak-ng")
    if engine is None:
        raise SynthesizerMissing("espeak-ng not found on PATH; install it with: apt-get install -y espeak-ng")
    result = subprocess.run([engine, "-v", voice, "-s", "150", "--stdout", text], check=True, capture_output=True, timeout=60)
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), rate, SAMPLE_RATE).astype(np.float32)
