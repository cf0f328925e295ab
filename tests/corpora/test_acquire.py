"""Corpus acquisition around the downloader: gated sources, placed files, tampered mirrors, resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import make_storage
from uniflow.corpora.acquire import acquire_corpus, acquire_part, part_marker
from uniflow.corpora.recipe import Recipe
from uniflow.mirror.build import build_mirror
from uniflow.mirror.serve import serve_in_background


def http_recipe(url: str, **source_extra) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "toy",
            "title": "Toy",
            "homepage": "http://127.0.0.1/",
            "license": "CC0",
            "tasks": ["tts"],
            "source": {"kind": "http", "parts": [{"name": "all", "url": url, "extract": False}], **source_extra},
        }
    )


def test_refused_access_becomes_the_recipe_access_steps(fault_server, tmp_path: Path) -> None:
    server = fault_server(b"secret", error_status=403)
    recipe = http_recipe(server.url, access_steps=["Log in and request access.", "Download the archive."])
    result = acquire_corpus(make_storage(tmp_path), recipe, progress=False)
    assert result.status == "manual"
    message = result.parts[0].message
    assert "refused access (HTTP 403)" in message
    assert "1. Log in and request access." in message and "2. Download the archive." in message
    assert str(tmp_path / "raw" / "toy" / "downloads") in message


def test_manual_corpus_missing_then_placed(recipes, mirror_dir: Path, tmp_path: Path) -> None:
    recipe = recipes["m4singer"]
    storage = make_storage(tmp_path)  # no mirror: the real, gated situation
    first = acquire_corpus(storage, recipe, progress=False)
    assert first.status == "manual"
    assert "cannot be downloaded automatically" in first.manual_instructions
    assert recipe.parts[0].local_name in first.manual_instructions
    downloads = storage.path("raw", "m4singer", "downloads")
    downloads.mkdir(parents=True)
    shutil.copyfile(mirror_dir / "files" / "m4singer" / recipe.parts[0].local_name, downloads / recipe.parts[0].local_name)
    second = acquire_corpus(storage, recipe, progress=False)
    assert second.status == "done", second.parts
    assert part_marker(storage, recipe, recipe.parts[0]).exists()
    assert any(storage.path("raw", "m4singer", "parts", recipe.parts[0].name).iterdir())


def test_tampered_mirror_file_fails_and_leaves_nothing(recipes, tmp_path: Path) -> None:
    recipe = recipes["ljspeech"]
    mirror = tmp_path / "mirror"
    build_mirror({"ljspeech": recipe}, mirror, progress=False)
    archive = mirror / "files" / "ljspeech" / recipe.parts[0].local_name
    archive.write_bytes(archive.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    server = serve_in_background(mirror)
    try:
        storage = make_storage(tmp_path / "build", server.url)
        result = acquire_corpus(storage, recipe, progress=False)
    finally:
        server.shutdown()
    assert result.status == "failed"
    assert "ChecksumMismatch" in result.parts[0].message
    downloads = storage.path("raw", "ljspeech", "downloads")
    assert not (downloads / recipe.parts[0].local_name).exists()
    assert not part_marker(storage, recipe, recipe.parts[0]).exists()
    assert not storage.path("raw", "ljspeech", "parts", recipe.parts[0].name).exists()


def test_half_extracted_part_is_redone(recipes, mirror_url: str, tmp_path: Path) -> None:
    recipe = recipes["ljspeech"]
    storage = make_storage(tmp_path, mirror_url)
    part = recipe.parts[0]
    stale = storage.path("raw", "ljspeech", "parts", part.name, "leftover.txt")
    stale.parent.mkdir(parents=True)
    stale.write_text("from a run killed before its marker was written")
    result = acquire_part(storage, recipe, part, progress=False)
    assert result.status == "done"
    assert not stale.exists(), "an unmarked extraction folder is replaced, not merged into"
    assert part_marker(storage, recipe, part).exists()


@pytest.mark.parametrize("name", ["wavcaps_freesound", "audiocaps"])
def test_remote_collections_are_recorded(name: str, recipes, mirror_url: str, tmp_path: Path) -> None:
    result = acquire_corpus(make_storage(tmp_path, mirror_url), recipes[name], progress=False)
    assert result.status == "done"
    assert result.details, "the Hugging Face / YouTube step reports what it fetched"
