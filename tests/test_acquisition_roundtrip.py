"""Every recipe round-trips: mirror -> real download code -> verify -> extract -> manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import DATASETS, make_storage
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests, read_manifest, read_summary
from uniflow.corpora.recipe import load_recipes

RECIPE_NAMES = sorted(load_recipes(DATASETS))


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_recipe_round_trips_through_the_mirror(name: str, recipes, mirror_url: str, tmp_path: Path) -> None:
    recipe = recipes[name]
    storage = make_storage(tmp_path, mirror_url)
    for required in recipe.requires:  # e.g. the captions a music corpus's reader joins with
        assert acquire_corpus(storage, recipes[required], progress=False).status == "done"
    result = acquire_corpus(storage, recipe, progress=False)
    assert result.status == "done", [(p.part, p.status, p.message) for p in result.parts]
    for part in recipe.parts:
        assert (storage.path("raw", name, "parts") / f"{part.name}.completed").exists()

    summary = prepare_manifests(recipe, storage, progress=False)
    if recipe.has_audio:
        assert sum(summary.recordings.values()) > 0, f"{name}: no recordings in the manifests"
    else:
        assert summary.recordings == {}, f"{name} is metadata-only and must not list recordings"
    assert read_summary(storage, name)["corpus"] == name
    for split in summary.recordings:
        assert split in ("train", "valid", "test")
        for record in read_manifest(storage, name, split):
            assert record["id"].startswith(f"{name}/") and "." not in record["id"]
            assert (storage.path("raw") / record["audio"]).is_file()
            assert record["seconds"] > 0 and record["sample_rate"] > 0
            assert record["license"] == recipe.license

    again = acquire_corpus(storage, recipe, progress=False)
    assert all(part.status == "skipped" for part in again.parts if part.part != "remote"), "a second run must skip completed parts"
