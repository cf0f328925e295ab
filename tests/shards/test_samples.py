"""Sample sources and samples per task: schema, clipping rules of plan.yaml, deterministic rebuilds."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from support import DATASETS, make_storage
from uniflow.audio import encode_wav
from uniflow.corpora.recipe import load_plan
from uniflow.jsonl import encode_jsonl_gz
from uniflow.shards.samples import SAMPLE_RATE, build_sample, sample_sources
from uniflow.shards.writer import write_shard

COMMON_FIELDS = {"key", "task", "split", "corpus", "source_id", "seconds", "sample_rate", "license", "clip", "code_version"}


@pytest.fixture
def plan(recipes):
    return load_plan(DATASETS / "plan.yaml", recipes)


@pytest.fixture
def storage(tmp_path: Path):
    return make_storage(tmp_path)


def tone(seconds: float, rate: int, frequency: float = 220.0, channels: int = 1) -> np.ndarray:
    time_axis = np.arange(int(round(seconds * rate))) / rate
    mono = (0.3 * np.sin(2 * np.pi * frequency * time_axis)).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def write_audio(storage, relative: str, audio: np.ndarray, rate: int) -> None:
    path = storage.path("raw", relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate)


def record(corpus: str, key: str, audio: str, seconds: float, rate: int, split: str = "train", **fields) -> dict:
    return {"id": f"{corpus}/{key}", "corpus": corpus, "split": split, "audio": audio, "sample_rate": rate,
            "seconds": seconds, "license": "CC BY 4.0", **fields}


def write_manifest(storage, corpus: str, name: str, lines: list[dict]) -> None:
    storage.write_bytes("manifests", corpus, name, data=encode_jsonl_gz(lines))


def decode(data: bytes, dtype: str = "float32") -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype=dtype)
    return audio, rate


def alignment(record_id: str, seconds: float) -> dict:
    frames = int(round(seconds * SAMPLE_RATE)) // 480
    return {"id": record_id, "duration": seconds, "durations": {"phones": ["sil", "HH", "AY1", "sil"],
            "frames": [1, frames - 3, 1, 1], "latent_frames": frames}}


# -- tts ----------------------------------------------------------------------------------------------------
def make_libritts(storage) -> None:
    """Four LibriTTS-like utterances: usable, too short, too long, unaligned; and one VCTK-like segment."""
    write_audio(storage, "libritts/19/198/19_198_000000_000000.wav", tone(1.2, 24000, channels=2), 24000)
    write_audio(storage, "libritts/19/198/19_198_000000_000001.wav", tone(0.2, 24000), 24000)
    write_audio(storage, "libritts/19/198/19_198_000000_000002.wav", tone(31.0, 24000), 24000)
    write_audio(storage, "libritts/19/198/19_198_000000_000003.wav", tone(1.0, 24000), 24000)
    # 2 s at 16 kHz: silent, loud between 0.5 s and 1.5 s, silent; the record is that loud segment.
    segmented = np.zeros(32000, dtype=np.float32)
    segmented[8000:24000] = tone(1.0, 16000, 440.0)
    write_audio(storage, "libritts/19/198/19_198_000001_000000.flac", segmented, 16000)
    lines = [
        record("libritts", "19_198_000000_000000", "libritts/19/198/19_198_000000_000000.wav", 1.2, 24000,
               text="Hi there.", speaker="19"),
        record("libritts", "19_198_000000_000001", "libritts/19/198/19_198_000000_000001.wav", 0.2, 24000, text="Oh.", speaker="19"),
        record("libritts", "19_198_000000_000002", "libritts/19/198/19_198_000000_000002.wav", 31.0, 24000, text="Long.", speaker="19"),
        record("libritts", "19_198_000000_000003", "libritts/19/198/19_198_000000_000003.wav", 1.0, 24000, text="No.", speaker="19"),
        record("libritts", "19_198_000001_000000", "libritts/19/198/19_198_000001_000000.flac", 1.0, 16000,
               text="Cut.", speaker="19", start=0.5, end=1.5),
    ]
    write_manifest(storage, "libritts", "train.jsonl.gz", lines)
    aligned = [line for line in lines if not line["id"].endswith("000003")]
    write_manifest(storage, "libritts", "train.align.jsonl.gz", [alignment(line["id"], line["seconds"]) for line in aligned])


def test_tts_schema_bounds_and_segments(storage, plan) -> None:
    make_libritts(storage)
    sources = sample_sources(storage, plan, "tts", "train")
    assert [s.key for s in sources] == ["tts/libritts/19_198_000000_000000", "tts/libritts/19_198_000001_000000"]
    assert dict(sources.skipped) == {"no alignment": 1, "shorter than 0.3 s": 1, "longer than 30 s": 1}
    sample = build_sample(storage, sources[0])
    assert set(sample.files) == {"target.flac", "json"}
    audio, rate = decode(sample.files["target.flac"])
    assert rate == 24000 and audio.ndim == 1 and len(audio) == 28800
    meta = json.loads(sample.files["json"])
    assert COMMON_FIELDS | {"text", "speaker", "phones", "frames", "latent_frames", "record"} <= set(meta)
    assert meta["text"] == "Hi there." and meta["speaker"] == "19" and meta["latent_frames"] == 60
    assert meta["source_id"] == "libritts/19_198_000000_000000" and meta["record"]["audio"].endswith("000000.wav")
    assert meta["clip"]["offset_seconds"] == 0 and meta["clip"]["rule"]["mode"] == "drop_outside"
    # The segment [0.5, 1.5] of a 16 kHz file: resampled to 1 s at 24 kHz, loud from its first to its last window.
    segment, rate = decode(build_sample(storage, sources[1]).files["target.flac"])
    assert rate == 24000 and len(segment) == 24000
    assert np.sqrt((segment.reshape(-1, 480) ** 2).mean(axis=1)).min() > 0.1


# -- svs, t2a, v2a --------------------------------------------------------------------------------------------
def test_svs_sample_carries_the_score(storage, plan) -> None:
    write_audio(storage, "m4singer/Alto-1#song/0000.wav", tone(1.0, 48000, 330.0), 48000)
    line = record("m4singer", "Alto-1/song/0000", "m4singer/Alto-1#song/0000.wav", 1.0, 48000, text="ni", speaker="Alto-1")
    write_manifest(storage, "m4singer", "train.jsonl.gz", [line, {**line, "id": "m4singer/Alto-1/song/0001"}])
    score = {"id": line["id"], "phones": ["SP", "n", "i", "AP"], "frames": [5, 10, 25, 10], "midi": [0, 64, 64, 0],
             "note_seconds": [0.1, 0.7, 0.7, 0.2], "slur": [0, 0, 0, 0]}
    write_manifest(storage, "m4singer", "train.score.jsonl.gz", [score])
    sources = sample_sources(storage, plan, "svs", "train")
    assert [s.key for s in sources] == ["svs/m4singer/Alto-1/song/0000"] and dict(sources.skipped) == {"no score": 1}
    sample = build_sample(storage, sources[0])
    meta = json.loads(sample.files["json"])
    assert set(sample.files) == {"target.flac", "json"} and meta["speaker"] == "Alto-1"
    assert meta["score"] == {name: value for name, value in score.items() if name != "id"}
    audio, rate = decode(sample.files["target.flac"])
    assert rate == 24000 and len(audio) == 24000


def test_t2a_and_v2a_schema(storage, plan, tmp_path: Path) -> None:
    write_audio(storage, "audiocaps/clips/abc_30000.flac", tone(2.0, 44100, channels=2), 44100)
    captions = ["A dog barks", "Barking nearby"]
    write_manifest(storage, "audiocaps", "valid.jsonl.gz", [
        record("audiocaps", "abc_30000", "audiocaps/clips/abc_30000.flac", 2.0, 44100, split="valid",
               caption=captions[0], extra={"captions": captions}),
        record("audiocaps", "def_0", "audiocaps/clips/abc_30000.flac", 2.0, 44100, split="valid"),
    ])
    t2a = sample_sources(storage, plan, "t2a", "valid")
    assert [s.key for s in t2a] == ["t2a/audiocaps/abc_30000"] and dict(t2a.skipped) == {"no caption": 1}
    meta = json.loads(build_sample(storage, t2a[0]).files["json"])
    assert meta["caption"] == "A dog barks" and meta["captions"] == captions and meta["seconds"] == 2.0

    video = storage.path("raw", "visualsound/clips/vid_000010.mp4")
    video.parent.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=4", "-t", "2", "-pix_fmt",
                    "yuv420p", str(video)], check=True)
    write_audio(storage, "visualsound/clips/vid_000010.flac", tone(2.0, 16000), 16000)
    write_manifest(storage, "visualsound", "train.jsonl.gz", [
        record("visualsound", "vid_000010", "visualsound/clips/vid_000010.flac", 2.0, 16000,
               video="visualsound/clips/vid_000010.mp4"),
        record("visualsound", "novideo", "visualsound/clips/vid_000010.flac", 2.0, 16000),
    ])
    v2a = sample_sources(storage, plan, "v2a", "train")
    assert [s.key for s in v2a] == ["v2a/visualsound/vid_000010"] and dict(v2a.skipped) == {"no video": 1}
    assert v2a[0].bytes > video.stat().st_size
    sample = build_sample(storage, v2a[0])
    assert set(sample.files) == {"target.flac", "video.mp4", "json"}
    assert sample.files["video.mp4"] == video.read_bytes()
    assert json.loads(sample.files["json"])["video"] == "visualsound/clips/vid_000010.mp4"


# -- t2m ------------------------------------------------------------------------------------------------------
def make_msd(storage) -> np.ndarray:
    song = (0.2 * np.random.default_rng(7).standard_normal(30 * 24000)).astype(np.float32)
    write_audio(storage, "msd/audio/1/2/1203820.flac", song, 24000)
    for split in ("train", "test"):
        write_manifest(storage, "msd", f"{split}.jsonl.gz", [
            record("msd", "TRAAAGR128F425B14B", "msd/audio/1/2/1203820.flac", 30.0, 24000, split=split,
                   caption="A calm piano ballad."),
            record("msd", "TRBBB", "msd/audio/1/2/1203820.flac", 30.0, 24000, split=split),
        ])
    return song


def test_t2m_long_song_becomes_a_seeded_10_s_crop(storage, plan) -> None:
    song = make_msd(storage)
    sources = sample_sources(storage, plan, "t2m", "train")
    assert [s.key for s in sources] == ["t2m/msd/TRAAAGR128F425B14B"] and dict(sources.skipped) == {"no caption": 1}
    assert sources[0].seconds == 10.0 and sources[0].bytes < 30 * 48000
    sample = build_sample(storage, sources[0])
    meta = json.loads(sample.files["json"])
    crop, rate = decode(sample.files["target.flac"])
    assert rate == 24000 and len(crop) == 240000 and meta["seconds"] == 10.0 and meta["caption"] == "A calm piano ballad."
    offset = round(meta["clip"]["offset_seconds"] * 24000)
    assert 0 <= offset <= 20 * 24000 and meta["clip"]["source_seconds"] == 30.0 and meta["clip"]["seed"] is not None
    np.testing.assert_allclose(crop, song[offset : offset + 240000], atol=2 / 32768)
    # Evaluation keeps songs whole (the rule applies to the train split only).
    whole = sample_sources(storage, plan, "t2m", "test")
    assert whole[0].seconds == 30.0 and whole[0].offset_seconds == 0.0


# -- se / sr ----------------------------------------------------------------------------------------------------
def make_simulation(storage, task: str, split: str, pairs: dict[str, float], done: bool = True) -> dict[str, tuple]:
    """A rendered batch in the simulation stage's layout; returns each key's (input, target) int16 audio."""
    folder = storage.path("work", "simulate", task, split)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    rendered = {}
    params = []
    with tarfile.open(folder / "batch_00000.tar", "w") as archive:
        for key, seconds in pairs.items():
            target = (0.3 * rng.standard_normal(int(seconds * 24000))).astype(np.float32).clip(-1, 1)
            noisy = (target + 0.1 * rng.standard_normal(target.size)).clip(-1, 1)
            meta = {"key": key, "snr_db": 5.0, "seed": 11, "kind": "simulated", "seconds": seconds}
            params.append(meta)
            for name, data in ((f"{key}.input.wav", encode_wav(noisy, 24000)), (f"{key}.target.wav", encode_wav(target, 24000)),
                               (f"{key}.json", json.dumps(meta, sort_keys=True).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            rendered[key] = tuple(decode(encode_wav(x, 24000), "int16")[0] for x in (noisy, target))
    (folder / "batch_00000.params.jsonl").write_text("".join(json.dumps(p) + "\n" for p in params))
    (folder / "plan.json").write_text(json.dumps({"task": task, "split": split, "batches": 1}))
    if done:
        (folder / "batch_00000.done").write_text(json.dumps({"pairs": len(pairs)}))
    return rendered


def test_se_pair_of_8_s_is_cut_to_5_s_at_one_offset(storage, plan) -> None:
    long_key, paired_key = "se/libritts/19_198_000000_000000/r0", "se-paired/voicebank_demand/p232_001"
    rendered = make_simulation(storage, "se", "train", {long_key: 8.0, paired_key: 3.0, "se/vctk/p225_001/r0": 0.25})
    sources = sample_sources(storage, plan, "se", "train")
    assert [s.key for s in sources] == [paired_key, long_key] and dict(sources.skipped) == {"shorter than 0.5 s": 1}
    sample = build_sample(storage, sources[1])
    assert set(sample.files) == {"input.flac", "target.flac", "json"}
    meta = json.loads(sample.files["json"])
    noisy, rate = decode(sample.files["input.flac"], "int16")
    clean, _ = decode(sample.files["target.flac"], "int16")
    assert rate == 24000 and len(noisy) == len(clean) == 120000 and meta["seconds"] == 5.0
    offset = round(meta["clip"]["offset_seconds"] * 24000)
    assert 0 <= offset <= 3 * 24000
    np.testing.assert_array_equal(noisy, rendered[long_key][0][offset : offset + 120000])
    np.testing.assert_array_equal(clean, rendered[long_key][1][offset : offset + 120000])
    assert meta["simulation"]["snr_db"] == 5.0 and meta["simulation"]["seed"] == 11 and meta["corpus"] == "libritts"
    assert meta["batch"] == "simulate/se/train/batch_00000.tar"
    # A pair within 5 s passes through untouched.
    short = build_sample(storage, sources[0])
    np.testing.assert_array_equal(decode(short.files["target.flac"], "int16")[0], rendered[paired_key][1])


def test_unrendered_simulation_is_refused(storage, plan) -> None:
    make_simulation(storage, "sr", "train", {"sr/hq_tts/a/c0": 2.0}, done=False)
    with pytest.raises(RuntimeError, match="not rendered"):
        sample_sources(storage, plan, "sr", "train")


# -- determinism and plan rules -------------------------------------------------------------------------------
def test_rebuild_gives_the_same_keys_bytes_and_hash(storage, plan, tmp_path: Path) -> None:
    make_msd(storage)
    make_simulation(storage, "se", "train", {"se/libritts/a/r0": 8.0, "se/libritts/b/r0": 6.0})
    for task in ("t2m", "se"):
        first, second = sample_sources(storage, plan, task, "train"), sample_sources(storage, plan, task, "train")
        assert [(s.key, s.bytes, s.offset_seconds) for s in first] == [(s.key, s.bytes, s.offset_seconds) for s in second]
        assert first.source_hash == second.source_hash and len(first.source_hash) == 64
        records = [write_shard([build_sample(storage, s) for s in sources], str(tmp_path / f"{task}-{n}.tar"))
                   for n, sources in enumerate((first, second))]
        assert records[0].sha256 == records[1].sha256 and records[0].samples == len(first)
        assert records[0].seconds == pytest.approx(sum(s.seconds for s in first))
    # Two pairs of one batch get different crop offsets: the seed is the key's, not the set's.
    offsets = {s.offset_seconds for s in sample_sources(storage, plan, "se", "train")}
    assert len(offsets) == 2
    before = sample_sources(storage, plan, "t2m", "train").source_hash
    with storage.open("manifests", "msd", "train.jsonl.gz") as handle:
        data = handle.read()
    storage.write_bytes("manifests", "msd", "train.jsonl.gz", data=data + encode_jsonl_gz([]))
    assert sample_sources(storage, plan, "t2m", "train").source_hash != before


def test_cropping_a_time_aligned_task_is_refused(storage, plan) -> None:
    from uniflow.corpora.recipe import ClipRule

    tasks = {**plan.tasks, "tts": plan.tasks["tts"].model_copy(update={"clip": ClipRule(mode="random_crop", max_seconds=5.0)})}
    with pytest.raises(ValueError, match="cannot be cropped"):
        sample_sources(storage, plan.model_copy(update={"tasks": tasks}), "tts", "train")


# -- on the real stage outputs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def staged(recipes, tmp_path_factory: pytest.TempPathFactory):
    """M4Singer with its scores and rendered SR pairs, from a mirror of just the corpora they need."""
    from uniflow.align.score import prepare_scores
    from uniflow.corpora.acquire import acquire_corpus
    from uniflow.corpora.manifest import prepare_manifests
    from uniflow.mirror.build import build_mirror
    from uniflow.mirror.serve import serve_in_background
    from uniflow.simulate.stage import SimulationConfig, plan_simulation, render_batch

    names = ["m4singer", "hq_tts", "musdb18hq", "moisesdb", "wavcaps_freesound"]
    root = tmp_path_factory.mktemp("staged")
    build_mirror(recipes, root / "mirror", only=names, progress=False)
    server = serve_in_background(root / "mirror")
    try:
        storage = make_storage(root / "roles", server.url)
        for name in names:
            assert acquire_corpus(storage, recipes[name], progress=False).status == "done", name
            prepare_manifests(recipes[name], storage, progress=False)
    finally:
        server.shutdown()
    prepare_scores(storage, "m4singer", "train")
    plan = load_plan(DATASETS / "plan.yaml", recipes)
    config = SimulationConfig.model_validate({"batch_size": 8, "sr": {"min_clip_seconds": 0.5}})
    simulation = plan_simulation(storage, "sr", "train", plan, config)
    for index in range(simulation.batches):
        render_batch(storage, "sr", "train", index, config)
    return storage, plan


def test_real_sr_pairs_and_svs_scores_become_samples(staged) -> None:
    from uniflow.simulate.stage import work_dir

    storage, plan = staged
    sources = sample_sources(storage, plan, "sr", "train")
    assert {s.corpus for s in sources} == {"hq_tts", "musdb18hq", "moisesdb", "wavcaps_freesound"}
    with tarfile.open(work_dir(storage, "sr", "train") / "batch_00000.tar") as archive:
        rendered = {member.name: archive.extractfile(member).read() for member in archive}
    in_first_batch = [s for s in sources if f"{s.key}.json" in rendered]
    assert in_first_batch
    for source in in_first_batch:
        sample = build_sample(storage, source)
        meta = json.loads(sample.files["json"])
        assert meta["simulation"] == json.loads(rendered[f"{source.key}.json"]) and "cutoff_hz" in meta["simulation"]
        if source.crop_seed is None:  # within 5 s: the rendered pair, sample for sample
            stored = decode(rendered[f"{source.key}.input.wav"], "int16")[0]
            np.testing.assert_array_equal(decode(sample.files["input.flac"], "int16")[0], stored)
        assert len(decode(sample.files["input.flac"])[0]) == len(decode(sample.files["target.flac"])[0])
    svs = sample_sources(storage, plan, "svs", "train")
    assert svs and not svs.skipped
    meta = json.loads(build_sample(storage, svs[0]).files["json"])
    assert sum(meta["score"]["frames"]) == int(round(meta["record"]["seconds"] * 24000)) // 480
