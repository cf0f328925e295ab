"""The whole model: paper sizes, losses, where dummies go, padding, CFG, shapes, save/load, and overfitting real shards."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from support import one_torch_thread
from uniflow.infer.sampler import EulerSampler
from uniflow.model.content import ContentSample, collate_content
from uniflow.model.pretrained import PretrainedLoadError
from uniflow.model.tasks import TASKS, TIME_ALIGNED_TASKS
from uniflow.model.uniflow_audio import UniflowAudio, UniflowAudioConfig
from uniflow.train.data import TrainBatch

PAPER_TOTALS = {"small": 208e6, "medium": 395e6, "large": 847e6}
INSTRUCTION_DIM = 16


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


# -- helpers ------------------------------------------------------------------------------------------------
def _content_sample(task: str, config: UniflowAudioConfig, frames: int, tokens: int, rng: torch.Generator) -> ContentSample:
    """A content input of `task` whose expansion covers `frames` latents (TTS/SVS: `tokens` phones)."""
    content = config.content
    if task in ("tts", "svs"):
        counts = torch.full((tokens,), frames // tokens)
        counts[-1] += frames - int(counts.sum())
        if task == "tts":
            ids = torch.randint(1, content.phoneme.vocab_size, (tokens,), generator=rng)
            speaker = torch.randn(content.phoneme.speaker_dim, generator=rng)
            return ContentSample(task, phones=ids, frames=counts, speaker=speaker)
        return ContentSample(
            task,
            phones=torch.randint(1, content.midi.phone_vocab_size, (tokens,), generator=rng),
            frames=counts,
            midi=torch.randint(40, 80, (tokens,), generator=rng),
            note_seconds=torch.rand(tokens, generator=rng),
            slur=torch.randint(0, 2, (tokens,), generator=rng),
            singer=int(torch.randint(0, content.midi.num_singers, (1,), generator=rng)),
        )
    if task in ("t2a", "t2m"):
        return ContentSample(task, features=torch.randn(tokens, content.text_dim, generator=rng))
    if task in ("se", "sr"):
        return ContentSample(task, features=torch.randn(frames, content.latent_dim, generator=rng))
    return ContentSample(task, features=torch.randn(frames // 5, content.video_dim, generator=rng))


def make_batch(config: UniflowAudioConfig, tasks: list[str], seed: int = 0) -> TrainBatch:
    """A mixed-task batch; consecutive samples differ in length so every modality has padding."""
    rng = torch.Generator().manual_seed(seed)
    samples, latents = [], []
    for index, task in enumerate(tasks):
        frames = 20 + 5 * (index % 3)
        samples.append(_content_sample(task, config, frames, 4 + index % 3, rng))
        latents.append(torch.randn(frames, config.latent_dim, generator=rng))
    padded = torch.nn.utils.rnn.pad_sequence(latents, batch_first=True)
    lengths = torch.tensor([len(item) for item in latents])
    instruction_lengths = torch.tensor([3 + index % 3 for index in range(len(tasks))])
    instruction_mask = torch.arange(int(instruction_lengths.max())) < instruction_lengths[:, None]
    instruction = torch.randn(len(tasks), instruction_mask.shape[1], INSTRUCTION_DIM, generator=rng) * instruction_mask[..., None]
    return TrainBatch(
        latents=padded,
        latent_mask=torch.arange(padded.shape[1]) < lengths[:, None],
        content=collate_content(samples),
        instruction=instruction,
        instruction_mask=instruction_mask,
        instruction_index=torch.zeros(len(tasks), dtype=torch.long),
        tasks=list(tasks),
        keys=[f"{task}/{index}" for index, task in enumerate(tasks)],
    )


def tiny_model(fusion: str = "dual", seed: int = 0) -> UniflowAudio:
    """A tiny model with every parameter perturbed: zero-initialised layers (AdaLN, cross-attention outputs,
    dummies) would otherwise hide whether a stream reaches the output at all."""
    torch.manual_seed(seed)
    model = UniflowAudio(UniflowAudioConfig.tiny(fusion=fusion))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def backbone_inputs(model: UniflowAudio) -> list[tuple]:
    """Record the positional inputs of every backbone call (x, sigma, latent_mask, ta_content, context, context_mask)."""
    calls: list[tuple] = []
    model.backbone.register_forward_pre_hook(lambda module, args: calls.append(tuple(args)))
    return calls


def run_loss(model: UniflowAudio, batch: TrainBatch, seed: int = 0):
    return model(batch, generator=torch.Generator().manual_seed(seed))


# -- sizes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_paper_presets_have_table_8_trainable_parameters(size: str) -> None:
    with torch.device("meta"):
        model = UniflowAudio(UniflowAudioConfig.preset(size))
    count = model.num_trainable_parameters()
    assert abs(count - PAPER_TOTALS[size]) / PAPER_TOTALS[size] < 0.02
    # The content side (encoders, adapter, predictors, dummies) is the same for every size.
    assert count - model.backbone.num_trainable_parameters() == pytest.approx(105.9e6, rel=0.002)


def test_config_rejects_mismatched_widths_and_dummy_dropout_without_dummies() -> None:
    config = UniflowAudioConfig.tiny()
    with pytest.raises(ValueError, match="content_dim"):
        UniflowAudioConfig(content=config.content, adapter=config.adapter.model_copy(update={"dim": 32}), dit=config.dit)
    with pytest.raises(ValueError, match="no dummy embeddings"):
        UniflowAudioConfig.tiny().model_validate(
            {**UniflowAudioConfig.tiny().model_dump(), "dit": {**config.dit.model_dump(), "fusion": "double"}}
        )
    authors = UniflowAudioConfig.small().authors()
    assert authors.sequence_duration_weight == authors.clip_duration_weight == 0.1
    assert authors.flow.cfg_drop_mode == "zeros" and authors.durations.sequence_unit_seconds == 0.005


# -- training loss --------------------------------------------------------------------------------------------
def test_forward_gives_finite_losses_per_task_and_gradients_everywhere_used() -> None:
    model = tiny_model().train()
    batch = make_batch(model.config, list(TASKS) + ["t2a", "tts"])
    output = run_loss(model, batch)
    assert output.loss.dim() == 0 and torch.isfinite(output.loss)
    assert set(output.losses) == {"flow", "sequence_duration", "clip_duration"}
    assert set(output.per_task) == set(TASKS)
    assert all(torch.isfinite(value) and value.dim() == 0 for value in output.per_task.values())
    expected = output.losses["flow"] + output.losses["sequence_duration"] + output.losses["clip_duration"]
    assert torch.allclose(output.loss, expected)
    output.loss.backward()
    assert model.dummy_ta.grad is not None and model.dummy_ta.grad.abs().sum() > 0
    assert model.dummy_context.grad.abs().sum() > 0
    assert model.adapter.sequence_predictor.output.weight.grad.abs().sum() > 0


def test_duration_loss_weights_scale_the_duration_terms() -> None:
    model = tiny_model()
    batch = make_batch(model.config, ["tts", "t2m", "se"])
    plain = run_loss(model, batch)
    model.config = model.config.authors().model_copy(update={"durations": model.config.durations})
    weighted = run_loss(model, batch)
    assert torch.allclose(
        weighted.loss, plain.losses["flow"] + 0.1 * (plain.losses["sequence_duration"] + plain.losses["clip_duration"])
    )


# -- where the dummies go --------------------------------------------------------------------------------------
def test_dual_fusion_puts_dummies_exactly_where_the_paper_says() -> None:
    model = tiny_model()
    calls = backbone_inputs(model)
    tasks = list(TASKS)
    batch = make_batch(model.config, tasks)
    run_loss(model, batch)
    _, _, latent_mask, ta_content, context, context_mask = calls[-1]
    for row, task in enumerate(tasks):
        valid = latent_mask[row]
        if task in TIME_ALIGNED_TASKS:
            # TA: the context is the dummy, one valid token; the time-aligned stream is real content.
            assert context_mask[row].tolist() == [True] + [False] * (context_mask.shape[1] - 1)
            assert torch.equal(context[row, 0], model.dummy_context)
            assert not torch.allclose(ta_content[row, valid], model.dummy_ta.expand(int(valid.sum()), -1))
        else:
            # NTA: the time-aligned stream is the dummy at every valid frame; the context is C^I.
            assert torch.equal(ta_content[row, valid], model.dummy_ta.expand(int(valid.sum()), -1))
            tokens = int(batch.content.text.mask[batch.content.rows("text").index(row)].sum())
            assert context_mask[row].sum() == tokens
            assert not torch.allclose(context[row, 0], model.dummy_context)
    # The context is only as long as the longest real context (T2A/T2M tokens), not the SE latents.
    assert context.shape[1] == int(batch.content.text.mask.sum(dim=1).max())


def test_cfg_dropout_replaces_both_streams_by_dummies() -> None:
    model = tiny_model().train()
    model.config = model.config.model_copy(update={"flow": model.config.flow.model_copy(update={"cfg_drop_prob": 1.0})})
    calls = backbone_inputs(model)
    batch = make_batch(model.config, ["tts", "t2a", "se"])
    run_loss(model, batch)
    _, _, _, ta_content, context, context_mask = calls[-1]
    assert torch.equal(ta_content, model.dummy_ta.expand_as(ta_content))
    assert context_mask[:, 0].all() and not context_mask[:, 1:].any()
    assert torch.equal(context[:, 0], model.dummy_context.expand(3, -1))


def test_double_fusion_feeds_both_real_streams_and_has_no_dummies() -> None:
    model = tiny_model("double")
    assert model.dummy_ta is None and model.dummy_context is None
    assert not any("dummy" in name for name in model.state_dict())
    calls = backbone_inputs(model)
    tasks = ["tts", "t2a", "v2a"]
    batch = make_batch(model.config, tasks)
    run_loss(model, batch)
    _, _, _, ta_content, _, context_mask = calls[-1]
    # Every sample keeps its own content tokens as context, TA samples included.
    assert context_mask.sum(dim=1).tolist() == [int(batch.content.phones.mask.sum()), int(batch.content.text.mask.sum()),
                                                int(batch.content.video.mask.sum())]  # fmt: skip
    # T2A's time-aligned stream is its content expanded by the dummy durations (1 frame per token), not a dummy.
    tokens = int(batch.content.text.mask.sum())
    assert ta_content[1, :tokens].abs().sum(dim=-1).gt(0).all() and ta_content[1, tokens:].abs().sum() == 0


def test_cross_attention_only_passes_no_time_aligned_stream() -> None:
    model = tiny_model("cross_attention_only")
    calls = backbone_inputs(model)
    batch = make_batch(model.config, ["tts", "t2m"])
    output = run_loss(model, batch)
    assert calls[-1][3] is None and torch.isfinite(output.loss)
    assert calls[-1][5].sum(dim=1).tolist() == [int(batch.content.phones.mask.sum()), int(batch.content.text.mask.sum())]


# -- padding --------------------------------------------------------------------------------------------------
def _scramble_padding(batch: TrainBatch, seed: int) -> TrainBatch:
    """The same batch with random values wherever a mask says padding."""
    rng = torch.Generator().manual_seed(seed)
    content = batch.content

    def fill(tensor: torch.Tensor, mask: torch.Tensor, high: int | None = None) -> torch.Tensor:
        noise = torch.randint(1, high, tensor.shape, generator=rng) if high else torch.randn(tensor.shape, generator=rng)
        mask = mask.view(*mask.shape, *([1] * (tensor.dim() - mask.dim())))
        return torch.where(mask, tensor, noise.to(tensor.dtype))

    phones, score = content.phones, content.score
    phones.ids = fill(phones.ids, phones.mask, 50)
    phones.frames = fill(phones.frames, phones.mask, 9)
    score.phones, score.midi = fill(score.phones, score.mask, 50), fill(score.midi, score.mask, 100)
    score.note_seconds, score.slur = fill(score.note_seconds, score.mask), fill(score.slur, score.mask, 2)
    for inputs in (content.text, content.latents, content.video):
        inputs.features = fill(inputs.features, inputs.mask)
    batch.instruction = fill(batch.instruction, batch.instruction_mask)
    batch.latents = fill(batch.latents, batch.latent_mask)
    return batch


def test_padded_values_change_nothing() -> None:
    model = tiny_model()
    calls = backbone_inputs(model)
    tasks = ["tts", "tts", "svs", "svs", "t2a", "t2m", "se", "sr", "v2a", "v2a"]
    clean = run_loss(model, make_batch(model.config, tasks))
    clean_velocity = model.backbone(*calls[-1])
    scrambled_batch = _scramble_padding(make_batch(model.config, tasks), seed=5)
    scrambled = run_loss(model, scrambled_batch)
    scrambled_velocity = model.backbone(*calls[-1])
    assert not torch.equal(calls[0][0], calls[-1][0])  # the padded latents really differ
    for name in clean.losses:
        assert torch.allclose(clean.losses[name], scrambled.losses[name], atol=1e-6), name
    mask = calls[-1][2][..., None]
    assert torch.allclose(clean_velocity * mask, scrambled_velocity * mask, atol=1e-5)
    clean_batch = make_batch(model.config, tasks)
    first = model.generate(clean_batch.content, clean_batch.instruction, clean_batch.instruction_mask, steps=3)
    second = model.generate(scrambled_batch.content, scrambled_batch.instruction, scrambled_batch.instruction_mask, steps=3)
    assert torch.equal(first.lengths, second.lengths)
    assert torch.allclose(first.latents, second.latents, atol=1e-5)


# -- generation -----------------------------------------------------------------------------------------------
def test_cfg_scale_one_is_the_conditional_flow_and_se_sr_are_never_guided() -> None:
    model = tiny_model()
    batch = make_batch(model.config, ["tts", "t2a", "se"])
    args = (batch.content, batch.instruction, batch.instruction_mask)
    at_one = model.generate(*args, guidance_scale=1.0, steps=4, seed=3)
    # The conditional flow integrated by hand from the same noise.
    plan = model.plan(*args)
    noise = EulerSampler.initial_noise(at_one.latents.shape, torch.Generator().manual_seed(3))
    x, sigmas = noise, EulerSampler(4).sigmas()
    with torch.no_grad():
        for sigma, following in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
            x = x + (following - sigma) * model.velocity(x, torch.full((3,), sigma), plan.conditions, plan.latent_mask)
    assert torch.allclose(at_one.latents, x * plan.latent_mask[..., None], atol=1e-6)
    guided = model.generate(*args, guidance_scale=5.0, steps=4, seed=3)
    assert not torch.allclose(guided.latents[:2], at_one.latents[:2], atol=1e-3)  # TTS and T2A are guided
    assert torch.allclose(guided.latents[2], at_one.latents[2], atol=1e-6)  # SE is not


def test_generation_shapes_follow_each_tasks_length_rule() -> None:
    model = tiny_model()
    batch = make_batch(model.config, list(TASKS))
    output = model.generate(batch.content, batch.instruction, batch.instruction_mask, steps=2)
    assert output.latents.shape == (7, int(output.lengths.max()), model.config.latent_dim)
    assert torch.equal(output.latent_mask.sum(dim=1), output.lengths)
    assert (output.latents * ~output.latent_mask[..., None]).abs().sum() == 0
    lengths = dict(zip(TASKS, output.lengths.tolist(), strict=True))
    assert lengths["se"] == batch.latent_lengths[TASKS.index("se")]  # one latent per input latent
    assert lengths["sr"] == batch.latent_lengths[TASKS.index("sr")]
    assert lengths["v2a"] == 5 * int(batch.content.video.mask.sum())  # five latents per video frame
    # TTS/SVS last as long as their predicted frames; T2A/T2M as long as their predicted clip duration.
    assert lengths["tts"] == int(output.token_frames[0].sum())
    given = model.generate(batch.content, batch.instruction, batch.instruction_mask, steps=2, use_given_durations=True)
    assert given.lengths[0] == batch.latent_lengths[0] and given.lengths[1] == batch.latent_lengths[1]
    single = model.generate(make_batch(model.config, ["t2m"]).content, batch.instruction[:1], batch.instruction_mask[:1], steps=2)
    assert single.latents.shape[0] == 1 and single.lengths[0] >= 1


def test_generate_is_seeded_and_restores_training_mode() -> None:
    model = tiny_model().train()
    batch = make_batch(model.config, ["t2a", "svs"])
    args = (batch.content, batch.instruction, batch.instruction_mask)
    first, second = model.generate(*args, steps=2, seed=1), model.generate(*args, steps=2, seed=1)
    assert torch.equal(first.latents, second.latents) and model.training
    assert not torch.equal(first.latents, model.generate(*args, steps=2, seed=2).latents)


# -- checkpoints ----------------------------------------------------------------------------------------------
def test_save_then_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = tiny_model()
    batch = make_batch(model.config, list(TASKS))
    directory = model.save_pretrained(tmp_path / "model")
    assert {path.name for path in directory.iterdir()} == {"config.json", "model.safetensors", "svs_vocab.json"}
    loaded = UniflowAudio.from_pretrained(directory).eval()
    assert loaded.config == model.config and loaded.svs_vocab == model.svs_vocab
    assert torch.equal(run_loss(model, batch).loss, run_loss(loaded, batch).loss)
    args = (batch.content, batch.instruction, batch.instruction_mask)
    assert torch.equal(model.generate(*args, steps=3).latents, loaded.generate(*args, steps=3).latents)


def test_loading_reports_the_file_at_fault(tmp_path: Path) -> None:
    directory = tiny_model().save_pretrained(tmp_path / "model")
    other = UniflowAudio(UniflowAudioConfig.tiny(fusion="double")).save_pretrained(tmp_path / "other")
    (directory / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(PretrainedLoadError, match=r"model\.safetensors: weights do not match config\.json: missing dummy"):
        UniflowAudio.from_pretrained(directory)
    (directory / "config.json").write_text('{"dit": {"depth": "deep"}}')
    with pytest.raises(PretrainedLoadError, match="config.json"):
        UniflowAudio.from_pretrained(directory)


# -- must show: overfitting real feature shards ---------------------------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))


@pytest.fixture(scope="module")
def shard_batch(tmp_path_factory: pytest.TempPathFactory) -> TrainBatch:
    """Two samples of every task from real feature shards (tiny-VAE latents of LibriVox speech), via TrainStream."""
    from feature_sets import posteriors, save_vae, write_instructions, write_task_sets

    from support import make_storage
    from uniflow.features.latents import LatentEncoder, LatentSettings
    from uniflow.train.data import TrainDataConfig, TrainStream

    encoder = LatentEncoder(LatentSettings(directory=str(save_vae(tmp_path_factory.mktemp("vae")))), "cpu")
    storage = make_storage(tmp_path_factory.mktemp("features"))
    write_task_sets(storage, posteriors(encoder, 7), dict.fromkeys(TASKS, 1), per_shard=2)
    write_instructions(storage, TASKS)
    config = TrainDataConfig(batch_size=14, batches_per_epoch=1, workers=0, seed=3, shuffle_buffer=0, sample_posterior=False)
    batch = next(iter(TrainStream(storage, config)))
    assert sorted(batch.tasks) == sorted(TASKS * 2)
    return batch


def test_a_tiny_model_overfits_feature_shard_samples_of_every_task(shard_batch: TrainBatch) -> None:
    """Sigma, noise and CFG dropout are drawn from the same seed every step, so the targets are fixed and a model
    that memorises the handful of samples drives every loss term (and every task's flow loss) far down."""
    torch.manual_seed(0)
    config = UniflowAudioConfig.tiny(latent_dim=128)
    model = UniflowAudio(config.model_copy(update={"dit": config.dit.model_copy(update={"dim": 64, "heads": 4})})).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    started = time.perf_counter()
    first = None
    for _ in range(250):
        output = model(shard_batch, generator=torch.Generator().manual_seed(0))
        first = first or output
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - started
    last = model(shard_batch, generator=torch.Generator().manual_seed(0))
    assert elapsed < 60
    assert last.loss < first.loss / 10, (first.loss.item(), last.loss.item())
    for task in TASKS:
        assert last.per_task[task] < first.per_task[task] / 5, (task, first.per_task[task].item(), last.per_task[task].item())
    assert math.isfinite(last.losses["sequence_duration"].item())
    assert last.losses["clip_duration"] < first.losses["clip_duration"] / 10
    assert np.isfinite(last.loss.item())
