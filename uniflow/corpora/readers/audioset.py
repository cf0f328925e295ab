"""Reader for AudioSet: one Entry per segment, labels in ``extra`` and as a caption.

Layout: ``parts/<balanced_train|unbalanced_train|eval>/<name>_segments.csv`` (three '#' lines, then
``YTID, start_seconds, end_seconds, "mid,mid"``), ``parts/class_labels_indices/class_labels_indices.csv``
and ``clips/<YTID>_<start ms>.flac``. Splits follow the recipe (balanced and unbalanced train ->
train, eval -> test); the part is the subset. Segments that could not be fetched are Problems.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe, YoutubeSource
from uniflow.corpora.youtube import ClipIndex, id_list_path, read_clip_rows, split_of_parts

LABEL_PART = "class_labels_indices"


def read_label_names(path: Path) -> dict[str, str]:
    """Label machine id -> display name, from ``class_labels_indices.csv``."""
    with open(path, encoding="utf-8", newline="") as handle:
        return {row["mid"]: row["display_name"] for row in csv.DictReader(handle)}


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    source = recipe.source
    assert isinstance(source, YoutubeSource), f"{recipe.name}: the audioset reader needs a youtube source"
    clips = ClipIndex(corpus_dir, source.keep_video)
    names: dict[str, str] = {}
    if any(part.name == LABEL_PART for part in source.id_lists):
        label_path = id_list_path(corpus_dir, recipe, LABEL_PART)
        if label_path.is_file():
            names = read_label_names(label_path)
    seen: set[str] = set()
    for part_name, split in split_of_parts(recipe).items():
        path = id_list_path(corpus_dir, recipe, part_name)
        if not path.is_file():
            yield Problem(path, f"segment list of part {part_name!r} is missing (run the download stage)")
            continue
        for row in read_clip_rows(path, source):
            if row.clip is None:
                yield Problem(path, row.error or "invalid row")
                continue
            key = row.clip.key
            if key in seen:
                continue  # a segment in two lists keeps its first (the recipe lists train first)
            seen.add(key)
            problem = clips.problem(key)
            if problem is not None:
                yield problem
                continue
            labels = [label.strip() for label in row.fields.get("positive_labels", "").split(",") if label.strip()]
            label_names = [names[label] for label in labels if label in names]
            yield Entry(
                key=key,
                split=split,
                audio=clips.audio(key),
                subset=part_name,
                caption="; ".join(label_names) if label_names else None,
                extra={
                    "labels": labels,
                    "label_names": label_names,
                    "youtube_id": row.clip.video_id,
                    "start_seconds": row.clip.start,
                    "end_seconds": row.clip.end,
                },
            )
