"""Mirror of MusicCaps: ``musiccaps-public.csv`` and a short music video per listed YouTube id.

Real columns: ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,
is_balanced_subset,is_audioset_eval. The videos carry music (drums, bass, chords, melody) with
audio-visual events on top; one listed id has no published video.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from uniflow.mirror.build import MirrorContext
from uniflow.mirror.synth import music
from uniflow.mirror.video import publish_youtube_videos, youtube_video_id

HEADER = [
    "ytid",
    "start_s",
    "end_s",
    "audioset_positive_labels",
    "aspect_list",
    "caption",
    "author_id",
    "is_balanced_subset",
    "is_audioset_eval",
]
SAMPLE_RATE = 44100
SECONDS = 3.0


def build(ctx: MirrorContext) -> None:
    rng = ctx.rng
    ids = [youtube_video_id(rng, leading_dash=True), youtube_video_id(rng), youtube_video_id(rng)]
    published, removed = ids[:2], ids[2]
    rows = [
        [ids[0], 0, 10, "/m/04rlf,/m/0l14md", "['drum groove', 'bass line', 'instrumental', 'medium tempo']",
         "An instrumental groove with a steady kick, a walking bass line and sustained chords.", 4, False, True],
        [ids[1], 1, 11, "/m/04rlf,/m/05r5c", "['piano chords', 'soft melody', 'calm', 'low quality']",
         "A calm, low quality recording: soft chords under a simple melody, with a few clicks.", 6, True, False],
        [removed, 0, 10, "/m/04rlf", "['guitar', 'strumming', 'folk']",
         "A folk song with a strummed guitar.", 0, False, False],
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    ctx.add_file("musiccaps-public", ctx.write_text("musiccaps-public.csv", buffer.getvalue()))

    beds = {}
    for video_id in published:
        stems = music(rng, SECONDS, SAMPLE_RATE)
        beds[video_id] = (0.5 * np.sum(list(stems.values()), axis=0)).astype(np.float32)
    publish_youtube_videos(ctx, published, seconds=SECONDS, bed=beds)
