"""Reader for MusicCaps: one Entry per clip of ``musiccaps-public.csv`` (all test).

Layout: ``parts/musiccaps-public/musiccaps-public.csv`` and ``clips/<ytid>_<start ms>.flac``. The
caption is the musicians' free-text caption; the aspect list, AudioSet labels, author id and the
balanced / AudioSet-eval flags go to ``extra``. Clips that could not be fetched are Problems.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe, YoutubeSource
from uniflow.corpora.youtube import ClipIndex, listed_clips


def _aspects(text: str) -> list[str] | None:
    """The aspect list, written like a Python list of strings; None when it is not one."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    source = recipe.source
    assert isinstance(source, YoutubeSource), f"{recipe.name}: the musiccaps reader needs a youtube source"
    clips = ClipIndex(corpus_dir, source.keep_video)
    splits = recipe.split_of_parts()
    for item in listed_clips(corpus_dir, recipe, [part.name for part in source.id_lists], clips):
        if isinstance(item, Problem):
            yield item
            continue
        key = item.clip.key
        aspects = _aspects(item.fields.get("aspect_list", ""))
        if aspects is None:
            reason = f"{item.path.name}: row {item.row}: aspect_list is not a list of strings"
            yield Problem(clips.audio(key), reason, key)
            continue
        problem = clips.problem(key)
        if problem is not None:
            yield problem
            continue
        labels = item.fields.get("audioset_positive_labels", "")
        yield Entry(
            key=key,
            split=splits.get(item.part, "test"),
            audio=clips.audio(key),
            caption=item.fields.get("caption") or None,
            extra={
                "aspects": aspects,
                "audioset_labels": [label for label in labels.split(",") if label],
                "author_id": item.fields.get("author_id"),
                "is_balanced_subset": item.fields.get("is_balanced_subset") == "True",
                "is_audioset_eval": item.fields.get("is_audioset_eval") == "True",
                "youtube_id": item.clip.video_id,
                "start_seconds": item.clip.start,
            },
        )
