"""Mini WavCaps (FreeSound part) as a Hugging Face dataset repository ``cvssp/WavCaps``.

Published files (``ctx.add_hf_file``), with the repository's real paths:

- ``json_files/FreeSound/fsd_final.json``: ``{"num_captions_per_audio": 1, "data": [...]}`` with one
  object per clip (id, file_name, href, tags, author, description, download_link, duration, caption);
- ``Zip_files/FreeSound/FreeSound.zip``: the clips as 32 kHz mono FLAC under the release's inner path
  ``mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/FreeSound_flac/<id>.flac``;
- ``README.md`` (outside the recipe's allow_patterns, so a fetch must skip it).

The real FreeSound audio is a split zip (FreeSound.zip plus FreeSound.z01 ... about 120 volumes of
5.37 GB); the mirror publishes one ordinary zip with the same inner layout.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

REPO_ID = "cvssp/WavCaps"
SAMPLE_RATE = 32_000
INNER_DIR = "mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/FreeSound_flac"
JSON_PATH = "json_files/FreeSound/fsd_final.json"
ZIP_PATH = "Zip_files/FreeSound/FreeSound.zip"

# (FreeSound id, file name, author, tags, event kind, caption)
CLIPS: tuple[tuple[str, str, str, list[str], str, str], ...] = (
    (
        "180913",
        "door knock 3.wav",
        "jorickhoofd",
        ["door", "knock", "wood"],
        "knock",
        "Someone knocks on a wooden door several times.",
    ),
    (
        "245738",
        "microwave beep.wav",
        "kwahmah_02",
        ["beep", "kitchen", "appliance"],
        "beep",
        "An electronic device beeps in a quiet kitchen.",
    ),
    (
        "330410",
        "whoosh_fast.wav",
        "qubodup",
        ["whoosh", "swoosh", "transition"],
        "whoosh",
        "A fast whoosh passes from left to right.",
    ),
    (
        "512391",
        "bird chirp morning.wav",
        "klankbeeld",
        ["bird", "chirp", "nature"],
        "chirp",
        "A small bird chirps over soft background noise.",
    ),
)


def _clip(rng: np.random.Generator, kind: str) -> np.ndarray:
    seconds = float(rng.uniform(1.5, 3.0))
    event = synth.event_sound(rng, kind, seconds, SAMPLE_RATE)
    return (event + 0.1 * synth.noise(rng, seconds, SAMPLE_RATE)).astype(np.float32)


def build(ctx: MirrorContext) -> None:
    records = []
    flac_files = []
    for clip_id, file_name, author, tags, kind, caption in CLIPS:
        audio = _clip(ctx.rng, kind)
        path = ctx.write_audio(f"audio/{clip_id}.flac", audio, SAMPLE_RATE, "PCM_16")
        flac_files.append((f"{INNER_DIR}/{clip_id}.flac", path))
        records.append(
            {
                "id": clip_id,
                "file_name": file_name,
                "href": f"/people/{author}/sounds/{clip_id}/",
                "tags": tags,
                "author": author,
                "description": f"{' '.join(tags).capitalize()}, recorded for FreeSound.",
                "download_link": f"https://freesound.org/people/{author}/sounds/{clip_id}/download/{clip_id}__{file_name}",
                "duration": round(len(audio) / SAMPLE_RATE, 3),
                "caption": caption,
            }
        )
    archive = ctx.path("repo", *ZIP_PATH.split("/"))
    # FLAC does not compress further: stored members, fixed timestamps for a reproducible mirror.
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as handle:
        for arcname, path in flac_files:
            handle.writestr(zipfile.ZipInfo(arcname, date_time=(2023, 5, 3, 12, 0, 0)), path.read_bytes())
    ctx.add_hf_file(REPO_ID, ZIP_PATH, archive)
    metadata = ctx.write_text(f"repo/{JSON_PATH}", json.dumps({"num_captions_per_audio": 1, "data": records}))
    ctx.add_hf_file(REPO_ID, JSON_PATH, metadata)
    readme = ctx.write_text("repo/README.md", "---\nlicense: cc-by-4.0\n---\n# WavCaps (mirror)\n")
    ctx.add_hf_file(REPO_ID, "README.md", readme)
