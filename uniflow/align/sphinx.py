"""Offline forced alignment with pocketsphinx 5 (its wheel ships the en-us acoustic model and dictionary).

Per utterance, in memory (no files in ``workdir``):

1. The transcript goes through ``g2p.normalize_words``. Words missing from pocketsphinx's dictionary
   are added with their ``EnglishG2p`` pronunciation, stress digits removed (the en-us model has no
   stress), and listed in ``extra["g2p_words"]``.
2. Audio (optionally the ``[start, end)`` segment of the file) is read with soundfile, averaged to
   mono, resampled to 16 kHz with soxr and converted to int16.
3. Two decoder passes, as pocketsphinx documents them: ``set_align_text`` finds the word sequence
   (with the alternative pronunciation that fits and optional ``<sil>`` between words), then
   ``set_alignment`` runs the state-level pass that gives word and phone times (10 ms frames).
4. Phone labels come back without stress. Stress is restored from the pronunciation of that word
   whose phones match ignoring stress (all CMUdict variants, or the G2P pronunciation of an added
   word). When none matches (pocketsphinx's dictionary is a different CMUdict release), vowel *i*
   takes the stress of vowel *i* of the word's first pronunciation, extra vowels get 0, and a
   reference without vowels gives the first vowel 1; such words are counted in
   ``extra["stress_fallback"]``.
5. Silence: the decoder's ``<s>``, ``</s>``, ``<sil>`` become ``sil`` and its noise fillers ``spn``
   (``phones.normalize_phone``); adjacent ``sil`` intervals are merged. The en-us model often
   explains a pause after a word-final stop as the stop's closure, so pauses are also looked for in
   the signal: runs of at least 100 ms whose 10 ms frame energy stays within 6 dB of the noise
   floor (the median energy of the decoder's own silence frames, else the 5th percentile) widen a
   silence they touch: the utterance's leading or trailing silence, or the gap (empty or ``<sil>``)
   between two words. Phones are only shortened, never below 30 ms; such widenings are counted in
   ``extra["energy_pauses"]``. A trailing ``sil`` is extended to the end of the audio.

One ``Decoder`` is configured per aligner instance and reused for every utterance. pocketsphinx's
feature front end carries state (the cepstral mean among others) from one utterance to the next,
so it is re-initialised (``reinit_feat``, about 0.1 ms) before each one: an alignment depends only
on its own audio and text, never on the batch order. Settings that differ from pocketsphinx's
defaults: no language model (alignment never uses it), ``silprob`` 0.1 (at the default 0.005 the
first word swallows leading silence) and ``bestpath`` off (the lattice best path can hand the phone
pass a 1-frame silence, which makes that pass fail).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from uniflow.align.alignment import AlignFailure, AlignItem, Alignment, AlignmentError, Interval
from uniflow.align.g2p import EnglishG2p, normalize_words, strip_stress
from uniflow.align.phones import SILENCE, SPOKEN_NOISE, UnknownPhone, is_vowel, normalize_phone

SAMPLE_RATE = 16000
_HOP = SAMPLE_RATE // 100  # pocketsphinx's 10 ms frames
_WINDOW = 400  # 25 ms energy window, starting where pocketsphinx's frame starts
_MIN_PHONE_FRAMES = 3  # a 3-state HMM phone lasts at least 3 frames
_PAUSE_FRAMES = 10  # a pause is at least 100 ms of near-floor energy
_PAUSE_MARGIN_DB = 6.0
_TOUCH_FRAMES = 2  # a pause this close to a silence or word boundary touches it
_MIN_AUDIO_SECONDS = 0.1
_NON_LEXICAL = {"<s>", "</s>", "<sil>"}
_VARIANT = re.compile(r"\(\d+\)$")
# One aligned word as the decoder reports it: its name and its (phone, start frame, end frame).
_Entry = tuple[str, list[tuple[str, int, int]]]


@dataclass(slots=True)
class _Phone:
    label: str
    start: int  # frames
    end: int
    word: int | None  # index into the transcript words; None for silence and noise


class _Failure(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class PocketsphinxAligner:
    """Forced aligner on pocketsphinx's bundled en-us model; implements the ``Aligner`` contract."""

    name = "pocketsphinx"

    def __init__(self, g2p: EnglishG2p | None = None) -> None:
        self.g2p = g2p or EnglishG2p()
        self._decoder: Any = None
        self._added: dict[str, list[str]] = {}  # words added to the decoder -> stressed pronunciation

    # -- Aligner contract ----------------------------------------------------------------------

    def align_batch(self, items: list[AlignItem], workdir: Path) -> Iterator[Alignment | AlignFailure]:
        """Align each item in turn; ``workdir`` is unused (pocketsphinx works in memory)."""
        for item in items:
            yield self.align(item)

    def align(self, item: AlignItem) -> Alignment | AlignFailure:
        """Align one utterance; every problem becomes an ``AlignFailure``, never an exception."""
        try:
            return self._align(item)
        except _Failure as failure:
            return AlignFailure(item.id, failure.reason, failure.detail)
        except Exception as exc:  # the batch must go on; the reason counts make a systematic error visible
            return AlignFailure(item.id, "aligner error", f"{type(exc).__name__}: {exc}")

    # -- internals -----------------------------------------------------------------------------

    @property
    def decoder(self) -> Any:
        if self._decoder is None:
            from pocketsphinx import Config, Decoder

            config = Config(lm=None, samprate=SAMPLE_RATE, loglevel="FATAL", silprob=0.1, bestpath=False)
            self._decoder = Decoder(config)
        return self._decoder

    def _align(self, item: AlignItem) -> Alignment:
        words = normalize_words(item.text)
        if not words:
            raise _Failure("transcript empty", repr(item.text[:80]))
        samples, duration = _read_audio(item)
        self._ensure_in_dictionary(words)
        entries = self._decode(words, samples)
        stats = {"stress_fallback": 0, "energy_pauses": 0}
        phones = self._phones(entries, words, stats)
        n_frames = len(samples) // _HOP
        stats["energy_pauses"] = _widen_silences(phones, _pause_runs(samples, phones), n_frames)
        _fill_silences(phones, n_frames)
        alignment = _to_alignment(item.id, duration, words, phones)
        alignment.extra = {key: value for key, value in stats.items() if value}
        added = sorted({word for word in words if word in self._added})
        if added:
            alignment.extra["g2p_words"] = added
        try:
            alignment.validate()
        except AlignmentError as exc:
            raise _Failure("invalid alignment", str(exc)) from None
        return alignment

    def _ensure_in_dictionary(self, words: list[str]) -> None:
        for word in dict.fromkeys(words):
            if word in self._added or self.decoder.lookup_word(word) is not None:
                continue
            pronunciation = self.g2p.pronounce(word)
            if pronunciation == [SPOKEN_NOISE]:
                raise _Failure("word without pronunciation", word)
            try:
                self.decoder.add_word(word, " ".join(strip_stress(pronunciation)), False)
            except RuntimeError as exc:
                raise _Failure("word without pronunciation", f"{word}: {exc}") from None
            self._added[word] = pronunciation

    def _decode(self, words: list[str], samples: np.ndarray) -> list[_Entry]:
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16).tobytes()
        decoder = self.decoder
        try:
            decoder.set_align_text(" ".join(words))
            # The feature front end keeps state from the previous utterance (cepstral mean and
            # more); starting it afresh makes the result independent of the batch order.
            decoder.reinit_feat()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            if decoder.hyp() is None:
                raise _Failure("aligner produced no output", "word pass found no path")
            decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
        except RuntimeError as exc:
            raise _Failure("aligner produced no output", str(exc)) from None
        if alignment is None:
            raise _Failure("aligner produced no output", "phone pass returned nothing")
        # Copy out while the alignment is alive: its entries point into memory it owns.
        entries = [(word.name, [(phone.name, phone.start, phone.start + phone.duration) for phone in word]) for word in alignment]
        if not entries:
            raise _Failure("aligner produced no output", "phone pass returned nothing")
        return entries

    def _phones(self, entries: list[_Entry], words: list[str], stats: dict[str, int]) -> list[_Phone]:
        phones: list[_Phone] = []
        position = 0
        for word_name, children in entries:
            name = _VARIANT.sub("", word_name)
            if name in _NON_LEXICAL or name.startswith(("[", "+")):
                for label, start, end in children:
                    try:
                        phone = normalize_phone(label)
                    except UnknownPhone:
                        phone = SPOKEN_NOISE
                    phones.append(_Phone(phone, start, end, None))
                continue
            if position >= len(words) or name.lower() != words[position]:
                raise _Failure("aligner output does not match transcript", f"{word_name!r} at word {position}")
            stressed, exact = self._restore_stress(words[position], [label for label, _, _ in children])
            stats["stress_fallback"] += 0 if exact else 1
            phones.extend(_Phone(label, start, end, position) for label, (_, start, end) in zip(stressed, children, strict=True))
            position += 1
        if position != len(words):
            raise _Failure("aligner output does not match transcript", f"{position} of {len(words)} words aligned")
        return phones

    def _restore_stress(self, word: str, labels: list[str]) -> tuple[list[str], bool]:
        """Stressed phones for pocketsphinx's stressless ``labels`` of ``word``, and whether a pronunciation matched."""
        candidates = [self._added[word]] if word in self._added else self.g2p.pronunciations(word)
        bare = [label.upper() for label in labels]
        for candidate in candidates:
            if strip_stress(candidate) == bare:
                return list(candidate), True
        reference = [phone[-1] for phone in candidates[0] if is_vowel(phone)] if candidates else []
        stressed, vowel_index = [], 0
        for label in bare:
            if is_vowel(label):
                if vowel_index < len(reference):
                    label += reference[vowel_index]
                else:
                    label += "1" if not reference and vowel_index == 0 else "0"
                vowel_index += 1
            stressed.append(normalize_phone(label))
        return stressed, False


