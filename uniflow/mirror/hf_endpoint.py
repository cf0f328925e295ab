"""The Hugging Face Hub, emulated over a built mirror, for ``huggingface_hub`` with ``endpoint=<mirror>/hf``.

A mirror stores a repository's files at ``<mirror>/hf/<repo_type>/<repo_id>/<path>``. This module
answers the requests that ``snapshot_download`` and ``hf_hub_download`` make:

- ``GET /api/{type}s/{repo_id}[/revision/{rev}]``: repository info with ``sha`` and ``siblings``;
- ``GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]?recursive=...``: the file listing (with LFS info);
- ``HEAD``/``GET /[{type}s/]{repo_id}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``,
  ``ETag`` (the file's sha256, as the Hub gives for LFS files) and byte ranges.

Every file is presented as an LFS file and no Xet headers are ever sent, so clients use plain HTTP
downloads. The commit sha is a hash of the repository's file index (paths, sizes, sha256), so it
changes exactly when the content does. A mirror holds one version of each repository: ``main`` resolves to
it, and so does any 40-hex commit (a recipe pinned to a real Hub commit), answered under that
commit so pinned and unpinned clients both see a stable commit; other revisions are 404.
Errors carry the Hub's ``X-Error-Code`` header so ``huggingface_hub`` raises its usual exceptions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from uniflow.hashing import sha256_file

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_API = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+(?:/[^/]+)?)"
    r"(?:/(?P<op>revision|tree)/(?P<rev>[^/]+)(?:/(?P<path>.*))?)?/?$"
)
# Models have no type prefix in resolve URLs; datasets and spaces do.
_RESOLVE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"


@dataclass(frozen=True)
class RepoFile:
    path: str  # posix path inside the repository
    size: int
    sha256: str
    mtime: float

    @property
    def lfs_pointer(self) -> str:
        return _LFS_POINTER.format(sha256=self.sha256, size=self.size)

    @property
    def blob_oid(self) -> str:
        """The git blob id of the file's LFS pointer (what the Hub reports as ``oid``)."""
        pointer = self.lfs_pointer.encode()
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()


@dataclass(frozen=True)
class RepoSnapshot:
    repo_type: str
    repo_id: str
    root: Path
    files: tuple[RepoFile, ...]

    @property
    def commit(self) -> str:
        index = "".join(f"{f.path}\0{f.size}\0{f.sha256}\n" for f in self.files)
        return hashlib.sha1(index.encode()).hexdigest()

    @property
    def last_modified(self) -> str:
        newest = max((f.mtime for f in self.files), default=0.0)
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(newest))


@lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime so a rebuilt mirror file is hashed again.
    return sha256_file(path)


def load_snapshot(hf_root: Path, repo_type: str, repo_id: str) -> RepoSnapshot | None:
    """The files of one repository in the mirror, or None when the mirror does not have it."""
    root = hf_root / repo_type / repo_id
    if ".." in repo_id.split("/") or not root.is_dir():
        return None
    files: list[RepoFile] = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        for name in sorted(names):
            full = Path(directory) / name
            stat = full.stat()
            files.append(
                RepoFile(
                    path=full.relative_to(root).as_posix(),
                    size=stat.st_size,
                    sha256=_file_sha256(str(full), stat.st_size, stat.st_mtime_ns),
                    mtime=stat.st_mtime,
                )
            )
    files.sort(key=lambda f: f.path)
    return RepoSnapshot(repo_type, repo_id, root, tuple(files))


def _revision_is_known(revision: str) -> bool:
    return revision == "main" or _COMMIT.match(revision) is not None


def _commit_for(snapshot: RepoSnapshot, revision: str) -> str:
    """The commit a revision resolves to: a requested commit hash names the mirror's one version."""
    return revision if _COMMIT.match(revision) else snapshot.commit


