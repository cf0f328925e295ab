"""Serve a built mirror on 127.0.0.1 over HTTP, with Range requests like a real archive host.

Paths: ``/index.json``, ``/files/<corpus>/<file>``, ``/youtube/<id>.mp4`` are served as static
files; ``/hf/...`` answers like the Hugging Face Hub (see ``hf_endpoint``), so that
``huggingface_hub`` with ``HF_ENDPOINT=<mirror>/hf`` downloads from the mirror unchanged.
"""

from __future__ import annotations

import email.utils
import re
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from uniflow.mirror.build import ensure_within

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16


class MirrorRequestHandler(BaseHTTPRequestHandler):
    """Static files with single-range support; ``/hf/`` delegated to the Hub emulation."""

    protocol_version = "HTTP/1.1"
    server_version = "uniflow-mirror/1"

    def __init__(self, *args, root: Path, **kwargs) -> None:
        self.root = root
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(send_body=True)

    def _dispatch(self, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/hf/"):
            from uniflow.mirror import hf_endpoint

            hf_endpoint.handle(self, path[len("/hf") :], self.root / "hf", send_body)
            return
        try:
            target = ensure_within(self.root, self.root / path.lstrip("/"))
        except PermissionError:
            self.send_error(HTTPStatus.FORBIDDEN)
            return
        if not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_file(target, send_body)

    def send_file(self, target: Path, send_body: bool, extra_headers: dict[str, str] | None = None) -> None:
        """Send ``target`` whole or the byte range the request asks for."""
        size = target.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        requested = self.headers.get("Range")
        if requested:
            match = _RANGE.match(requested.strip())
            if not match or (not match.group(1) and not match.group(2)):
                self._range_not_satisfiable(size)
                return
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(0, size - int(match.group(2)))
            end = min(end, size - 1)
            if start >= size or start > end:
                self._range_not_satisfiable(size)
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Last-Modified", email.utils.formatdate(target.stat().st_mtime, usegmt=True))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not send_body:
            return
        with open(target, "rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = handle.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                remaining -= len(chunk)

    def _range_not_satisfiable(self, size: int) -> None:
        self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    verbose = False

    def handle_error(self, request, client_address) -> None:
        # Clients that stop reading early (yt-dlp probing, resumed downloads) are normal here.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(root: str | Path, port: int = 0, host: str = "127.0.0.1") -> MirrorServer:
    """A server for the mirror at ``root`` (port 0 picks a free port; see ``server.url``)."""
    root = Path(root).resolve()
    if not (root / "index.json").exists():
        raise FileNotFoundError(f"{root}: no index.json; build the mirror first with `uniflow mirror build`")
    return MirrorServer((host, port), partial(MirrorRequestHandler, root=root))


def serve_in_background(root: str | Path, port: int = 0) -> MirrorServer:
    """Start a server thread and return the server (call ``shutdown()`` to stop it)."""
    server = make_server(root, port)
    threading.Thread(target=server.serve_forever, name="uniflow-mirror", daemon=True).start()
    return server