def _read_audio(item: AlignItem) -> tuple[np.ndarray, float]:
    """Mono float32 samples at 16 kHz of the item's audio (or segment), and its duration in seconds."""
    try:
        with sf.SoundFile(str(item.audio)) as handle:
            rate = handle.samplerate
            first = int(round(item.start * rate)) if item.start else 0
            last = int(round(item.end * rate)) if item.end is not None else handle.frames
            last = min(last, handle.frames)
            if first > 0:
                handle.seek(first)
            audio = handle.read(max(0, last - first), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise _Failure("audio unreadable", str(exc)) from None
    mono = audio.mean(axis=1)
    duration = len(mono) / rate
    if duration < _MIN_AUDIO_SECONDS:
        raise _Failure("audio too short", f"{duration:.3f} s")
    if not np.any(np.abs(mono) > 1e-4):
        raise _Failure("no speech found", "the audio is silent")
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return mono, duration


def _frame_energy_db(samples: np.ndarray) -> np.ndarray:
    """Energy (dB) of 25 ms windows every 10 ms, frame i starting at sample 160 i as pocketsphinx's do."""
    n_frames = len(samples) // _HOP
    padded = np.concatenate([samples, np.zeros(_WINDOW, dtype=samples.dtype)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, _WINDOW)[: n_frames * _HOP : _HOP]
    return 10.0 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=1) + 1e-10)


