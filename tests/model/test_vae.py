"""The waveform VAE: latent rate, shapes, posterior, save/load and gradients (tiny config, CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from uniflow.model.pretrained import PretrainedLoadError
from uniflow.model.vae import UniflowVae, VaeConfig, kl_loss


@pytest.fixture(scope="module")
def tiny_vae() -> UniflowVae:
    torch.manual_seed(0)
    return UniflowVae(VaeConfig.tiny()).eval()


def test_presets_keep_the_paper_ratio() -> None:
    for config in (VaeConfig.paper(), VaeConfig.tiny()):
        assert config.downsampling_ratio == 480
        assert config.frame_rate == 50.0
    paper = VaeConfig.paper()
    assert (paper.channels, paper.c_mults, paper.strides, paper.latent_dim) == (128, (1, 2, 4, 8), (2, 4, 6, 10), 128)


@pytest.mark.parametrize("length", [480, 481, 959, 24000, 24000 + 123, 7 * 480 + 479])
def test_latent_length_is_length_floor_480(tiny_vae: UniflowVae, length: int) -> None:
    with torch.no_grad():
        latents, mean, std = tiny_vae.encode(torch.randn(2, 1, length), sample=True)
    expected = (2, tiny_vae.config.latent_dim, length // 480)
    assert latents.shape == mean.shape == std.shape == expected


def test_one_second_gives_fifty_frames_and_decodes_back_to_frames_times_480(tiny_vae: UniflowVae) -> None:
    with torch.no_grad():
        latents, _, _ = tiny_vae.encode(torch.randn(1, 1, 24000), sample=False)
        audio = tiny_vae.decode(latents)
        odd = tiny_vae.decode(torch.randn(1, tiny_vae.config.latent_dim, 7))
    assert latents.shape == (1, tiny_vae.config.latent_dim, 50)
    assert audio.shape == (1, 1, 50 * 480)
    assert odd.shape == (1, 1, 7 * 480)


def test_too_short_audio_and_wrong_latent_width_are_rejected(tiny_vae: UniflowVae) -> None:
    with pytest.raises(ValueError, match="shorter than one latent frame"):
        tiny_vae.encode(torch.randn(1, 1, 479))
    with pytest.raises(ValueError, match="expected latents"):
        tiny_vae.decode(torch.randn(1, tiny_vae.config.latent_dim + 1, 4))


def test_mean_encoding_is_deterministic_and_sampling_is_not(tiny_vae: UniflowVae) -> None:
    audio = torch.randn(1, 1, 4800)
    with torch.no_grad():
        first, mean, std = tiny_vae.encode(audio, sample=False)
        second, _, _ = tiny_vae.encode(audio, sample=False)
        sampled_a, _, _ = tiny_vae.encode(audio, sample=True)
        sampled_b, _, _ = tiny_vae.encode(audio, sample=True)
    assert torch.equal(first, second)
    assert torch.equal(first, mean)
    assert not torch.equal(sampled_a, sampled_b)
    # softplus(scale) + 1e-4 keeps the posterior strictly positive.
    assert bool((std > 1e-4).all())
    # A sample stays within a few standard deviations of the mean.
    assert float(((sampled_a - mean) / std).abs().max()) < 8.0


def test_kl_is_zero_for_the_prior_and_positive_otherwise() -> None:
    zeros, ones = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    assert float(kl_loss(zeros, ones)) == pytest.approx(0.0, abs=1e-7)
    # Closed form per channel: 0.5 * (mean^2 + var - log var - 1), summed over the 4 channels.
    assert float(kl_loss(zeros + 1.0, ones)) == pytest.approx(4 * 0.5, rel=1e-6)
    assert float(kl_loss(zeros, ones * 2.0)) == pytest.approx(4 * 0.5 * (4.0 - math.log(4.0) - 1.0), rel=1e-6)


def test_save_and_load_round_trip_gives_identical_outputs(tiny_vae: UniflowVae, tmp_path: Path) -> None:
    tiny_vae.save_pretrained(tmp_path / "vae")
    assert json.loads((tmp_path / "vae" / "config.json").read_text())["channels"] == 8
    loaded = UniflowVae.from_pretrained(tmp_path / "vae").eval()
    assert loaded.config == tiny_vae.config
    audio = torch.randn(1, 1, 4800 + 17)
    with torch.no_grad():
        original, _, _ = tiny_vae.encode(audio, sample=False)
        restored, _, _ = loaded.encode(audio, sample=False)
        assert torch.equal(original, restored)
        assert torch.equal(tiny_vae.decode(original), loaded.decode(restored))


def test_from_pretrained_names_the_missing_file(tmp_path: Path, tiny_vae: UniflowVae) -> None:
    with pytest.raises(PretrainedLoadError, match=r"nowhere[/\\]config\.json: file not found"):
        UniflowVae.from_pretrained(tmp_path / "nowhere")
    tiny_vae.save_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "model.safetensors").unlink()
    with pytest.raises(PretrainedLoadError, match=r"model\.safetensors: file not found"):
        UniflowVae.from_pretrained(tmp_path / "vae")


def test_from_pretrained_rejects_weights_of_another_config(tmp_path: Path, tiny_vae: UniflowVae) -> None:
    tiny_vae.save_pretrained(tmp_path / "vae")
    # Claim a wider model than the weights were saved from.
    config_path = tmp_path / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config["channels"] = 16
    config_path.write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match=r"model\.safetensors: weights do not match config\.json: .*shape"):
        UniflowVae.from_pretrained(tmp_path / "vae")


def test_from_pretrained_rejects_an_invalid_config(tmp_path: Path, tiny_vae: UniflowVae) -> None:
    tiny_vae.save_pretrained(tmp_path / "vae")
    config_path = tmp_path / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config["strides"] = [2, 4]
    config_path.write_text(json.dumps(config))
    with pytest.raises(PretrainedLoadError, match=r"config\.json"):
        UniflowVae.from_pretrained(tmp_path / "vae")


def test_paper_config_parameter_count() -> None:
    count = UniflowVae(VaeConfig.paper()).num_parameters()
    print(f"paper VAE parameters: {count:,}")
    # 43.85M by construction; the same block structure at the Stable Audio Open sizes gives its published 156M.
    assert 40_000_000 < count < 48_000_000


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    vae = UniflowVae(VaeConfig.tiny()).train()
    audio = torch.randn(2, 1, 960)
    reconstruction, mean, std = vae(audio, sample=True)
    loss = (reconstruction - audio).pow(2).mean() + 1e-4 * kl_loss(mean, std)
    loss.backward()
    missing = [name for name, parameter in vae.named_parameters() if parameter.grad is None]
    assert not missing
    assert all(torch.isfinite(parameter.grad).all() for parameter in vae.parameters())
