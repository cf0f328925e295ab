"""Singing scores (M4Singer ``meta.json``) as per-phone inputs of the SVS content encoder.

A score lists, per phone: the phone (pinyin initials/finals, ``AP`` breath, ``SP`` pause), its
duration, the MIDI note (0 = rest), the note's duration and whether the phone is slurred onto the
previous note. The model needs per-phone latent frame counts that add up to the recording's
latent length, so the phone durations are converted with the same boundary rounding as aligned
speech (``uniflow.align.durations``), after checking that the score really describes the audio.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from uniflow.align.durations import frames_from_seconds, latent_frames
from uniflow.corpora.manifest import read_manifest
from uniflow.jsonl import encode_jsonl_gz, encode_line
from uniflow.storage import Storage

# A score may differ from its recording by leading/trailing silence trimmed on export; more than
# this means the score belongs to another take or was cut.
MAX_SCORE_AUDIO_MISMATCH_SECONDS = 0.25
MIDI_RANGE = range(0, 128)


class ScoreError(ValueError):
    """A score that cannot describe its recording; ``reason`` goes to the quarantine list."""

    def __init__(self, item_id: str, reason: str) -> None:
        super().__init__(f"{item_id}: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SingingScore:
    id: str
    phones: list[str]
    frames: list[int]
    midi: list[int]
    note_seconds: list[float]
    slur: list[int]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phones": self.phones,
            "frames": self.frames,
            "midi": self.midi,
            "note_seconds": [round(value, 4) for value in self.note_seconds],
            "slur": self.slur,
        }


def score_from_record(record: dict[str, Any]) -> SingingScore:
    """The frame-level score of a manifest record whose ``score`` came from M4Singer's meta.json."""
    item_id = record["id"]
    score = record.get("score")
    if not isinstance(score, dict):
        raise ScoreError(item_id, "record has no score")
    try:
        phones = [str(phone) for phone in score["phs"]]
        phone_seconds = [float(value) for value in score["ph_dur"]]
        midi = [int(value) for value in score["notes"]]
        note_seconds = [float(value) for value in score["notes_dur"]]
        slur = [int(value) for value in score["is_slur"]]
    except KeyError as missing:
        raise ScoreError(item_id, f"score lacks {missing.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ScoreError(item_id, f"score has a non-numeric value: {exc}") from None
    lengths = {len(phones), len(phone_seconds), len(midi), len(note_seconds), len(slur)}
    if len(lengths) != 1:
        raise ScoreError(item_id, f"score lists differ in length: phs={len(phones)} ph_dur={len(phone_seconds)} "
                                  f"notes={len(midi)} notes_dur={len(note_seconds)} is_slur={len(slur)}")
    if not phones:
        raise ScoreError(item_id, "empty score")
    if any(value <= 0 for value in phone_seconds) or any(value <= 0 for value in note_seconds):
        raise ScoreError(item_id, "a phone or note duration is not positive")
    if any(note not in MIDI_RANGE for note in midi):
        raise ScoreError(item_id, f"MIDI note outside 0-127: {sorted({n for n in midi if n not in MIDI_RANGE})}")
    if any(value not in (0, 1) for value in slur):
        raise ScoreError(item_id, "is_slur must be 0 or 1")
    score_length, audio_length = sum(phone_seconds), float(record["seconds"])
    if abs(score_length - audio_length) > MAX_SCORE_AUDIO_MISMATCH_SECONDS:
        raise ScoreError(item_id, f"score lasts {score_length:.3f} s but the recording {audio_length:.3f} s")
    frames = frames_from_seconds(phone_seconds, latent_frames(audio_length))
    return SingingScore(item_id, phones, frames, midi, note_seconds, slur)


@dataclass
class ScoreSummary:
    corpus: str
    split: str
    scores: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    hours: float


def prepare_scores(storage: Storage, corpus: str, split: str) -> ScoreSummary:
    """Write ``<split>.score.jsonl.gz`` (frame-level scores) and the quarantine of bad scores."""
    scores: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    seconds = 0.0
    for record in read_manifest(storage, corpus, split):
        try:
            scores.append(score_from_record(record).to_json())
            seconds += record["seconds"]
        except ScoreError as exc:
            quarantine.append({"id": record["id"], "audio": record["audio"], "reason": exc.reason})
            reasons[exc.reason.split(":")[0]] += 1
    storage.write_bytes("manifests", corpus, f"{split}.score.jsonl.gz", data=encode_jsonl_gz(scores))
    storage.write_bytes("manifests", corpus, f"{split}.score_quarantine.jsonl", data=b"".join(map(encode_line, quarantine)))
    return ScoreSummary(corpus, split, len(scores), len(quarantine), dict(sorted(reasons.items())), round(seconds / 3600, 4))
