"""Manifest preparation throughput on a LibriTTS-layout directory, one core, warm page cache.

Builds (once) a directory in LibriTTS's real layout (speaker/chapter folders, 24 kHz WAV,
normalized/original texts, per-chapter trans.tsv and book.tsv) with a few hundred 1-3 s files,
then times ``prepare_manifests`` (reader + audio probe + gzip JSONL write) end to end.

    .venv/bin/python benchmarks/bench_prepare.py [--files 400] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from uniflow.corpora.manifest import prepare_manifests
from uniflow.corpora.recipe import load_recipe
from uniflow.storage import ROLES, Storage, StorageProfile

RATE = 24000
WORDS = "the quick brown fox jumps over a lazy dog while seven bright stars rise above quiet hills".split()


def build_libritts_tree(raw_root: Path, files: int, seed: int = 0) -> float:
    """Write ``files`` utterances in LibriTTS layout under raw/libritts/parts/; return total seconds."""
    rng = np.random.default_rng(seed)
    subset = raw_root / "libritts" / "parts" / "train-clean-100" / "LibriTTS" / "train-clean-100"
    per_chapter, total, written = 20, 0.0, 0
    speaker = 100
    while written < files:
        chapter = speaker * 10 + 1
        folder = subset / str(speaker) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for index in range(min(per_chapter, files - written)):
            utt = f"{speaker}_{chapter}_{index:06d}_{0:06d}"
            seconds = float(rng.uniform(1.0, 3.0))
            audio = (0.05 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)
            sf.write(folder / f"{utt}.wav", audio, RATE, subtype="PCM_16")
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 12))))
            (folder / f"{utt}.normalized.txt").write_text(text)
            (folder / f"{utt}.original.txt").write_text(text.capitalize() + ".")
            rows.append(f"{utt}\t{text.capitalize()}.\t{text}")
            total += len(audio) / RATE
            written += 1
        (folder / f"{speaker}_{chapter}.trans.tsv").write_text("\n".join(rows) + "\n")
        (folder / f"{speaker}_{chapter}.book.tsv").write_text("\n".join(rows) + "\n")
        speaker += 1
    marker = raw_root / "libritts" / "parts" / "train-clean-100.completed"
    marker.write_text("{}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target states
    recipe = load_recipe(Path(__file__).resolve().parents[1] / "datasets" / "libritts.yaml")
    recipe = recipe.model_copy(update={"splits": {"train": ["train-clean-100"]}})  # the one part we build
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        storage = Storage(StorageProfile(name="bench", roles={role: f"{tmp}/{role}" for role in ROLES}))
        seconds = build_libritts_tree(storage.path("raw"), args.files)
        prepare_manifests(recipe, storage, progress=False)  # warm the page cache and imports
        timings = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            summary = prepare_manifests(recipe, storage, progress=False)
            timings.append(time.perf_counter() - started)
        count = sum(summary.recordings.values())
        assert count == args.files and summary.quarantined == 0, (summary.recordings, summary.quarantined)
    best, median = min(timings), statistics.median(timings)
    print(f"files: {count} LibriTTS-layout WAVs, {seconds / 3600:.4f} h of audio, 1 core, warm cache")
    print(f"median: {count / median:,.0f} recordings/s, {seconds / 3600 / median:.3f} audio hours/s  ({median * 1000:.1f} ms per run)")
    print(f"best:   {count / best:,.0f} recordings/s, {seconds / 3600 / best:.3f} audio hours/s")
    print("target: >= 3000 recordings/s per core (Lhotse prepare_libritts: ~1600/s on this machine)")


if __name__ == "__main__":
    main()
