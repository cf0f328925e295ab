"""Durations: the length regulator (eq. 2), per-task frame counts, log-domain targets and masked losses (eq. 9)."""

from __future__ import annotations

import math

import pytest
import torch

from uniflow.model.content import ContentConfig, ContentSample, collate_content
from uniflow.model.durations import (
    DurationConfig,
    clip_targets,
    duration_losses,
    frames_from_log,
    inference_token_frames,
    length_regulate,
    output_lengths,
    sequence_targets,
    target_token_frames,
)
from uniflow.model.tasks import time_aligned_mask

PAPER = DurationConfig.paper()
AUTHORS = DurationConfig.authors()
TINY = ContentConfig.tiny()


def token_content(batch: int, tokens: int, dim: int = 3) -> torch.Tensor:
    """Content whose every value names its token (token i holds i + 1), so expansions are readable."""
    return (torch.arange(tokens, dtype=torch.float32) + 1)[None, :, None].expand(batch, tokens, dim).clone()


def test_frames_that_sum_to_the_latent_length_expand_exactly() -> None:
    frames = torch.tensor([[2, 0, 3, 1], [1, 1, 0, 0]])
    expanded, mask = length_regulate(token_content(2, 4), frames, torch.tensor([6, 2]))
    assert expanded.shape == (2, 6, 3)
    assert expanded[0, :, 0].tolist() == [1, 1, 3, 3, 3, 4]
    assert expanded[1, :, 0].tolist() == [1, 2, 0, 0, 0, 0]
    assert mask.tolist() == [[True] * 6, [True] * 2 + [False] * 4]


def test_expansion_is_trimmed_or_padded_to_the_latent_length() -> None:
    frames = torch.tensor([[3, 3], [1, 1]])
    expanded, mask = length_regulate(token_content(2, 2), frames, torch.tensor([4, 5]), max_length=7)
    assert expanded[0, :, 0].tolist() == [1, 1, 1, 2, 0, 0, 0]  # 6 frames trimmed to 4
    assert expanded[1, :, 0].tolist() == [1, 2, 0, 0, 0, 0, 0]  # 2 frames padded to 5 with zeros
    assert mask.sum(dim=1).tolist() == [4, 5]


def test_length_regulator_passes_gradients_to_every_expanded_token() -> None:
    content = torch.randn(1, 3, 2, requires_grad=True)
    expanded, _ = length_regulate(content, torch.tensor([[2, 1, 4]]), torch.tensor([7]))
    expanded.sum().backward()
    assert content.grad[0, :, 0].tolist() == [2, 1, 4]


def mixed_batch():
    tts_frames = torch.tensor([3, 0, 5, 2])
    samples = [
        ContentSample("tts", phones=torch.tensor([4, 9, 10, 1]), frames=tts_frames, speaker=torch.randn(8)),
        ContentSample("se", features=torch.randn(7, TINY.latent_dim)),
        ContentSample("v2a", features=torch.randn(3, TINY.video_dim)),
        ContentSample("t2a", features=torch.randn(5, TINY.text_dim)),
        ContentSample(
            "svs",
            phones=torch.tensor([1, 2]),
            frames=torch.tensor([4, 6]),
            midi=torch.tensor([60, 0]),
            note_seconds=torch.tensor([0.2, 0.1]),
            slur=torch.tensor([0, 1]),
            singer=1,
        ),
        ContentSample("sr", features=torch.randn(2, TINY.latent_dim)),
    ]
    batch = collate_content(samples)
    lengths = [4, 7, 3, 5, 2, 2]
    content_mask = torch.arange(7) < torch.tensor(lengths)[:, None]
    return batch, content_mask


def test_training_frames_per_task() -> None:
    batch, content_mask = mixed_batch()
    frames = target_token_frames(batch, content_mask, PAPER)
    assert frames.tolist() == [
        [3, 0, 5, 2, 0, 0, 0],  # tts: the aligner's frames
        [1] * 7,  # se: one latent per input latent
        [5, 5, 5, 0, 0, 0, 0],  # v2a: 50 Hz latents / 10 fps video
        [1] * 5 + [0, 0],  # t2a: the dummy on every token
        [4, 6, 0, 0, 0, 0, 0],  # svs: the score's frames
        [1, 1, 0, 0, 0, 0, 0],  # sr
    ]
    authors = target_token_frames(batch, content_mask, AUTHORS)
    assert authors[3].tolist() == [50, 0, 0, 0, 0, 0, 0]  # the authors' dummy: 1.0 s on the first token


