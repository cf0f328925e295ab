"""Fetch a corpus from a Hugging Face dataset repository and extract its archives.

The files matching the recipe's ``allow_patterns`` are downloaded with ``huggingface_hub``'s
``snapshot_download`` into ``<corpus>/hf/`` (resumable; a file already there at the same commit is not
fetched again). Files matching ``extract_patterns`` are archives: each is extracted to
``<corpus>/parts/<archive stem>/`` and marked done by ``parts/<archive stem>.completed``, so a rerun
skips it. A split zip (``X.zip`` with ``X.z01``, ``X.z02``... beside it, as WavCaps publishes its
audio) is first joined into one zip with Info-ZIP's ``zip -s 0``, because no unzip reads the parts
one by one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tqdm.auto import tqdm

from uniflow.corpora.errors import ManualStepNeeded
from uniflow.corpora.recipe import HuggingFaceSource
from uniflow.storage import atomic_write

_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tgz", ".tar", ".zip")


class HuggingFaceError(RuntimeError):
    """A Hugging Face repository could not be fetched (missing repo or revision, Hub unreachable...)."""


class HuggingFaceAccessError(HuggingFaceError, ManualStepNeeded):
    """The repository refused access (gated or private): the message says what the user must do."""


class _QuietTqdm(tqdm):
    """A progress bar that never shows (``huggingface_hub`` takes a class, not a flag)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def archive_stem(path: str | Path) -> str:
    """``FreeSound.zip`` -> ``FreeSound``; ``x.tar.gz`` -> ``x`` (names the extraction folder)."""
    name = Path(path).name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _access_message(source: HuggingFaceSource, endpoint: str | None, cause: Exception) -> str:
    where = endpoint or "the Hugging Face Hub"
    lines = [f"Hugging Face dataset {source.repo_id!r} refused access at {where} ({type(cause).__name__})."]
    steps = list(source.access_steps) or [
        f"Open https://huggingface.co/datasets/{source.repo_id} and accept the dataset's terms of use.",
        "Log in with `huggingface-cli login` (or `hf auth login`), or export HF_TOKEN=<a read token>.",
    ]
    lines.append("What to do:")
    lines += [f"  {number}. {step}" for number, step in enumerate(steps, 1)]
    lines.append("Then run the command again.")
    return "\n".join(lines)


