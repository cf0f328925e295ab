"""Mini OpenSinger (Multi-Singer): OpenSinger.tar.gz with ``OpenSinger/{ManRaw,WomanRaw}/<id>_<Song>/``.

Each recording ``<id>_<Song>_<n>`` has a ``.wav`` (44.1 kHz mono 16-bit, as an independent audit of
the release reports; the paper says 24 kHz), a ``.txt`` with the Chinese lyric line and a ``.lab``
with its pinyin syllables. Singer ids restart in each gender folder, as in the release. The audio is
a sung-note stand-in rendered from a phone score.
"""

from __future__ import annotations

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.builders.m4singer import LYRICS, render, sung_line

SAMPLE_RATE = 44_100
# (gender folder, singer id, song, recordings)
RECORDINGS: tuple[tuple[str, str, str, int], ...] = (
    ("ManRaw", "0", "光年之外", 2),
    ("ManRaw", "12", "凉凉", 1),
    ("WomanRaw", "4", "遇见", 2),
)


def build(ctx: MirrorContext) -> None:
    line_index = 1
    for gender_folder, singer, song, count in RECORDINGS:
        folder = f"OpenSinger/{gender_folder}/{singer}_{song}"
        base_note = 52 if gender_folder == "ManRaw" else 62
        for number in range(count):
            stem = f"{folder}/{singer}_{song}_{number}"
            line = sung_line(ctx.rng, line_index, base_note)
            syllables = LYRICS[line_index % len(LYRICS)][1]
            line_index += 1
            ctx.write_audio(f"{stem}.wav", render(ctx.rng, line, SAMPLE_RATE), SAMPLE_RATE, "PCM_16")
            ctx.write_text(f"{stem}.txt", line.text)
            ctx.write_text(f"{stem}.lab", " ".join(initial + final for initial, final in syllables))
    ctx.write_text("OpenSinger/README.md", "# OpenSinger\n\nMini mirror of the OpenSinger release layout.\n")
    # The release's LICENSE text is not reproduced; the mirror keeps the file so the tree is the same.
    ctx.write_text("OpenSinger/LICENSE", "Mirror stand-in for the LICENSE file of the OpenSinger release.\n")
    ctx.pack("opensinger", ctx.staging)
