"""Audio probing: right numbers for good files, a named reason for every kind of bad file."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from uniflow.corpora.probe import AudioProblem, probe_audio


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize(
    ("name", "rate", "channels", "subtype"),
    [
        ("a.wav", 24000, 1, "PCM_16"),
        ("b.wav", 48000, 2, "PCM_24"),
        ("c.wav", 16000, 1, "FLOAT"),
        ("d.flac", 44100, 2, "PCM_16"),
        ("e.ogg", 22050, 1, "VORBIS"),
        ("f.mp3", 44100, 2, "MPEG_LAYER_III"),
    ],
)
def test_good_files(tmp_path: Path, name: str, rate: int, channels: int, subtype: str) -> None:
    path = tmp_path / name
    sf.write(path, tone(1.5, rate, channels), rate, subtype=subtype)
    info = probe_audio(path)
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert info.seconds == pytest.approx(1.5, abs=0.01)
    reference = sf.info(str(path))
    assert info.num_frames == reference.frames


def test_wav_with_extra_chunks_before_data(tmp_path: Path) -> None:
    path = tmp_path / "list.wav"
    sf.write(path, tone(0.5, 16000), 16000)
    data = bytearray(path.read_bytes())
    extra = b"LIST" + (10).to_bytes(4, "little") + b"INFOabcdef"
    data[36:36] = extra  # after the 16-byte fmt chunk
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert probe_audio(path).num_frames == 8000


def expect_problem(path: Path, fragment: str) -> None:
    with pytest.raises(AudioProblem) as error:
        probe_audio(path)
    assert fragment in error.value.reason
    assert str(path) in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    expect_problem(tmp_path / "absent.wav", "file not found")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "zero.wav").write_bytes(b"")
    expect_problem(tmp_path / "zero.wav", "empty file")


def test_zero_frames(tmp_path: Path) -> None:
    sf.write(tmp_path / "silent.wav", np.zeros(0), 16000)
    expect_problem(tmp_path / "silent.wav", "empty audio")


def test_truncated_wav(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, tone(1.0, 16000), 16000)
    path.write_bytes(path.read_bytes()[:-5000])
    expect_problem(path, "truncated")


def test_truncated_flac(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    rng = np.random.default_rng(0)
    sf.write(path, 0.1 * rng.standard_normal(48000), 16000)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    expect_problem(path, "truncated")


def test_nan_samples(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    audio = tone(0.5, 16000).astype(np.float32)
    audio[100] = np.nan
    sf.write(path, audio, 16000, subtype="FLOAT")
    expect_problem(path, "non-finite")


def test_not_audio(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("this is not audio at all")
    expect_problem(tmp_path / "notes.wav", "unreadable")