def _pause_runs(samples: np.ndarray, phones: list[_Phone]) -> list[tuple[int, int]]:
    """Frame ranges ``[a, b)`` of at least 100 ms whose energy stays within 6 dB of the noise floor."""
    energy = _frame_energy_db(samples)
    if len(energy) < _PAUSE_FRAMES:
        return []
    silent = np.zeros(len(energy), dtype=bool)
    for phone in phones:
        if phone.label == SILENCE:
            silent[phone.start : phone.end] = True
    floor = float(np.median(energy[silent])) if silent.sum() >= _PAUSE_FRAMES else float(np.percentile(energy, 5))
    if np.percentile(energy, 95) - floor < 2 * _PAUSE_MARGIN_DB:
        return []  # too little contrast between speech and floor to tell a pause
    # A 3-frame median keeps a single noisy frame from splitting a pause.
    smoothed = np.median(np.stack([np.roll(energy, shift) for shift in (-1, 0, 1)]), axis=0)
    smoothed[[0, -1]] = energy[[0, -1]]
    quiet = np.concatenate([[False], smoothed < floor + _PAUSE_MARGIN_DB, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= _PAUSE_FRAMES]


def _widen_silences(phones: list[_Phone], pauses: list[tuple[int, int]], n_frames: int) -> int:
    """Widen the silences that pauses touch (see the module docstring); return how many were widened."""
    lexical = [index for index, phone in enumerate(phones) if phone.word is not None]
    if not lexical or not pauses:
        return 0
    # Boundaries: (index of the last phone before the silence or None, index of the first phone after or None).
    boundaries: list[tuple[int | None, int | None]] = [(None, lexical[0])]
    boundaries += [(a, b) for a, b in pairwise(lexical) if phones[a].word != phones[b].word]
    boundaries.append((lexical[-1], None))
    widened = 0
    for before, after in boundaries:
        gap_start = phones[before].end if before is not None else 0
        gap_end = phones[after].start if after is not None else n_frames
        touching = [(a, b) for a, b in pauses if a <= gap_end + _TOUCH_FRAMES and b >= gap_start - _TOUCH_FRAMES]
        if not touching:
            continue
        a = min(start for start, _ in touching)
        b = max(end for _, end in touching)
        new_start, new_end = gap_start, gap_end
        if before is not None and a < gap_start:
            new_start = max(a, phones[before].start + _MIN_PHONE_FRAMES)
        if after is not None and b > gap_end:
            new_end = min(b, phones[after].end - _MIN_PHONE_FRAMES)
        if (new_start, new_end) == (gap_start, gap_end) or new_end - new_start < _MIN_PHONE_FRAMES:
            continue
        if new_start < gap_start:
            phones[before].end = new_start  # type: ignore[index]
        if new_end > gap_end:
            phones[after].start = new_end  # type: ignore[index]
        widened += 1
    return widened


def _fill_silences(phones: list[_Phone], n_frames: int) -> None:
    """Rebuild the silence phones so that they exactly fill what lies between the lexical phones."""
    lexical = [phone for phone in phones if phone.word is not None]
    noise = [phone for phone in phones if phone.word is None and phone.label != SILENCE]
    kept = sorted(lexical + noise, key=lambda phone: phone.start)
    rebuilt: list[_Phone] = []
    cursor = 0
    for phone in kept:
        phone.start = max(phone.start, cursor)
        if phone.end <= phone.start:
            continue  # a noise filler swallowed by a widened silence
        if phone.start > cursor:
            rebuilt.append(_Phone(SILENCE, cursor, phone.start, None))
        rebuilt.append(phone)
        cursor = phone.end
    if cursor < n_frames:
        rebuilt.append(_Phone(SILENCE, cursor, n_frames, None))
    phones[:] = rebuilt


def _to_alignment(utterance_id: str, duration: float, words: list[str], phones: list[_Phone]) -> Alignment:
    """Seconds, merged silences, word intervals from their phones; a trailing silence reaches the end."""
    intervals: list[Interval] = []
    spans: dict[int, list[float]] = {}
    for phone in phones:
        start, end = phone.start / 100.0, min(phone.end / 100.0, duration)
        if end <= start:
            continue
        if phone.label == SILENCE and intervals and intervals[-1].label == SILENCE:
            intervals[-1] = Interval(SILENCE, intervals[-1].start, end)
        else:
            intervals.append(Interval(phone.label, start, end))
        if phone.word is not None:
            span = spans.setdefault(phone.word, [start, end])
            span[1] = end
    if intervals and intervals[-1].label == SILENCE:
        intervals[-1] = Interval(SILENCE, intervals[-1].start, duration)
    word_intervals = [Interval(words[index], *spans[index]) for index in sorted(spans)]
    return Alignment(id=utterance_id, duration=duration, words=word_intervals, phones=intervals, aligner=PocketsphinxAligner.name)
