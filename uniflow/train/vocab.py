"""Stable ids for the SVS content encoder: singing phones and singers (the authors' 61 phones, 20 singers + 1).

The SVS shards carry M4Singer's score as strings (``score.phones``: pinyin initials and finals, ``AP``
breath, ``SP`` pause) and the singer as ``speaker`` (``Alto-1`` ... ``Tenor-7``). The model embeds ids,
so training and inference must map strings to ids the same way. The tables below are fixed in code, in
a documented order, so a rebuild of the data never renumbers them:

* phones: id 0 = ``<pad>`` (the encoder's padding index), then ``AP``, ``SP``, the 23 pinyin initials and
  the 35 finals of the Opencpop-style inventory M4Singer is labelled with: 61 ids, the size of the
  authors' phone table;
* singers: id 0 = ``<unk>`` (a singer the table does not know), then M4Singer's 20 singers: 21 ids, the
  size of the authors' singer embedding.

A corpus with phones or singers outside the tables (another SVS corpus) extends them with ``extended``:
new names are appended in sorted order after the fixed ones, so existing ids never move. The trainer
writes the vocabulary it used beside the checkpoint (``save``) and inference reads it back (``load``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

VOCAB_FILE = "svs_vocab.json"
VOCAB_VERSION = 1
PAD_PHONE, UNKNOWN_SINGER = "<pad>", "<unk>"

INITIALS: tuple[str, ...] = (
    "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j",
    "q", "x", "zh", "ch", "sh", "r", "z", "c", "s", "y", "w",
)  # fmt: skip
FINALS: tuple[str, ...] = (
    "a", "ai", "an", "ang", "ao", "e", "ei", "en", "eng", "er", "i", "ia",
    "ian", "iang", "iao", "ie", "in", "ing", "iong", "iu", "o", "ong", "ou", "u",
    "ua", "uai", "uan", "uang", "ui", "un", "uo", "v", "van", "ve", "vn",
)  # fmt: skip
SVS_PHONES: tuple[str, ...] = (PAD_PHONE, "AP", "SP", *INITIALS, *FINALS)
# M4Singer's singers by voice part (item names are <Singer>#<Song>#<sentid>).
M4SINGER_SINGERS: tuple[str, ...] = (
    *(f"Alto-{n}" for n in range(1, 8)),
    *(f"Bass-{n}" for n in range(1, 4)),
    *(f"Soprano-{n}" for n in range(1, 4)),
    *(f"Tenor-{n}" for n in range(1, 8)),
)
SVS_SINGERS: tuple[str, ...] = (UNKNOWN_SINGER, *M4SINGER_SINGERS)


class UnknownSymbol(ValueError):
    """A phone (or singer, in strict mode) the vocabulary has no id for."""


@dataclass(frozen=True)
class SvsVocab:
    """Phone and singer tables; the id of a name is its index."""

    phones: tuple[str, ...] = SVS_PHONES
    singers: tuple[str, ...] = SVS_SINGERS

    def __post_init__(self) -> None:
        for name, table, first in (("phones", self.phones, PAD_PHONE), ("singers", self.singers, UNKNOWN_SINGER)):
            if not table or table[0] != first:
                raise ValueError(f"the {name} table must start with {first!r}")
            if len(set(table)) != len(table):
                raise ValueError(f"the {name} table lists a name twice")
        object.__setattr__(self, "_phone_ids", {phone: index for index, phone in enumerate(self.phones)})
        object.__setattr__(self, "_singer_ids", {singer: index for index, singer in enumerate(self.singers)})

    def phone_ids(self, phones: Iterable[str]) -> list[int]:
        """Ids of score phones; an unknown phone raises (its embedding would be untrained noise)."""
        table: dict[str, int] = self._phone_ids  # type: ignore[attr-defined]
        ids = []
        for phone in phones:
            if phone not in table or phone == PAD_PHONE:
                raise UnknownSymbol(f"singing phone {phone!r} is not in the vocabulary")
            ids.append(table[phone])
        return ids

    def singer_id(self, singer: str | None, strict: bool = False) -> int:
        """A singer's id; an unknown singer is ``<unk>`` (0) unless ``strict``."""
        table: dict[str, int] = self._singer_ids  # type: ignore[attr-defined]
        if singer in table and singer != UNKNOWN_SINGER:
            return table[singer]
        if strict:
            raise UnknownSymbol(f"singer {singer!r} is not in the vocabulary")
        return 0

    def extended(self, phones: Iterable[str] = (), singers: Iterable[str] = ()) -> SvsVocab:
        """This vocabulary with unseen names appended (sorted), existing ids unchanged."""
        new_phones = sorted(set(phones) - set(self.phones))
        new_singers = sorted(set(singers) - set(self.singers) - {None})  # type: ignore[arg-type]
        return SvsVocab((*self.phones, *new_phones), (*self.singers, *new_singers))

    def to_json(self) -> dict[str, object]:
        return {"version": VOCAB_VERSION, "phones": list(self.phones), "singers": list(self.singers)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SvsVocab:
        if data.get("version") != VOCAB_VERSION:
            raise ValueError(f"SVS vocabulary version {data.get('version')!r} is not {VOCAB_VERSION}")
        return cls(tuple(data["phones"]), tuple(data["singers"]))  # type: ignore[arg-type]

    def save(self, directory: str | Path) -> Path:
        """Write ``svs_vocab.json`` into ``directory`` (beside the checkpoint's weights)."""
        path = Path(directory) / VOCAB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> SvsVocab:
        """The vocabulary a checkpoint was trained with; the default tables when it has none."""
        path = Path(directory) / VOCAB_FILE
        if not path.exists():
            return cls()
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
