"""Offline aligner throughput on real speech, one core: audio seconds aligned per wall-clock second.

Aligns the transcribed utterances of Debian's pocketsphinx-testdata (five LibriVox "Sense and
Sensibility" sentences, five spoken card names; 34 s together), cycled until about ``--seconds``
of audio, with one ``PocketsphinxAligner`` (one decoder, reused), after a warm-up pass that loads
the decoder and CMUdict. The time covers everything the stage pays per utterance: reading and
resampling the audio, both decoder passes, stress restoration and the silence refinement.

    .venv/bin/python benchmarks/bench_align.py [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf

from uniflow.align.alignment import AlignItem, Alignment
from uniflow.align.sphinx import PocketsphinxAligner

TESTDATA = Path("/usr/share/pocketsphinx/test/data")


def testdata_items() -> list[AlignItem]:
    items = []
    for folder, transcription in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (TESTDATA / folder / transcription).read_text().splitlines():
            match = re.fullmatch(r"<s>\s*(.*?)\s*</s>\s*\((\S+)\)", line.strip())
            if match:
                items.append(AlignItem(f"{folder}/{match.group(2)}", TESTDATA / folder / f"{match.group(2)}.wav", match.group(1)))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not TESTDATA.is_dir():
        raise SystemExit(f"{TESTDATA} not found: apt-get install pocketsphinx-testdata")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    base = testdata_items()
    durations = {item.id: sf.info(item.audio).duration for item in base}
    workload, total = [], 0.0
    while total < args.seconds:
        for item in base:
            workload.append(AlignItem(f"{item.id}#{len(workload)}", item.audio, item.text))
            total += durations[item.id]

    aligner = PocketsphinxAligner()
    with tempfile.TemporaryDirectory(prefix="bench-align-") as workdir:
        warm = list(aligner.align_batch(base, Path(workdir)))  # decoder, CMUdict, page cache
        assert all(isinstance(result, Alignment) for result in warm), warm
        timings = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            results = list(aligner.align_batch(workload, Path(workdir)))
            timings.append(time.perf_counter() - started)
            failed = [result for result in results if not isinstance(result, Alignment)]
            assert not failed, failed

    median, best = statistics.median(timings), min(timings)
    print(f"workload: {len(workload)} utterances, {total:.1f} s of real speech (pocketsphinx-testdata), 1 core")
    print(f"pocketsphinx aligner throughput: {total / median:.1f} audio seconds per wall second (median of {args.repeats})")
    print(f"best run: {total / best:.1f} audio s/s; {median / len(workload) * 1000:.1f} ms per utterance (median)")


if __name__ == "__main__":
    main()