def _snapshot(
    source: HuggingFaceSource, local_dir: Path, cache_dir: Path, endpoint: str | None, token: str | None, progress: bool
) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        snapshot_download(
            source.repo_id,
            repo_type="dataset",
            revision=source.revision,
            allow_patterns=list(source.allow_patterns),
            local_dir=local_dir,
            # Keep refs and tree listings inside the corpus folder, not in the user's global cache.
            cache_dir=cache_dir,
            endpoint=endpoint,
            token=token,
            tqdm_class=None if progress else _QuietTqdm,
        )
    except GatedRepoError as exc:
        raise HuggingFaceAccessError(_access_message(source, endpoint, exc)) from exc
    except RepositoryNotFoundError as exc:
        if source.gated:
            # Without a token the Hub answers "not found" for repositories the user may not see.
            raise HuggingFaceAccessError(_access_message(source, endpoint, exc)) from exc
        raise HuggingFaceError(
            f"Hugging Face dataset {source.repo_id!r} was not found at {endpoint or 'the Hugging Face Hub'}: "
            "check repo_id in the recipe (and, for a mirror, that `uniflow mirror build` published it)."
        ) from exc
    except RevisionNotFoundError as exc:
        raise HuggingFaceError(
            f"Hugging Face dataset {source.repo_id!r} has no revision {source.revision!r}: check the recipe's revision."
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise HuggingFaceAccessError(_access_message(source, endpoint, exc)) from exc
        raise HuggingFaceError(f"Hugging Face dataset {source.repo_id!r}: HTTP {status}: {exc}") from exc
    except LocalEntryNotFoundError as exc:
        raise HuggingFaceError(
            f"Hugging Face dataset {source.repo_id!r}: the Hub could not be reached and no complete local copy "
            f"exists in {local_dir} ({exc})"
        ) from exc


def _matching_files(local_dir: Path, patterns: list[str]) -> list[Path]:
    from huggingface_hub.utils import filter_repo_objects

    relative = []
    for directory, subdirs, names in os.walk(local_dir):
        # huggingface_hub keeps its per-file metadata in local_dir/.cache; it is not repository content.
        subdirs[:] = sorted(d for d in subdirs if not (Path(directory) == local_dir and d == ".cache"))
        relative += [(Path(directory) / name).relative_to(local_dir).as_posix() for name in sorted(names)]
    return [local_dir / path for path in filter_repo_objects(relative, allow_patterns=patterns)]


def _split_parts(archive: Path) -> list[Path]:
    """The ``.z01``, ``.z02``... volumes of a split zip whose last volume is ``archive``."""
    if not archive.name.lower().endswith(".zip"):
        return []
    stem = archive.name[:-4]
    return sorted(p for p in archive.parent.glob(f"{stem}.z*") if p.suffix[2:].isdigit() and len(p.suffix) > 2)


def join_split_zip(archive: Path, joined: Path) -> Path:
    """Join a split zip (``X.z01`` ... ``X.zip``) into one ordinary zip with Info-ZIP's ``zip -s 0``."""
    zip_tool = shutil.which("zip")
    if zip_tool is None:
        raise HuggingFaceError(
            f"{archive} is a split zip ({len(_split_parts(archive))} more volumes beside it); joining it needs "
            "Info-ZIP's `zip` (apt-get install zip)"
        )
    joined.unlink(missing_ok=True)
    result = subprocess.run(
        [zip_tool, "-q", "-s", "0", str(archive), "--out", str(joined)], capture_output=True, text=True
    )
    if result.returncode != 0:
        joined.unlink(missing_ok=True)
        raise HuggingFaceError(
            f"{archive}: `zip -s 0` could not join the split zip (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return joined


def _extract_one(archive: Path, local_dir: Path, parts_dir: Path, progress: bool) -> None:
    from uniflow.corpora.extract import extract_archive

    stem = archive_stem(archive)
    marker = parts_dir / f"{stem}.completed"
    if marker.exists():
        return
    target = parts_dir / stem
    if target.exists():  # an earlier extraction stopped before its marker: start over
        shutil.rmtree(target)
    parts_dir.mkdir(parents=True, exist_ok=True)
    volumes = _split_parts(archive)
    source = join_split_zip(archive, parts_dir / f".{stem}.joined.zip") if volumes else archive
    try:
        extracted = extract_archive(source, target, progress=progress)
    finally:
        if source != archive:
            source.unlink(missing_ok=True)
    record = {
        "archive": archive.relative_to(local_dir).as_posix(),
        "volumes": [p.name for p in volumes],
        "members": extracted.members,
        "bytes": extracted.bytes,
    }
    with atomic_write(marker, mode="w") as handle:
        json.dump(record, handle)


def fetch_huggingface(
    source: HuggingFaceSource,
    corpus_dir: Path,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download the repository files the recipe allows into ``corpus_dir/hf`` and extract its archives.

    ``endpoint`` overrides the Hub URL (a mirror's ``<url>/hf``); ``token`` defaults to the saved login
    or ``HF_TOKEN``. Returns the local paths of the downloaded files.
    """
    corpus_dir = Path(corpus_dir)
    local_dir = corpus_dir / "hf"
    local_dir.mkdir(parents=True, exist_ok=True)
    _snapshot(source, local_dir, corpus_dir / "hf-cache", endpoint, token, progress)
    files = _matching_files(local_dir, list(source.allow_patterns))
    if source.extract_patterns:
        from huggingface_hub.utils import filter_repo_objects

        relative = [path.relative_to(local_dir).as_posix() for path in files]
        for archive in filter_repo_objects(relative, allow_patterns=list(source.extract_patterns)):
            _extract_one(local_dir / archive, local_dir, corpus_dir / "parts", progress)
    return files
