"""Task-specific features: a speaker embedding per TTS utterance, CLIP frames per V2A video, an undecodable video skipped."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from feature_inputs import sample, save_vae, speech, write_set
from support import make_storage
from uniflow.features.latents import LatentEncoder, LatentSettings
from uniflow.features.speaker import load_speaker_encoder
from uniflow.features.stage import FeatureEncoders, extract_feature_shard
from uniflow.features.video import VideoEncoder


def _features(storage, task: str, name: str) -> dict[str, dict[str, np.ndarray | bytes]]:
    found: dict[str, dict] = {}
    with storage.open("features", task, "train", name) as handle, tarfile.open(fileobj=handle, mode="r|") as archive:
        for member in archive:
            key, _, extension = member.name.partition(".")
            data = archive.extractfile(member).read()
            found.setdefault(key, {})[extension] = np.load(io.BytesIO(data)) if extension.endswith(".npy") else data
    return found


def _mp4(seconds: float, rate: int = 25) -> bytes:
    """A small H.264 video of a moving bar, encoded by ffmpeg."""
    count = round(seconds * rate)
    frames = np.zeros((count, 48, 64, 3), np.uint8)
    for index in range(count):
        frames[index, :, (2 * index) % 64] = 255
    command = [
        "ffmpeg",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        "64x48",
        "-r",
        str(rate),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "frag_keyframe+empty_moov",
        "-f",
        "mp4",
        "-",
    ]
    return subprocess.run(command, input=frames.tobytes(), capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> LatentEncoder:
    return LatentEncoder(LatentSettings(directory=str(save_vae(tmp_path_factory.mktemp("vae")))), "cpu")


def test_tts_samples_get_a_speaker_embedding_of_their_own_audio(vae: LatentEncoder, tmp_path: Path) -> None:
    storage = make_storage(tmp_path)
    fields = {"text": "a sentence", "phones": ["AH0"], "frames": [50], "latent_frames": 50}
    (audio,) = write_set(
        storage, "tts", "train", [[sample("tts", f"tts/libritts/u{index}", speech(index, 1.5), **fields) for index in range(3)]]
    )
    speaker = load_speaker_encoder("resemblyzer")
    record = extract_feature_shard(storage, "tts", "train", audio, FeatureEncoders(vae=vae, speaker=speaker))
    features = _features(storage, "tts", audio.name)
    assert list(features) == ["tts/libritts/u0", "tts/libritts/u1", "tts/libritts/u2"] and record.skipped == []
    for index, files in enumerate(features.values()):
        assert files["speaker.npy"].shape == (256,) and files["latents.npy"].shape == (75, 128)
        np.testing.assert_allclose(files["speaker.npy"], speaker.embed(speech(index, 1.5), 24_000), atol=1e-4)
        assert b'"phones":["AH0"]' in files["json"], "alignment fields travel with the sample"
    assert set(record.encoders) == {"vae", "speaker"}


def test_v2a_samples_get_clip_frames_and_a_broken_video_is_skipped(
    vae: LatentEncoder, tiny_video_dir: Path, tmp_path: Path
) -> None:
    storage = make_storage(tmp_path)
    good = sample("v2a", "v2a/visualsound/clip1", speech(0, 2.0), video="raw/x.mp4")
    good.files["video.mp4"] = _mp4(2.0)
    broken = sample("v2a", "v2a/visualsound/clip2", speech(1, 2.0), video="raw/y.mp4")
    broken.files["video.mp4"] = b"\x00\x00\x00\x18ftypmp42 truncated"
    (audio,) = write_set(storage, "v2a", "train", [[good, broken]])
    video = VideoEncoder.from_pretrained(tiny_video_dir, encoder_id="tiny-clip")
    record = extract_feature_shard(storage, "v2a", "train", audio, FeatureEncoders(vae=vae, video=video))
    features = _features(storage, "v2a", audio.name)
    assert list(features) == ["v2a/visualsound/clip1"]
    assert features["v2a/visualsound/clip1"]["video.npy"].shape == (20, 32)  # 2 s at 10 fps, 32-d tiny CLIP
    assert features["v2a/visualsound/clip1"]["latents.npy"].shape == (100, 128)
    assert [(skip.key, skip.reason) for skip in record.skipped] == [("v2a/visualsound/clip2", "video: undecodable")]
