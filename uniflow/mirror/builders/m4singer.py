"""Mini M4Singer: m4singer.zip with ``m4singer/<Singer>#<Song>/<sentid>.{wav,mid,TextGrid}`` and ``meta.json``.

``meta.json`` is the release's list of items (item_name, txt, phs, ph_dur, notes, notes_dur,
is_slur), one value per phone with AP/SP for breaths and silences. The audio is a sung-note
stand-in rendered from exactly that score (one harmonic tone per phone at its MIDI note, for its
phone duration; rests are silent), so score and audio agree. 48 kHz mono 16-bit WAV. Two of the
songs are in the eight test songs of the UniFlow-Audio split, two are training songs.

The other singing builders (opencpop, popcs, opensinger) reuse the lyric lines and renderers here.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from praatio import textgrid
from praatio.utilities.constants import Interval

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 48_000

# Chinese lyric lines with each character's pinyin split into initial and final (initial "" = none).
LYRICS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("我们一起唱歌", (("w", "o"), ("m", "en"), ("y", "i"), ("q", "i"), ("ch", "ang"), ("g", "e"))),
    ("天空很蓝", (("t", "ian"), ("k", "ong"), ("h", "en"), ("l", "an"))),
    ("月亮在天上", (("y", "ve"), ("l", "iang"), ("z", "ai"), ("t", "ian"), ("sh", "ang"))),
    ("花开了", (("h", "ua"), ("k", "ai"), ("l", "e"))),
    ("春风吹过", (("ch", "un"), ("f", "eng"), ("ch", "ui"), ("g", "uo"))),
    ("你好朋友", (("n", "i"), ("h", "ao"), ("p", "eng"), ("y", "ou"))),
)

# (singer, song, how many sentences); 岁月神偷 and 童话 are test songs of the UniFlow-Audio split.
SONGS: tuple[tuple[str, str, int], ...] = (
    ("Alto-2", "岁月神偷", 2),
    ("Tenor-1", "童话", 1),
    ("Soprano-3", "春风", 2),
    ("Bass-1", "月亮", 1),
)


@dataclass(frozen=True)
class SungLine:
    """A phone-level score, as M4Singer's meta.json and Opencpop's transcriptions.txt give it."""

    text: str
    phones: list[str]
    phone_seconds: list[float]
    notes: list[int]  # MIDI note per phone, 0 for AP/SP rests
    note_seconds: list[float]  # duration of the note each phone belongs to
    slurs: list[int]  # 1 where the phone continues the previous syllable on a new note

    @property
    def seconds(self) -> float:
        return float(sum(self.phone_seconds))


def sung_line(rng: np.random.Generator, line_index: int, base_note: int) -> SungLine:
    """A score for lyric line ``line_index``: SP, one note per character (one slurred), AP at the end."""
    text, syllables = LYRICS[line_index % len(LYRICS)]
    phones, phone_seconds, notes, note_seconds, slurs = ["SP"], [0.15], [0], [0.15], [0]
    scale = (0, 2, 4, 5, 7, 9)
    slurred = int(rng.integers(0, len(syllables)))
    for index, (initial, final) in enumerate(syllables):
        note = base_note + int(rng.choice(scale))
        seconds = round(float(rng.uniform(0.25, 0.4)), 3)
        if initial:
            onset = round(0.3 * seconds, 3)
            phones += [initial, final]
            phone_seconds += [onset, round(seconds - onset, 3)]
            notes += [note, note]
            note_seconds += [seconds, seconds]
            slurs += [0, 0]
        else:
            phones.append(final)
            phone_seconds.append(seconds)
            notes.append(note)
            note_seconds.append(seconds)
            slurs.append(0)
        if index == slurred:
            # A melisma: the final is held on to the next note, written as a repeated, slurred phone.
            glide = round(float(rng.uniform(0.15, 0.25)), 3)
            phones.append(final)
            phone_seconds.append(glide)
            notes.append(note + 2)
            note_seconds.append(glide)
            slurs.append(1)
    phones.append("AP")
    phone_seconds.append(0.2)
    notes.append(0)
    note_seconds.append(0.2)
    slurs.append(0)
    return SungLine(text, phones, phone_seconds, notes, note_seconds, slurs)


def render(rng: np.random.Generator, line: SungLine, sample_rate: int) -> np.ndarray:
    """The sung-note stand-in for ``line``: each phone's note for that phone's duration."""
    return synth.tone_sequence(rng, line.notes, line.phone_seconds, sample_rate)


def midi_file(line: SungLine, tempo_bpm: int = 120) -> bytes:
    """A format-0 standard MIDI file with one note per sounding phone group of ``line``."""
    ticks_per_beat = 480
    seconds_per_tick = 60.0 / tempo_bpm / ticks_per_beat

    def variable_length(value: int) -> bytes:
        out = [value & 0x7F]
        while value := value >> 7:
            out.append((value & 0x7F) | 0x80)
        return bytes(reversed(out))

    events = bytearray(variable_length(0) + b"\xff\x51\x03" + (60_000_000 // tempo_bpm).to_bytes(3, "big"))
    pending_rest = 0.0
    for note, seconds in zip(line.notes, line.phone_seconds, strict=True):
        if note <= 0:
            pending_rest += seconds
            continue
        events += variable_length(round(pending_rest / seconds_per_tick)) + bytes([0x90, note, 90])
        events += variable_length(round(seconds / seconds_per_tick)) + bytes([0x80, note, 0])
        pending_rest = 0.0
    events += variable_length(0) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def write_textgrid(path: Path, line: SungLine) -> None:
    """A Praat TextGrid with a ``phones`` tier holding the score's phone boundaries."""
    intervals, start = [], 0.0
    for phone, seconds in zip(line.phones, line.phone_seconds, strict=True):
        intervals.append(Interval(round(start, 4), round(start + seconds, 4), phone))
        start += seconds
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier("phones", intervals, 0.0, round(start, 4)))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def build(ctx: MirrorContext) -> None:
    """Write the song folders and meta.json, then pack m4singer.zip."""
    items = []
    line_index = 0
    for singer, song, sentences in SONGS:
        base_note = {"Soprano": 64, "Alto": 57, "Tenor": 55, "Bass": 45}[singer.split("-")[0]]
        for number in range(sentences):
            sent_id = f"{number:04d}"
            line = sung_line(ctx.rng, line_index, base_note)
            line_index += 1
            folder = f"m4singer/{singer}#{song}"
            ctx.write_audio(f"{folder}/{sent_id}.wav", render(ctx.rng, line, SAMPLE_RATE), SAMPLE_RATE, "PCM_16")
            ctx.path(*f"{folder}/{sent_id}.mid".split("/")).write_bytes(midi_file(line))
            write_textgrid(ctx.path(*f"{folder}/{sent_id}.TextGrid".split("/")), line)
            items.append(
                {
                    "item_name": f"{singer}#{song}#{sent_id}",
                    "txt": line.text,
                    "phs": line.phones,
                    "ph_dur": line.phone_seconds,
                    "notes": line.notes,
                    "notes_dur": line.note_seconds,
                    "is_slur": line.slurs,
                }
            )
    ctx.write_text("m4singer/meta.json", json.dumps(items, ensure_ascii=False))
    ctx.pack("m4singer", ctx.staging)
