"""Read and write the TextGrids Montreal Forced Aligner 3 produces (a ``words`` and a ``phones`` tier).

MFA 3 writes one file per audio file with the tiers ``words`` and ``phones``; when a file holds
more than one speaker it names them ``<speaker> - words`` and ``<speaker> - phones``. Silence is an
interval with an empty label (``includeBlankSpaces``), unknown words are ``<unk>`` in the words tier
and ``spn`` in the phones tier. ``--output_format`` picks long or short TextGrid text, or MFA's JSON
(``{"start", "end", "tiers": {name: {"type": "interval", "entries": [[begin, end, label], ...]}}}``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from praatio import textgrid as praat_textgrid
from praatio.utilities import textgrid_io
from praatio.utilities.constants import INTERVAL_TIER
from praatio.utilities.errors import PraatioException

from uniflow.align.alignment import Alignment, Interval
from uniflow.align.phones import SILENCE, normalize_phone
from uniflow.storage import atomic_write

ALIGNER_NAME = "mfa"
TextGridFormat = Literal["long_textgrid", "short_textgrid", "json"]

# MFA stretches the last interval to the file's end when it is within two 10 ms frames of it, so a
# TextGrid and its audio may disagree by that much; anything larger means the wrong file.
DURATION_TOLERANCE = 0.02
# Word-tier labels that mark silence rather than a word (blank, or written out when MFA's
# TextGrid clean-up is turned off).
_SILENCE_WORDS = {"", "<eps>", "sil", "sp"}
_SPEAKER_TIER = re.compile(r"^(?P<speaker>.+?)\s*-\s*(?P<kind>words|phones)$")


class TextGridError(ValueError):
    """A TextGrid is unreadable, lacks the words/phones tiers, or does not match its audio."""


RawTier = list[tuple[float, float, str]]


def _read_mfa_json(path: Path) -> tuple[float, dict[str, RawTier]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        end = float(document["end"])
        tiers = {
            name: [(float(begin), float(stop), str(label)) for begin, stop, label in tier["entries"]]
            for name, tier in document["tiers"].items()
            if tier.get("type", "interval") in ("interval", INTERVAL_TIER)
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TextGridError(f"{path}: not an MFA JSON alignment: {exc}") from None
    return end, tiers


def _read_praat_textgrid(path: Path) -> tuple[float, dict[str, RawTier]]:
    try:
        grid = praat_textgrid.openTextgrid(str(path), includeEmptyIntervals=True, reportingMode="silence")
    except (OSError, ValueError, IndexError, PraatioException) as exc:
        raise TextGridError(f"{path}: unreadable TextGrid: {exc}") from None
    tiers = {
        name: [(float(entry.start), float(entry.end), str(entry.label)) for entry in grid.getTier(name).entries]
        for name in grid.tierNames
        if grid.getTier(name).tierType == INTERVAL_TIER
    }
    return float(grid.maxTimestamp), tiers


def _pick_tiers(path: Path, tiers: dict[str, RawTier], speaker: str | None) -> tuple[RawTier, RawTier]:
    """The (words, phones) tiers: plain names, or ``<speaker> - words/phones`` for one speaker."""
    lowered = {name.strip().lower(): name for name in tiers}
    if speaker is None and "words" in lowered and "phones" in lowered:
        return tiers[lowered["words"]], tiers[lowered["phones"]]
    by_speaker: dict[str, dict[str, str]] = {}
    for name in tiers:
        match = _SPEAKER_TIER.match(name.strip())
        if match:
            by_speaker.setdefault(match["speaker"], {})[match["kind"]] = name
    complete = {who: kinds for who, kinds in by_speaker.items() if len(kinds) == 2}
    if speaker is not None:
        if speaker not in complete:
            raise TextGridError(f"{path}: no '{speaker} - words' / '{speaker} - phones' tiers (tiers: {sorted(tiers)})")
        chosen = complete[speaker]
    elif len(complete) == 1:
        chosen = next(iter(complete.values()))
    elif complete:
        raise TextGridError(f"{path}: tiers of several speakers {sorted(complete)}; say which speaker to read")
    else:
        raise TextGridError(f"{path}: no 'words' and 'phones' tiers (tiers: {sorted(tiers)})")
    return tiers[chosen["words"]], tiers[chosen["phones"]]


def _clip(entries: RawTier, duration: float) -> RawTier:
    clipped = []
    for start, end, label in entries:
        start, end = max(0.0, start), min(end, duration)
        if end > start:
            clipped.append((start, end, label))
    return clipped


def read_textgrid(path: str | Path, utterance_id: str, duration: float | None = None, *, speaker: str | None = None) -> Alignment:
    """Read an MFA 3 alignment (long/short TextGrid or MFA JSON) into a validated ``Alignment``.

    ``duration`` is the audio length in seconds (the TextGrid's end when not given); a TextGrid
    more than 20 ms longer or shorter than it belongs to other audio and is rejected. Empty word
    labels are silence and dropped; empty phone labels become ``sil``; ``spn`` stays ``spn``; phones
    are normalized to upper-case stressed ARPAbet. Raises TextGridError, AlignmentError, or
    UnknownPhone for a phone outside the phone set (an IPA model's output, for instance).
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        end, tiers = _read_mfa_json(path)
    else:
        end, tiers = _read_praat_textgrid(path)
    words_tier, phones_tier = _pick_tiers(path, tiers, speaker)
    if duration is None:
        duration = end
    elif abs(end - duration) > DURATION_TOLERANCE:
        raise TextGridError(f"{path}: TextGrid covers {end:.3f} s but the audio lasts {duration:.3f} s")
    words = [
        Interval(label.strip().lower(), start, stop)
        for start, stop, label in _clip(words_tier, duration)
        if label.strip().lower() not in _SILENCE_WORDS
    ]
    phones = [Interval(normalize_phone(label), start, stop) for start, stop, label in _clip(phones_tier, duration)]
    alignment = Alignment(id=utterance_id, duration=duration, words=words, phones=phones, aligner=ALIGNER_NAME)
    alignment.validate()
    return alignment


def _mfa_label(phone: str) -> str:
    # MFA leaves silence unlabelled; blanks are filled back in when the tier is saved.
    return "" if phone == SILENCE else phone


def write_textgrid(alignment: Alignment, path: str | Path, output_format: TextGridFormat = "long_textgrid") -> None:
    """Write ``alignment`` as MFA 3 writes its output: ``words`` and ``phones`` tiers, silence blank."""
    words = [(w.start, w.end, w.label) for w in alignment.words]
    phones = [(p.start, p.end, _mfa_label(p.label)) for p in alignment.phones if _mfa_label(p.label)]
    if output_format == "json":
        document = {
            "start": 0,
            "end": round(alignment.duration, 6),
            "tiers": {
                "words": {"type": "interval", "entries": [list(entry) for entry in words]},
                "phones": {"type": "interval", "entries": [list(entry) for entry in phones]},
            },
        }
        with atomic_write(path, "w") as handle:
            json.dump(document, handle, indent=4, ensure_ascii=False)
        return
    tiers = []
    for name, entries in (("words", words), ("phones", phones)):
        # Building praatio's tier checks order and overlap before anything is written.
        tier = praat_textgrid.IntervalTier(name, entries, minT=0, maxT=alignment.duration)
        tiers.append({"class": tier.tierType, "name": name, "xmin": 0, "xmax": alignment.duration, "entries": list(tier.entries)})
    grid = {"xmin": 0, "xmax": alignment.duration, "tiers": tiers}
    text = textgrid_io.getTextgridAsStr(grid, output_format, includeBlankSpaces=True, minimumIntervalLength=None)
    with atomic_write(path, "w") as handle:
        handle.write(text)
