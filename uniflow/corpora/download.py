"""Resumable, verified HTTP downloads: the first step of corpus acquisition.

A file is streamed to ``<dest>.part`` and hashed while it is written, so a multi-GB archive is
read once. An interrupted transfer (a dropped connection here, or a killed process earlier)
resumes with a ``Range`` request after re-hashing the bytes already on disk; a server that cannot
resume is detected and the file restarts from zero. Only a file whose size and digests match what
the recipe expects is renamed to ``dest``, followed by a ``<dest>.completed`` marker (JSON) that
lets a rerun skip it without touching the network. A file placed at ``dest`` by hand (how gated
corpora arrive) is verified and adopted, never overwritten.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import hashlib
import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from uniflow.storage import atomic_write

_CHUNK = 1 << 20
# Some mirrors answer 404 for a moment while they sync; a real 404 should fail fast anyway.
_NOT_FOUND_RETRIES = 2
# A Retry-After longer than this is not waited for: the normal backoff applies and the error says so.
_MAX_RETRY_AFTER_SECONDS = 60.0
_MAX_BACKOFF_SECONDS = 300.0
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes\s+\*/(\d+)$")
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}
_USER_AGENT = "uniflow-corpus-downloader/0.1"


class DownloadError(RuntimeError):
    """A download failed; the message names the URL, the file and the reason."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        path: Path | None = None,
        status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.path = path
        self.status = status
        self.attempts = attempts


class ChecksumMismatch(DownloadError):
    """A file's size or digest differs from the expected value (``expected`` vs ``actual``)."""

    def __init__(
        self,
        message: str,
        *,
        expected: dict[str, Any],
        actual: dict[str, Any],
        url: str | None = None,
        path: Path | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, url=url, path=path, attempts=attempts)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    size: int
    resumed_from: int  # bytes already on disk when the request that completed the file began; 0 if fresh
    attempts: int  # HTTP requests sent (0 when skipped)
    skipped: bool  # already complete: nothing was downloaded


# -- digests ----------------------------------------------------------------------------------------------
class _Digests:
    """sha256 (always), md5 (when expected) and byte count, fed incrementally."""

    def __init__(self, with_md5: bool) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        if self._md5 is not None:
            self._md5.update(chunk)
        self.size += len(chunk)

    def feed_file(self, path: Path) -> None:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                self.update(chunk)

    def summary(self) -> dict[str, Any]:
        values: dict[str, Any] = {"size": self.size, "sha256": self._sha256.hexdigest()}
        if self._md5 is not None:
            values["md5"] = self._md5.hexdigest()
        return values


def _expectations(sha256: str | None, md5: str | None, size: int | None) -> dict[str, Any]:
    """The expected values, normalised; a malformed digest (a recipe typo) is an error up front."""
    expected: dict[str, Any] = {}
    for name, value in (("sha256", sha256), ("md5", md5)):
        if value is None:
            continue
        value = value.strip().lower()
        if len(value) != _DIGEST_LENGTHS[name] or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"{name} {value!r} is not a {_DIGEST_LENGTHS[name]}-digit hex digest")
        expected[name] = value
    if size is not None:
        if size < 0:
            raise ValueError(f"size {size} is negative")
        expected["size"] = size
    return expected


