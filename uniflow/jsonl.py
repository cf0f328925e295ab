"""Gzip-compressed JSON Lines, the format of manifests and of per-stage outputs."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any


def encode_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def encode_jsonl_gz(records: Iterable[dict[str, Any]]) -> bytes:
    """Compressed lines; ``mtime=0`` keeps the bytes identical when the records are."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as stream:
        for record in records:
            stream.write(encode_line(record))
    return buffer.getvalue()


def iter_jsonl_gz(handle: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Records of an open compressed file."""
    with gzip.open(handle, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
