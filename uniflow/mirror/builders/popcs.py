"""Mini PopCS (DiffSinger's Chinese pop singing corpus): popcs.zip with ``popcs/popcs-<Song>/`` folders.

Each utterance ``<n>`` (four digits) has ``<n>_wf0.wav`` (24 kHz mono 16-bit), ``<n>.txt`` (the
Chinese lyric line), ``<n>_ph.txt`` (space-separated phones, SP/AP included) and ``<n>.TextGrid``
(phone alignment). The audio is a sung-note stand-in rendered from the phone score.
"""

from __future__ import annotations

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.builders.m4singer import render, sung_line, write_textgrid

SAMPLE_RATE = 24_000
SONGS: dict[str, int] = {"说散就散": 2, "隐形的翅膀": 2}


def build(ctx: MirrorContext) -> None:
    line_index = 2  # start on other lyric lines than the M4Singer mirror
    for song, utterances in SONGS.items():
        folder = f"popcs/popcs-{song}"
        for number in range(utterances):
            name = f"{number:04d}"
            line = sung_line(ctx.rng, line_index, base_note=62)
            line_index += 1
            ctx.write_audio(f"{folder}/{name}_wf0.wav", render(ctx.rng, line, SAMPLE_RATE), SAMPLE_RATE, "PCM_16")
            ctx.write_text(f"{folder}/{name}.txt", line.text + "\n")
            ctx.write_text(f"{folder}/{name}_ph.txt", " ".join(line.phones) + "\n")
            write_textgrid(ctx.path(*f"{folder}/{name}.TextGrid".split("/")), line)
    ctx.write_text(
        "popcs/TERMS_OF_ACCESS", "PopCS is licensed under CC BY-NC-SA 4.0; non-commercial research use only.\n"
    )
    ctx.pack("popcs", ctx.staging)
