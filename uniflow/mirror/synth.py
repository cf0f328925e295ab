"""Real signals for the mini mirror: synthesized speech, singing-like tones, music, noise, RIRs.

Speech comes from real synthesizers (espeak-ng with several voice variants, flite voices), so
aligners and speaker encoders see speech, not tones. Everything else is generated from seeded
random number generators, so a mirror build is reproducible.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import cache

import numpy as np
import soundfile as sf
import soxr

# (engine, voice): distinct enough to act as different "speakers".
SPEECH_VOICES: tuple[tuple[str, str], ...] = (
    ("espeak-ng", "en-us"),
    ("espeak-ng", "en-us+f3"),
    ("espeak-ng", "en-gb+m3"),
    ("espeak-ng", "en-us+f5"),
    ("flite", "slt"),
    ("flite", "rms"),
    ("flite", "awb"),
    ("flite", "kal16"),
)

SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A large number of people gathered in the square.",
    "We will meet again at the station tomorrow morning.",
    "Please close the window before the rain starts.",
    "The orchestra played a quiet song at dawn.",
    "Every child in the village learned to swim.",
    "He found an old map hidden inside the book.",
    "The garden was full of yellow and purple flowers.",
    "Nobody expected the train to arrive so early.",
    "Bright stars appeared above the silent hills.",
    "They painted the fence white last summer.",
)


class SynthesizerMissing(RuntimeError):
    """espeak-ng or flite is not installed (apt-get install espeak-ng flite)."""


@cache
def _engine_path(engine: str) -> str:
    path = shutil.which(engine)
    if path is None:
        raise SynthesizerMissing(f"{engine} not found on PATH; install it with: apt-get install -y {engine}")
    return path


def speak(text: str, voice_index: int, sample_rate: int) -> np.ndarray:
    """Synthesize ``text`` with voice ``voice_index`` (mod the voice list), mono float32."""
    engine, voice = SPEECH_VOICES[voice_index % len(SPEECH_VOICES)]
    if engine == "espeak-ng":
        command = [_engine_path(engine), "-v", voice, "-s", "160", "--stdout", text]
    else:
        command = [_engine_path(engine), "-voice", voice, "-t", text, "-o", "/dev/stdout"]
    result = subprocess.run(command, check=True, capture_output=True, timeout=60)
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    return audio


def noise(rng: np.random.Generator, seconds: float, sample_rate: int, color: str = "pink") -> np.ndarray:
    """Coloured noise with slow amplitude modulation (babble-like level changes)."""
    n = int(seconds * sample_rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[color]
    spectrum /= np.maximum(freqs, 20.0) ** exponent
    signal = np.fft.irfft(spectrum, n)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.7) * np.arange(n) / sample_rate + rng.uniform(0, 6.28))
    signal *= envelope
    return (0.3 * signal / (np.abs(signal).max() + 1e-9)).astype(np.float32)


def tone_sequence(
    rng: np.random.Generator,
    midi_notes: list[int],
    durations: list[float],
    sample_rate: int,
    vibrato: bool = True,
) -> np.ndarray:
    """A voice-like harmonic tone per note (MIDI 0 = rest): a stand-in for sung notes."""
    pieces = []
    for note, seconds in zip(midi_notes, durations, strict=True):
        n = max(1, int(round(seconds * sample_rate)))
        t = np.arange(n) / sample_rate
        if note <= 0:
            pieces.append(np.zeros(n, dtype=np.float32))
            continue
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        if vibrato:
            f0 = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(np.broadcast_to(f0, t.shape)) / sample_rate
        wave = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 6))
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
        pieces.append((0.5 * wave * fade).astype(np.float32))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def music(rng: np.random.Generator, seconds: float, sample_rate: int, tempo_bpm: float | None = None) -> dict[str, np.ndarray]:
    """A short piece as stems (drums, bass, other, vocals) that sum to the mixture."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    tempo = tempo_bpm or float(rng.uniform(80, 140))
    beat = 60.0 / tempo
    root = int(rng.integers(45, 57))
    drums = np.zeros(n, dtype=np.float32)
    for k in range(int(seconds / beat) + 1):
        start = int(k * beat * sample_rate)
        length = min(n - start, int(0.12 * sample_rate))
        if length <= 0:
            break
        decay = np.exp(-np.arange(length) / (0.02 * sample_rate))
        hit = rng.standard_normal(length) * decay * (0.6 if k % 2 else 0.3)
        hit += np.sin(2 * np.pi * 60 * np.arange(length) / sample_rate) * decay * (0.8 if k % 2 == 0 else 0.0)
        drums[start : start + length] += hit.astype(np.float32)
    progression = [0, 5, 7, 3]
    bass_notes, chord_notes, bar = [], [], 4 * beat
    for k in range(int(np.ceil(seconds / bar))):
        degree = progression[k % len(progression)]
        bass_notes.append(root + degree - 12)
        chord_notes.append(root + degree + 12)
    bar_count = len(bass_notes)
    bass = tone_sequence(rng, bass_notes, [bar] * bar_count, sample_rate, vibrato=False)[:n]
    other = tone_sequence(rng, chord_notes, [bar] * bar_count, sample_rate, vibrato=False)[:n]
    other = other + tone_sequence(rng, [m + 4 for m in chord_notes], [bar] * bar_count, sample_rate, vibrato=False)[:n]
    melody_notes = [int(root + 12 + rng.choice([0, 2, 4, 5, 7, 9, 11, 12])) for _ in range(int(seconds / beat) + 1)]
    vocals = tone_sequence(rng, melody_notes, [beat] * len(melody_notes), sample_rate)[:n]
    stems = {"drums": drums, "bass": 0.5 * bass, "other": 0.3 * other, "vocals": 0.4 * vocals}
    for name, stem in stems.items():
        padded = np.zeros(n, dtype=np.float32)
        padded[: len(stem)] = stem
        stems[name] = padded * (0.5 + 0.5 * np.sin(2 * np.pi * t / max(seconds, 1.0)) ** 2).astype(np.float32)
    return stems


def room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60: float | None = None) -> np.ndarray:
    """A simulated room impulse response (pyroomacoustics shoebox, image source method)."""
    import pyroomacoustics as pra  # imported lazily: its import costs over a second

    rt60 = rt60 or float(rng.uniform(0.2, 0.7))
    room_dim = [float(rng.uniform(3, 8)), float(rng.uniform(3, 6)), float(rng.uniform(2.4, 3.5))]
    absorption, max_order = pra.inverse_sabine(rt60, room_dim)
    room = pra.ShoeBox(room_dim, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 30))
    source = [float(rng.uniform(0.5, d - 0.5)) for d in room_dim]
    mic = [float(rng.uniform(0.5, d - 0.5)) for d in room_dim]
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)
    return rir / (np.abs(rir).max() + 1e-9)


def event_sound(rng: np.random.Generator, kind: str, seconds: float, sample_rate: int) -> np.ndarray:
    """A short sound event: 'knock', 'beep', 'whoosh' or 'chirp'."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    if kind == "knock":
        wave = rng.standard_normal(n) * np.exp(-t / 0.015) + np.sin(2 * np.pi * 180 * t) * np.exp(-t / 0.05)
    elif kind == "beep":
        wave = np.sin(2 * np.pi * rng.uniform(600, 1200) * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.005)
    elif kind == "whoosh":
        wave = rng.standard_normal(n) * np.sin(np.pi * t / max(seconds, 1e-3)) ** 2
    elif kind == "chirp":
        wave = np.sin(2 * np.pi * (800 * t + 3000 * t**2)) * np.exp(-t / 0.1)
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)
