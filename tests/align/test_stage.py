"""The chunked alignment stage on real recorded speech: outputs, failures, and resume after a crash."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from support import make_storage
from uniflow.align.sphinx import PocketsphinxAligner
from uniflow.align.stage import align_split, chunk_is_done, plan_chunks, work_dir
from uniflow.jsonl import encode_jsonl_gz, iter_jsonl_gz

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="pocketsphinx-testdata is not installed (scripts/bootstrap.sh installs it)")


def real_utterances() -> list[tuple[Path, str]]:
    """LibriVox and 'cards' recordings with their transcripts, from the Debian package."""
    found = []
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (TESTDATA / folder / listing).read_text().splitlines():
            match = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
            if match:
                found.append((TESTDATA / folder / f"{match.group(2)}.wav", " ".join(match.group(1).split())))
    return found


@pytest.fixture
def corpus(tmp_path: Path):
    """A manifest of 10 real utterances plus one unreadable file, in the manifests role."""
    storage = make_storage(tmp_path)
    audio_dir = storage.path("raw", "speech")
    audio_dir.mkdir(parents=True)
    records = []
    for number, (wav, text) in enumerate(real_utterances()):
        shutil.copyfile(wav, audio_dir / wav.name)
        info = sf.info(str(wav))
        records.append({"id": f"speech/{number:03d}", "corpus": "speech", "split": "train", "audio": f"speech/{wav.name}",
                        "seconds": info.frames / info.samplerate, "sample_rate": info.samplerate, "text": text, "speaker": wav.parent.name})
    (audio_dir / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    records.append({"id": "speech/broken", "corpus": "speech", "split": "train", "audio": "speech/broken.wav",
                    "seconds": 1.0, "sample_rate": 16000, "text": "nothing here", "speaker": "x"})
    records.append({"id": "speech/silent-text", "corpus": "speech", "split": "train", "audio": "speech/broken.wav",
                    "seconds": 1.0, "sample_rate": 16000, "speaker": "x"})
    storage.write_bytes("manifests", "speech", "train.jsonl.gz", data=encode_jsonl_gz(records))
    return storage


class CountingAligner:
    """The real aligner, counting batches and optionally dying on one (a killed worker)."""

    name = "pocketsphinx"

    def __init__(self, die_on_call: int | None = None) -> None:
        self.real = PocketsphinxAligner()
        self.calls = 0
        self.die_on_call = die_on_call

    def align_batch(self, items, workdir):
        self.calls += 1
        if self.calls == self.die_on_call:
            raise KeyboardInterrupt("killed")
        yield from self.real.align_batch(items, workdir)


def read_alignments(storage, corpus="speech", split="train") -> list[dict]:
    with storage.open("manifests", corpus, f"{split}.align.jsonl.gz") as handle:
        return list(iter_jsonl_gz(handle))


def test_alignments_frames_and_failures(corpus) -> None:
    summary = align_split(corpus, "speech", "train", PocketsphinxAligner(), chunk_size=4, progress=False)
    assert summary.aligned == 10 and summary.failed == 1 and summary.skipped_without_text == 1
    assert sum(summary.failures_by_reason.values()) == 1
    failures = corpus.read_text("manifests", "speech", "train.align_failures.jsonl")
    assert '"id":"speech/broken"' in failures.replace(" ", "")
    for record in read_alignments(corpus):
        durations = record["durations"]
        assert sum(durations["frames"]) == durations["latent_frames"] == int(round(record["duration"] * 24000)) // 480
        assert len(durations["phones"]) == len(durations["frames"])
        assert durations["phones"][0] == "sil" or durations["frames"][0] > 0
    assert summary.hours_aligned > 0


def test_interrupted_run_resumes_without_redoing_finished_chunks(corpus, tmp_path: Path) -> None:
    dying = CountingAligner(die_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        align_split(corpus, "speech", "train", dying, chunk_size=4, progress=False)
    assert chunk_is_done(corpus, "speech", "train", 0) and not chunk_is_done(corpus, "speech", "train", 1)
    finished = (work_dir(corpus, "speech", "train") / "chunk_00000.jsonl.gz").stat().st_mtime_ns

    resumed = CountingAligner()
    align_split(corpus, "speech", "train", resumed, chunk_size=4, progress=False)
    assert resumed.calls == 2, "only the two unfinished chunks are aligned again"
    assert (work_dir(corpus, "speech", "train") / "chunk_00000.jsonl.gz").stat().st_mtime_ns == finished

    fresh = make_storage(tmp_path / "uninterrupted")
    shutil.copytree(corpus.path("raw"), fresh.path("raw"))
    shutil.copytree(corpus.path("manifests", "speech"), fresh.path("manifests", "speech"))
    for name in ("train.align.jsonl.gz", "train.align_failures.jsonl", "train.align_summary.json"):
        fresh.remove("manifests", "speech", name)
    align_split(fresh, "speech", "train", PocketsphinxAligner(), chunk_size=4, progress=False)
    assert read_alignments(fresh) == read_alignments(corpus), "a resumed run gives what an uninterrupted run gives"


def test_changed_manifest_replans(corpus) -> None:
    first = plan_chunks(corpus, "speech", "train", "pocketsphinx", chunk_size=4)
    assert first.chunks == 3 and first.utterances == 11
    assert plan_chunks(corpus, "speech", "train", "pocketsphinx", chunk_size=4) == first
    smaller = plan_chunks(corpus, "speech", "train", "pocketsphinx", chunk_size=5)
    assert smaller.chunks == 3 and not (work_dir(corpus, "speech", "train") / "chunk_00000.done").exists()
