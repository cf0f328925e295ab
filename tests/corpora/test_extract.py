"""extract_archive: hostile members are refused with nothing written; good archives extract exactly."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from uniflow.corpora.extract import ArchiveError, UnsafeArchiveError, detect_archive_format, extract_archive

TREE = {
    "LibriTTS/train-clean-100/19/198/19_198_000000_000000.wav": os.urandom(40_000),
    "LibriTTS/train-clean-100/19/198/19_198_000000_000000.normalized.txt": b"Northanger Abbey.\n",
    "LibriTTS/train-clean-100/19/198/19_198.trans.tsv": b"19_198_000000_000000\tNorthanger\tNorthanger\n",
    "LibriTTS/SPEAKERS.txt": "; naïve header ünïcode\n".encode(),
}


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, None


def _tree_tar(compression: str) -> bytes:
    return _tar_bytes([_file_member(name, data) for name, data in TREE.items()], compression)


def _tree_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("LibriTTS/", b"")
        for name, data in TREE.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _zip_with(name: str, *, unix_mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("good/file.txt", b"fine")  # a good member first: it must not survive either
        info = zipfile.ZipInfo(name)
        if unix_mode is not None:
            info.create_system = 3
            info.external_attr = unix_mode << 16
        bundle.writestr(info, b"/etc/passwd" if unix_mode else b"escaped")
    return buffer.getvalue()


def _files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _assert_nothing_written(tmp_path: Path, dest: Path) -> None:
    assert not dest.exists()
    assert not list(tmp_path.glob(f".{dest.name}.partial-*"))
    assert not (tmp_path / "escaped.txt").exists()


# Each hostile archive: (builder of its bytes, given tmp_path; words the refusal must contain).
HOSTILE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "tar-dotdot": (
        lambda tmp: _tar_bytes([_file_member("ok.txt", b"ok"), _file_member("../escaped.txt", b"x")]),
        "'..'",
    ),
    "tar-absolute": (lambda tmp: _tar_bytes([_file_member(str(tmp / "escaped.txt"), b"x")], "gz"), "absolute path"),
    "tar-symlink": (lambda tmp: _tar_bytes([_special_member("link", tarfile.SYMTYPE, "/etc/passwd")]), "symbolic link"),
    "tar-hardlink": (lambda tmp: _tar_bytes([_special_member("hard", tarfile.LNKTYPE, "/etc/passwd")]), "hard link"),
    "tar-char-device": (lambda tmp: _tar_bytes([_special_member("dev/null0", tarfile.CHRTYPE)], "bz2"), "device node"),
    "tar-block-device": (lambda tmp: _tar_bytes([_special_member("dev/sda9", tarfile.BLKTYPE)]), "device node"),
    "tar-fifo": (lambda tmp: _tar_bytes([_special_member("pipe", tarfile.FIFOTYPE)], "xz"), "FIFO"),
    "tar-backslash": (lambda tmp: _tar_bytes([_file_member("..\\escaped.txt", b"x")]), "backslash"),
    "tar-drive-letter": (lambda tmp: _tar_bytes([_file_member("C:/escaped.txt", b"x")]), "drive letter"),
    "zip-dotdot": (lambda tmp: _zip_with("../escaped.txt"), "'..'"),
    "zip-backslash-dotdot": (lambda tmp: _zip_with("..\\..\\escaped.txt"), "backslash"),
    "zip-absolute": (lambda tmp: _zip_with(str(tmp / "escaped.txt")), "absolute path"),
    "zip-symlink": (lambda tmp: _zip_with("link", unix_mode=stat.S_IFLNK | 0o777), "symbolic link"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_nothing_written(tmp_path: Path, case: str) -> None:
    build, reason = HOSTILE[case]
    archive = tmp_path / "download.bin"
    archive.write_bytes(build(tmp_path))
    dest = tmp_path / "parts" / "train"

    with pytest.raises(UnsafeArchiveError) as caught:
        extract_archive(archive, dest, progress=False)

    assert reason in str(caught.value) and str(archive) in str(caught.value)
    assert repr(caught.value.member) in str(caught.value)
    assert not dest.exists() and not list(dest.parent.glob(".train.partial-*"))
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize(
    ("builder", "expected_format"),
    [
        (lambda: _tree_tar("gz"), "tar.gz"),
        (lambda: _tree_tar("bz2"), "tar.bz2"),
        (lambda: _tree_tar("xz"), "tar.xz"),
        (lambda: _tree_tar(""), "tar"),
        (_tree_zip, "zip"),
    ],
    ids=["tar.gz", "tar.bz2", "tar.xz", "tar", "zip"],
)
def test_good_archive_extracts_identical_bytes(tmp_path: Path, builder, expected_format: str) -> None:
    # A misleading name: the format must come from the content.
    archive = tmp_path / "archive.zip.tar"
    archive.write_bytes(builder())
    dest = tmp_path / "parts" / "train-clean-100"

    result = extract_archive(archive, dest, progress=False)

    assert result.format == expected_format and detect_archive_format(archive) == expected_format
    assert _files_under(dest) == TREE
    assert result.bytes == sum(len(data) for data in TREE.values())
    assert result.members >= len(TREE) and result.dest == dest
    assert [p.name for p in dest.parent.iterdir()] == ["train-clean-100"]  # no staging folder left


@pytest.mark.parametrize("cut", ["half", "trailer"])
def test_truncated_tar_gz_fails_cleanly(tmp_path: Path, cut: str) -> None:
    """Cut in the middle of a member, or only the last bytes (gzip CRC/length trailer)."""
    whole = _tree_tar("gz")
    archive = tmp_path / "train.tar.gz"
    archive.write_bytes(whole[: len(whole) // 2] if cut == "half" else whole[:-4])
    dest = tmp_path / "train"

    with pytest.raises(ArchiveError, match="truncated or corrupt") as caught:
        extract_archive(archive, dest, progress=False)

    assert str(archive) in str(caught.value) and not isinstance(caught.value, UnsafeArchiveError)
    _assert_nothing_written(tmp_path, dest)


def test_truncated_zip_fails_cleanly(tmp_path: Path) -> None:
    whole = _tree_zip()
    archive = tmp_path / "train.zip"
    archive.write_bytes(whole[: len(whole) // 2])
    dest = tmp_path / "train"

    with pytest.raises(ArchiveError, match=str(archive)):
        extract_archive(archive, dest, progress=False)

    _assert_nothing_written(tmp_path, dest)


def test_corrupt_zip_member_fails_on_its_crc(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as bundle:
        bundle.writestr("a.bin", b"A" * 5000)
    damaged = buffer.getvalue().replace(b"A" * 100, b"B" * 100, 1)
    archive = tmp_path / "a.zip"
    archive.write_bytes(damaged)

    with pytest.raises(ArchiveError, match="CRC"):
        extract_archive(archive, tmp_path / "a", progress=False)

    _assert_nothing_written(tmp_path, tmp_path / "a")


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tree_tar("gz"))
    dest = tmp_path / "a"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")

    with pytest.raises(FileExistsError, match=str(dest)):
        extract_archive(archive, dest, progress=False)

    assert _files_under(dest) == {"mine.txt": b"keep"}


def test_not_an_archive_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "page.tar.gz"
    archive.write_bytes(b"<html>403 Forbidden</html>")  # what a host sends instead of a file

    with pytest.raises(ArchiveError, match="not a zip, tar"):
        extract_archive(archive, tmp_path / "page", progress=False)

    _assert_nothing_written(tmp_path, tmp_path / "page")


def test_progress_bar_counts_members(tmp_path: Path, capsys) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_tree_zip())

    extract_archive(archive, tmp_path / "a", progress=True)

    assert f"{len(TREE) + 1}/{len(TREE) + 1}" in capsys.readouterr().err
