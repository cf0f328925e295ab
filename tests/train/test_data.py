"""The training data path: mixed-task batches, the configured task mix, rank splitting, exact resume."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from feature_sets import posteriors, sample, save_vae, speech, write_instructions, write_set, write_task_sets

from support import make_storage, one_torch_thread
from uniflow.features.latents import LatentEncoder, LatentSettings
from uniflow.features.stage import FeatureEncoders, extract_feature_shard, feature_set, write_feature_ledger
from uniflow.model.content import MODALITIES
from uniflow.model.tasks import TASKS
from uniflow.storage import Storage
from uniflow.train import data as train_data
from uniflow.train.data import (
    DataPlanError,
    TrainDataConfig,
    TrainStream,
    check_data_plan,
    require_data_plan,
    task_cycle,
    validation_batches,
)

WEIGHTS = {"t2a": 2, "t2m": 3}  # datasets/plan.yaml: others 1


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> LatentEncoder:
    return LatentEncoder(LatentSettings(directory=str(save_vae(tmp_path_factory.mktemp("vae")))), "cpu")


@pytest.fixture(scope="module")
def arrays(encoder: LatentEncoder):
    with one_torch_thread():
        return posteriors(encoder, 9)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory, arrays) -> Storage:
    """Every task: 4 train shards of 3 samples (SVS: 1 shard, fewer than readers), 2 valid shards."""
    storage = make_storage(tmp_path_factory.mktemp("features"))
    write_task_sets(storage, arrays, {task: 1 if task == "svs" else 4 for task in TASKS})
    write_task_sets(storage, arrays, dict.fromkeys(TASKS, 2), split="valid")
    write_instructions(storage, TASKS)
    return storage


def config(**settings) -> TrainDataConfig:
    defaults = {"weights": WEIGHTS, "batch_size": 10, "batches_per_epoch": 6, "workers": 0, "seed": 7, "shuffle_buffer": 2}
    return TrainDataConfig(**{**defaults, **settings})


def take(stream: TrainStream, count: int) -> list:
    iterator = iter(stream)
    return [next(iterator) for _ in range(count)]


def test_batch_has_padded_latents_masks_content_and_instructions(storage: Storage) -> None:
    (batch,) = take(TrainStream(storage, config()), 1)
    lengths = batch.latent_mask.sum(dim=1)
    assert batch.latents.shape == (10, int(lengths.max()), 128) and batch.latents.dtype == torch.float32
    # Padding is zero and every sample has its own length (15-45 frames of real speech).
    assert torch.all(batch.latents[~batch.latent_mask] == 0) and lengths.min() >= 15
    assert batch.instruction.shape[:2] == batch.instruction_mask.shape and batch.instruction.shape[2] == 16
    assert batch.instruction_index.min() >= 0 and batch.instruction_index.max() < 10
    # TTS / SVS durations: per-phone frames that add up to the sample's latent length.
    tts_row = batch.tasks.index("tts")
    assert int(batch.content.phones.frames.sum()) == int(lengths[tts_row])
    svs_row = batch.tasks.index("svs")
    assert int(batch.content.score.frames.sum()) == int(lengths[svs_row])
    assert batch.content.score.singer.tolist() == [1 + 13]  # Tenor-1 after <unk>, 7 altos, 3 basses, 3 sopranos
    assert batch.content.text.features.shape[0] == 5 and batch.content.latents.features.shape[2] == 128


def test_batches_mix_tasks_in_cycle_order(storage: Storage) -> None:
    first, second = take(TrainStream(storage, config(batch_size=7)), 2)
    cycle = task_cycle(TASKS, WEIGHTS)
    assert cycle == ["tts", "svs", "t2a", "t2m", "se", "sr", "v2a", "t2a", "t2m", "t2m"]
    assert first.tasks == cycle[:7] and second.tasks == cycle[7:] + cycle[:4]
    assert len({key.split("/")[0] for key in first.keys}) == 7 and all(
        k.startswith(t) for t, k in zip(first.tasks, first.keys, strict=True)
    )


def test_achieved_task_mix_matches_the_configured_weights(storage: Storage) -> None:
    """Issue 8 MUST-SHOW: over many batches, the task mix is within 5% of the weights (T2A x2, T2M x3)."""
    stream = TrainStream(storage, config(batch_size=8, batches_per_epoch=25, workers=2))
    batches = take(stream, 50)  # two epochs, 400 samples
    assert sum(len(batch) for batch in batches) == 400 == sum(stream.task_counts.values())
    weights = {task: WEIGHTS.get(task, 1) for task in TASKS}
    for task, achieved in stream.achieved_ratios().items():
        expected = weights[task] / sum(weights.values())
        assert abs(achieved / expected - 1) < 0.05, (task, achieved, expected)
    assert stream.target_ratios()["t2m"] == pytest.approx(0.3)


def test_two_ranks_deal_the_shard_draws_and_get_equal_batch_counts(storage: Storage) -> None:
    streams = [TrainStream(storage, config(batches_per_epoch=4), rank=rank, world_size=2) for rank in range(2)]
    epochs = [list(stream.epoch_batches()) for stream in streams]
    # Equal epoch length on both ranks, although SVS has a single shard for two ranks.
    assert [len(batches) for batches in epochs] == [4, 4]
    # The ranks take alternate draws of the same seeded deck: never the same draw.
    deck = train_data.ShardSource(streams[0].urls["tts"], resampled=True, seed=train_data.mix_seed(7, TASKS.index("tts")))
    sequence = [item["url"] for _, item in zip(range(8), deck.run(), strict=False)]
    for rank, stream in enumerate(streams):
        reader = train_data._TaskReader(stream.dataset, "tts", 0, 1, train_data._ReaderPosition())
        assert [url for _, url in zip(range(4), reader._draws(), strict=False)] == sequence[rank::2]
    # Validation reads each shard once, on exactly one rank: disjoint keys that cover the split.
    keys = [{key for batch in validation_batches(storage, config(), "tts", rank=rank, world_size=2) for key in batch.keys}
            for rank in range(2)]  # fmt: skip
    assert keys[0].isdisjoint(keys[1]) and len(keys[0] | keys[1]) == 6 and keys[0] and keys[1]


def _same(first, second) -> None:
    assert first.keys == second.keys and first.tasks == second.tasks
    assert torch.equal(first.latents, second.latents) and torch.equal(first.latent_mask, second.latent_mask)
    assert torch.equal(first.instruction_index, second.instruction_index)
    for modality in MODALITIES:
        mine, theirs = first.content.inputs(modality), second.content.inputs(modality)
        assert (mine is None) == (theirs is None)
        for item in fields(mine) if mine is not None else ():
            assert torch.equal(getattr(mine, item.name), getattr(theirs, item.name)), (modality, item.name)


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_stream_yields_exactly_the_uninterrupted_batches(storage: Storage, workers: int) -> None:
    settings = {"batch_size": 7, "batches_per_epoch": 5, "workers": workers}
    uninterrupted = take(TrainStream(storage, config(**settings)), 9)  # crosses the epoch boundary
    stopped = TrainStream(storage, config(**settings))
    take(stopped, 3)  # mid-epoch, mid-shard, odd batch count (worker rotation with 2 workers)
    state = stopped.state_dict()
    resumed = TrainStream(storage, config(**settings))
    resumed.load_state_dict(state)
    for expected, got in zip(uninterrupted[3:], take(resumed, 6), strict=True):
        _same(expected, got)
    assert resumed.epoch == 1 and sum(resumed.task_counts.values()) == 9 * 7
    # Fresh noise each step: a sample served twice gets two different draws of its posterior.
    draws: dict[str, list[torch.Tensor]] = {}
    for batch in uninterrupted:
        for row, key in enumerate(batch.keys):
            draws.setdefault(key, []).append(batch.latents[row, batch.latent_mask[row]])
    repeated = [found for found in draws.values() if len(found) > 1]
    assert repeated and all(not torch.equal(found[0], found[1]) for found in repeated)


def test_resume_decodes_only_the_samples_it_serves(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = TrainStream(storage, config(batch_size=5))
    take(stopped, 2)
    decoded: list[str] = []
    original = train_data.decode_feature_sample

    def counting(key, files, vocab):
        decoded.append(key)
        return original(key, files, vocab)

    monkeypatch.setattr(train_data, "decode_feature_sample", counting)
    resumed = TrainStream(storage, config(batch_size=5))
    resumed.load_state_dict(stopped.state_dict())
    (batch,) = take(resumed, 1)
    assert decoded == batch.keys  # the 10 samples before were passed over as raw tar members


def test_resume_refuses_a_changed_setting(storage: Storage) -> None:
    stream = TrainStream(storage, config())
    take(stream, 1)
    other = TrainStream(storage, config(batch_size=4))
    with pytest.raises(ValueError, match="batch_size: saved 10, now 4"):
        other.load_state_dict(stream.state_dict())


def test_missing_tasks_are_left_out_with_a_warning(tmp_path: Path, arrays, caplog: pytest.LogCaptureFixture) -> None:
    storage = make_storage(tmp_path)
    write_task_sets(storage, arrays, {"tts": 1, "t2m": 1})
    write_instructions(storage, ("tts", "t2m"))
    with caplog.at_level(logging.WARNING, logger="uniflow.train.data"):
        stream = TrainStream(storage, config())
    assert "svs, t2a, se, sr, v2a" in caplog.text and "left out" in caplog.text
    assert stream.cycle == ["tts", "t2m", "t2m", "t2m"] and stream.missing_tasks == ["svs", "t2a", "se", "sr", "v2a"]
    assert [batch.tasks for batch in take(stream, 1)] == [["tts", "t2m", "t2m", "t2m"] * 2 + ["tts", "t2m"]]


def test_plan_check_catches_a_rank_without_validation_data(storage: Storage, tmp_path: Path) -> None:
    assert check_data_plan(storage, config(workers=1), world_size=2).ok
    report = check_data_plan(storage, config(workers=2), world_size=2)  # 2 valid shards, 4 readers
    assert not report.ok and any("lower --workers to 1" in line for line in report.advice)
    assert any(line.startswith("svs/train") for line in report.warnings)  # 1 shard for 4 readers
    with pytest.raises(DataPlanError, match="no shard"):
        require_data_plan(storage, config(workers=2), world_size=2)
    empty = check_data_plan(make_storage(tmp_path), config(), world_size=1)
    assert not empty.ok and "no train feature shards for any task" in empty.problems[0]


def test_validation_uses_posterior_means_and_a_fixed_instruction(storage: Storage) -> None:
    batches = list(validation_batches(storage, config(batch_size=4), "se"))
    assert [len(batch) for batch in batches] == [4, 2] and {i for b in batches for i in b.instruction_index.tolist()} == {0}
    again = list(validation_batches(storage, config(batch_size=4), "se"))
    assert all(torch.equal(a.latents, b.latents) for a, b in zip(batches, again, strict=True))
    assert np.isfinite(batches[0].latents.numpy()).all()


def test_reads_what_the_feature_stage_writes(encoder: LatentEncoder, tmp_path: Path) -> None:
    """SE feature shards made by the real feature stage from real speech, read back as batches."""
    storage = make_storage(tmp_path)
    keys = [f"se/libritts/u{index}" for index in range(4)]
    (audio,) = write_set(storage, "se", "train", [[sample("se", key, speech(i, 0.4 + 0.1 * i)) for i, key in enumerate(keys)]])
    with one_torch_thread():
        record = extract_feature_shard(storage, "se", "train", audio, FeatureEncoders(vae=encoder))
    write_feature_ledger(feature_set(storage, "se", "train"), [record])
    write_instructions(storage, ("se",))
    (batch,) = take(TrainStream(storage, config(tasks=["se"], batch_size=4, shuffle_buffer=0)), 1)
    assert batch.keys == keys and batch.latent_mask.sum(dim=1).tolist() == [20, 25, 30, 35]
    assert batch.content.latents.mask.sum(dim=1).tolist() == [20, 25, 30, 35]