# -- responses --------------------------------------------------------------------------------------
def _send_json(handler: Any, status: int, payload: Any, send_body: bool, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if send_body:
        handler.wfile.write(body)


def _send_error(
    handler: Any, status: int, code: str, message: str, send_body: bool, headers: dict[str, str] | None = None
) -> None:
    # Header values travel as latin-1; escape what a repository path may hold beyond ASCII.
    header_message = message.encode("ascii", "backslashreplace").decode("ascii")
    error_headers = {"X-Error-Code": code, "X-Error-Message": header_message, **(headers or {})}
    _send_json(handler, status, {"error": message}, send_body, error_headers)


def _repo_not_found(handler: Any, repo_type: str, repo_id: str, send_body: bool) -> None:
    message = f"Repository not found: {repo_type} {repo_id} is not in this mirror"
    _send_error(handler, HTTPStatus.NOT_FOUND, "RepoNotFound", message, send_body)


def _revision_not_found(handler: Any, revision: str, send_body: bool) -> None:
    message = f"Invalid rev id: {revision} (the mirror serves 'main' or a commit hash)"
    _send_error(handler, HTTPStatus.NOT_FOUND, "RevisionNotFound", message, send_body)


def _repo_info(snapshot: RepoSnapshot, commit: str) -> dict[str, Any]:
    return {
        "_id": snapshot.commit[:24],
        "id": snapshot.repo_id,
        "author": snapshot.repo_id.split("/")[0] if "/" in snapshot.repo_id else None,
        "sha": commit,
        "lastModified": snapshot.last_modified,
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [{"rfilename": f.path} for f in snapshot.files],
    }


def _tree_entries(snapshot: RepoSnapshot, folder: str, recursive: bool) -> list[dict[str, Any]] | None:
    """Files and folders under ``folder`` (all levels when recursive), as the Hub's tree API lists them."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    if prefix and not any(f.path.startswith(prefix) for f in snapshot.files):
        return None
    folders: set[str] = set()
    entries: list[dict[str, Any]] = []
    for f in snapshot.files:
        if not f.path.startswith(prefix):
            continue
        rest = f.path[len(prefix) :].split("/")
        # Every folder between ``folder`` and the file (only the first level when not recursive).
        for depth in range(1, len(rest) if recursive else min(2, len(rest))):
            folders.add(prefix + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            entries.append(
                {
                    "type": "file",
                    "oid": f.blob_oid,
                    "size": f.size,
                    "path": f.path,
                    "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": len(f.lfs_pointer)},
                }
            )
    for name in sorted(folders):
        entries.append({"type": "directory", "oid": hashlib.sha1(name.encode()).hexdigest(), "size": 0, "path": name})
    return sorted(entries, key=lambda entry: entry["path"])


# -- entry point ----------------------------------------------------------------------------------------
def handle(handler: Any, path: str, hf_root: Path, send_body: bool) -> None:
    """Answer one request under ``/hf`` (``path`` is what follows ``/hf``, already unquoted)."""
    api = _API.match(path)
    if api:
        repo_type = _REPO_TYPES[api.group("type")]
        snapshot = load_snapshot(hf_root, repo_type, api.group("repo"))
        if snapshot is None:
            _repo_not_found(handler, repo_type, api.group("repo"), send_body)
            return
        operation, revision = api.group("op"), api.group("rev") or "main"
        if not _revision_is_known(revision):
            _revision_not_found(handler, revision, send_body)
            return
        if operation in (None, "revision"):
            _send_json(handler, HTTPStatus.OK, _repo_info(snapshot, _commit_for(snapshot, revision)), send_body)
            return
        query = parse_qs(urlsplit(handler.path).query)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = _tree_entries(snapshot, api.group("path") or "", recursive)
        if entries is None:
            message = f"{api.group('path')} does not exist in {snapshot.repo_id}"
            _send_error(handler, HTTPStatus.NOT_FOUND, "EntryNotFound", message, send_body)
            return
        _send_json(handler, HTTPStatus.OK, entries, send_body)
        return

    resolve = _RESOLVE.match(path)
    if resolve:
        repo_type = _REPO_TYPES[resolve.group("type") or "models"]
        snapshot = load_snapshot(hf_root, repo_type, resolve.group("repo"))
        if snapshot is None:
            _repo_not_found(handler, repo_type, resolve.group("repo"), send_body)
            return
        revision = resolve.group("rev")
        if not _revision_is_known(revision):
            _revision_not_found(handler, revision, send_body)
            return
        commit = _commit_for(snapshot, revision)
        wanted = resolve.group("path")
        match = next((f for f in snapshot.files if f.path == wanted), None)
        if match is None:
            message = f"{wanted} does not exist in {snapshot.repo_id}"
            headers = {"X-Repo-Commit": commit}
            _send_error(handler, HTTPStatus.NOT_FOUND, "EntryNotFound", message, send_body, headers)
            return
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{match.sha256}"',
            "X-Linked-Size": str(match.size),
        }
        handler.send_file(snapshot.root / match.path, send_body, headers)
        return

    _send_error(handler, HTTPStatus.NOT_FOUND, "NotFound", f"{path} is not a Hub route this mirror serves", send_body)
