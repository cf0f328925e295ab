"""The pre-launch plan check: every rank and worker gets a shard, or exact advice on what to change."""

from __future__ import annotations

import pytest

from uniflow.shards.plan_check import check_plan


def test_enough_shards_is_ok() -> None:
    report = check_plan(128, world_size=16, workers_per_rank=8)
    assert report.ok and report.readers == 128
    assert report.shards_per_rank == [8] * 16
    assert report.empty_ranks == report.empty_workers == 0
    assert report.problems == report.warnings == report.advice == []


def test_too_few_shards_gives_exact_advice() -> None:
    report = check_plan(76, world_size=16, workers_per_rank=8)
    assert not report.ok
    assert report.empty_ranks == 0
    # 12 ranks get 5 shards (3 idle workers each), 4 ranks get 4 (4 idle workers each).
    assert report.shards_per_rank == [5] * 12 + [4] * 4
    assert report.empty_workers == 12 * 3 + 4 * 4
    assert report.advice == [
        "76 shards for 16 ranks x 8 workers = 128 readers: lower --workers to 4, "
        "or reshard with a smaller --max-samples to get >= 128 shards"
    ]
    assert any("resampled training still runs" in line for line in report.warnings)


def test_sample_counts_give_the_max_samples_to_reshard_with() -> None:
    report = check_plan(76, world_size=16, workers_per_rank=8, samples_per_shard=[1000] * 76)
    # 76000 samples // 128 readers = 593 per shard -> 129 shards.
    assert report.advice == [
        "76 shards for 16 ranks x 8 workers = 128 readers: lower --workers to 4, "
        "or reshard with --max-samples 593 to get >= 128 shards"
    ]


def test_fewer_shards_than_ranks_asks_for_fewer_ranks() -> None:
    report = check_plan(3, world_size=4, workers_per_rank=2)
    assert not report.ok and report.empty_ranks == 1
    assert "lower --world-size to 3" in report.advice[0]
    assert "NOT OK" in report.text()


def test_uneven_evaluation_ranks_are_a_warning_not_a_failure() -> None:
    report = check_plan(4, world_size=2, workers_per_rank=2, samples_per_shard=[10, 10, 10, 3])
    assert report.ok
    assert report.samples_per_rank == [20, 13]
    assert report.warnings and "13..20" in report.warnings[0]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="samples_per_shard has 2 entries for 3 shards"):
        check_plan(3, 1, 1, samples_per_shard=[1, 2])
    with pytest.raises(ValueError):
        check_plan(3, 0, 1)
