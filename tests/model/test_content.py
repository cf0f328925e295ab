"""Content encoders: shapes per task, mixed-task batches, padding invariance and the paper-size parameter counts."""

from __future__ import annotations

import pytest
import torch

from uniflow.model.content import (
    MODALITY_OF_TASK,
    ContentBatch,
    ContentConfig,
    ContentEncoder,
    ContentSample,
    collate_content,
)
from uniflow.model.tasks import TASKS

CONFIG = ContentConfig.tiny()


def make_sample(task: str, length: int, seed: int) -> ContentSample:
    """A random but valid content input of `length` tokens for `task` (tiny config sizes)."""
    generator = torch.Generator().manual_seed(seed)
    if task == "tts":
        return ContentSample(
            task,
            phones=torch.randint(1, CONFIG.phoneme.vocab_size, (length,), generator=generator),
            frames=torch.randint(0, 6, (length,), generator=generator),
            speaker=torch.randn(CONFIG.phoneme.speaker_dim, generator=generator),
        )
    if task == "svs":
        return ContentSample(
            task,
            phones=torch.randint(1, CONFIG.midi.phone_vocab_size, (length,), generator=generator),
            frames=torch.randint(1, 6, (length,), generator=generator),
            midi=torch.randint(0, 128, (length,), generator=generator),
            note_seconds=torch.rand(length, generator=generator),
            slur=torch.randint(0, 2, (length,), generator=generator),
            singer=seed % CONFIG.midi.num_singers,
        )
    dims = {"text": CONFIG.text_dim, "latents": CONFIG.latent_dim, "video": CONFIG.video_dim}
    return ContentSample(task, features=torch.randn(length, dims[MODALITY_OF_TASK[task]], generator=generator))


@pytest.fixture(scope="module")
def encoder() -> ContentEncoder:
    torch.manual_seed(0)
    return ContentEncoder(CONFIG).eval()


@pytest.mark.parametrize("task", TASKS)
def test_each_task_gives_padded_content_of_content_dim(encoder: ContentEncoder, task: str) -> None:
    batch = collate_content([make_sample(task, 5, 1), make_sample(task, 3, 2)])
    with torch.no_grad():
        content, mask = encoder(batch)
    assert content.shape == (2, 5, CONFIG.content_dim)
    assert mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert torch.all(content[1, 3:] == 0)
    assert content[0].abs().sum() > 0


def test_mixed_task_batch_equals_each_sample_encoded_alone(encoder: ContentEncoder) -> None:
    tasks = ["v2a", "tts", "t2a", "svs", "se", "t2m", "tts", "sr", "svs"]
    samples = [make_sample(task, 2 + index, 10 + index) for index, task in enumerate(tasks)]
    with torch.no_grad():
        content, mask = encoder(collate_content(samples))
        assert content.shape == (len(tasks), 2 + len(tasks) - 1, CONFIG.content_dim)
        for index, sample in enumerate(samples):
            alone, alone_mask = encoder(collate_content([sample]))
            length = alone.shape[1]
            assert length == 2 + index
            assert mask[index].sum() == length
            torch.testing.assert_close(content[index, :length], alone[0], rtol=1e-5, atol=1e-5)
            assert torch.all(content[index, length:] == 0)


def test_padding_content_changes_nothing(encoder: ContentEncoder) -> None:
    tasks = ["tts", "tts", "svs", "svs", "t2a", "t2m", "se", "sr", "v2a", "v2a"]
    samples = [make_sample(task, 3 if index % 2 else 6, 30 + index) for index, task in enumerate(tasks)]
    batch = collate_content(samples)
    with torch.no_grad():
        reference, _ = encoder(batch)
    # Scribble over every padded position of every sub-batch: ids, notes, slurs, features.
    generator = torch.Generator().manual_seed(99)
    for sub_batch, names in (
        (batch.phones, ("ids",)),
        (batch.score, ("phones", "midi", "slur", "note_seconds")),
        (batch.text, ("features",)),
        (batch.latents, ("features",)),
        (batch.video, ("features",)),
    ):
        padding = ~sub_batch.mask
        for name in names:
            tensor = getattr(sub_batch, name)
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=generator) * 100
            else:
                noise = torch.randint(0, 2, tensor.shape, generator=generator)
            where = padding if tensor.dim() == 2 else padding[..., None]
            setattr(sub_batch, name, torch.where(where, noise.to(tensor.dtype), tensor))
    with torch.no_grad():
        scribbled, _ = encoder(batch)
    torch.testing.assert_close(scribbled, reference, rtol=0, atol=1e-6)


def test_speaker_and_singer_change_the_content(encoder: ContentEncoder) -> None:
    tts = make_sample("tts", 4, 5)
    other_speaker = ContentSample("tts", phones=tts.phones, speaker=torch.randn(CONFIG.phoneme.speaker_dim))
    svs = make_sample("svs", 4, 1)
    other_singer = ContentSample("svs", phones=svs.phones, midi=svs.midi, note_seconds=svs.note_seconds, slur=svs.slur, singer=2)
    with torch.no_grad():
        content, _ = encoder(collate_content([tts, other_speaker, svs, other_singer]))
    assert not torch.allclose(content[0], content[1])
    assert not torch.allclose(content[2], content[3])


def test_video_features_are_l2_normalised_before_projection(encoder: ContentEncoder) -> None:
    sample = make_sample("v2a", 4, 3)
    louder = ContentSample("v2a", features=sample.features * 7.5)
    with torch.no_grad():
        content, _ = encoder(collate_content([sample, louder]))
    torch.testing.assert_close(content[0], content[1])


def test_text_without_projection_passes_t5_states_through() -> None:
    config = ContentConfig.tiny(content_dim=16, text_dim=16)
    assert not config.text_projection
    features = torch.randn(5, 16)
    content, _ = ContentEncoder(config)(collate_content([ContentSample("t2m", features=features)]))
    torch.testing.assert_close(content[0], features)
    with pytest.raises(ValueError, match="text_dim"):
        ContentConfig(text_dim=768)


def test_missing_inputs_are_reported() -> None:
    with pytest.raises(ValueError, match="tts sample lacks speaker"):
        collate_content([ContentSample("tts", phones=torch.tensor([1, 2]))])
    with pytest.raises(ValueError, match="unknown task"):
        collate_content([ContentSample("asr", features=torch.randn(2, 4))])
    with pytest.raises(ValueError, match="1 text samples but 0"):
        ContentEncoder(CONFIG)(ContentBatch(("t2a",)))


def test_paper_content_encoders_have_the_authors_sizes() -> None:
    with torch.device("meta"):
        encoder = ContentEncoder(ContentConfig.paper())
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in encoder.encoders.items()}
    # 4 FFT layers of 512 (attention 1.05M + conv k9 to 2048 9.44M + Linear back 1.05M) dominate both encoders.
    assert counts == {
        "phones": 46_858_752,
        "score": 46_800_384,
        "text": 0,
        "latents": 128 * 1024 + 1024,
        "video": 1024 * 1024 + 1024,
    }
