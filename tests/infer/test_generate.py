"""Generation from natural inputs: every task end to end with tiny models writes 24 kHz audio of the predicted length."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from support import one_torch_thread
from uniflow.features.config import load_encoders_config
from uniflow.infer.generate import GenerationError, Generator, generate_to_file, read_score
from uniflow.model.content import collate_content
from uniflow.model.uniflow_audio import UniflowAudio, UniflowAudioConfig
from uniflow.model.vae import UniflowVae, VaeConfig

SPEECH = sorted(Path("/usr/share/pocketsphinx/test/data/librivox").glob("*.wav"))
SCORE = {
    "phones": ["SP", "n", "i", "h", "ao", "AP"],
    "midi": [0, 60, 60, 62, 62, 0],
    "note_seconds": [0.2, 0.3, 0.3, 0.4, 0.4, 0.2],
    "slur": [0, 0, 0, 0, 1, 0],
    "singer": "Tenor-1",
}


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny T5 and CLIP (32-d), the tiny VAE and a tiny UniFlow-Audio model, all saved to disk."""
    from uniflow.features.text import save_tiny_text_encoder
    from uniflow.features.video import save_tiny_video_encoder

    root = tmp_path_factory.mktemp("generate")
    torch.manual_seed(0)
    vae_config = VaeConfig.tiny()
    UniflowVae(vae_config).save_pretrained(root / "vae")
    tiny = UniflowAudioConfig.tiny(latent_dim=vae_config.latent_dim, text_dim=32, video_dim=32, instruction_dim=32)
    model = UniflowAudio(tiny)
    model.save_pretrained(root / "model")
    encoders = root / "encoders.yaml"
    encoders.write_text(
        f"text: {{path: {save_tiny_text_encoder(root / 't5')}}}\n"
        f"video: {{path: {save_tiny_video_encoder(root / 'clip')}}}\n"
        f"speaker: {{kind: resemblyzer}}\n"
        f"vae: {{path: {root / 'vae'}}}\n"
    )
    return {"model": root / "model", "vae": root / "vae", "encoders": encoders}


@pytest.fixture(scope="module")
def generator(model_files: dict[str, Path]) -> Generator:
    return Generator(model_files["model"], model_files["vae"], load_encoders_config(model_files["encoders"]))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real speech (16 kHz LibriVox) as SE/SR input and TTS reference, a score file and a 1 s video at 10 fps."""
    root = tmp_path_factory.mktemp("inputs")
    speech, rate = sf.read(SPEECH[0], dtype="float32")
    sf.write(root / "noisy.wav", speech[: int(1.3 * rate)], rate)
    (root / "score.json").write_text(json.dumps(SCORE))
    frames = np.repeat(np.linspace(0, 250, 10).astype(np.uint8), 48 * 64 * 3).reshape(10, 48, 64, 3)
    command = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-r", "10",
               "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(root / "clip.mp4")]  # fmt: skip
    subprocess.run(command, input=frames.tobytes(), check=True)
    return {"speech": root / "noisy.wav", "score": root / "score.json", "video": root / "clip.mp4"}


def _predicted_frames(generator: Generator, task: str, **inputs: object) -> int:
    """The output length the model plans for this input, computed apart from `Generator.generate`."""
    sample = generator.content_sample(task, **inputs)
    instruction = torch.from_numpy(generator.instruction(task))[None]
    plan = generator.model.plan(collate_content([sample]), instruction, torch.ones(instruction.shape[:2], dtype=torch.bool))
    return int(plan.lengths[0])


TASK_INPUTS = {
    "tts": lambda paths: {"text": "Hello, world.", "speaker_audio": paths["speech"]},
    "svs": lambda paths: {"score": paths["score"]},
    "t2a": lambda paths: {"caption": "A dog barks twice."},
    "t2m": lambda paths: {"caption": "Calm piano music."},
    "se": lambda paths: {"audio": paths["speech"]},
    "sr": lambda paths: {"audio": paths["speech"]},
    "v2a": lambda paths: {"video": paths["video"]},
}


@pytest.mark.parametrize("task", list(TASK_INPUTS))
def test_each_task_writes_24khz_audio_of_the_predicted_length(
    task: str, generator: Generator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    task_inputs = TASK_INPUTS[task](inputs)
    path, result = generate_to_file(generator, task, tmp_path / f"{task}.flac", steps=3, **task_inputs)
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 24000 and audio.ndim == 1
    assert len(audio) == result.latent_frames * 480 and np.isfinite(audio).all()
    assert result.latent_frames == _predicted_frames(generator, task, **task_inputs)
    if task in ("se", "sr"):
        assert result.latent_frames == int(1.3 * 24000) // 480  # one latent per input latent
    if task == "v2a":
        assert result.latent_frames == 10 * 5  # 10 frames at 10 fps, five latents each


def test_score_frames_fix_the_length_and_shard_json_is_accepted(generator: Generator, tmp_path: Path) -> None:
    frames = [10, 5, 15, 6, 19, 10]
    shard_json = tmp_path / "sample.json"
    shard_json.write_text(json.dumps({"task": "svs", "speaker": "Tenor-1", "score": {**SCORE, "frames": frames}}))
    score = read_score(shard_json)
    assert score["singer"] == "Tenor-1" and score["frames"] == frames
    result = generator.generate("svs", score=shard_json, steps=2)
    assert result.latent_frames == sum(frames) and result.audio.shape == (sum(frames) * 480,)


def test_instruction_text_index_and_table_agree(generator: Generator, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from uniflow.corpora.instructions import load_instructions

    text = load_instructions("datasets/instructions.yaml")["t2a"][3]
    by_index = generator.instruction("t2a", index=3)
    assert np.allclose(by_index, generator.instruction("t2a", text=text))
    save_file({"t2a_3": by_index * 2}, str(tmp_path / "table.safetensors"))
    generator.instruction_table = tmp_path / "table.safetensors"
    try:
        assert np.allclose(generator.instruction("t2a", index=3), 2 * by_index)
        with pytest.raises(GenerationError, match="no instruction t2a_4"):
            generator.instruction("t2a", index=4)
    finally:
        generator.instruction_table = None


def test_bad_inputs_are_named(generator: Generator, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="t2a needs --caption"):
        generator.generate("t2a", text="hello")
    bad_score = tmp_path / "bad.json"
    bad_score.write_text(json.dumps({**SCORE, "midi": [60]}))
    with pytest.raises(GenerationError, match="equally long"):
        generator.generate("svs", score=bad_score)
    with pytest.raises(GenerationError, match=r"\.flac or \.wav"):
        generate_to_file(generator, "t2a", tmp_path / "out.mp3", caption="rain", steps=1)


def test_cli_generate_writes_the_file(model_files: dict[str, Path], inputs: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from uniflow.cli import app

    out = tmp_path / "enhanced.wav"
    arguments = ["generate", "--task", "se", "--model", str(model_files["model"]), "--vae", str(model_files["vae"]),
                 "--encoders", str(model_files["encoders"]), "--audio", str(inputs["speech"]), "--out", str(out),
                 "--steps", "2", "--seed", "1"]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out)
    assert rate == 24000 and len(audio) == int(1.3 * 24000) // 480 * 480
    assert "65 latent frames" in result.output
    missing = CliRunner().invoke(app, [*arguments[:2], "t2a", *arguments[3:]])
    assert missing.exit_code == 1 and "t2a needs --caption" in missing.output
