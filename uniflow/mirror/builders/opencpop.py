"""Mini Opencpop: Opencpop.zip with the release's tree under ``Opencpop/``.

``segments/transcriptions.txt`` has one ``|``-separated line per segment: id, Chinese text, phones,
note names (``C#4/Db4``, ``rest``), note durations, phone durations and slur flags, each list
space-separated with one value per phone; ``segments/train.txt`` and ``segments/test.txt`` hold the
official split in the same format. Segment audio ``segments/wavs/<song><segment>.wav`` and full songs
``wavs/<song>.wav`` (the segments back to back) are 44.1 kHz mono 16-bit WAV, rendered from the score
as sung-note stand-ins; ``midis/<song>.midi`` and ``textgrids/<song>.TextGrid`` sit beside them.
"""

from __future__ import annotations

import numpy as np

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.builders.m4singer import SungLine, midi_file, render, sung_line, write_textgrid

SAMPLE_RATE = 44_100
TOP = "Opencpop"
# song id -> (split, segments); the release's ids are 2001..2100, segments numbered per song.
SONGS: dict[str, tuple[str, int]] = {"2001": ("train", 2), "2002": ("train", 2), "2044": ("test", 1)}
_NAMES = ("C", "C#/Db", "D", "D#/Eb", "E", "F", "F#/Gb", "G", "G#/Ab", "A", "A#/Bb", "B")


def note_name(midi: int) -> str:
    """MIDI 61 -> ``C#4/Db4``; 0 -> ``rest`` (Opencpop's note spelling)."""
    if midi <= 0:
        return "rest"
    octave = midi // 12 - 1
    return "/".join(f"{name}{octave}" for name in _NAMES[midi % 12].split("/"))


def transcription_line(segment_id: str, line: SungLine) -> str:
    fields = (
        segment_id,
        line.text,
        " ".join(line.phones),
        " ".join(note_name(note) for note in line.notes),
        " ".join(f"{seconds:.6f}" for seconds in line.note_seconds),
        " ".join(f"{seconds:.6f}" for seconds in line.phone_seconds),
        " ".join(str(slur) for slur in line.slurs),
    )
    return "|".join(fields)


def build(ctx: MirrorContext) -> None:
    lines: dict[str, list[str]] = {"train": [], "test": []}
    line_index = 0
    for song, (split, segments) in SONGS.items():
        song_audio, song_lines = [], []
        for number in range(1, segments + 1):
            segment_id = f"{song}{number:06d}"
            line = sung_line(ctx.rng, line_index, base_note=60)
            line_index += 1
            audio = render(ctx.rng, line, SAMPLE_RATE)
            ctx.write_audio(f"{TOP}/segments/wavs/{segment_id}.wav", audio, SAMPLE_RATE, "PCM_16")
            song_audio.append(audio)
            song_lines.append(line)
            lines[split].append(transcription_line(segment_id, line))
        ctx.write_audio(f"{TOP}/wavs/{song}.wav", np.concatenate(song_audio), SAMPLE_RATE, "PCM_16")
        whole = SungLine(
            text="".join(line.text for line in song_lines),
            phones=[phone for line in song_lines for phone in line.phones],
            phone_seconds=[s for line in song_lines for s in line.phone_seconds],
            notes=[note for line in song_lines for note in line.notes],
            note_seconds=[s for line in song_lines for s in line.note_seconds],
            slurs=[slur for line in song_lines for slur in line.slurs],
        )
        ctx.path(TOP, "midis", f"{song}.midi").write_bytes(midi_file(whole))
        write_textgrid(ctx.path(TOP, "textgrids", f"{song}.TextGrid"), whole)
    ctx.write_text(f"{TOP}/segments/train.txt", "\n".join(lines["train"]) + "\n")
    ctx.write_text(f"{TOP}/segments/test.txt", "\n".join(lines["test"]) + "\n")
    ctx.write_text(f"{TOP}/segments/transcriptions.txt", "\n".join(lines["train"] + lines["test"]) + "\n")
    ctx.write_text(f"{TOP}/readme.md", "# Opencpop\n\nMini mirror of the Opencpop release layout.\n")
    ctx.write_text(
        f"{TOP}/TERMS_OF_ACCESS", "Opencpop is licensed under CC BY-NC-ND 4.0; non-commercial research use only.\n"
    )
    ctx.pack("opencpop", ctx.staging)
