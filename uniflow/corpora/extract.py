"""Safe extraction of corpus archives (zip, tar, tar.gz, tar.bz2, tar.xz).

The format is read from the file's first bytes, not its name. Every member is checked before a
byte of it is written: absolute paths, ``..`` components, drive letters and backslashes, links,
devices and FIFOs are refused, and tarfile's ``data`` filter runs as a second line of defence.
Members are written into ``<parent>/.<name>.partial-<pid>``, renamed to ``dest`` only when the
whole archive (including its compression trailer and checksums) has been read, so ``dest`` is
complete or absent.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_TAR_MODES = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
# Magic numbers of formats that are recognised only to be refused with a clear reason.
_UNSUPPORTED = {
    b"\x28\xb5\x2f\xfd": "zstd-compressed data",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"Rar!\x1a\x07": "a RAR archive",
}


class ArchiveError(ValueError):
    """An archive cannot be extracted: unsupported, truncated or corrupt (the message names it)."""


class UnsafeArchiveError(ArchiveError):
    """A member would write outside the destination or create a link/device; nothing is extracted."""

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        super().__init__(f"{archive}: refusing to extract member {member!r}: {reason}; nothing was extracted")
        self.archive = archive
        self.member = member
        self.reason = reason


@dataclass(frozen=True)
class ExtractResult:
    dest: Path
    members: int  # entries extracted (files and folders)
    bytes: int  # bytes of file content written
    format: str = ""  # zip, tar, tar.gz, tar.bz2 or tar.xz, as detected from the content


def detect_archive_format(archive: Path) -> str:
    """``zip``, ``tar``, ``tar.gz``, ``tar.bz2`` or ``tar.xz`` from the first bytes of ``archive``."""
    with open(archive, "rb") as handle:
        head = handle.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    for magic, what in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise ArchiveError(f"{archive}: {what} is not supported (zip, tar, tar.gz, tar.bz2, tar.xz are)")
    try:  # a pre-POSIX tar has no magic, only a header checksum
        tarfile.TarInfo.frombuf(head, tarfile.ENCODING, "surrogateescape")
        return "tar"
    except tarfile.HeaderError:
        pass
    raise ArchiveError(
        f"{archive}: not a zip, tar, tar.gz, tar.bz2 or tar.xz archive (first bytes {head[:8].hex(' ')})"
    )


def _name_problem(name: str, root: Path) -> str | None:
    """Why a member name is unsafe to write under ``root``, or None."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if "\\" in name:
        return "backslash in name (a Windows path separator)"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "Windows drive letter"
    if ".." in name.split("/"):
        return "'..' component leaves the destination"
    base = os.path.normpath(os.path.abspath(root))
    target = os.path.normpath(os.path.join(base, name))
    if target != base and not target.startswith(base + os.sep):
        return "normalized path leaves the destination"
    return None


def _tar_member_problem(member: tarfile.TarInfo, root: Path) -> str | None:
    if problem := _name_problem(member.name, root):
        return problem
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "device node"
    if member.isfifo():
        return "FIFO"
    if not (member.isreg() or member.isdir()):
        return f"unsupported member type {member.type!r}"
    return None


def _zip_member_problem(info: zipfile.ZipInfo, root: Path) -> str | None:
    if problem := _name_problem(info.filename, root):
        return problem
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if info.create_system == 3 and kind and kind not in (stat.S_IFREG, stat.S_IFDIR):  # 3: made on Unix
        if stat.S_ISLNK(mode):
            return "symbolic link"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return "device node"
        if stat.S_ISFIFO(mode):
            return "FIFO"
        return f"unsupported file type {oct(kind)}"
    return None


def _read_failure(archive: Path, archive_format: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(f"{archive}: {archive_format} archive is truncated or corrupt: {exc or type(exc).__name__}")


def _extract_tar(archive: Path, archive_format: str, staging: Path, progress: bool) -> tuple[int, int]:
    members = written = 0

    def checked(tar: tarfile.TarFile, bar: tqdm) -> Iterator[tarfile.TarInfo]:
        nonlocal members, written
        for member in tar:
            if problem := _tar_member_problem(member, staging):
                raise UnsafeArchiveError(archive, member.name, problem)
            members += 1
            written += member.size if member.isreg() else 0
            bar.update(1)
            yield member

    try:
        with tarfile.open(archive, _TAR_MODES[archive_format]) as tar, tqdm(
            desc=f"extract {archive.name}", unit=" members", disable=not progress
        ) as bar:
            tar.errorlevel = 2  # every extraction problem is an error, none is only logged
            # One sequential pass: each member is checked just before it is written.
            tar.extractall(staging, members=checked(tar, bar), filter="data")
            # tarfile stops at the end-of-archive blocks; reading on to the end makes the
            # decompressor check its trailer (CRC, length), which catches a cut-off download.
            while tar.fileobj.read(_CHUNK):
                pass
    except tarfile.FilterError as exc:  # the data filter caught what the checks above did not
        raise UnsafeArchiveError(archive, exc.tarinfo.name, str(exc)) from exc
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise _read_failure(archive, archive_format, exc) from exc
    except OSError as exc:
        if exc.errno is not None:
            raise  # a local filesystem problem (disk full, permissions), not the archive's
        raise _read_failure(archive, archive_format, exc) from exc  # e.g. gzip.BadGzipFile, bz2 data errors
    return members, written


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _extract_zip(archive: Path, staging: Path, progress: bool) -> tuple[int, int]:
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            # The central directory lists every member, so all are checked before anything is written.
            for info in infos:
                if problem := _zip_member_problem(info, staging):
                    raise UnsafeArchiveError(archive, info.filename, problem)
                if info.flag_bits & 0x1:
                    raise ArchiveError(f"{archive}: member {info.filename!r} is encrypted")
                if info.compress_type not in _ZIP_METHODS:
                    raise ArchiveError(
                        f"{archive}: member {info.filename!r} uses unsupported compression method {info.compress_type}"
                    )
            written = 0
            for info in tqdm(infos, desc=f"extract {archive.name}", unit=" members", disable=not progress):
                target = staging / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # Reading through zipfile checks each member's CRC-32.
                with bundle.open(info) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, _CHUNK)
                if (mtime := _zip_mtime(info)) is not None:
                    os.utime(target, (mtime, mtime))
                written += info.file_size
    except (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, NotImplementedError) as exc:
        raise _read_failure(archive, "zip", exc) from exc
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise _read_failure(archive, "zip", exc) from exc
    return len(infos), written


def extract_archive(archive: Path, dest: Path, *, progress: bool = True) -> ExtractResult:
    """Extract ``archive`` into ``dest`` (which must not exist) safely and atomically."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(f"{dest} already exists; remove it to extract {archive} again")
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    archive_format = detect_archive_format(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    if staging.exists():  # left by a crashed earlier run that had this same process id
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        if archive_format == "zip":
            members, written = _extract_zip(archive, staging, progress)
        else:
            members, written = _extract_tar(archive, archive_format, staging, progress)
        if dest.exists():
            raise FileExistsError(f"{dest} appeared while {archive} was being extracted; not replacing it")
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExtractResult(dest, members, written, archive_format)
