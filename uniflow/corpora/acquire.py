"""Acquire a corpus: download (or verify placed files), extract, and mark each part complete.

This is the plain-Python core of ``uniflow download`` and of the Prefect acquisition flow. It works
part by part so the flow can fan out and retry per part, and a finished part is recorded by a
``parts/<part>.completed`` marker so a rerun skips it. When the storage profile names a mirror,
every source is fetched from the mirror through the same code, with the mirror's checksums.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import httpx

from uniflow.corpora.download import DownloadError, download_file, verify_file
from uniflow.corpora.errors import ManualStepNeeded
from uniflow.corpora.extract import extract_archive
from uniflow.corpora.recipe import HttpSource, HuggingFaceSource, ManualSource, Part, Recipe, YoutubeSource
from uniflow.mirror.build import INDEX_NAME, mirror_file_url
from uniflow.storage import Storage, atomic_write, remove_leftovers

PartStatus = Literal["done", "skipped", "manual", "failed"]


class ManualActionRequired(ManualStepNeeded):
    """A gated corpus's files are not in place; the message says exactly what the user must do."""

    def __init__(self, recipe: Recipe, missing: list[str], downloads_dir: Path, reason: str | None = None) -> None:
        self.recipe = recipe
        self.missing = missing
        source = recipe.source
        steps = source.steps if isinstance(source, ManualSource) else getattr(source, "access_steps", [])
        if reason is None:
            reason = source.reason if isinstance(source, ManualSource) else "the source needs approval"
        lines = [
            f"{recipe.name} ({recipe.title}) cannot be downloaded automatically: {reason}",
            "What to do:",
            *[f"  {number}. {step}" for number, step in enumerate(steps, 1)],
            f"Then place these files in {downloads_dir}/ and run the command again:",
            *[f"  - {name}" for name in missing],
        ]
        super().__init__("\n".join(lines))


@dataclass
class PartResult:
    corpus: str
    part: str
    status: PartStatus
    message: str = ""
    sha256: str | None = None
    bytes: int = 0


@dataclass
class CorpusResult:
    """The outcome of acquiring one corpus: per-part results plus source-specific details."""

    corpus: str
    parts: list[PartResult] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    manual_instructions: str | None = None

    @property
    def status(self) -> PartStatus:
        statuses = {part.status for part in self.parts}
        if self.details and not self.parts:  # a Hugging Face snapshot has no parts of its own
            statuses.add("done")
        if "failed" in statuses:
            return "failed"
        if "manual" in statuses or self.manual_instructions:
            return "manual"
        return "done" if "done" in statuses else "skipped"


# -- locations ------------------------------------------------------------------------------------------
def corpus_dir(storage: Storage, recipe: Recipe) -> Path:
    return storage.path("raw", recipe.name)


def part_marker(storage: Storage, recipe: Recipe, part: Part) -> Path:
    return corpus_dir(storage, recipe) / "parts" / f"{part.name}.completed"


def part_is_complete(storage: Storage, recipe: Recipe, part: Part) -> bool:
    return part_marker(storage, recipe, part).exists()


def remove_interrupted_writes(storage: Storage, recipe: Recipe) -> int:
    """Delete what a killed acquisition of ``recipe`` left: marker and clip temporaries, extraction and fetch
    staging folders, manifest temporaries (a ``.part`` download stays: it is resumed). Returns how many.

    Call it before the corpus's parts are acquired, while nothing else writes into its folders."""
    root = corpus_dir(storage, recipe)
    removed = sum(remove_leftovers(root / folder) for folder in ("downloads", "parts", "clips"))
    if storage.is_local("manifests"):
        removed += remove_leftovers(storage.path("manifests", recipe.name))
    return removed


# -- mirror ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def fetch_mirror_index(mirror_url: str) -> dict[str, Any]:
    """The mirror's index.json (checksums of everything it serves)."""
    url = f"{mirror_url.rstrip('/')}/{INDEX_NAME}"
    last_error: Exception | None = None
    for attempt in range(5):
        try:
            response = httpx.get(url, timeout=30)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            last_error = exc
            time.sleep(0.2 * 2**attempt)
    raise DownloadError(f"{url}: cannot read the mirror index: {last_error}")


@dataclass(frozen=True)
class ResolvedPart:
    url: str | None
    sha256: str | None
    md5: str | None
    size: int | None


def resolve_part(storage: Storage, recipe: Recipe, part: Part) -> ResolvedPart:
    """Where to fetch a part from and what it must hash to (the mirror's copy in mirror mode)."""
    if storage.mirror_url:
        index = fetch_mirror_index(storage.mirror_url)
        key = f"files/{recipe.name}/{part.local_name}"
        entry = index["files"].get(key)
        if entry is None:
            raise DownloadError(f"{storage.mirror_url}: the mirror has no {key}; rebuild it with `uniflow mirror build`")
        return ResolvedPart(mirror_file_url(storage.mirror_url, recipe.name, part.local_name), entry["sha256"], None, entry["size"])
    return ResolvedPart(part.url, part.sha256, part.md5, part.size_bytes)


