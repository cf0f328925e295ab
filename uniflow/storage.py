"""Storage roles mapped to fsspec URLs, and atomic writes through them.

A profile (``storage_config/*.yaml``) maps each role (raw, work, manifests, shards, features,
checkpoints, reports) to a URL: a local path, ``s3://bucket/prefix``, ``gs://bucket/prefix``...
Every read and write in uniflow goes through a role, so moving a build to a cluster is a change
of profile, not of code.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import fsspec
from pydantic import Field

from uniflow.config import ConfigError, StrictModel, load_yaml

Role = Literal["raw", "work", "manifests", "shards", "features", "checkpoints", "reports"]
ROLES: tuple[str, ...] = ("raw", "work", "manifests", "shards", "features", "checkpoints", "reports")
# Roles that must be a POSIX directory: archives are extracted there and aligners read files by path.
POSIX_ROLES: tuple[str, ...] = ("raw", "work")

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class StorageProfile(StrictModel):
    """One storage profile: where each role lives, and how to reach remote filesystems."""

    name: str
    description: str = ""
    roles: dict[Role, str]
    # Per-protocol fsspec options (e.g. {"s3": {"endpoint_url": "..."}}). Values may use ${ENV}.
    # Credentials never belong here: fsspec takes them from the environment or instance roles.
    storage_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Base URL of a corpus mirror (``uniflow mirror serve``); when set, every recipe source is
    # fetched from it instead of its public origin, through the same download code.
    mirror_url: str | None = None


def expand_env(text: str, source: str = "<config>") -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; an unset variable without default is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        raise ConfigError(f"{source}: environment variable {name} is not set and has no default")

    return _ENV_PATTERN.sub(substitute, text)


_SECRET_PATTERN = re.compile(r"^\$\{secret:([a-z0-9-]+)\}$")


def expand_option(value: str, source: str) -> str:
    """Expand a storage option: ``${secret:<block name>}`` reads a Prefect Secret block, else ``${ENV}``.

    Secrets are resolved only when a filesystem is opened, so profiles load without a Prefect server.
    """
    match = _SECRET_PATTERN.match(value)
    if match:
        from prefect.blocks.system import Secret

        try:
            return str(Secret.load(match.group(1)).get())
        except ValueError as exc:
            raise ConfigError(f"{source}: Prefect Secret block {match.group(1)!r} not found: {exc}") from None
    return expand_env(value, source)


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


class Storage:
    """Resolves roles to URLs and performs reads and atomic writes on them."""

    def __init__(self, profile: StorageProfile, source: str = "<profile>") -> None:
        missing = [role for role in ROLES if role not in profile.roles]
        if missing:
            raise ConfigError(f"{source}: roles: missing {', '.join(missing)}; every role needs a URL")
        self.profile = profile
        self.roots: dict[str, str] = {}
        for role, url in profile.roles.items():
            url = expand_env(url, f"{source}: roles.{role}")
            if _protocol(url) == "file":
                url = str(Path(url.removeprefix("file://")).expanduser().resolve())
            elif role in POSIX_ROLES:
                raise ConfigError(
                    f"{source}: roles.{role}: {url!r} is remote; the {role} role must be a local or "
                    "mounted POSIX path (archives are extracted and aligned there)"
                )
            self.roots[role] = url
        self.mirror_url = expand_env(profile.mirror_url, f"{source}: mirror_url") if profile.mirror_url else None

    @classmethod
    def from_file(cls, path: str | Path) -> Storage:
        return cls(load_yaml(path, StorageProfile), str(path))

    # -- addressing -----------------------------------------------------------------------------
    def url(self, role: Role, *parts: str) -> str:
        """The URL of ``parts`` under ``role`` (a plain path for local roles)."""
        root = self.roots[role]
        if not parts:
            return root
        return root.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts)

    def is_local(self, role: Role) -> bool:
        return _protocol(self.roots[role]) == "file"

    def path(self, role: Role, *parts: str) -> Path:
        """A local path under ``role``; an error for remote roles."""
        if not self.is_local(role):
            raise ConfigError(f"storage role {role!r} is remote ({self.roots[role]}); a local path was needed")
        return Path(self.url(role, *parts))

    def fs(self, role: Role) -> fsspec.AbstractFileSystem:
        protocol = _protocol(self.roots[role])
        options: dict[str, Any] = {}
        for key, value in self.profile.storage_options.get(protocol, {}).items():
            if isinstance(value, str):
                value = expand_option(value, f"storage_options.{protocol}.{key}")
                if value == "":  # an unset optional setting: let the filesystem use its default
                    continue
            options[key] = value
        return fsspec.filesystem(protocol, **options)

    # -- reads ------------------------------------------------------------------------------------
    def exists(self, role: Role, *parts: str) -> bool:
        return self.fs(role).exists(self.url(role, *parts))

    def open(self, role: Role, *parts: str, mode: str = "rb") -> IO[Any]:
        return self.fs(role).open(self.url(role, *parts), mode)

    def read_text(self, role: Role, *parts: str) -> str:
        with self.open(role, *parts, mode="rb") as handle:
            return handle.read().decode("utf-8")

    def list(self, role: Role, *parts: str) -> list[str]:
        """Names directly under a folder of ``role`` (empty when it does not exist)."""
        fs, url = self.fs(role), self.url(role, *parts)
        if not fs.exists(url):
            return []
        return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(url, detail=False))

    # -- atomic writes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def open_atomic(self, role: Role, *parts: str, mode: str = "wb") -> Iterator[IO[Any]]:
        """Write to a temporary name and rename on success; on error nothing appears at the target."""
        with atomic_write(self.url(role, *parts), mode=mode, fs=self.fs(role)) as handle:
            yield handle

    def write_bytes(self, role: Role, *parts: str, data: bytes) -> None:
        with self.open_atomic(role, *parts, mode="wb") as handle:
            handle.write(data)

    def write_text(self, role: Role, *parts: str, text: str) -> None:
        self.write_bytes(role, *parts, data=text.encode("utf-8"))

    def remove(self, role: Role, *parts: str) -> None:
        fs, url = self.fs(role), self.url(role, *parts)
        if fs.exists(url):
            fs.rm(url, recursive=True)


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: str = "wb", fs: fsspec.AbstractFileSystem | None = None) -> Iterator[IO[Any]]:
    """Open ``target`` for writing so that it appears complete or not at all."""
    target = str(target)
    fs = fs or fsspec.filesystem(_protocol(target))
    if _protocol(target) != "file":
        # Object stores publish an object only when its upload completes, so a direct write is
        # already atomic; a temporary key plus rename would cost a server-side copy.
        with fs.open(target, mode) as handle:
            yield handle
        return
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def is_leftover_name(name: str) -> bool:
    """Whether ``name`` is what a killed writer leaves behind: an ``atomic_write`` temporary
    (``.<name>.<random>.tmp``) or a hidden staging folder (``.<name>.partial-<pid>`` of an extraction,
    ``.fetch-<random>`` of a YouTube fetch)."""
    return name.startswith(".") and (name.endswith(".tmp") or ".partial-" in name or name.startswith(".fetch-"))


def remove_leftovers(folder: str | Path) -> int:
    """Delete the leftovers of killed writers directly in ``folder`` (not below it); returns how many.

    A kill skips the cleanup of ``atomic_write`` and of staging folders, and a rerun writes under new
    random names, so nothing else ever removes them. Call it only while nothing writes into ``folder``
    (at the start of the stage that owns it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    with os.scandir(folder) as entries:
        stale = [entry for entry in entries if is_leftover_name(entry.name)]
    for entry in stale:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed += 1
    return removed


def build_once(target: str | Path, build: Callable[[Path], Path]) -> Path:
    """``target`` (a file or folder) as ``build(staging_path)`` makes it, built under a hidden staging name and
    renamed into place when whole, so a build killed halfway never leaves something a rerun trusts. An existing
    ``target`` is kept as it is; staging left by an earlier killed build of the same target is removed first."""
    target = Path(target)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    os.rename(build(target.parent / f".{target.name}.partial-{os.getpid()}"), target)
    return target


def default_profile_path() -> Path:
    """The profile used when none is given: ``$UNIFLOW_PROFILE`` or ``storage_config/local.yaml``."""
    return Path(os.environ.get("UNIFLOW_PROFILE", "storage_config/local.yaml"))
