"""Instruction adapter and duration predictors: masking, gradient scaling, eq. 1 variants, paper-size counts."""

from __future__ import annotations

import pytest
import torch

from uniflow.model.adapter import AdapterConfig, CrossAttentionAdapter, scale_gradient

CONFIG = AdapterConfig.tiny()


def lengths_mask(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length) < torch.tensor(lengths)[:, None]


@pytest.fixture(scope="module")
def adapter() -> CrossAttentionAdapter:
    torch.manual_seed(0)
    return CrossAttentionAdapter(CONFIG).eval()


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    content_mask = lengths_mask([6, 4, 1], 6)
    content = torch.randn(3, 6, CONFIG.dim, generator=generator) * content_mask[..., None]
    instruction_mask = lengths_mask([5, 2, 3], 5)
    instruction = torch.randn(3, 5, CONFIG.instruction_dim, generator=generator)
    return content, content_mask, instruction, instruction_mask


def test_scale_gradient_is_identity_forward_and_scales_backward() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    y = scale_gradient(x, 0.1)
    assert torch.equal(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.1))


def test_outputs_have_content_shapes_and_zero_padding(adapter: CrossAttentionAdapter) -> None:
    content, content_mask, instruction, instruction_mask = inputs()
    with torch.no_grad():
        output = adapter(content, content_mask, instruction, instruction_mask)
    assert output.content.shape == (3, 6, CONFIG.dim)
    assert output.clip_log_duration.shape == (3,)
    assert output.sequence_log_duration.shape == (3, 6)
    assert torch.all(output.content[~content_mask] == 0)
    assert torch.all(output.sequence_log_duration[~content_mask] == 0)


def test_padding_of_content_and_instructions_changes_nothing(adapter: CrossAttentionAdapter) -> None:
    content, content_mask, instruction, instruction_mask = inputs()
    with torch.no_grad():
        reference = adapter(content, content_mask, instruction, instruction_mask)
        # Longer padding filled with large noise on both sides.
        wide_content = torch.randn(3, 9, CONFIG.dim) * 50
        wide_content[:, :6][content_mask] = content[content_mask]
        wide_content_mask = torch.nn.functional.pad(content_mask, (0, 3))
        wide_instruction = torch.randn(3, 8, CONFIG.instruction_dim) * 50
        wide_instruction[:, :5][instruction_mask] = instruction[instruction_mask]
        wide_instruction_mask = torch.nn.functional.pad(instruction_mask, (0, 3))
        padded = adapter(wide_content, wide_content_mask, wide_instruction, wide_instruction_mask)
    torch.testing.assert_close(padded.content[:, :6], reference.content, rtol=1e-5, atol=1e-5)
    assert torch.all(padded.content[:, 6:] == 0)
    torch.testing.assert_close(padded.clip_log_duration, reference.clip_log_duration, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded.sequence_log_duration[:, :6], reference.sequence_log_duration, rtol=1e-5, atol=1e-5)


def test_instruction_changes_the_content(adapter: CrossAttentionAdapter) -> None:
    content, content_mask, instruction, instruction_mask = inputs()
    with torch.no_grad():
        first = adapter(content, content_mask, instruction, instruction_mask).content
        second = adapter(content, content_mask, instruction.flip(0), instruction_mask.flip(0)).content
    assert not torch.allclose(first[0], second[0])


def test_duration_gradients_reach_the_content_at_lambda_strength() -> None:
    content, content_mask, instruction, instruction_mask = inputs()
    gradients = {}
    for scale in (1.0, 0.1):
        torch.manual_seed(1)
        adapter = CrossAttentionAdapter(CONFIG.model_copy(update={"gradient_scale": scale})).eval()
        leaf = content.clone().requires_grad_(True)
        output = adapter(leaf, content_mask, instruction, instruction_mask)
        (output.clip_log_duration.sum() + output.sequence_log_duration.sum()).backward()
        gradients[scale] = leaf.grad
    torch.testing.assert_close(gradients[0.1], gradients[1.0] * 0.1, rtol=1e-4, atol=1e-7)


def test_without_output_norm_the_adapter_is_eq_1_then_the_projection() -> None:
    torch.manual_seed(2)
    adapter = CrossAttentionAdapter(CONFIG.model_copy(update={"output_norm": False})).eval()
    content, content_mask, instruction, instruction_mask = inputs()
    with torch.no_grad():
        output = adapter(content, content_mask, instruction, instruction_mask).content
        attended = adapter.attention(content, instruction, instruction_mask)
        expected = adapter.output((attended + content) * content_mask[..., None]) * content_mask[..., None]
    torch.testing.assert_close(output, expected)


def test_a_sample_without_instruction_tokens_is_rejected(adapter: CrossAttentionAdapter) -> None:
    content, content_mask, instruction, instruction_mask = inputs()
    instruction_mask[1] = False
    with pytest.raises(ValueError, match="instruction token"):
        adapter(content, content_mask, instruction, instruction_mask)


def test_paper_adapter_has_the_authors_sizes() -> None:
    with torch.device("meta"):
        adapter = CrossAttentionAdapter(AdapterConfig.paper())

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(adapter.attention) == 4 * (1024 * 1024 + 1024)
    assert count(adapter.clip_predictor) == (1024 * 1024 + 1024) + (1024 + 1)
    # 5 x [conv k3 (1024 or 512 -> 512) + LayerNorm(512)] + Linear(512 -> 1)
    assert count(adapter.sequence_predictor) == (3 * 1024 * 512 + 512) + 4 * (3 * 512 * 512 + 512) + 5 * 1024 + 513
    assert count(adapter) == 11_027_458
