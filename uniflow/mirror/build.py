"""Build the mini mirror: a small copy of every corpus in its real on-disk layout and formats.

Each corpus has a builder module ``uniflow.mirror.builders.<recipe name>`` with a function
``build(ctx: MirrorContext) -> None``. A builder writes the corpus's tree into a staging folder
and hands it to the context, which packs it into the archive the recipe names (same file name,
same archive format, same top-level folder as the real download) and records its checksum in
``index.json``. ``uniflow mirror serve`` serves the result on 127.0.0.1, and a storage profile with
``mirror_url`` makes the real download code fetch from it.

Layout of a built mirror::

    <mirror>/index.json                       checksums and sizes of everything below
    <mirror>/files/<corpus>/<part file name>  archives and plain files (HTTP and manual parts)
    <mirror>/youtube/<video id>.mp4           videos for YouTube-based recipes
    <mirror>/hf/<repo_type>/<repo_id>/<path>  Hugging Face dataset repositories
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from uniflow.corpora.recipe import Recipe
from uniflow.hashing import sha256_file
from uniflow.storage import atomic_write

INDEX_NAME = "index.json"
# Mirror builds must be byte-identical across runs: fixed mtimes and owners in archives.
_EPOCH = 1_600_000_000


def _corpus_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


@dataclass
class MirrorContext:
    """What a corpus builder gets: its recipe, a seeded RNG, a staging folder and packing helpers."""

    recipe: Recipe
    root: Path
    staging: Path
    rng: np.random.Generator
    index: dict[str, Any]
    scale: int = 1
    _packed: set[str] = field(default_factory=set)

    # -- writing source trees ---------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the staging tree (parents created)."""
        target = self.staging.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_audio(self, relative: str, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
        """Write audio in the format the file extension names (wav, flac, ogg)."""
        target = self.path(*relative.split("/"))
        sf.write(target, audio, sample_rate, subtype=subtype)
        return target

    def write_text(self, relative: str, text: str) -> Path:
        target = self.path(*relative.split("/"))
        target.write_text(text, encoding="utf-8")
        return target

    # -- packing ------------------------------------------------------------------------------------
    def _part_target(self, part_name: str) -> tuple[Path, str]:
        matches = [part for part in self.recipe.parts if part.name == part_name]
        if not matches:
            raise KeyError(f"recipe {self.recipe.name} has no part named {part_name!r}")
        local_name = matches[0].local_name
        relative = f"files/{self.recipe.name}/{local_name}"
        return self.root / relative, relative

    def pack(self, part_name: str, source_dir: Path, members: list[str] | None = None) -> Path:
        """Pack ``members`` (default: everything) of ``source_dir`` into the part's archive.

        The archive format follows the part's file name: .zip, .tar.gz/.tgz, .tar.bz2, .tar.
        Member paths are relative to ``source_dir`` so the archive's top folder is the corpus's.
        """
        target, relative = self._part_target(part_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        names = members if members is not None else sorted(p.name for p in source_dir.iterdir())
        files: list[Path] = []
        for name in names:
            entry = source_dir / name
            files.append(entry)
            if entry.is_dir():
                files.extend(sorted(entry.rglob("*")))
        lower = target.name.lower()
        if lower.endswith(".zip"):
            with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path in files:
                    arcname = path.relative_to(source_dir).as_posix() + ("/" if path.is_dir() else "")
                    info = zipfile.ZipInfo(arcname, date_time=(2020, 9, 13, 12, 26, 40))
                    info.external_attr = (0o40755 if path.is_dir() else 0o100644) << 16
                    if path.is_dir():
                        archive.writestr(info, b"")
                    else:
                        info.compress_type = zipfile.ZIP_DEFLATED
                        archive.writestr(info, path.read_bytes())
        else:
            # gzip headers carry a timestamp; writing the gzip layer ourselves with mtime=0 keeps
            # rebuilds byte-identical (bz2 and plain tar have no timestamp of their own).
            gzipped = lower.endswith((".tar.gz", ".tgz"))
            mode = "w:bz2" if lower.endswith(".tar.bz2") else "w"
            with open(target, "wb") as raw, contextlib.ExitStack() as stack:
                stream = stack.enter_context(gzip.GzipFile(target.name, "wb", fileobj=raw, mtime=0)) if gzipped else raw
                archive = stack.enter_context(tarfile.open(fileobj=stream, mode=mode, format=tarfile.PAX_FORMAT))
                for path in files:
                    info = archive.gettarinfo(str(path), arcname=path.relative_to(source_dir).as_posix())
                    info.mtime, info.uid, info.gid, info.uname, info.gname = _EPOCH, 0, 0, "", ""
                    if path.is_file():
                        with open(path, "rb") as handle:
                            archive.addfile(info, handle)
                    else:
                        archive.addfile(info)
        self._record(relative, target)
        return target

    def add_file(self, part_name: str, source: Path) -> Path:
        """Publish a plain (non-archive) file as the part's download."""
        target, relative = self._part_target(part_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        self._record(relative, target)
        return target

    def add_youtube_video(self, video_id: str, source: Path) -> Path:
        """Publish a video under the id a YouTube-based recipe lists."""
        relative = f"youtube/{video_id}{source.suffix}"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        self._record(relative, target)
        return target

    def add_hf_file(self, repo_id: str, path_in_repo: str, source: Path, repo_type: str = "dataset") -> Path:
        """Publish a file of a Hugging Face repository."""
        relative = f"hf/{repo_type}/{repo_id}/{path_in_repo}"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        self._record(relative, target)
        return target

    def _record(self, relative: str, target: Path) -> None:
        self.index["files"][relative] = {"sha256": sha256_file(target), "size": target.stat().st_size}
        self._packed.add(relative)


def builder_for(recipe: Recipe):
    """The ``build`` function of a recipe's mirror builder module."""
    module = importlib.import_module(f"uniflow.mirror.builders.{recipe.name}")
    return module.build


def load_index(mirror_dir: str | Path) -> dict[str, Any]:
    path = Path(mirror_dir) / INDEX_NAME
    if not path.exists():
        return {"files": {}, "corpora": {}}
    return json.loads(path.read_text())


def build_mirror(
    recipes: dict[str, Recipe],
    mirror_dir: str | Path,
    only: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or complete) the mirror for ``recipes``; a corpus already in the index is skipped."""
    from tqdm import tqdm

    mirror_dir = Path(mirror_dir)
    mirror_dir.mkdir(parents=True, exist_ok=True)
    index = load_index(mirror_dir)
    names = [name for name in sorted(recipes) if only is None or name in only]
    for name in tqdm(names, desc="mirror build", unit="corpus", disable=not progress):
        if name in index["corpora"] and not force:
            continue
        recipe = recipes[name]
        with tempfile.TemporaryDirectory(prefix=f"mirror-{name}-") as staging:
            ctx = MirrorContext(
                recipe=recipe,
                root=mirror_dir,
                staging=Path(staging),
                rng=np.random.default_rng(_corpus_seed(name)),
                index=index,
            )
            builder_for(recipe)(ctx)
        index["corpora"][name] = sorted(ctx._packed)
        # Write the index after every corpus, so an interrupted build keeps what it finished.
        with atomic_write(mirror_dir / INDEX_NAME, mode="w") as handle:
            json.dump(index, handle, indent=1, sort_keys=True)
    return index


def mirror_file_url(mirror_url: str, corpus: str, local_name: str) -> str:
    return f"{mirror_url.rstrip('/')}/files/{corpus}/{local_name}"


def ensure_within(root: Path, path: Path) -> Path:
    """Resolve ``path`` and refuse it unless it lies inside ``root`` (used by the server)."""
    resolved = path.resolve()
    if os.path.commonpath([resolved, root.resolve()]) != str(root.resolve()):
        raise PermissionError(f"{path} is outside {root}")
    return resolved
