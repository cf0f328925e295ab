"""The instruction embeddings file: 70 tensors keyed {task}_{index}, rewritten only when its cache key changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from support import DATASETS, make_storage
from uniflow.features.instructions import read_metadata, write_instruction_embeddings
from uniflow.features.text import TextEncoder, save_tiny_text_encoder


def test_instruction_embeddings_are_keyed_and_cached(tiny_text_dir: Path, tmp_path: Path) -> None:
    storage = make_storage(tmp_path)
    encoder = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5")
    url, written = write_instruction_embeddings(storage, encoder, DATASETS / "instructions.yaml")
    assert written
    embeddings = load_file(url)
    tasks = ("tts", "svs", "t2a", "t2m", "se", "sr", "v2a")
    assert set(embeddings) == {f"{task}_{index}" for task in tasks for index in range(10)}
    assert all(array.ndim == 2 and array.shape[1] == 32 and array.dtype == np.float32 for array in embeddings.values())
    first_key = read_metadata(storage)["cache_key"]

    assert write_instruction_embeddings(storage, encoder, DATASETS / "instructions.yaml") == (url, False)

    other = TextEncoder.from_pretrained(save_tiny_text_encoder(tmp_path / "t5-other", seed=1), encoder_id="tiny-t5")
    assert write_instruction_embeddings(storage, other, DATASETS / "instructions.yaml") == (url, True)
    assert read_metadata(storage)["cache_key"] != first_key
    assert not np.array_equal(load_file(url)["tts_0"], embeddings["tts_0"])
