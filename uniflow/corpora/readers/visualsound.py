"""Reader for VisualSound: one Entry per clip, with its audio and its video.

Layout: ``parts/visualsound/visualsound.csv`` (filename,start,desc,split), the split files
``parts/visualsound_<split>/visualsound_<split>.txt`` (``<id>_<start ms>_<end ms>`` per line) and
``clips/<id>_<start ms>.{flac,mp4}``. The split comes from the split files (train, validation,
test); a clip no split file lists keeps the csv's split column. The VGGSound class is
``extra["label"]``. Clips that could not be fetched are Problems.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.recipe import Recipe, YoutubeSource
from uniflow.corpora.youtube import ClipIndex, clip_key, id_list_path, is_clip_list, listed_clips

_CSV_SPLITS = {"train": "train", "test": "test", "validation": "valid", "val": "valid"}


def _split_file_keys(path: Path) -> Iterator[tuple[str, str]]:
    """(clip key, segment name) of every ``<id>_<start ms>_<end ms>`` line of a split file."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            segment = line.strip()
            if not segment:
                continue
            video_id, start_ms, _end_ms = segment.rsplit("_", 2)
            yield clip_key(video_id, int(start_ms) / 1000), segment


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    source = recipe.source
    assert isinstance(source, YoutubeSource), f"{recipe.name}: the visualsound reader needs a youtube source"
    clips = ClipIndex(corpus_dir, source.keep_video)

    split_of: dict[str, str] = {}
    segment_of: dict[str, str] = {}
    # Evaluation splits first: a clip listed in two split files stays out of training.
    for split in ("test", "valid", "train"):
        for part_name in recipe.splits.get(split, []):
            path = id_list_path(corpus_dir, recipe, part_name)
            if not path.is_file():
                yield Problem(path, f"split file of part {part_name!r} is missing (run the download stage)")
                continue
            try:
                for key, segment in _split_file_keys(path):
                    split_of.setdefault(key, split)
                    segment_of[key] = segment
            except ValueError:
                yield Problem(path, "split file lines must look like <youtube id>_<start ms>_<end ms>")

    # The split files sit beside the csv as parts of their own but list no clips: skip them here.
    lists = [
        part.name for part in source.id_lists if is_clip_list(id_list_path(corpus_dir, recipe, part.name), source)
    ]
    if not lists:
        yield Problem(Path(corpus_dir) / "parts", "visualsound.csv is missing (run the download stage)")
    for item in listed_clips(corpus_dir, recipe, lists, clips):
        if isinstance(item, Problem):
            yield item
            continue
        key = item.clip.key
        split = split_of.get(key) or _CSV_SPLITS.get(item.fields.get("split", ""))
        if split is None:
            yield Problem(clips.audio(key), f"{item.path.name}: row {item.row}: no split file lists it and split "
                          f"{item.fields.get('split')!r} is unknown", key)
            continue
        problem = clips.problem(key)
        if problem is not None:
            yield problem
            continue
        end_ms = int(round(item.clip.end * 1000))
        yield Entry(
            key=key,
            split=split,
            audio=clips.audio(key),
            video=clips.video(key),
            extra={
                "label": item.fields.get("desc"),
                "vggsound_id": segment_of.get(key, f"{key}_{end_ms}"),
                "youtube_id": item.clip.video_id,
                "start_seconds": item.clip.start,
            },
        )
