"""MSD audio joined to LP-MusicCaps-MSD captions: one Entry per audio file that has a caption row.

Layout: ``parts/msd_audio/msd_audio/<path>`` where ``<path>`` is LP-MusicCaps-MSD's path column (e.g.
``1/2/1203820.clip.mp3``). The captions come from the sibling corpus folder
``<raw>/lp_musiccaps_msd`` (see :func:`uniflow.corpora.readers.lp_musiccaps_msd.load_captions`), read
once. The key is the MSD track id, the caption is caption_writing and the split is the caption row's
shard. Audio without a caption row is a Problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from uniflow.corpora.entry import Entry, Problem
from uniflow.corpora.readers.lp_musiccaps_msd import load_captions
from uniflow.corpora.recipe import Recipe

CAPTION_CORPUS = "lp_musiccaps_msd"
AUDIO_SUFFIXES: tuple[str, ...] = (".mp3", ".wav", ".flac")


def find_audio_root(part_dir: Path) -> Path:
    """``msd_audio/`` inside the part when the archive has that top folder, else the part itself."""
    return part_dir / "msd_audio" if (part_dir / "msd_audio").is_dir() else part_dir


def audio_files(root: Path) -> Iterator[str]:
    """Paths (posix, relative to ``root``) of every audio file under ``root``, in sorted order."""
    stack = [""]
    while stack:
        relative = stack.pop()
        with os.scandir(root / relative if relative else root) as listing:
            items = sorted(listing, key=lambda item: item.name, reverse=True)
        for item in items:
            name = f"{relative}/{item.name}" if relative else item.name
            if item.is_dir():
                stack.append(name)
            elif item.name.lower().endswith(AUDIO_SUFFIXES):
                yield name


def entries(corpus_dir: Path, recipe: Recipe) -> Iterator[Entry | Problem]:
    corpus_dir = Path(corpus_dir)
    part = recipe.parts[0].name
    part_dir = corpus_dir / "parts" / part
    if not part_dir.is_dir():
        yield Problem(part_dir, "the msd_audio part is not extracted")
        return
    captions = load_captions(corpus_dir.parent / CAPTION_CORPUS)
    if not captions.by_path:
        yield Problem(
            corpus_dir.parent / CAPTION_CORPUS,
            "no LP-MusicCaps-MSD captions to join: acquire lp_musiccaps_msd first (uniflow download lp_musiccaps_msd)",
        )
        return
    root = find_audio_root(part_dir)
    for path in audio_files(root):
        caption = captions.by_path.get(path)
        audio = root / path
        if caption is None:
            yield Problem(audio, "no LP-MusicCaps-MSD caption row has this path", key=Path(path).name.split(".")[0])
            continue
        extra: dict[str, object] = {"path": path, **{f"caption_{k}": v for k, v in caption.other_captions.items()}}
        for name, value in (
            ("title", caption.title),
            ("artist", caption.artist),
            ("release", caption.release),
            ("year", caption.year),
        ):
            if value:
                extra[name] = value
        if caption.tags:
            extra["tags"] = list(caption.tags)
        yield Entry(
            key=caption.track_id, split=caption.split, audio=audio, subset=part, caption=caption.caption, extra=extra
        )
