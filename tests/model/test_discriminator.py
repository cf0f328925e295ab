"""The multi-scale STFT discriminator: one (logits, features) pair per resolution, shapes that follow the STFT."""

from __future__ import annotations

import pytest
import torch

from uniflow.model.discriminator import DiscriminatorConfig, MultiScaleStftDiscriminator


def test_tiny_discriminator_outputs_one_pair_per_resolution_with_stft_shapes() -> None:
    config = DiscriminatorConfig.tiny()
    discriminator = MultiScaleStftDiscriminator(config)
    audio = torch.randn(3, 1, 6000) * 0.1
    outputs = discriminator(audio)
    assert len(outputs) == len(config.fft_sizes) == 3
    for n_fft, (logits, features) in zip(config.fft_sizes, outputs, strict=True):
        frames, bins = 6000 // (n_fft // 4) + 1, n_fft // 2 + 1
        # The first conv keeps (frames, bins); each of the three dilated convs halves the bins (rounding up).
        for _ in config.dilations:
            bins = (bins + 1) // 2
        assert logits.shape == (3, 1, frames, bins)
        assert len(features) == 1 + len(config.dilations) + 1
        assert features[0].shape == (3, config.filters, frames, n_fft // 2 + 1)


def test_paper_discriminator_has_five_resolutions_and_gradients_reach_the_input() -> None:
    config = DiscriminatorConfig.paper()
    assert config.fft_sizes == (2048, 1024, 512, 256, 128) and config.filters == 64
    discriminator = MultiScaleStftDiscriminator(DiscriminatorConfig(fft_sizes=(256, 128), filters=4))
    audio = (torch.randn(1, 1, 2400) * 0.1).requires_grad_()
    sum(logits.mean() for logits, _ in discriminator(audio)).backward()
    assert audio.grad is not None and audio.grad.abs().sum() > 0


def test_discriminator_rejects_multichannel_audio_and_bad_configs() -> None:
    with pytest.raises(ValueError, match="mono audio"):
        MultiScaleStftDiscriminator(DiscriminatorConfig.tiny())(torch.zeros(1, 2, 4800))
    with pytest.raises(ValueError, match="odd"):
        DiscriminatorConfig(kernel_size=(3, 8))