def _mismatches(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    return [
        f"{key} expected {expected[key]}, got {actual.get(key)}"
        for key in ("size", "sha256", "md5")
        if key in expected and expected[key] != actual.get(key)
    ]


def _verify(path: Path, expected: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    """Hash ``path`` once and compare; a mismatch leaves the file untouched and says what to do."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file to verify")
    actual_size = path.stat().st_size
    digests = _Digests(with_md5="md5" in expected)
    # A wrong size is known without reading a byte.
    if "size" in expected and expected["size"] != actual_size:
        actual: dict[str, Any] = {"size": actual_size}
    else:
        digests.feed_file(path)
        actual = digests.summary()
    problems = _mismatches(expected, actual)
    if problems:
        raise ChecksumMismatch(
            f"{path} does not match the expected file ({'; '.join(problems)}); it was left untouched: "
            "replace it with the correct file (or delete it to download it again)",
            expected=expected,
            actual=actual,
            url=url,
            path=path,
        )
    return actual


def verify_file(path: str | Path, sha256: str | None = None, md5: str | None = None, size: int | None = None) -> str:
    """Check a file (e.g. one a user placed by hand) against its expected size/digests; returns its sha256."""
    return _verify(Path(path), _expectations(sha256, md5, size))["sha256"]


# -- markers ------------------------------------------------------------------------------------------------
def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def completion_marker(dest: Path) -> Path:
    """``<dest>.completed``: written after ``dest`` is verified and in place."""
    return dest.with_name(dest.name + ".completed")


def _read_marker(marker: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or damaged: the file is verified by hashing instead
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def _write_marker(dest: Path, url: str, actual: dict[str, Any], origin: str) -> None:
    record = {
        "url": url,
        "size": actual["size"],
        "sha256": actual["sha256"],
        **({"md5": actual["md5"]} if "md5" in actual else {}),
        "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "origin": origin,
    }
    with atomic_write(completion_marker(dest), mode="w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")


def _marker_satisfies(record: dict[str, Any], expected: dict[str, Any], actual_size: int) -> bool:
    if record.get("size") != actual_size:  # the file changed after it was marked
        return False
    return all(record.get(key) == value for key, value in expected.items())


def _adopt_existing(url: str, dest: Path, expected: dict[str, Any]) -> DownloadResult:
    """``dest`` is already there: trust its marker if it agrees, otherwise verify it by hashing."""
    if not dest.is_file():
        raise DownloadError(f"{dest} exists but is not a regular file; cannot download {url} there", url=url, path=dest)
    size = dest.stat().st_size
    record = _read_marker(completion_marker(dest))
    if record is not None and _marker_satisfies(record, expected, size):
        return DownloadResult(dest, record["sha256"], size, resumed_from=0, attempts=0, skipped=True)
    actual = _verify(dest, expected, url)
    _write_marker(dest, url, actual, origin="existing file" if record is None else "re-verified")
    return DownloadResult(dest, actual["sha256"], actual["size"], resumed_from=0, attempts=0, skipped=True)


# -- transfer ------------------------------------------------------------------------------------------------
class _Retry(Exception):
    """An attempt failed in a way worth trying again."""

    def __init__(
        self, problem: str, *, status: int | None = None, retry_after: float | None = None, limit: int | None = None
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after
        self.limit = limit


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _strong_validator(response: httpx.Response) -> str | None:
    """What If-Range may carry so a resumed range comes from the same version of the file."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


class _Transfer:
    """One download of ``url`` into ``<dest>.part``, across retries and resumes."""

    def __init__(
        self,
        url: str,
        dest: Path,
        expected: dict[str, Any],
        *,
        retries: int,
        backoff_seconds: float,
        timeout: float,
        progress: bool,
        headers: dict[str, str],
        client: httpx.Client,
        sleep: Callable[[float], None],
    ) -> None:
        self.url, self.dest, self.expected = url, dest, expected
        self.part = _part_path(dest)
        self.retries, self.backoff_seconds, self.timeout = retries, backoff_seconds, timeout
        self.progress, self.headers, self.client, self.sleep = progress, headers, client, sleep
        self.attempts = 0
        self.failures = 0  # consecutive failed attempts that added no bytes
        self.total: int | None = expected.get("size")  # full file length, once known
        self.validator: str | None = None
        self.use_range = True
        self.resumed_from = 0
        self.spliced = False  # the file joins bytes from more than one response
        self.jitter = random.Random()

    def run(self) -> DownloadResult:
        with open(self.part, "ab", buffering=_CHUNK) as handle:
            self._lock(handle)
            self.handle = handle
            self.digests = _Digests(with_md5="md5" in self.expected)
            # The partial bytes are re-hashed so the final digest covers the whole file.
            self.digests.feed_file(self.part)
            with tqdm(
                total=self.total,
                initial=self.digests.size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.dest.name,
                disable=not self.progress,
            ) as self.bar:
                self._transfer()
                problems = _mismatches(self.expected, self.digests.summary())
                if problems and self.spliced:
                    # The resumed prefix may come from an older version of the file (a .part left by
                    # an earlier run): fetch it once more, whole, before calling it a mismatch.
                    self.use_range = False
                    self._restart()
                    self._transfer()
            handle.flush()
            os.fsync(handle.fileno())
            actual = self.digests.summary()
            problems = _mismatches(self.expected, actual)
            if problems:
                self.part.unlink()
                raise ChecksumMismatch(
                    f"{self.url}: the downloaded file does not match ({'; '.join(problems)}); "
                    f"{self.part} was deleted and nothing was written to {self.dest}",
                    expected=self.expected,
                    actual=actual,
                    url=self.url,
                    path=self.dest,
                    attempts=self.attempts,
                )
            os.replace(self.part, self.dest)
        _fsync_directory(self.dest.parent)
        _write_marker(self.dest, self.url, actual, origin="download")
        return DownloadResult(
            self.dest, actual["sha256"], actual["size"], self.resumed_from, self.attempts, skipped=False
        )

    def _lock(self, handle: Any) -> None:
        # Two workers appending to one .part would interleave bytes; the second one stops at once.
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{self.part} is being written by another process downloading {self.url}; try again when it ends",
                url=self.url,
                path=self.dest,
            ) from None
        except OSError:
            pass  # a filesystem without flock support: proceed unlocked

    def _transfer(self) -> None:
        while True:
            before = self.digests.size
            try:
                if self._attempt():
                    return
            except _Retry as retry:
                self._wait_or_give_up(retry, made_progress=self.digests.size > before)

    def _restart(self) -> None:
        """Discard the partial bytes: the server cannot continue them."""
        self.handle.flush()
        self.handle.truncate(0)
        self.digests = _Digests(with_md5="md5" in self.expected)
        self.resumed_from = 0
        self.spliced = False
        self.bar.reset(total=self.total)

    def _attempt(self) -> bool:
        """One request; True when the body is complete. Raises _Retry for a retryable failure."""
        offset = self.digests.size
        if offset and not self.use_range:
            self._restart()
            offset = 0
        request_headers = {"Accept-Encoding": "identity", **self.headers}
        if offset:
            request_headers["Range"] = f"bytes={offset}-"
            if self.validator:
                request_headers["If-Range"] = self.validator
        self.attempts += 1
        try:
            with self.client.stream(
                "GET", self.url, headers=request_headers, timeout=self.timeout, follow_redirects=True
            ) as response:
                status = response.status_code
                if status in (200, 206):
                    self._start_body(response, offset)
                    for chunk in response.iter_raw():
                        self._write(chunk)
                elif status == 416:
                    return self._range_not_satisfiable(response, offset)
                else:
                    self._refuse_status(response)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.TooManyRedirects) as exc:
            raise DownloadError(f"{self.url}: {exc}", url=self.url, path=self.dest, attempts=self.attempts) from exc
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
        if self.total is not None and self.digests.size != self.total:
            if self.digests.size > self.total:
                self._restart()
            raise _Retry(f"body ended at byte {self.digests.size} of {self.total}")
        return True

    def _start_body(self, response: httpx.Response, offset: int) -> None:
        """Check where the body starts and how long the file is; restart if it cannot continue ours."""
        if response.status_code == 200:
            if offset:  # Range ignored (or If-Range saw a newer file): the body is the whole file
                self._restart()
            self.resumed_from = 0
            length = response.headers.get("Content-Length")
            server_total = int(length) if length and length.isdigit() else None
        else:
            content_range = response.headers.get("Content-Range", "")
            match = _CONTENT_RANGE.match(content_range.strip())
            start = int(match.group(1)) if match else -1
            if not match or start != offset or int(match.group(2)) < start:
                # Bytes for some other position: never splice them in. Restart without Range.
                self._restart()
                self.use_range = False
                raise _Retry(f"HTTP 206 with Content-Range {content_range!r} for a request from byte {offset}")
            server_total = None if match.group(3) == "*" else int(match.group(3))
            changed = server_total is not None and self.total is not None and server_total != self.total
            if changed and "size" not in self.expected:
                # The file changed on the server since the earlier bytes were fetched.
                self._restart()
                raise _Retry(f"the file changed on the server (was {self.total} bytes, now {server_total})")
            self.resumed_from = offset
            self.spliced = self.spliced or offset > 0
        self.validator = _strong_validator(response) or self.validator
        if server_total is not None:
            if "size" in self.expected and server_total != self.expected["size"]:
                # Fail before fetching gigabytes of the wrong file.
                self.part.unlink(missing_ok=True)
                raise ChecksumMismatch(
                    f"{self.url}: the server offers {server_total} bytes but {self.expected['size']} are expected; "
                    f"nothing was written to {self.dest}",
                    expected=self.expected,
                    actual={"size": server_total},
                    url=self.url,
                    path=self.dest,
                    attempts=self.attempts,
                )
            self.total = server_total
            self.bar.total = server_total
            self.bar.refresh()

    def _write(self, chunk: bytes) -> None:
        try:
            self.handle.write(chunk)
        except OSError as exc:  # disk full, quota...: retrying the network would not help
            raise DownloadError(
                f"{self.url}: cannot write {self.part}: {exc}", url=self.url, path=self.dest, attempts=self.attempts
            ) from exc
        self.digests.update(chunk)
        self.bar.update(len(chunk))

    def _range_not_satisfiable(self, response: httpx.Response, offset: int) -> bool:
        match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", "").strip())
        if match and offset and int(match.group(1)) == offset:
            # The partial file is already whole (a process was killed just before the rename).
            self.total = offset
            self.resumed_from = offset
            self.spliced = True
            return True
        self._restart()
        if not offset:
            raise _Retry("HTTP 416 for a request without Range", status=416)
        return False

    def _refuse_status(self, response: httpx.Response) -> None:
        status = response.status_code
        described = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in (401, 403):
            raise DownloadError(
                f"access denied to {self.url} ({described}): the corpus is gated or needs a token. Accept its "
                f"terms with the provider and pass credentials (headers=...), or place the file at {self.dest} by hand",
                url=self.url,
                path=self.dest,
                status=status,
                attempts=self.attempts,
            )
        if status == 404:
            raise _Retry(described, status=status, limit=min(self.retries, _NOT_FOUND_RETRIES))
        if status in _RETRY_STATUSES or 500 <= status < 600:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retry(described, status=status, retry_after=retry_after)
        raise DownloadError(
            f"{self.url}: {described} (not retried); nothing was written to {self.dest}",
            url=self.url,
            path=self.dest,
            status=status,
            attempts=self.attempts,
        )

    def _wait_or_give_up(self, retry: _Retry, made_progress: bool) -> None:
        # A flaky link that keeps delivering bytes is not failing: only attempts that add nothing count.
        self.failures = 0 if made_progress else self.failures + 1
        limit = self.retries if retry.limit is None else retry.limit
        if self.failures > limit:
            note = ""
            if retry.retry_after is not None and retry.retry_after > _MAX_RETRY_AFTER_SECONDS:
                note = f" (the server asked to wait {retry.retry_after:.0f} s)"
            kept = f"; {self.digests.size} bytes kept in {self.part} for a later resume" if self.digests.size else ""
            raise DownloadError(
                f"{self.url}: download to {self.dest} failed after {self.attempts} attempts: "
                f"last {retry.problem}{note}{kept}",
                url=self.url,
                path=self.dest,
                status=retry.status,
                attempts=self.attempts,
            ) from retry
        if retry.retry_after is not None and retry.retry_after <= _MAX_RETRY_AFTER_SECONDS:
            delay = retry.retry_after
        else:
            exponent = max(self.failures - 1, 0)
            delay = min(self.backoff_seconds * 2**exponent, _MAX_BACKOFF_SECONDS)
            delay *= 1.0 + 0.5 * self.jitter.random()  # spread workers that failed together
        self.sleep(delay)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff_seconds: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    headers: dict[str, str] | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming, retrying and verifying; skip it if already complete.

    Retries (``retries`` times, exponential backoff with jitter from ``backoff_seconds``; ``sleep``
    is injectable) cover connection errors, timeouts, 5xx, 408/425/429 (honouring a short
    Retry-After) and 404 (at most twice). 401/403 fail at once with an access-denied error. A
    dropped transfer that delivered bytes does not use up a retry: it resumes where it stopped.
    """
    dest = Path(dest)
    expected = _expectations(sha256, md5, size)
    if dest.exists():
        return _adopt_existing(url, dest, expected)
    with contextlib.suppress(FileNotFoundError):
        completion_marker(dest).unlink()  # a marker whose file is gone says nothing
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": _USER_AGENT})
    try:
        transfer = _Transfer(
            url,
            dest,
            expected,
            retries=retries,
            backoff_seconds=backoff_seconds,
            timeout=timeout,
            progress=progress,
            headers=dict(headers or {}),
            client=client,
            sleep=sleep,
        )
        return transfer.run()
    finally:
        if own_client:
            client.close()
