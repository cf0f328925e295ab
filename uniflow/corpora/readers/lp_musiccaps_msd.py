"""LP-MusicCaps-MSD: pseudo captions for Million Song Dataset tracks (text only, no audio of its own).

Layout after ``fetch_huggingface``: ``hf/data/{train,valid,test}-NNNNN-of-NNNNN-<hash>.parquet`` with
the columns track_id, title, artist_name, release, year, tag, caption_writing, caption_summary,
caption_paraphrase, caption_attribute_prediction, pseudo_attribute and path (the clip's place in
the MSD audio tree). The split is the shard's name prefix.

The captions are joined to audio by the ``msd`` reader through :func:`load_captions`; this corpus's
own ``entries`` yields no recordings, only Problems for rows that cannot describe a clip.
Reading parquet needs pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import SPLITS, Recipe

DATA_DIR = Path("hf/data")
COLUMNS: tuple[str, ...] = (
    "track_id",
    "title",
    "artist_name",
    "release",
    "year",
    "tag",
    "caption_writing",
    "caption_summary",
    "caption_paraphrase",
    "caption_attribute_prediction",
    "path",
)


@dataclass(frozen=True)
class MusicCaption:
    """One LP-MusicCaps-MSD row: the captions of one MSD clip."""

    track_id: str
    split: str
    path: str  # relative to the MSD audio root, e.g. "1/2/1203820.clip.mp3"
    caption: str  # caption_writing, the one UniFlow-Audio trains on
    other_captions: dict[str, str] = field(default_factory=dict)  # summary, paraphrase, attribute_prediction
    title: str | None = None
    artist: str | None = None
    release: str | None = None
    year: int | None = None
    tags: tuple[str, ...] = ()


@dataclass
class CaptionIndex:
    by_path: dict[str, MusicCaption]
    problems: list[Problem]


def _read_rows(shard: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            f"{shard}: LP-MusicCaps-MSD is published as parquet and reading it needs pyarrow (pip install pyarrow)"
        ) from exc
    available = set(pq.read_schema(shard).names)
    missing = [name for name in ("track_id", "caption_writing", "path") if name not in available]
    if missing:
        raise ValueError(f"{shard}: missing column(s) {', '.join(missing)}")
    return pq.read_table(shard, columns=[name for name in COLUMNS if name in available]).to_pylist()


def load_captions(corpus_dir: Path) -> CaptionIndex:
    """Every caption row of the parquet shards under ``corpus_dir``, keyed by the clip's audio path."""
    data_dir = Path(corpus_dir) / DATA_DIR
    index = CaptionIndex({}, [])
    shards = sorted(data_dir.glob("*.parquet")) if data_dir.is_dir() else []
    if not shards:
        index.problems.append(Problem(data_dir, "no parquet shards: is lp_musiccaps_msd acquired?"))
        return index
    for shard in shards:
        split = shard.name.split("-", 1)[0]
        if split not in SPLITS:
            index.problems.append(Problem(shard, f"shard name does not start with one of {', '.join(SPLITS)}"))
            continue
        try:
            rows = _read_rows(shard)
        except (ValueError, OSError) as exc:
            index.problems.append(Problem(shard, f"unreadable parquet shard: {exc}"))
            continue
        for number, row in enumerate(rows):
            track_id, path, caption = row.get("track_id"), row.get("path"), row.get("caption_writing")
            if not track_id or not path or not (caption or "").strip():
                index.problems.append(
                    Problem(shard, f"row {number}: missing track_id, path or caption_writing", key=track_id)
                )
                continue
            if path in index.by_path:
                index.problems.append(
                    Problem(
                        shard,
                        f"row {number}: path {path} already described by {index.by_path[path].track_id}",
                        key=track_id,
                    )
                )
                continue
            index.by_path[path] = MusicCaption(
                track_id=track_id,
                split=split,
                path=path,
                caption=caption.strip(),
                other_captions={
                    name.removeprefix("caption_"): row[name]
                    for name in ("caption_summary", "caption_paraphrase", "caption_attribute_prediction")
                    if row.get(name)
                },
                title=row.get("title"),
                artist=row.get("artist_name"),
                release=row.get("release"),
                year=row.get("year"),
                tags=tuple(row.get("tag") or ()),
            )
    return index


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    """No recordings (the audio is the msd corpus); rows that cannot caption a clip are reported."""
    yield from load_captions(corpus_dir).problems
