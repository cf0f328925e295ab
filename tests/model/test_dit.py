"""The dual-fusion DiT backbone: paper-size parameter counts, shapes, variants, masking and initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from uniflow.model.dit import DitConfig, DualFusionDit

# Trainable parameters of the whole model minus the backbone, from the authors' structure (research notes:
# 206.6M / 393.4M / 845.5M in all): content encoders, adapter and duration predictors do not depend on width.
NON_BACKBONE_PARAMETERS = 105.9e6
PAPER_TOTALS = {"small": 208e6, "medium": 395e6, "large": 847e6}


def authors_backbone_count(depth: int, dim: int, heads: int, content: int = 1024, latent: int = 128) -> int:
    """Parameter count of the authors' U-DiT written out layer by layer, independently of the module code."""
    head_dim = dim // heads
    self_attention = 2 * dim + 3 * dim * dim + 4 * head_dim + dim * dim + dim
    ta_addition = 2 * content + content * dim
    cross_attention = 2 * dim + 2 * dim + dim * dim + 2 * dim * dim + 4 * head_dim + dim * dim + dim
    feed_forward = 2 * dim + dim * 8 * dim + 8 * dim + 4 * dim * dim + dim
    adaln = dim * 6 * dim + 6 * dim
    block = self_attention + ta_addition + cross_attention + feed_forward + adaln
    long_skip = 4 * dim + 2 * dim * dim + dim
    shared = (
        (latent * dim + dim)  # input projection
        + (256 * dim + dim + dim * dim + dim)  # timestep MLP
        + (content * dim + dim + dim * dim + dim)  # context MLP
        + (2 * dim * dim + 2 * dim + 2 * dim)  # final AdaLN and LayerNorm
        + (dim * latent + latent + latent * latent * 3 + latent)  # output projection and k=3 conv
    )
    return (2 * (depth // 2) + 1) * block + (depth // 2) * long_skip + shared


@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_paper_sizes_match_the_authors_structure_and_table_8(size: str) -> None:
    config = getattr(DitConfig, size)()
    with torch.device("meta"):
        backbone = DualFusionDit(config)
    count = backbone.num_trainable_parameters()
    assert count == authors_backbone_count(config.depth, config.dim, config.heads)
    assert abs(count + NON_BACKBONE_PARAMETERS - PAPER_TOTALS[size]) / PAPER_TOTALS[size] < 0.02


def test_presets_follow_table_8() -> None:
    sizes = [(c.depth, c.dim, c.heads) for c in (DitConfig.small(), DitConfig.medium(), DitConfig.large())]
    assert sizes == [(12, 512, 8), (16, 768, 12), (24, 1024, 16)]
    assert DitConfig.small().num_blocks == 13 and DitConfig.small(skip_layout="plain").num_blocks == 12


def _inputs(config: DitConfig, batch: int = 3, length: int = 11, tokens: int = 5, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    latent_mask = torch.ones(batch, length, dtype=torch.bool)
    latent_mask[1, 7:] = False
    context_mask = torch.ones(batch, tokens, dtype=torch.bool)
    context_mask[0, 2:] = False
    return {
        "x": torch.randn(batch, length, config.latent_dim, generator=generator),
        "sigma": torch.rand(batch, generator=generator),
        "latent_mask": latent_mask,
        "ta_content": torch.randn(batch, length, config.content_dim, generator=generator),
        "context": torch.randn(batch, tokens, config.content_dim, generator=generator),
        "context_mask": context_mask,
    }


def _randomise(model: DualFusionDit, seed: int = 1) -> DualFusionDit:
    """Zero-initialised layers hide the time and context paths; give every parameter a random value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


@pytest.mark.parametrize("fusion", ["dual", "double", "cross_attention_only", "input"])
@pytest.mark.parametrize("layout", ["u", "plain"])
def test_every_variant_maps_latents_to_velocities_of_the_same_shape(fusion: str, layout: str) -> None:
    config = DitConfig.tiny(fusion=fusion, skip_layout=layout)
    model = _randomise(DualFusionDit(config))
    inputs = _inputs(config)
    if fusion == "cross_attention_only":
        inputs["ta_content"] = None
    velocity = model(**inputs)
    assert velocity.shape == inputs["x"].shape
    assert torch.isfinite(velocity).all()
    assert (velocity[1, 7:] == 0).all()


def test_padding_content_changes_nothing_at_valid_positions() -> None:
    config = DitConfig.tiny()
    model = _randomise(DualFusionDit(config))
    inputs = _inputs(config)
    with torch.no_grad():
        reference = model(**inputs)
        noisy = dict(inputs)
        noisy["x"] = inputs["x"].clone()
        noisy["x"][1, 7:] = 100.0
        noisy["ta_content"] = inputs["ta_content"].clone()
        noisy["ta_content"][1, 7:] = -50.0
        noisy["context"] = inputs["context"].clone()
        noisy["context"][0, 2:] = 30.0
        changed = model(**noisy)
        # The padded sample alone, unpadded, gives the same velocities as inside the padded batch.
        alone = model(
            inputs["x"][1:2, :7],
            inputs["sigma"][1:2],
            None,
            inputs["ta_content"][1:2, :7],
            inputs["context"][1:2],
            None,
        )
    assert torch.allclose(changed, reference, atol=1e-5)
    assert torch.allclose(alone[0], reference[1, :7], atol=1e-5)


def test_valid_content_does_change_the_output() -> None:
    """The invariance above is not vacuous: TA content, context and time all reach valid positions."""
    config = DitConfig.tiny()
    model = _randomise(DualFusionDit(config))
    inputs = _inputs(config)
    with torch.no_grad():
        reference = model(**inputs)
        for name in ("ta_content", "context", "sigma"):
            changed = dict(inputs)
            # A random change: a constant shift would vanish in the LayerNorm in front of each projection.
            changed[name] = inputs[name] + torch.randn_like(inputs[name]) if name != "sigma" else 1.0 - inputs[name]
            assert not torch.allclose(model(**changed)[0, :5], reference[0, :5], atol=1e-4), name


def test_cross_attention_only_ignores_ta_content_and_input_fusion_uses_it_once() -> None:
    assert not hasattr(DualFusionDit(DitConfig.tiny(fusion="cross_attention_only")).blocks()[0], "ta_proj")
    model = DualFusionDit(DitConfig.tiny(fusion="input"))
    assert hasattr(model, "input_ta_proj") and not hasattr(model.blocks()[0], "ta_proj")
    with pytest.raises(ValueError, match="needs ta_content"):
        model(**{**_inputs(model.config), "ta_content": None})


def test_dummies_are_only_for_dual_fusion() -> None:
    flags = {fusion: DitConfig.tiny(fusion=fusion).uses_dummies for fusion in ("dual", "double", "input")}
    assert flags == {"dual": True, "double": False, "input": False}


def test_fused_time_aligned_projection_equals_layernorm_then_linear_per_block() -> None:
    config = DitConfig.tiny()
    model = _randomise(DualFusionDit(config))
    content = torch.randn(2, 6, config.content_dim)
    fused = model.time_aligned_terms(content)
    for block, term in zip(model.blocks(), fused, strict=True):
        assert torch.allclose(term, block.ta_proj(block.ta_norm(content)), atol=1e-5)


def test_zero_initialised_layers_hide_context_and_time_at_start() -> None:
    """AdaLN and cross-attention outputs start at zero: a fresh model ignores context and flow time."""
    config = DitConfig.tiny()
    model = DualFusionDit(config).eval()
    inputs = _inputs(config)
    with torch.no_grad():
        reference = model(**inputs)
        other = model(**{**inputs, "context": torch.randn_like(inputs["context"]), "sigma": 1 - inputs["sigma"]})
    assert torch.allclose(reference, other, atol=1e-6)


def test_gating_variants_differ_only_in_the_feed_forward_gate() -> None:
    paper = _randomise(DualFusionDit(DitConfig.tiny()))
    authors = DualFusionDit(DitConfig.tiny(gating="authors")).eval()
    authors.load_state_dict(paper.state_dict())
    inputs = _inputs(paper.config)
    with torch.no_grad():
        assert not torch.allclose(paper(**inputs), authors(**inputs), atol=1e-4)
        for model in (paper, authors):
            for block in model.blocks():
                # With a zero FF gate input both give tanh(1) vs 1: scale FF output to zero to make them agree.
                block.ff.proj_out.weight.zero_()
                block.ff.proj_out.bias.zero_()
        assert torch.allclose(paper(**inputs), authors(**inputs), atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = _randomise(DualFusionDit(DitConfig.tiny())).train()
    checkpointed = DualFusionDit(DitConfig.tiny(gradient_checkpointing=True)).train()
    checkpointed.load_state_dict(plain.state_dict())
    inputs = _inputs(plain.config)
    for model in (plain, checkpointed):
        F.mse_loss(model(**inputs), torch.zeros_like(inputs["x"])).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_a_sample_without_any_context_token_is_rejected() -> None:
    config = DitConfig.tiny()
    inputs = _inputs(config)
    inputs["context_mask"][2] = False
    with pytest.raises(ValueError, match="at least one valid context token"):
        DualFusionDit(config)(**inputs)
