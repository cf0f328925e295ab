"""The evaluation's clip store: clips come back unchanged as read-only views of one mapped file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniflow.evaluate.clip_store import ClipStore


def test_clips_come_back_as_views_of_the_mapped_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (24_000, 0, 7, 48_000)]
    clips.append(rng.standard_normal(100))  # float64 in: stored as float32
    store = ClipStore(tmp_path / "task" / ".generated.f32")
    assert [store.add(clip) for clip in clips] == [0, 1, 2, 3, 4]
    views = store.views()
    assert (tmp_path / "task" / ".generated.f32").stat().st_size == 4 * sum(len(clip) for clip in clips)
    for clip, view in zip(clips, views, strict=True):
        assert view.dtype == np.float32 and not view.flags.writeable
        np.testing.assert_array_equal(view, clip.astype(np.float32))
        assert len(view) == 0 or isinstance(view.base, np.memmap) or isinstance(view, np.memmap)  # mapped, not copied
    store.remove()
    assert not store.path.exists()
    np.testing.assert_array_equal(views[3], clips[3])  # the mapping outlives the file


def test_an_empty_store_and_bad_clips(tmp_path: Path) -> None:
    with ClipStore(tmp_path / "empty.f32") as store:
        assert store.views() == []
    assert not (tmp_path / "empty.f32").exists()
    with ClipStore(tmp_path / "silent.f32") as store:
        store.add(np.zeros(0, dtype=np.float32))
        assert [len(view) for view in store.views()] == [0]
    with ClipStore(tmp_path / "stereo.f32") as store, pytest.raises(ValueError, match="mono"):
        store.add(np.zeros((10, 2)))
