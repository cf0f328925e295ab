"""Mirror of VisualSound: ``visualsound.csv``, the three split files and a video per YouTube id.

Real formats: the csv has ``filename,start,desc,split`` (YouTube id, start second, VGGSound class,
train/test); each split file lists ``<id>_<start ms>_<end ms>`` lines. One video has two listed
segments (fetched once, cut twice); one listed id has no published video.
"""

from __future__ import annotations

import csv
import io

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.video import publish_youtube_videos, youtube_video_id


def _segment(video_id: str, start: int) -> str:
    return f"{video_id}_{start * 1000}_{(start + 10) * 1000}"


def build(ctx: MirrorContext) -> None:
    rng = ctx.rng
    twice, single, validation, test, removed = (
        youtube_video_id(rng, leading_dash=True),
        youtube_video_id(rng),
        youtube_video_id(rng),
        youtube_video_id(rng),
        youtube_video_id(rng),
    )
    rows = [
        [twice, 0, "hammering nails", "train"],
        [twice, 1, "hammering nails", "train"],
        [single, 1, "playing bongo", "train"],
        [validation, 0, "door slamming", "train"],
        [test, 1, "woodpecker pecking tree", "test"],
        [removed, 0, "ping pong ball bouncing", "train"],
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["filename", "start", "desc", "split"])
    writer.writerows(rows)
    ctx.add_file("visualsound", ctx.write_text("visualsound.csv", buffer.getvalue()))

    splits = {
        "visualsound_train": [_segment(twice, 0), _segment(removed, 0), _segment(single, 1), _segment(twice, 1)],
        "visualsound_validation": [_segment(validation, 0)],
        "visualsound_test": [_segment(test, 1)],
    }
    for part_name, lines in splits.items():
        ctx.add_file(part_name, ctx.write_text(f"{part_name}.txt", "".join(line + "\n" for line in lines)))
    publish_youtube_videos(ctx, [twice, single, validation, test])
