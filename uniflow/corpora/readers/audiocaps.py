"""Reader for AudioCaps: one Entry per clip, with every caption the split's CSV gives it.

Layout: ``parts/<train|val|test>/<split>.csv`` (audiocap_id,youtube_id,start_time,caption) and
``clips/<youtube_id>_<start ms>.flac``. Train has one caption per clip, val and test five (rows
not adjacent). A clip listed by two splits is kept in the first of test, valid, train, so an
evaluation clip never leaks into training. Clips that could not be fetched are yielded as Problems
so the manifest report counts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe, YoutubeSource
from uniflow.corpora.youtube import ClipIndex, id_list_rows

# Evaluation splits first: a clip listed twice stays out of training.
SPLIT_PRIORITY = ("test", "valid", "train")


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    source = recipe.source
    assert isinstance(source, YoutubeSource), f"{recipe.name}: the audiocaps reader needs a youtube source"
    clips = ClipIndex(corpus_dir, source.keep_video)
    seen: dict[str, str] = {}
    for split in SPLIT_PRIORITY:
        for part_name in recipe.splits.get(split, []):
            grouped: dict[str, dict] = {}
            for row in id_list_rows(corpus_dir, recipe, part_name):
                if isinstance(row, Problem):
                    yield row
                    continue
                clip = grouped.setdefault(
                    row.clip.key, {"clip": row.clip, "captions": [], "ids": []}
                )
                clip["captions"].append(row.fields.get("caption", ""))
                clip["ids"].append(row.fields.get("audiocap_id", ""))
            for key, clip in grouped.items():
                if key in seen:
                    yield Problem(clips.audio(key), f"listed in {seen[key]} and {split}; kept in {seen[key]}", key)
                    continue
                seen[key] = split
                problem = clips.problem(key)
                if problem is not None:
                    yield problem
                    continue
                captions = [caption for caption in clip["captions"] if caption]
                yield Entry(
                    key=key,
                    split=split,
                    audio=clips.audio(key),
                    subset=part_name,
                    caption=captions[0] if captions else None,
                    extra={
                        "captions": captions,
                        "audiocap_ids": clip["ids"],
                        "youtube_id": clip["clip"].video_id,
                        "start_seconds": clip["clip"].start,
                    },
                )
