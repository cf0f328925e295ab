"""The simulation stage end to end on mirror corpora: plan, render, quarantine, resume, replay."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

from support import DATASETS, make_storage
from uniflow.corpora.acquire import acquire_corpus
from uniflow.corpora.manifest import prepare_manifests
from uniflow.corpora.recipe import load_plan
from uniflow.jsonl import encode_jsonl_gz, iter_jsonl_gz
from uniflow.simulate.stage import SimulationConfig, plan_simulation, render_batch, replay, summarize, work_dir

SE_CORPORA = ("libritts", "vctk", "ljspeech", "voicebank_demand", "wham_noise", "musan", "rirs_noises")
SR_CORPORA = ("hq_tts", "musdb18hq", "moisesdb", "wavcaps_freesound")


@pytest.fixture(scope="module")
def built(recipes, mirror_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Every SE and SR source acquired from the mirror, with one silent utterance added to LJSpeech."""
    storage = make_storage(tmp_path_factory.mktemp("simulate"), mirror_url)
    for name in SE_CORPORA + SR_CORPORA:
        assert acquire_corpus(storage, recipes[name], progress=False).status == "done", name
        prepare_manifests(recipes[name], storage, progress=False)
    silent = storage.path("raw", "ljspeech", "silent.wav")
    sf.write(silent, np.zeros(22050 * 2, dtype=np.float32), 22050)
    with storage.open("manifests", "ljspeech", "train.jsonl.gz") as handle:
        records = list(iter_jsonl_gz(handle))
    records.append({**records[0], "id": "ljspeech/SILENT-0001", "audio": "ljspeech/silent.wav", "seconds": 2.0})
    storage.write_bytes("manifests", "ljspeech", "train.jsonl.gz", data=encode_jsonl_gz(records))
    config = SimulationConfig.model_validate({"batch_size": 8, "sr": {"min_clip_seconds": 0.5}})
    plan = load_plan(DATASETS / "plan.yaml", recipes)
    plans = {task: plan_simulation(storage, task, "train", plan, config) for task in ("se", "sr")}
    for task, simulation in plans.items():
        for index in range(simulation.batches):
            render_batch(storage, task, "train", index, config)
    return storage, config, plans, plan


def members(storage, task: str, index: int) -> dict[str, bytes]:
    with tarfile.open(work_dir(storage, task, "train") / f"batch_{index:05d}.tar") as archive:
        return {member.name: archive.extractfile(member).read() for member in archive}


def test_se_pairs_cover_every_clean_corpus_and_voicebank(built) -> None:
    storage, _, plans, _ = built
    summary = summarize(storage, "se", "train")
    assert summary.pairs > 0 and summary.hours > 0
    keys = {name.rsplit(".", 2)[0] for index in range(plans["se"].batches) for name in members(storage, "se", index)}
    for prefix in ("se/libritts/", "se/vctk/", "se/ljspeech/", "se-paired/voicebank_demand/"):
        assert any(key.startswith(prefix) for key in keys), prefix
    assert sum(summary.histograms["snr_db"].values()) == summary.pairs - sum(k.startswith("se-paired/") for k in keys)


def test_every_pair_is_complete_aligned_and_24k(built) -> None:
    storage, _, plans, _ = built
    for task in ("se", "sr"):
        for index in range(plans[task].batches):
            files = members(storage, task, index)
            for name in [n for n in files if n.endswith(".json")]:
                key = name[: -len(".json")]
                source, rate = sf.read(io.BytesIO(files[f"{key}.input.wav"]))
                target, rate_t = sf.read(io.BytesIO(files[f"{key}.target.wav"]))
                assert rate == rate_t == 24000 and len(source) == len(target) > 0
                assert sf.info(io.BytesIO(files[f"{key}.input.wav"])).subtype == "PCM_16"
                assert json.loads(files[name])["key"] == key


def test_silent_speech_is_quarantined_with_reason(built) -> None:
    storage, _, plans, _ = built
    folder = work_dir(storage, "se", "train")
    lines = [json.loads(line) for path in folder.glob("*.quarantine.jsonl") for line in path.read_text().splitlines() if line]
    skipped = [json.loads(line) for line in (folder / "skipped.jsonl").read_text().splitlines() if line]
    assert any("SILENT" in json.dumps(line) for line in lines + skipped), (lines, skipped)


def test_replay_is_bit_exact(built) -> None:
    storage, config, plans, _ = built
    for task in ("se", "sr"):
        key = next(name[: -len(".json")] for name in members(storage, task, 0) if name.endswith(".json"))
        result = replay(storage, key, config)
        assert result.identical, key


def test_rerun_renders_only_unfinished_batches(built) -> None:
    storage, config, plans, plan = built
    again = plan_simulation(storage, "sr", "train", plan, config)
    assert again == plans["sr"], "an unchanged plan is kept"
    (work_dir(storage, "sr", "train") / "batch_00000.done").unlink()
    results = [render_batch(storage, "sr", "train", index, config) for index in range(again.batches)]
    assert not results[0].skipped and all(result.skipped for result in results[1:])
