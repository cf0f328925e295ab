"""Mini LibriTTS: the seven OpenSLR 60 archives, each with two speakers x one chapter x three utterances.

Each archive has the real tree (``LibriTTS/<subset>/<spk>/<chap>/...``), 24 kHz 16-bit WAV speech,
``.normalized.txt`` / ``.original.txt`` per utterance, per-chapter ``trans.tsv`` and ``book.tsv``
(whose extra row is a sentence LibriTTS excluded, as in the release) and the top-level
``speakers.tsv`` / ``SPEAKERS.txt`` every archive carries. train-clean-360 holds the release's
known-corrupt recording 1092_134562_000013_000004, written truncated.
"""

from __future__ import annotations

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import speak

SAMPLE_RATE = 24000

# part -> (speaker, chapter, gender) pairs; speaker ids are disjoint across parts, as in LibriTTS.
SPEAKERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "train-clean-100": (("19", "198", "F"), ("26", "495", "M")),
    "train-clean-360": (("1092", "134562", "F"), ("14", "208", "F")),
    "train-other-500": (("20", "205", "F"), ("23", "124", "F")),
    "dev-clean": (("84", "121123", "F"), ("174", "50561", "M")),
    "dev-other": (("116", "288045", "M"), ("1255", "138279", "M")),
    "test-clean": (("1089", "134686", "M"), ("121", "121726", "F")),
    "test-other": (("1688", "142285", "M"), ("2033", "164914", "M")),
}

# (paragraph, sentence) of the three kept utterances per chapter, and of the excluded one.
KEPT = ((1, 0), (2, 0), (2, 1))
EXCLUDED = (3, 0)
CORRUPT = "1092_134562_000013_000004"

# (original, normalized): LibriTTS keeps the book's spelling in .original.txt and spells out
# abbreviations, numbers and symbols in .normalized.txt.
TEXTS: tuple[tuple[str, str], ...] = (
    ("Mr. Brown paid $5 for the old map.", "Mister Brown paid five dollars for the old map."),
    ("The quick brown fox jumps over the lazy dog.", "The quick brown fox jumps over the lazy dog."),
    ("It was 1865 when the war ended.", "It was eighteen sixty five when the war ended."),
    ("\"Please close the window,\" she said.", "\"Please close the window,\" she said."),
    ("Dr. Smith lived on St. James street.", "Doctor Smith lived on Saint James street."),
    ("Every child in the village learned to swim.", "Every child in the village learned to swim."),
    ("He walked 3 miles before noon.", "He walked three miles before noon."),
)

SPEAKERS_TXT_HEADER = ";ID  |SEX| SUBSET           |MINUTES| NAME\n"


def build(ctx: MirrorContext) -> None:
    """Write and pack the seven parts."""
    all_speakers = [(speaker, gender, part) for part, pairs in SPEAKERS.items() for speaker, _, gender in pairs]
    speakers_tsv = "READER\tGENDER\tSUBSET\tNAME\n" + "".join(
        f"{speaker}\t{gender}\t{part}\tReader {speaker}\n" for speaker, gender, part in all_speakers
    )
    speakers_txt = SPEAKERS_TXT_HEADER + "".join(
        f"{speaker:<5}| {gender} | {part:<16} | 25.00 | Reader {speaker}\n" for speaker, gender, part in all_speakers
    )
    text_index = 0
    voice = 0
    for part, pairs in SPEAKERS.items():
        top = f"{part}/LibriTTS"
        ctx.write_text(f"{top}/speakers.tsv", speakers_tsv)
        ctx.write_text(f"{top}/SPEAKERS.txt", speakers_txt)
        for speaker, chapter, _ in pairs:
            folder = f"{top}/{part}/{speaker}/{chapter}"
            trans_rows, book_rows = [], []
            utterances = [f"{speaker}_{chapter}_{p:06d}_{s:06d}" for p, s in KEPT]
            if speaker == "1092":
                utterances[-1] = CORRUPT
            for utterance in utterances:
                original, normalized = TEXTS[text_index % len(TEXTS)]
                text_index += 1
                audio = speak(normalized, voice, SAMPLE_RATE)
                path = ctx.write_audio(f"{folder}/{utterance}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
                if utterance == CORRUPT:
                    # The release's broken file: keep only part of the bytes its header announces.
                    data = path.read_bytes()
                    path.write_bytes(data[: len(data) // 3])
                ctx.write_text(f"{folder}/{utterance}.normalized.txt", normalized)
                ctx.write_text(f"{folder}/{utterance}.original.txt", original)
                trans_rows.append(f"{utterance}\t{original}\t{normalized}\n")
                book_rows.append(_book_row(ctx, utterance, original, normalized))
            excluded = f"{speaker}_{chapter}_{EXCLUDED[0]:06d}_{EXCLUDED[1]:06d}"
            book_rows.append(_book_row(ctx, excluded, "A noisy sentence that was left out.", "A noisy sentence that was left out."))
            ctx.write_text(f"{folder}/{speaker}_{chapter}.trans.tsv", "".join(trans_rows))
            ctx.write_text(f"{folder}/{speaker}_{chapter}.book.tsv", "".join(sorted(book_rows)))
            voice += 1
        ctx.pack(part, ctx.staging / part)


def _book_row(ctx: MirrorContext, utterance: str, original: str, normalized: str) -> str:
    # The reader relies on the first column (id) and the last one (SNR in dB), as other LibriTTS
    # readers do; the columns between the texts and the SNR are the sentence's start and end time.
    start = float(ctx.rng.uniform(0, 600))
    end = start + float(ctx.rng.uniform(1, 4))
    snr = float(ctx.rng.uniform(15, 45))
    return f"{utterance}\t{original}\t{normalized}\t{start:.2f}\t{end:.2f}\t{snr:.4f}\n"
