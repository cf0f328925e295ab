"""A loopback HTTP server that serves one payload with Range support and injects faults on demand.

Faults: drop the connection after N body bytes (first GET only), ignore Range (always 200), answer
an error status k times (or always) before succeeding, with an optional Retry-After. Every request
is recorded so tests can assert what the client sent and how often.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class FaultPlan:
    payload: bytes
    drop_after: int | None = None  # first GET: send this many body bytes, then cut the connection
    ignore_range: bool = False  # answer 200 with the whole payload even to a Range request
    error_status: int | None = None  # answer this status ...
    error_times: int | None = None  # ... this many times before serving (None: always)
    retry_after: str | None = None  # Retry-After header sent with the error status
    etag: str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


@dataclass
class _State:
    plan: FaultPlan
    requests: list[RecordedRequest] = field(default_factory=list)
    errors_sent: int = 0
    bodies_started: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FaultHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - base class signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        state = self.server.state
        plan = state.plan
        with state.lock:
            state.requests.append(
                RecordedRequest("GET", self.path, {name.lower(): value for name, value in self.headers.items()})
            )
            send_error = plan.error_status is not None and (
                plan.error_times is None or state.errors_sent < plan.error_times
            )
            if send_error:
                state.errors_sent += 1
            else:
                state.bodies_started += 1
            first_body = state.bodies_started == 1
        if send_error:
            self._send_status(plan.error_status)
            return
        payload, start, status = plan.payload, 0, 200
        requested = self.headers.get("Range")
        if requested and not plan.ignore_range:
            match = _RANGE.match(requested.strip())
            start = int(match.group(1)) if match else 0
            if start >= len(payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = payload[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if plan.ignore_range else "bytes")
        if plan.etag:
            self.send_header("ETag", plan.etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.end_headers()
        if plan.drop_after is not None and first_body:
            self.wfile.write(body[: plan.drop_after])
            self.wfile.flush()
            # Cut the connection mid-body: the client sees fewer bytes than Content-Length.
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)

    def _send_status(self, status: int) -> None:
        body = f"injected status {status}\n".encode()
        self.send_response(status)
        if self.server.state.plan.retry_after is not None:
            self.send_header("Retry-After", self.server.state.plan.retry_after)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _FaultHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, plan: FaultPlan) -> None:
        super().__init__(("127.0.0.1", 0), _FaultHandler)
        self.state = _State(plan)

    def handle_error(self, request, client_address) -> None:
        # Clients hang up on purpose here (abandoned error bodies, injected drops): not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultServer:
    """Start with ``FaultServer(FaultPlan(...))``; ``url`` serves the payload; ``close()`` stops it."""

    def __init__(self, plan: FaultPlan) -> None:
        self._server = _FaultHTTPServer(plan)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="http-faults", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/files/corpus-part.tar.gz"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._server.state.lock:
            return list(self._server.state.requests)

    @property
    def range_headers(self) -> list[str | None]:
        """The Range header of each request, in order (None where there was none)."""
        return [request.headers.get("range") for request in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
