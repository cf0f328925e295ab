"""download_file against a fault-injecting loopback server: resume, restart, retry, verify, skip."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from uniflow.corpora.download import ChecksumMismatch, DownloadError, download_file, verify_file

PAYLOAD = os.urandom(300_000)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
FAST = {"backoff_seconds": 0.01, "progress": False}


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _marker(dest: Path) -> Path:
    return dest.with_name(dest.name + ".completed")


def test_interrupted_download_resumes_with_range_and_verifies(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD, drop_after=100_000)
    dest = tmp_path / "downloads" / "part.tar.gz"

    result = download_file(server.url, dest, sha256=SHA256, md5=MD5, **FAST)

    assert server.range_headers == [None, "bytes=100000-"]
    assert result.resumed_from == 100_000 and result.attempts == 2 and not result.skipped
    assert dest.read_bytes() == PAYLOAD and result.sha256 == SHA256 and result.size == len(PAYLOAD)
    assert not _part(dest).exists()
    marker = json.loads(_marker(dest).read_text())
    assert marker["sha256"] == SHA256 and marker["md5"] == MD5 and marker["size"] == len(PAYLOAD)
    assert marker["url"] == server.url and marker["completed_at"]


def test_resumes_from_part_left_by_a_killed_process(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    _part(dest).write_bytes(PAYLOAD[:123_456])

    result = download_file(server.url, dest, sha256=SHA256, **FAST)

    assert server.range_headers == ["bytes=123456-"]
    assert result.resumed_from == 123_456 and result.attempts == 1
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD, ignore_range=True)
    dest = tmp_path / "part.tar.gz"
    # Garbage in the partial file proves it is discarded, not appended to.
    _part(dest).write_bytes(b"\xff" * 50_000)

    result = download_file(server.url, dest, sha256=SHA256, **FAST)

    assert server.range_headers == ["bytes=50000-"]
    assert result.resumed_from == 0
    assert dest.read_bytes() == PAYLOAD


def test_part_already_whole_is_finished_by_a_416(fault_server, tmp_path: Path) -> None:
    """A process killed between the last byte and the rename: nothing is fetched again."""
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    _part(dest).write_bytes(PAYLOAD)

    result = download_file(server.url, dest, sha256=SHA256, **FAST)

    assert server.range_headers == [f"bytes={len(PAYLOAD)}-"]
    assert result.resumed_from == len(PAYLOAD) and dest.read_bytes() == PAYLOAD


def test_stale_partial_is_fetched_whole_once_before_a_mismatch(fault_server, tmp_path: Path) -> None:
    """A .part from another version of the file splices wrong bytes; a fresh full fetch repairs it."""
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    _part(dest).write_bytes(b"\x00" * 1000)

    result = download_file(server.url, dest, sha256=SHA256, **FAST)

    assert server.range_headers == ["bytes=1000-", None]
    assert dest.read_bytes() == PAYLOAD and result.resumed_from == 0


def test_wrong_checksum_leaves_nothing(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    wrong = hashlib.sha256(b"another file").hexdigest()

    with pytest.raises(ChecksumMismatch) as caught:
        download_file(server.url, dest, sha256=wrong, **FAST)

    message = str(caught.value)
    assert server.url in message and wrong in message and SHA256 in message
    assert caught.value.expected["sha256"] == wrong and caught.value.actual["sha256"] == SHA256
    assert not dest.exists() and not _part(dest).exists() and not _marker(dest).exists()


def test_wrong_size_fails_before_the_body(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"

    with pytest.raises(ChecksumMismatch, match=f"offers {len(PAYLOAD)} bytes but 10 are expected"):
        download_file(server.url, dest, size=10, **FAST)

    assert not dest.exists() and not _part(dest).exists()


@pytest.mark.parametrize(("status", "requests"), [(500, 4), (404, 3)])
def test_error_status_is_retried_then_reported(fault_server, tmp_path: Path, status: int, requests: int) -> None:
    """retries=3: a 500 is tried 1 + 3 times; a 404 (perhaps a syncing mirror) only 1 + 2 times."""
    server = fault_server(PAYLOAD, error_status=status)
    dest = tmp_path / "part.tar.gz"

    with pytest.raises(DownloadError) as caught:
        download_file(server.url, dest, sha256=SHA256, retries=3, **FAST)

    assert len(server.requests) == requests
    message = str(caught.value)
    assert server.url in message and f"HTTP {status}" in message and f"after {requests} attempts" in message
    assert caught.value.status == status and caught.value.attempts == requests
    assert not dest.exists() and not _marker(dest).exists()


def test_backoff_grows_exponentially(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD, error_status=503)
    delays: list[float] = []

    with pytest.raises(DownloadError):
        download_file(server.url, tmp_path / "f", retries=3, backoff_seconds=1.0, progress=False, sleep=delays.append)

    assert len(delays) == 3
    for exponent, delay in enumerate(delays):
        assert 2**exponent <= delay <= 1.5 * 2**exponent  # base * 2**n, plus up to 50% jitter


def test_transient_500s_then_success(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD, error_status=500, error_times=2)
    dest = tmp_path / "part.tar.gz"

    result = download_file(server.url, dest, sha256=SHA256, **FAST)

    assert len(server.requests) == 3 and result.attempts == 3
    assert dest.read_bytes() == PAYLOAD


def test_retry_after_is_honoured(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD, error_status=429, error_times=1, retry_after="7")
    delays: list[float] = []

    download_file(server.url, tmp_path / "f", sha256=SHA256, progress=False, sleep=delays.append)

    assert delays == [7.0]


def test_forbidden_is_not_retried_and_says_access_denied(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD, error_status=403)
    dest = tmp_path / "part.tar.gz"

    with pytest.raises(DownloadError, match="access denied") as caught:
        download_file(server.url, dest, **FAST)

    assert len(server.requests) == 1
    assert server.url in str(caught.value) and "gated" in str(caught.value)


def test_second_run_skips_without_any_request(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    download_file(server.url, dest, sha256=SHA256, **FAST)
    assert len(server.requests) == 1

    again = download_file(server.url, dest, sha256=SHA256, **FAST)
    without_expectation = download_file(server.url, dest, **FAST)

    assert len(server.requests) == 1
    assert again.skipped and again.attempts == 0 and again.sha256 == SHA256
    assert without_expectation.skipped


def test_placed_file_without_marker_is_verified_and_adopted(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "downloads" / "part.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(PAYLOAD)

    result = download_file(server.url, dest, sha256=SHA256, md5=MD5, **FAST)

    assert result.skipped and result.sha256 == SHA256
    assert server.requests == []
    marker = json.loads(_marker(dest).read_text())
    assert marker["sha256"] == SHA256 and marker["md5"] == MD5 and marker["origin"] == "existing file"


def test_placed_wrong_file_is_refused_and_left_untouched(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    dest.write_bytes(b"a different archive")
    before = dest.stat()

    with pytest.raises(ChecksumMismatch) as caught:
        download_file(server.url, dest, sha256=SHA256, **FAST)

    assert str(dest) in str(caught.value) and "replace it" in str(caught.value)
    assert dest.read_bytes() == b"a different archive" and dest.stat().st_mtime_ns == before.st_mtime_ns
    assert not _marker(dest).exists() and server.requests == []


def test_marker_disagreeing_with_the_file_is_not_trusted(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    download_file(server.url, dest, sha256=SHA256, **FAST)
    dest.write_bytes(PAYLOAD[:-1])  # damaged after it was marked complete

    with pytest.raises(ChecksumMismatch):
        download_file(server.url, dest, sha256=SHA256, **FAST)


def test_verify_file(tmp_path: Path) -> None:
    placed = tmp_path / "placed.zip"
    placed.write_bytes(PAYLOAD)

    assert verify_file(placed, sha256=SHA256, md5=MD5, size=len(PAYLOAD)) == SHA256
    assert verify_file(placed) == SHA256
    with pytest.raises(ChecksumMismatch, match="md5 expected"):
        verify_file(placed, md5="0" * 32)
    with pytest.raises(ValueError, match="hex digest"):
        verify_file(placed, sha256="not-a-digest")


def test_progress_bar_starts_at_the_resumed_bytes(fault_server, tmp_path: Path, capsys) -> None:
    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    _part(dest).write_bytes(PAYLOAD[: len(PAYLOAD) // 2])

    download_file(server.url, dest, sha256=SHA256, backoff_seconds=0.01, progress=True)

    assert "part.tar.gz" in capsys.readouterr().err


def test_unreachable_host_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/files/x.zip"
    delays: list[float] = []

    with pytest.raises(DownloadError, match="ConnectError") as caught:
        download_file(url, tmp_path / "x.zip", retries=2, progress=False, sleep=delays.append)

    assert url in str(caught.value) and caught.value.attempts == 3 and len(delays) == 2


def test_caller_headers_are_sent(fault_server, tmp_path: Path) -> None:
    server = fault_server(PAYLOAD)

    download_file(server.url, tmp_path / "f", headers={"Authorization": "Bearer token"}, **FAST)

    assert server.requests[0].headers["authorization"] == "Bearer token"
    assert server.requests[0].headers["accept-encoding"] == "identity"  # raw bytes, never re-encoded


def test_a_part_being_written_elsewhere_is_left_alone(fault_server, tmp_path: Path) -> None:
    import fcntl

    server = fault_server(PAYLOAD)
    dest = tmp_path / "part.tar.gz"
    with open(_part(dest), "ab") as other_writer:  # another worker holds the lock on the .part
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_EX)
        other_writer.write(b"in progress")
        other_writer.flush()

        with pytest.raises(DownloadError, match="another process"):
            download_file(server.url, dest, **FAST)

    assert server.requests == [] and _part(dest).read_bytes() == b"in progress"
