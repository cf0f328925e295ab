"""The task-instruction embeddings file: T5 hidden states of every instruction, keyed ``{task}_{index}``.

Written once per text encoder to ``features/instructions/t5_embeddings.safetensors`` (float32, one
``(tokens, d_model)`` tensor per instruction, index 0-9 in ``datasets/instructions.yaml`` order, as
the authors' pre-extracted file is keyed). Its safetensors header metadata carries a cache key over
the text encoder's identity and the instructions file's sha256, so a rerun rewrites it only when
either changed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from uniflow.storage import Storage

INSTRUCTIONS_VERSION = 1
INSTRUCTIONS_FOLDER = "instructions"
INSTRUCTIONS_FILE = "t5_embeddings.safetensors"


def instructions_cache_key(identity: dict[str, str | int], instructions_yaml: str | Path) -> str:
    """sha256 over the format version, the text encoder's identity and the instructions file's bytes."""
    payload = {
        "version": INSTRUCTIONS_VERSION,
        "encoder": identity,
        "instructions_sha256": hashlib.sha256(Path(instructions_yaml).read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def read_metadata(storage: Storage) -> dict[str, str] | None:
    """The header metadata of the stored file (None when it is absent or its header is unreadable)."""
    if not storage.exists("features", INSTRUCTIONS_FOLDER, INSTRUCTIONS_FILE):
        return None
    with storage.open("features", INSTRUCTIONS_FOLDER, INSTRUCTIONS_FILE) as handle:
        # safetensors: an 8-byte little-endian header length, then the JSON header.
        raw = handle.read(8)
        if len(raw) != 8:
            return None
        (length,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


def write_instruction_embeddings(storage: Storage, text_encoder, instructions_yaml: str | Path) -> tuple[str, bool]:  # noqa: ANN001
    """Write the embeddings file unless one with the same cache key exists; returns (URL, written)."""
    from uniflow.features.text import encode_instructions

    identity = text_encoder.identity.as_dict()
    key = instructions_cache_key(identity, instructions_yaml)
    url = storage.url("features", INSTRUCTIONS_FOLDER, INSTRUCTIONS_FILE)
    existing = read_metadata(storage)
    if existing is not None and existing.get("cache_key") == key:
        return url, False
    embeddings = {
        name: np.ascontiguousarray(array, dtype=np.float32)
        for name, array in encode_instructions(text_encoder, instructions_yaml).items()
    }
    metadata = {"cache_key": key, "encoder": json.dumps(identity, sort_keys=True), "version": str(INSTRUCTIONS_VERSION)}
    storage.write_bytes("features", INSTRUCTIONS_FOLDER, INSTRUCTIONS_FILE, data=save(embeddings, metadata=metadata))
    return url, True
