"""Mini LJ Speech 1.1: six clips in LJSpeech-1.1.tar.bz2 with the real folder, metadata.csv and README.

metadata.csv has the release's format: "id|original|normalized", UTF-8, no header, no quoting,
and texts with numbers, abbreviations and double quotes in the original column.
"""

from __future__ import annotations

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import speak

SAMPLE_RATE = 22050
VOICE = 1  # one female voice for the single speaker

# (clip id, original, normalized)
CLIPS: tuple[tuple[str, str, str], ...] = (
    ("LJ001-0001", "Printing, in the only sense we are concerned with.", "Printing, in the only sense we are concerned with."),
    ("LJ001-0002", "In 1450 the press was new.", "In fourteen fifty the press was new."),
    ("LJ001-0003", "Mr. Hale said \"no\" to the plan.", "Mister Hale said \"no\" to the plan."),
    ("LJ002-0001", "The garden was full of yellow and purple flowers.", "The garden was full of yellow and purple flowers."),
    ("LJ002-0002", "He paid 5 shillings for the book.", "He paid five shillings for the book."),
    ("LJ050-0278", "Nobody expected the train to arrive so early.", "Nobody expected the train to arrive so early."),
)


def build(ctx: MirrorContext) -> None:
    """Write and pack LJSpeech-1.1.tar.bz2."""
    rows = []
    for clip, original, normalized in CLIPS:
        ctx.write_audio(f"LJSpeech-1.1/wavs/{clip}.wav", speak(normalized, VOICE, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        rows.append(f"{clip}|{original}|{normalized}\n")
    ctx.write_text("LJSpeech-1.1/metadata.csv", "".join(rows))
    ctx.write_text(
        "LJSpeech-1.1/README",
        "LJ Speech Dataset (mini mirror): the release's layout and metadata format, with synthetic speech.\n",
    )
    ctx.pack("LJSpeech-1.1", ctx.staging)
