"""Feature shards: same keys as the audio shards, latents at 50 Hz, and a cache key that decides every rerun."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from feature_inputs import sample, save_vae, speech, write_set
from support import make_storage
from uniflow.features.latents import LatentEncoder, LatentSettings
from uniflow.features.stage import (
    FeatureEncoders,
    extract_feature_shard,
    feature_set,
    identities_for_task,
    plan_features,
    read_feature_ledger,
    write_feature_ledger,
)
from uniflow.features.text import TextEncoder
from uniflow.shards.ledger import ShardSet, read_ledger
from uniflow.storage import Storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shards"))
from shard_set_builder import build_set  # noqa: E402


def _members(storage: Storage, task: str, split: str, name: str, role: str = "features") -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes}, keys in tar order."""
    samples: dict[str, dict[str, bytes]] = {}
    with storage.open(role, task, split, name) as handle, tarfile.open(fileobj=handle, mode="r|") as archive:
        for member in archive:
            key, _, extension = member.name.partition(".")
            samples.setdefault(key, {})[extension] = archive.extractfile(member).read()
    return samples


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _vae(directory: Path) -> LatentEncoder:
    return LatentEncoder(LatentSettings(directory=str(directory)), "cpu")


def _run_all(storage: Storage, task: str, split: str, encoders: FeatureEncoders, verify: str = "size"):
    """Plan, compute what the plan says, and rewrite the ledger, as the flow does; returns the plan."""
    plan = plan_features(
        storage, task, split, identities_for_task(encoders.for_task(task)), encoders.vae.settings.posterior, verify
    )
    ledger = {record.name: record for record in plan.ledger if record.name in plan.reused}
    for work in plan.todo:
        record = extract_feature_shard(storage, task, split, work.audio, encoders)
        assert record.cache_key == work.cache_key
        ledger[record.name] = record
    write_feature_ledger(feature_set(storage, task, split), list(ledger.values()))
    return plan


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_vae(tmp_path_factory.mktemp("vae"))


def test_se_feature_shards_have_the_audio_shards_keys_in_order(tiny_vae: Path, tmp_path: Path) -> None:
    build_set(tmp_path)  # 10 SE pairs at 16 kHz in 4 shards, written the way the shard flow writes them
    storage = make_storage(tmp_path)
    encoders = FeatureEncoders(vae=_vae(tiny_vae))
    plan = _run_all(storage, "se", "train", encoders)
    audio_ledger = read_ledger(ShardSet(storage, "shards", "se", "train"))
    assert len(plan.todo) == len(audio_ledger) == 4 and plan.why_counts == {"new": 4}
    for audio in audio_ledger:
        source = _members(storage, "se", "train", audio.name, role="shards")
        features = _members(storage, "se", "train", audio.name)
        assert list(features) == list(source)
        for key, files in features.items():
            assert set(files) == {"latents.npy", "latents_std.npy", "input_latents.npy", "input_latents_std.npy", "json"}
            meta = json.loads(files["json"])
            # 16 kHz audio is resampled to the VAE's 24 kHz: frames = round(seconds * 24000) // 480.
            frames = round(meta["seconds"] * 24_000) // 480
            assert _npy(files["latents.npy"]).shape == _npy(files["input_latents.npy"]).shape == (frames, 128)
            assert _npy(files["latents.npy"]).dtype == np.float16
            assert meta["source"] == key and meta["features"]["encoders"]["vae"]["encoder_id"] == "uniflow-vae"
    ledger = read_feature_ledger(feature_set(storage, "se", "train"))
    assert [record.input_sha256 for record in ledger] == [record.sha256 for record in audio_ledger]
    assert [record.samples for record in ledger] == [record.samples for record in audio_ledger]


def test_one_second_caption_clip_gives_50_by_128_latents_and_t5_tokens(
    tiny_vae: Path, tiny_text_dir: Path, tmp_path: Path
) -> None:
    storage = make_storage(tmp_path)
    write_set(
        storage,
        "t2a",
        "train",
        [
            [
                sample("t2a", "t2a/audiocaps/a1", speech(0, 1.0), caption="A man speaks slowly"),
                sample("t2a", "t2a/audiocaps/a2", speech(1, 2.5), caption="A woman reads a book aloud in a quiet room"),
            ]
        ],
    )
    text = TextEncoder.from_pretrained(tiny_text_dir, encoder_id="tiny-t5")
    encoders = FeatureEncoders(vae=_vae(tiny_vae), text=text)
    _run_all(storage, "t2a", "train", encoders)
    features = _members(storage, "t2a", "train", "t2a-train-000000.tar")
    assert list(features) == ["t2a/audiocaps/a1", "t2a/audiocaps/a2"]
    first = features["t2a/audiocaps/a1"]
    assert _npy(first["latents.npy"]).shape == _npy(first["latents_std.npy"]).shape == (50, 128)
    assert _npy(features["t2a/audiocaps/a2"]["latents.npy"]).shape == (125, 128)
    embedding = _npy(first["text.npy"])
    # ByT5 tokens are bytes: 19 characters plus the end-of-sequence token; d_model 32.
    assert embedding.shape == (20, 32) and embedding.dtype == np.float16
    np.testing.assert_allclose(embedding, text.encode(["A man speaks slowly"])[0], atol=2e-3, rtol=2e-3)
    meta = json.loads(first["json"])
    assert meta["caption"] == "A man speaks slowly" and meta["features"]["latent_frames"] == 50
    assert set(meta["features"]["encoders"]) == {"vae", "text"}


