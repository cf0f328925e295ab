"""Mini LP-MusicCaps-MSD as the Hugging Face dataset repository ``seungheondoh/LP-MusicCaps-MSD``.

Published files: the four parquet shards under their real names in ``data/`` (train in two shards,
valid, test) with the release's columns (track_id, title, artist_name, release, year, tag,
caption_writing, caption_summary, caption_paraphrase, caption_attribute_prediction,
pseudo_attribute, path), and README.md. ``path`` is the clip's place in the MSD audio tree
(``<d1>/<d2>/<7digital id>.clip.mp3``); the msd mirror builder writes audio for exactly these paths
(``TRACKS``), plus one clip that has no caption.

Writing parquet needs pyarrow, as reading the real files does.
"""

from __future__ import annotations

from typing import Any

from uniflow.mirror.build import MirrorContext

REPO_ID = "seungheondoh/LP-MusicCaps-MSD"
SHARDS: dict[str, tuple[str, ...]] = {
    "train": (
        "data/train-00000-of-00002-557f11f5f8c72ffa.parquet",
        "data/train-00001-of-00002-841359b23dd9a178.parquet",
    ),
    "valid": ("data/valid-00000-of-00001-bc348328eb4115ed.parquet",),
    "test": ("data/test-00000-of-00001-dcf74b4dfad2da31.parquet",),
}


def _track(
    split: str, track_id: str, seven_digital: str, title: str, artist: str, tags: list[str], mood: str
) -> dict[str, Any]:
    genre = tags[0]
    article = "an" if mood[0] in "aeiou" else "a"
    return {
        "split": split,
        "track_id": track_id,
        "title": title,
        "artist_name": artist,
        "release": f"{title} (Single)",
        "year": 2004,
        "tag": tags,
        "caption_writing": (
            f"This {genre} track has {article} {mood} mood, driven by steady drums and a warm bass line"
            " under a bright melody."
        ),
        "caption_summary": f"{article.capitalize()} {mood} {genre} song with drums, bass and melody.",
        "caption_paraphrase": f"Steady drums and warm bass carry this {mood} {genre} piece under a bright tune.",
        "caption_attribute_prediction": f"{genre}, {mood}, drums, bass, melodic",
        "pseudo_attribute": [genre, mood, "drums", "bass"],
        "path": f"{seven_digital[0]}/{seven_digital[1]}/{seven_digital}.clip.mp3",
    }


# Train tracks go to the two train shards alternately.
TRACKS: tuple[dict[str, Any], ...] = (
    _track("train", "TRAAAGR128F425B14B", "1203820", "Running Lights", "The Harbor", ["rock", "indie"], "energetic"),
    _track("train", "TRAAAHD128F42635A5", "3612242", "Quiet Rooms", "Lena Ash", ["folk", "acoustic"], "calm"),
    _track(
        "train", "TRAAAQN128F9353BA0", "5580134", "Night Drive", "Volt Avenue", ["electronic", "synthpop"], "dreamy"
    ),
    _track("train", "TRAABJV128F1460C49", "2034517", "Brass Parade", "Second Line", ["jazz", "brass"], "joyful"),
    _track("valid", "TRAABLR128F423B7E3", "8801266", "Grey Morning", "Amber Fields", ["pop", "ballad"], "melancholic"),
    _track("test", "TRAABVM128F92CA9DC", "4419075", "Desert Road", "Coyote Kings", ["country", "americana"], "relaxed"),
)
COLUMNS: tuple[str, ...] = tuple(name for name in TRACKS[0] if name != "split")


def write_shard(path, rows: list[dict[str, Any]]) -> None:
    """One parquet shard with the release's column types."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "building the lp_musiccaps_msd mirror needs pyarrow (the release is parquet): pip install pyarrow"
        ) from exc
    schema = pa.schema(
        [
            ("track_id", pa.string()),
            ("title", pa.string()),
            ("artist_name", pa.string()),
            ("release", pa.string()),
            ("year", pa.int64()),
            ("tag", pa.list_(pa.string())),
            ("caption_writing", pa.string()),
            ("caption_summary", pa.string()),
            ("caption_paraphrase", pa.string()),
            ("caption_attribute_prediction", pa.string()),
            ("pseudo_attribute", pa.list_(pa.string())),
            ("path", pa.string()),
        ]
    )
    table = pa.Table.from_pylist([{name: row[name] for name in COLUMNS} for row in rows], schema=schema)
    pq.write_table(table, str(path))


def build(ctx: MirrorContext) -> None:
    for split, shard_paths in SHARDS.items():
        rows = [track for track in TRACKS if track["split"] == split]
        for index, shard_path in enumerate(shard_paths):
            local = ctx.path("repo", *shard_path.split("/"))
            write_shard(local, rows[index :: len(shard_paths)])
            ctx.add_hf_file(REPO_ID, shard_path, local)
    readme = ctx.write_text("repo/README.md", "# LP-MusicCaps-MSD (mirror)\n")
    ctx.add_hf_file(REPO_ID, "README.md", readme)
