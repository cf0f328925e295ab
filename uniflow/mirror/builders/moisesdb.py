"""Mirror of MoisesDB: moisesdb.zip with moisesdb/moisesdb_v0.1/<track uuid>/.

Real format: one folder per song with data.json (artist, song, genre, stems) and one folder per
stem holding one 44.1 kHz wav per source recording, named by the source's uuid. There is no
mixture file. The trackType strings follow the moisesdb package's taxonomy.
"""

from __future__ import annotations

import json
import uuid

import numpy as np

from uniflow.mirror import synth
from uniflow.mirror.build import MirrorContext

SAMPLE_RATE = 44_100
SECONDS = 1.0
TOP = "moisesdb/moisesdb_v0.1"
# Per song: artist, song, genre and (stem name, trackType, synth stem feeding it, has_bleed).
SONGS = (
    (
        "The Mirror Band",
        "Loopback Lullaby",
        "pop",
        (
            ("vocals", "lead female singer", "vocals", False),
            ("bass", "bass guitar", "bass", False),
            ("drums", "kick drum", "drums", False),
            ("drums", "snare drum", "drums", True),
            ("guitar", "clean electric guitar", "other", False),
        ),
    ),
    (
        "Synth Mirror",
        "Localhost Nights",
        "electronic",
        (
            ("bass", "bass synthesizer (moog etc)", "bass", False),
            ("drums", "drum machine", "drums", False),
            ("other_keys", "synth pad", "other", False),
        ),
    ),
)


def _uuid(ctx: MirrorContext) -> str:
    return str(uuid.UUID(bytes=ctx.rng.bytes(16), version=4))


def build(ctx: MirrorContext) -> None:
    for artist, song, genre, sources in SONGS:
        track_id = _uuid(ctx)
        music = synth.music(ctx.rng, SECONDS, SAMPLE_RATE)
        stems: dict[str, list[dict]] = {}
        for stem_name, track_type, synth_stem, has_bleed in sources:
            source_id = _uuid(ctx)
            gain = float(ctx.rng.uniform(0.5, 0.9))
            audio = np.stack([gain * music[synth_stem], 0.9 * gain * music[synth_stem]], axis=1).astype(np.float32)
            ctx.write_audio(f"{TOP}/{track_id}/{stem_name}/{source_id}.wav", audio, SAMPLE_RATE, "PCM_16")
            stems.setdefault(stem_name, []).append(
                {"id": source_id, "trackType": track_type, "extension": "wav", "has_bleed": has_bleed}
            )
        data = {
            "artist": artist,
            "song": song,
            "genre": genre,
            "stems": [{"stemName": name, "tracks": tracks} for name, tracks in stems.items()],
        }
        ctx.write_text(f"{TOP}/{track_id}/data.json", json.dumps(data, indent=2) + "\n")
    ctx.pack("moisesdb", ctx.staging)
