"""A killed acquisition's leftovers are removed before the corpus is acquired again; resumable downloads stay."""

from __future__ import annotations

from pathlib import Path

from support import make_storage
from uniflow.corpora.acquire import remove_interrupted_writes


def test_remove_interrupted_writes_clears_markers_clips_and_manifest_temporaries(tmp_path: Path, recipes) -> None:
    recipe = recipes["libritts"]
    storage = make_storage(tmp_path)
    root = storage.path("raw", "libritts")
    leftovers = [
        root / "downloads" / ".train-clean-100.tar.gz.completed.ab12cd.tmp",
        root / "parts" / ".train-clean-100.completed.ef34gh.tmp",
        root / "clips" / ".abc_30000.flac.ij56kl.tmp",
        storage.path("manifests", "libritts") / ".train.jsonl.gz.mn78op.tmp",
    ]
    staging = root / "parts" / ".train-clean-100.partial-999"
    kept = [root / "downloads" / "train-clean-100.tar.gz.part", root / "parts" / "dev-clean.completed",
            storage.path("manifests", "libritts") / "summary.json"]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (staging / "LibriTTS").mkdir(parents=True)

    assert remove_interrupted_writes(storage, recipe) == len(leftovers) + 1
    assert not any(path.exists() for path in leftovers) and not staging.exists()
    assert all(path.exists() for path in kept)
