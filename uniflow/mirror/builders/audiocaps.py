"""Mirror of AudioCaps 2.0: the three caption CSVs and a short video per listed YouTube id.

Real format: ``audiocap_id,youtube_id,start_time,caption`` with a header row; train has one row per
clip, val and test five rows per clip (not adjacent). One training clip names a video the mirror
does not publish, like a video that was removed from YouTube.
"""

from __future__ import annotations

import csv
import io

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.video import publish_youtube_videos, youtube_video_id

HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]


def _csv(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue()


def build(ctx: MirrorContext) -> None:
    rng = ctx.rng
    train_ids = [youtube_video_id(rng), youtube_video_id(rng, leading_dash=True), youtube_video_id(rng)]
    removed_id = train_ids[2]
    val_id = youtube_video_id(rng)
    test_ids = [youtube_video_id(rng), youtube_video_id(rng)]

    train = [
        [91001, train_ids[0], 0, "Something knocks twice and a high beep follows"],
        [91002, train_ids[1], 1, "A whoosh passes by, then a short chirp rings out"],
        [91003, removed_id, 0, "Wood is tapped repeatedly, and a bird chirps"],
    ]
    val_captions = [
        "A beep sounds while something knocks",
        "Knocking followed by a whoosh",
        "A tone beeps and a door is knocked on",
        "Short chirps and knocks",
        "Several knocks with a beep in between",
    ]
    val = [[97100 + i, val_id, 0, caption] for i, caption in enumerate(val_captions)]
    test_captions = [
        ["A rapid whoosh, then knocking", "Air rushes past and a knock follows", "Knocks after a swoosh",
         "A swish and a knock", "Wind-like whoosh, then a tap"],
        ["A chirp and a beep alternate", "Electronic beeping with chirps", "A bird-like chirp, a beep",
         "High beeps, then a chirp", "Beeping and chirping, one after the other"],
    ]
    # Real val/test files interleave the five captions of different clips.
    test = [
        [103000 + 2 * i + clip, test_ids[clip], 1 if clip else 0, test_captions[clip][i]]
        for i in range(5)
        for clip in (0, 1)
    ]

    for part_name, rows in (("train", train), ("val", val), ("test", test)):
        path = ctx.write_text(f"{part_name}.csv", _csv(rows))
        ctx.add_file(part_name, path)
    publish_youtube_videos(ctx, [train_ids[0], train_ids[1], val_id, *test_ids])