# -- one part ------------------------------------------------------------------------------------------------
def acquire_part(storage: Storage, recipe: Recipe, part: Part, *, progress: bool = True, keep_archive: bool = True) -> PartResult:
    """Download or verify one part, extract or place it, and mark it complete."""
    marker = part_marker(storage, recipe, part)
    if marker.exists():
        return PartResult(recipe.name, part.name, "skipped", "already complete")
    root = corpus_dir(storage, recipe)
    download = root / "downloads" / part.local_name
    resolved = resolve_part(storage, recipe, part)
    is_manual = isinstance(recipe.source, ManualSource) and not storage.mirror_url
    if is_manual or resolved.url is None:
        if not download.exists():
            raise ManualActionRequired(recipe, [part.local_name], download.parent)
        sha256 = verify_file(download, sha256=resolved.sha256, md5=resolved.md5, size=resolved.size)
    else:
        try:
            result = download_file(
                resolved.url, download, sha256=resolved.sha256, md5=resolved.md5, size=resolved.size, progress=progress
            )
        except DownloadError as exc:
            if exc.status in (401, 403):  # the host wants a login or an approved request: the user's move
                reason = f"{resolved.url} refused access (HTTP {exc.status})"
                raise ManualActionRequired(recipe, [part.local_name], download.parent, reason) from exc
            raise
        sha256 = result.sha256
    target = root / "parts" / part.name
    if target.exists():  # extracted earlier, but the marker was never written: redo it cleanly
        shutil.rmtree(target)
    if part.extract:
        extracted = extract_archive(download, target, progress=progress)
        members, size = extracted.members, extracted.bytes
        if not keep_archive:
            download.unlink()
    else:
        target.mkdir(parents=True)
        placed = target / part.local_name
        try:
            os.link(download, placed)  # same filesystem: no copy of large files
        except OSError:
            shutil.copyfile(download, placed)
        members, size = 1, placed.stat().st_size
    with atomic_write(marker, mode="w") as handle:
        json.dump({"part": part.name, "file": part.local_name, "sha256": sha256, "members": members, "bytes": size}, handle)
    return PartResult(recipe.name, part.name, "done", f"{members} file(s)", sha256, size)


def acquire_part_safely(storage: Storage, recipe: Recipe, part: Part, *, progress: bool = True) -> PartResult:
    """``acquire_part`` that reports failures and manual steps instead of raising."""
    try:
        return acquire_part(storage, recipe, part, progress=progress)
    except ManualStepNeeded as exc:
        return PartResult(recipe.name, part.name, "manual", str(exc))
    except (DownloadError, ValueError, OSError) as exc:
        return PartResult(recipe.name, part.name, "failed", f"{type(exc).__name__}: {exc}")


# -- source-specific completion ------------------------------------------------------------------------
def acquire_remote_collection(storage: Storage, recipe: Recipe, *, progress: bool = True) -> dict[str, Any]:
    """After the parts: fetch what is not a plain file (Hugging Face snapshots, YouTube clips)."""
    source = recipe.source
    root = corpus_dir(storage, recipe)
    if isinstance(source, HuggingFaceSource):
        from uniflow.corpora.huggingface import fetch_huggingface

        endpoint = f"{storage.mirror_url.rstrip('/')}/hf" if storage.mirror_url else None
        files = fetch_huggingface(source, root, endpoint=endpoint, token=os.environ.get("HF_TOKEN"), progress=progress)
        return {"files": len(files)}
    if isinstance(source, YoutubeSource):
        from uniflow.corpora.youtube import fetch_youtube_clips

        lists = [root / "parts" / part.name / part.local_name for part in source.id_lists]
        template = f"{storage.mirror_url.rstrip('/')}/youtube/{{id}}.mp4" if storage.mirror_url else None
        report = fetch_youtube_clips(source, lists, root, url_template=template, progress=progress)
        return {
            "requested": report.requested,
            "downloaded": report.downloaded,
            "skipped_existing": report.skipped_existing,
            "failed": len(report.failed),
        }
    return {}


def acquire_corpus(storage: Storage, recipe: Recipe, *, progress: bool = True) -> CorpusResult:
    """Acquire every part of a corpus, then its remote collection; never raises for one bad part."""
    result = CorpusResult(recipe.name)
    remove_interrupted_writes(storage, recipe)
    for part in recipe.parts:
        result.parts.append(acquire_part_safely(storage, recipe, part, progress=progress))
    manual = [part for part in result.parts if part.status == "manual"]
    if manual:
        missing = [next(p.local_name for p in recipe.parts if p.name == part.part) for part in manual]
        result.manual_instructions = str(ManualActionRequired(recipe, missing, corpus_dir(storage, recipe) / "downloads"))
    if result.status in ("done", "skipped") and not isinstance(recipe.source, (HttpSource, ManualSource)):
        try:
            result.details = acquire_remote_collection(storage, recipe, progress=progress)
        except ManualStepNeeded as exc:
            result.parts.append(PartResult(recipe.name, "remote", "manual", str(exc)))
            result.manual_instructions = str(exc)
        except (DownloadError, RuntimeError, OSError) as exc:
            result.parts.append(PartResult(recipe.name, "remote", "failed", f"{type(exc).__name__}: {exc}"))
    return result
