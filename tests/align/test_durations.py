"""Phone intervals -> latent frame counts: exact sums, bounded boundary error, silence filling."""

import random

import pytest

from uniflow.align.alignment import Interval
from uniflow.align.durations import fill_silence, frames_from_seconds, latent_frames, phone_frame_counts


def test_latent_length_is_samples_floor_divided_by_hop() -> None:
    assert latent_frames(1.0) == 50
    assert latent_frames(2.0 - 1 / 24000) == 99  # one sample short of a full last hop
    assert latent_frames(0.019) == 0


def test_counts_sum_to_latent_length_and_round_boundaries() -> None:
    phones = [Interval("HH", 0.10, 0.17), Interval("AH0", 0.17, 0.23), Interval("L", 0.23, 0.31), Interval("OW1", 0.31, 0.52)]
    result = phone_frame_counts(phones, total_frames=30)
    assert result.phones == ["sil", "HH", "AH0", "L", "OW1", "sil"]
    # boundaries 0.10->5, 0.17->8.5->9 (halves up), 0.23->11.5->12, 0.31->15.5->16, 0.52->26, end 30
    assert result.frames == [5, 4, 3, 4, 10, 4]
    assert result.total == 30


def test_trailing_audio_beyond_alignment_is_silence_and_overrun_is_clamped() -> None:
    phones = [Interval("AA1", 0.0, 0.5), Interval("B", 0.5, 1.2)]
    result = phone_frame_counts(phones, total_frames=50)  # the alignment overruns the 1.0 s latent span
    assert result.phones == ["AA1", "B"] and result.frames == [25, 25]


def test_tiny_gaps_are_absorbed_and_silences_merge() -> None:
    phones = [Interval("sil", 0.0, 0.2), Interval("K", 0.3, 0.4), Interval("AE1", 0.402, 0.5), Interval("T", 0.5, 0.6)]
    filled = fill_silence(phones, 0.8)
    assert [p.label for p in filled] == ["sil", "K", "AE1", "T", "sil"]
    assert filled[0] == Interval("sil", 0.0, 0.3), "the labelled and the unlabelled silence merge"
    assert filled[1].end == 0.402


def test_random_alignments_keep_every_boundary_within_half_a_frame() -> None:
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.uniform(0, 4) for _ in range(rng.randint(1, 40)))
        phones = [Interval("AH0", a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b - a > 0.006]
        if not phones:
            continue
        total = latent_frames(4.0)
        result = phone_frame_counts(phones, total)
        assert result.total == total and min(result.frames) >= 0
        boundary, labelled = 0, iter(fill_silence(phones, total / 50))
        for count, interval in zip(result.frames, labelled, strict=False):
            boundary += count
            if boundary < total:
                assert abs(boundary / 50 - interval.end) <= 0.01 + 1e-9


def test_score_seconds_to_frames() -> None:
    assert frames_from_seconds([0.1, 0.25, 0.15], total_frames=25) == [5, 13, 7]
    with pytest.raises(ValueError):
        frames_from_seconds([0.1], total_frames=-1)
