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
from uniflow.corpora.youtube import ClipIndex, id_list_path, listed_clips

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
    split_of = recipe.split_of_parts()
    # A segment in two lists keeps its first (the recipe lists train first); no Problem for it.
    listed = listed_clips(corpus_dir, recipe, split_of, clips, list_name="segment list", report_duplicates=False)
    for item in listed:
        if isinstance(item, Problem):
            yield item
            continue
        key = item.clip.key
        problem = clips.problem(key)
        if problem is not None:
            yield problem
            continue
        labels = [label.strip() for label in item.fields.get("positive_labels", "").split(",") if label.strip()]
        label_names = [names[label] for label in labels if label in names]
        yield Entry(
            key=key,
            split=split_of[item.part],
            audio=clips.audio(key),
            subset=item.part,
            caption="; ".join(label_names) if label_names else None,
            extra={
                "labels": labels,
                "label_names": label_names,
                "youtube_id": item.clip.video_id,
                "start_seconds": item.clip.start,
                "end_seconds": item.clip.end,
            },
        )
