"""Mirror of AudioSet: the three segment CSVs, the label table and a video per listed YouTube id.

Real format of a segment CSV: three '#' lines (creation date; counts; column names), then rows
``<YTID>, <start>.000, <end>.000, "<mid>,<mid>"`` with a space after each comma. The label table is
``index,mid,display_name``. One unbalanced-train segment names a video the mirror does not publish.
"""

from __future__ import annotations

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.video import publish_youtube_videos, youtube_video_id

# A few rows of the real label table (index, machine id, display name).
LABELS = [
    (0, "/m/09x0r", "Speech"),
    (137, "/m/04rlf", "Music"),
    (359, "/m/07r4wb8", "Knock"),
    (459, "/m/07rqsjt", "Whoosh, swoosh, swish"),
    (481, "/m/02fs_r", "Beep, bleep"),
    (503, "/m/0hdsk", "Chirp tone"),
]


def _segments_csv(created: str, rows: list[tuple[str, int, list[str]]]) -> str:
    labels = {label for _, _, mids in rows for label in mids}
    lines = [
        f"# Segments csv created {created}",
        f"# num_ytids={len({r[0] for r in rows})}, num_segs={len(rows)}, "
        f"num_unique_labels={len(labels)}, num_positive_labels={sum(len(r[2]) for r in rows)}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    lines += [f'{ytid}, {start:.3f}, {start + 10:.3f}, "{",".join(mids)}"' for ytid, start, mids in rows]
    return "\n".join(lines) + "\n"


def build(ctx: MirrorContext) -> None:
    rng = ctx.rng
    balanced = [youtube_video_id(rng, leading_dash=True), youtube_video_id(rng)]
    unbalanced = [youtube_video_id(rng), youtube_video_id(rng)]
    evaluation = [youtube_video_id(rng)]
    removed = unbalanced[1]
    files = {
        "balanced_train": (
            "balanced_train_segments.csv",
            _segments_csv(
                "Sun Mar  5 10:54:31 2017",
                [(balanced[0], 0, ["/m/07r4wb8", "/m/02fs_r"]), (balanced[1], 1, ["/m/07rqsjt"])],
            ),
        ),
        "unbalanced_train": (
            "unbalanced_train_segments.csv",
            _segments_csv(
                "Sun Mar  5 10:54:36 2017",
                [(unbalanced[0], 1, ["/m/0hdsk", "/m/07r4wb8"]), (removed, 0, ["/m/09x0r"])],
            ),
        ),
        "eval": (
            "eval_segments.csv",
            _segments_csv("Sun Mar  5 10:54:25 2017", [(evaluation[0], 0, ["/m/02fs_r", "/m/04rlf"])]),
        ),
        "class_labels_indices": (
            "class_labels_indices.csv",
            "index,mid,display_name\n" + "".join(f'{i},{mid},"{name}"\n' for i, mid, name in LABELS),
        ),
    }
    for part_name, (file_name, text) in files.items():
        ctx.add_file(part_name, ctx.write_text(file_name, text))
    publish_youtube_videos(ctx, [*balanced, unbalanced[0], *evaluation])
