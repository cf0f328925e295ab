"""English text normalization for WER, versioned: the same text always gives the same words.

WER depends on how reference and hypothesis are normalized: an ASR model that writes "50" where the
reference says "fifty" is charged an error unless both sides are brought to one form first, and two
evaluations with different normalizers are not comparable. Every WER card therefore records
``NORMALIZER_VERSION``; any change to the rules below must bump it.

Rules, in order (all implemented here, with no third-party number speller whose output could change
under us):

1. Unicode NFKC (full-width digits and letters, ligatures, superscripts become plain characters),
   typographic apostrophes become ``'``, then lower case.
2. Titles an ASR dictionary spells short: ``mr`` -> ``mister``, ``mrs`` -> ``missus``, ``dr`` -> ``doctor``.
3. Numbers become words:
   - thousands separators are dropped (``1,000,000`` -> ``1000000``);
   - currency ``$``/``£``/``€`` with an optional scale word: ``$5`` -> ``five dollars``, ``$1.50`` ->
     ``one dollar fifty cents``, ``$0.99`` -> ``ninety nine cents``, ``€3 million`` -> ``three million euros``;
   - percentages: ``12%`` -> ``twelve percent``;
   - ordinals: ``1st`` -> ``first``, ``22nd`` -> ``twenty second``, ``100th`` -> ``one hundredth``;
   - decimals digit by digit after the point: ``3.14`` -> ``three point one four``;
   - a minus sign before a number at a word start: ``-5`` -> ``minus five``;
   - years: a four-digit number from 1100 to 1999 or 2010 to 2099 is read in pairs (``1999`` ->
     ``nineteen ninety nine``, ``1905`` -> ``nineteen oh five``, ``1900`` -> ``nineteen hundred``,
     ``2024`` -> ``twenty twenty four``); 2000 to 2009 read as cardinals (``two thousand five``);
   - other integers as cardinals without "and" (``123`` -> ``one hundred twenty three``); numbers with a
     leading zero (``007``) or more than 18 digits are read digit by digit.
4. Every character that is not a letter, a digit or an apostrophe becomes a space (hyphenated words
   split: ``ill-disposed`` -> ``ill disposed``); apostrophes survive only between two letters
   (``don't`` stays, ``'tis`` and ``students'`` lose theirs).
5. Whitespace collapses to single spaces; leading and trailing spaces go.
"""

from __future__ import annotations

import re
import unicodedata

NORMALIZER_VERSION = "uniflow-en-1"

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion"]
_MAX_CARDINAL_DIGITS = 18
_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_CURRENCIES = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}
_TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})

_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MONEY = re.compile(r"([$£€])\s?(\d+)(?:\.(\d+))?(?:\s+(thousand|million|billion|trillion)\b)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"(?<![\d.])(\d{1,18})(st|nd|rd|th)\b")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])")
_NEGATIVE = re.compile(r"(?:(?<=\s)|^)-(?=\d)")
_INTEGER = re.compile(r"\d+")
_TITLE = re.compile(r"\b(mrs|mr|dr)\b\.?")
_NOT_WORD = re.compile(r"[^\w']|_")
_LOOSE_APOSTROPHE = re.compile(r"(?<![^\W\d_])'|'(?![^\W\d_])")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """``text`` as lower-case words separated by single spaces (see the module docstring for the rules)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _TITLE.sub(lambda match: f" {_TITLES[match.group(1)]} ", text)
    text = spell_numbers(text)
    text = _NOT_WORD.sub(" ", text)
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def normalize_words(text: str) -> list[str]:
    """The normalized words of ``text``: what WER aligns."""
    normalized = normalize(text)
    return normalized.split(" ") if normalized else []


def spell_numbers(text: str) -> str:
    """Replace currency, percentages, ordinals, decimals, years and integers in ``text`` by words."""
    text = _THOUSANDS_SEPARATOR.sub("", text)
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(lambda match: f" {_number_words(match.group(1))} percent ", text)
    text = _ORDINAL.sub(lambda match: f" {ordinal(int(match.group(1)))} ", text)
    text = _DECIMAL.sub(lambda match: f" {_decimal(match.group(1), match.group(2))} ", text)
    text = _NEGATIVE.sub(" minus ", text)
    return _INTEGER.sub(lambda match: f" {_integer(match.group(0))} ", text)


def cardinal(number: int) -> str:
    """``number`` (0 <= number < 10**18) in words: ``1234`` -> ``one thousand two hundred thirty four``."""
    if number < 0:
        return f"minus {cardinal(-number)}"
    if number >= 10**_MAX_CARDINAL_DIGITS:
        raise ValueError(f"{number} has more than {_MAX_CARDINAL_DIGITS} digits")
    if number == 0:
        return "zero"
    groups: list[str] = []
    scale = 0
    while number:
        number, group = divmod(number, 1000)
        if group:
            groups.append(f"{_below_thousand(group)} {_SCALES[scale]}".strip())
        scale += 1
    return " ".join(reversed(groups))


def ordinal(number: int) -> str:
    """``number`` as an ordinal: ``1`` -> ``first``, ``20`` -> ``twentieth``, ``103`` -> ``one hundred third``."""
    words = cardinal(number).split(" ")
    last = words[-1]
    if last in _IRREGULAR_ORDINALS:
        words[-1] = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year(number: int) -> str:
    """A year read the way it is spoken: ``1999`` -> ``nineteen ninety nine``, ``1905`` -> ``nineteen oh five``."""
    if not (1100 <= number <= 1999 or 2010 <= number <= 2099):
        return cardinal(number)
    century, rest = divmod(number, 100)
    if rest == 0:
        return f"{cardinal(century)} hundred"
    if rest < 10:
        return f"{cardinal(century)} oh {cardinal(rest)}"
    return f"{cardinal(century)} {cardinal(rest)}"


def _below_thousand(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] if ones == 0 else f"{_TENS[tens]} {_ONES[ones]}")
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


def _digits(digits: str) -> str:
    return " ".join(_ONES[int(digit)] for digit in digits)


def _plain(digits: str) -> str:
    """Digits read as a cardinal, or digit by digit when they start with 0 or are too long."""
    if len(digits) > 1 and digits.startswith("0") or len(digits) > _MAX_CARDINAL_DIGITS:
        return _digits(digits)
    return cardinal(int(digits))


def _integer(digits: str) -> str:
    """A bare integer: four digits may be a year; anything else as ``_plain``."""
    if len(digits) == 4 and not digits.startswith("0"):
        return year(int(digits))
    return _plain(digits)


def _decimal(whole: str, fraction: str) -> str:
    return f"{_plain(whole)} point {_digits(fraction)}"


def _number_words(number: str) -> str:
    whole, _, fraction = number.partition(".")
    return _decimal(whole, fraction) if fraction else _plain(whole)


def _money(match: re.Match[str]) -> str:
    symbol, whole, fraction, scale = match.groups()
    singular, plural = _CURRENCIES[symbol]
    if scale:
        amount = _decimal(whole, fraction) if fraction else _plain(whole)
        return f" {amount} {scale} {plural} "
    if fraction is not None and len(fraction) > 2 or len(whole) > _MAX_CARDINAL_DIGITS:
        return f" {_number_words(match.group(2) + ('.' + fraction if fraction else ''))} {plural} "
    units = int(whole)
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if units or not cents:
        parts.append(f"{cardinal(units)} {singular if units == 1 else plural}")
    if cents:
        parts.append(f"{cardinal(cents)} {'cent' if cents == 1 else 'cents'}")
    return f" {' '.join(parts)} "