def test_changed_weights_hash_recomputes_and_unchanged_does_not(tiny_vae: Path, tmp_path: Path) -> None:
    build_set(tmp_path)
    storage = make_storage(tmp_path)
    _run_all(storage, "se", "train", FeatureEncoders(vae=_vae(tiny_vae)))
    before = read_feature_ledger(feature_set(storage, "se", "train"))

    again = _run_all(storage, "se", "train", FeatureEncoders(vae=_vae(tiny_vae)))
    assert again.todo == [] and len(again.reused) == 4
    assert read_feature_ledger(feature_set(storage, "se", "train")) == before

    retrained = FeatureEncoders(vae=_vae(save_vae(tmp_path / "vae-retrained", seed=1)))
    changed = _run_all(storage, "se", "train", retrained)
    assert changed.why_counts == {"cache key changed": 4} and changed.reused == []
    after = read_feature_ledger(feature_set(storage, "se", "train"))
    assert all(old.cache_key != new.cache_key and old.sha256 != new.sha256 for old, new in zip(before, after, strict=True))
    assert {record.encoders["vae"]["weights_hash"] for record in after} == {retrained.vae.identity.weights_hash}


def test_damaged_or_missing_feature_shards_are_recomputed(tiny_vae: Path, tmp_path: Path) -> None:
    build_set(tmp_path)
    storage = make_storage(tmp_path)
    encoders = FeatureEncoders(vae=_vae(tiny_vae))
    _run_all(storage, "se", "train", encoders)
    folder = storage.path("features", "se", "train")
    intact = (folder / "se-train-000002.tar").read_bytes()
    (folder / "se-train-000000.tar").unlink()
    with open(folder / "se-train-000001.tar", "r+b") as handle:
        handle.truncate(1024)
    flipped = bytearray(intact)
    flipped[700] ^= 0xFF  # same size: only a checksum sees it
    (folder / "se-train-000002.tar").write_bytes(bytes(flipped))

    by_size = plan_features(storage, "se", "train", identities_for_task(encoders.for_task("se")), "mean_std", "size")
    assert {work.audio.name: work.why for work in by_size.todo} == {
        "se-train-000000.tar": "feature shard missing",
        "se-train-000001.tar": "feature shard damaged (size)",
    }
    rerun = _run_all(storage, "se", "train", encoders, verify="sha256")
    assert {work.audio.name: work.why for work in rerun.todo} == {
        "se-train-000000.tar": "feature shard missing",
        "se-train-000001.tar": "feature shard damaged (size)",
        "se-train-000002.tar": "feature shard damaged (sha256)",
    }
    assert rerun.reused == ["se-train-000003.tar"]
    assert (folder / "se-train-000002.tar").read_bytes() == intact, "recomputing gives the same bytes"


def test_bad_samples_are_skipped_with_their_reasons(tiny_vae: Path, tmp_path: Path) -> None:
    storage = make_storage(tmp_path)
    broken = sample("se", "se/vctk/broken", speech(0, 0.5))
    broken.files["target.flac"] = b"fLaC but not really"
    short = sample("se", "se/vctk/short", speech(1, 0.01))  # 240 samples: less than one latent frame
    no_json = sample("se", "se/vctk/nojson", speech(2, 0.5))
    del no_json.files["json"]  # the audio writer refuses unparsable json, but not a missing one
    write_set(
        storage,
        "se",
        "valid",
        [[sample("se", "se/vctk/good1", speech(3, 0.5)), broken, short, no_json, sample("se", "se/vctk/good2", speech(4, 0.7))]],
    )
    _run_all(storage, "se", "valid", FeatureEncoders(vae=_vae(tiny_vae)))
    assert list(_members(storage, "se", "valid", "se-valid-000000.tar")) == ["se/vctk/good1", "se/vctk/good2"]
    (record,) = read_feature_ledger(feature_set(storage, "se", "valid"))
    assert record.samples == 2 and record.input_samples == 5
    assert {(skip.key, skip.reason) for skip in record.skipped} == {
        ("se/vctk/broken", "target.flac: undecodable"),
        ("se/vctk/short", "target.flac: shorter than one latent frame"),
        ("se/vctk/nojson", "json: missing"),
    }
    assert record.seconds == pytest.approx(1.2, abs=1e-4)


def test_an_audio_shard_that_differs_from_its_ledger_is_refused(tiny_vae: Path, tmp_path: Path) -> None:
    storage = make_storage(tmp_path)
    (audio,) = write_set(storage, "se", "test", [[sample("se", "se/dns/a", speech(0, 0.5))]])
    wrong = audio.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ValueError, match="differs from the ledger"):
        extract_feature_shard(storage, "se", "test", wrong, FeatureEncoders(vae=_vae(tiny_vae)))
    assert not storage.exists("features", "se", "test", audio.name), "nothing is published from a damaged input"