def test_fixed_expansions_follow_the_input_frames() -> None:
    batch, content_mask = mixed_batch()
    frames = target_token_frames(batch, content_mask, PAPER)
    content = token_content(6, 7)
    # SE: the target has the input's latent length, and latent t carries input latent t.
    expanded, _ = length_regulate(content[1:2], frames[1:2], torch.tensor([7]))
    assert expanded[0, :, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    # V2A: 3 video frames at 10 fps = 0.3 s = 15 latents, each frame 5 times.
    expanded, _ = length_regulate(content[2:3], frames[2:3], torch.tensor([15]))
    assert expanded[0, :, 0].tolist() == [1] * 5 + [2] * 5 + [3] * 5


def test_ground_truth_frames_are_required_for_training() -> None:
    batch = collate_content([ContentSample("tts", phones=torch.tensor([4, 5]), speaker=torch.randn(8))])
    with pytest.raises(ValueError, match="ground-truth frames"):
        target_token_frames(batch, torch.ones(1, 2, dtype=torch.bool), PAPER)


@pytest.mark.parametrize("config", [PAPER, AUTHORS], ids=["paper", "authors"])
def test_log_targets_invert_to_the_same_frames(config: DurationConfig) -> None:
    frames = torch.tensor([[0, 1, 2, 7, 40, 0]])
    mask = torch.tensor([[True] * 5 + [False]])
    assert torch.equal(frames_from_log(sequence_targets(frames, config), mask, config), frames)


def test_sequence_units_are_latent_frames_in_the_paper_and_5_ms_in_the_authors_code() -> None:
    frames = torch.tensor([0, 1, 3])
    torch.testing.assert_close(sequence_targets(frames, PAPER), torch.log(torch.tensor([1.0, 2.0, 4.0])))
    torch.testing.assert_close(sequence_targets(frames, AUTHORS), torch.log(torch.tensor([1.0, 5.0, 13.0])))
    torch.testing.assert_close(clip_targets(torch.tensor([50, 125]), PAPER), torch.log(torch.tensor([2.0, 3.5])))


def test_inference_predicts_aligned_tasks_and_keeps_fixed_ones() -> None:
    batch, content_mask = mixed_batch()
    predicted = sequence_targets(torch.full((6, 7), 2), PAPER)  # every token "2 frames"
    paper = inference_token_frames(batch, content_mask, predicted, PAPER)
    assert paper[0].tolist() == [2, 2, 2, 2, 0, 0, 0]  # tts predicted
    assert paper[1].tolist() == [1] * 7  # se fixed
    assert paper[2].tolist() == [5, 5, 5, 0, 0, 0, 0]  # v2a fixed
    predicted_authors = sequence_targets(torch.full((6, 7), 2), AUTHORS)
    authors = inference_token_frames(batch, content_mask, predicted_authors, AUTHORS)
    assert authors[1].tolist() == [2] * 7  # the authors' code predicts se durations too

    clip = clip_targets(torch.full((6,), 100), PAPER)  # 2 s
    lengths = output_lengths(paper, clip, time_aligned_mask(batch.tasks), PAPER)
    assert lengths.tolist() == [8, 7, 15, 100, 4, 2]  # TA: sum of frames; t2a: 2 s * 50
    by_clip = output_lengths(paper, clip, time_aligned_mask(batch.tasks), PAPER.model_copy(update={"ta_length": "clip"}))
    assert by_clip.tolist() == [100] * 6


def test_losses_count_only_the_tokens_and_samples_they_apply_to() -> None:
    # Sample 0 is TA with 2 valid tokens, sample 1 is NTA; sequence targets are log(frames + 1).
    frames = torch.tensor([[1, 3, 0], [1, 1, 1]])
    content_mask = torch.tensor([[True, True, False], [True, True, True]])
    time_aligned = torch.tensor([True, False])
    latent_lengths = torch.tensor([50, 100])
    sequence = torch.tensor([[math.log(2) + 0.5, math.log(4) - 0.25, 9.0], [7.0, 7.0, 7.0]], requires_grad=True)
    clip = torch.tensor([math.log(2) + 0.1, math.log(3) - 0.3], requires_grad=True)
    losses = duration_losses(clip, sequence, latent_lengths, frames, content_mask, time_aligned, PAPER)
    assert losses.sequence.item() == pytest.approx((0.5**2 + 0.25**2) / 2)
    assert losses.clip.item() == pytest.approx((0.1**2 + 0.3**2) / 2)
    assert losses.sequence_per_sample.tolist() == pytest.approx([(0.5**2 + 0.25**2) / 2, 0.0])
    (losses.sequence + losses.clip).backward()
    # Padded tokens and the NTA sample's tokens get no gradient from the sequence loss.
    assert sequence.grad[0, 2] == 0 and torch.all(sequence.grad[1] == 0)

    only_second = duration_losses(
        clip, sequence, latent_lengths, frames, content_mask, time_aligned, PAPER, clip_mask=torch.tensor([False, True])
    )
    assert only_second.clip.item() == pytest.approx(0.3**2)


def test_a_batch_without_time_aligned_samples_has_a_zero_sequence_loss_that_keeps_its_graph() -> None:
    sequence = torch.randn(2, 4, requires_grad=True)
    losses = duration_losses(
        torch.zeros(2, requires_grad=True),
        sequence,
        torch.tensor([10, 20]),
        torch.ones(2, 4, dtype=torch.long),
        torch.ones(2, 4, dtype=torch.bool),
        torch.tensor([False, False]),
        PAPER,
    )
    assert losses.sequence.item() == 0.0
    losses.sequence.backward()
    assert sequence.grad is not None and torch.all(sequence.grad == 0)


def test_video_rate_must_divide_the_latent_rate() -> None:
    assert DurationConfig(video_fps=25).latents_per_video_frame == 2
    with pytest.raises(ValueError, match="whole number"):
        DurationConfig(video_fps=8)
