"""The TTS phone set: ARPAbet with lexical stress, plus ``sil`` and ``spn``.

This is the phone set of MFA's ``english_us_arpa`` models, which the paper's TTS inputs use: 24
consonants, 15 vowels each with stress 0, 1 or 2, ``sil`` for silence (MFA writes it as an empty
label or ``sil``) and ``spn`` for spoken noise / words the aligner could not pronounce. Ids are
fixed by the order below, so a checkpoint's embedding table stays valid across rebuilds.
"""

from __future__ import annotations

CONSONANTS: tuple[str, ...] = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N",
    "NG", "P", "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
VOWELS: tuple[str, ...] = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
PAD, SILENCE, SPOKEN_NOISE = "<pad>", "sil", "spn"
PHONES: tuple[str, ...] = (
    PAD,
    SILENCE,
    SPOKEN_NOISE,
    *CONSONANTS,
    *(f"{vowel}{stress}" for vowel in VOWELS for stress in "012"),
)
PHONE_TO_ID: dict[str, int] = {phone: index for index, phone in enumerate(PHONES)}

# Labels aligners use for silence and noise, mapped onto the two special phones.
_SILENCE_LABELS = {"", "sil", "sp", "<eps>", "sil_b", "sil_e", "SIL", "<sil>", "</s>", "<s>"}
_NOISE_LABELS = {"spn", "SPN", "+SPN+", "+NSN+", "+BREATH+", "+COUGH+", "+NOISE+", "+UM+", "+UH+", "<unk>", "[noise]"}


class UnknownPhone(ValueError):
    """A label that is not in the phone set (e.g. an unstressed vowel, or another language's phone)."""


def is_vowel(phone: str) -> bool:
    return phone.rstrip("012") in VOWELS


def normalize_phone(label: str) -> str:
    """Map an aligner's label onto the phone set ('' and 'sp' -> 'sil', '+NSN+' -> 'spn', 'ah0' -> 'AH0')."""
    stripped = label.strip()
    if stripped in _SILENCE_LABELS:
        return SILENCE
    if stripped in _NOISE_LABELS:
        return SPOKEN_NOISE
    phone = stripped.upper()
    if phone in PHONE_TO_ID:
        return phone
    if phone in VOWELS:
        raise UnknownPhone(f"vowel {label!r} has no stress digit; the phone set needs 0, 1 or 2")
    raise UnknownPhone(f"{label!r} is not an ARPAbet phone")


def phone_ids(phones: list[str]) -> list[int]:
    """Ids of phones that are already normalized."""
    try:
        return [PHONE_TO_ID[phone] for phone in phones]
    except KeyError as exc:
        raise UnknownPhone(f"{exc.args[0]!r} is not in the phone set") from None
