"""The MFA aligner around the ``mfa`` binary: command lines, corpus layout, OOV pass, a full batch, doctor."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from uniflow.align.alignment import AlignFailure, AlignItem, Alignment, Interval
from uniflow.align.mfa import (
    BINARY_ENV,
    MfaAligner,
    MfaSettings,
    build_align_command,
    build_g2p_command,
    check_mfa,
    find_oovs,
    normalize_transcript,
    read_dictionary_words,
    resolve_binary,
    write_corpus,
)

DATA = Path(__file__).parent / "data"

# A stand-in for MFA 3's `mfa` command: it records its argv and behaves like the real commands
# closely enough for the code around them (real TextGrids copied from tests/align/data).
STANDIN = r"""#!{python}
import json, os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["MFA_STANDIN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\n")
command = args[0] if args else ""
if command == "version":
    print("3.1.4")
    sys.exit(0)
if command == "model":  # model inspect TYPE NAME
    known = os.environ.get("MFA_STANDIN_MODELS", "").split(",")
    sys.exit(0 if f"{args[2]}:{args[3]}" in known else 1)
if os.environ.get("MFA_STANDIN_FAIL") == command:
    print("Traceback (most recent call last):", file=sys.stderr)
    print("montreal_forced_aligner.exceptions.KaldiProcessingError: There was an error in the run.", file=sys.stderr)
    sys.exit(1)
if command == "g2p":
    words = Path(args[1]).read_text(encoding="utf-8").split()
    Path(args[3]).write_text("".join(f"{word}\tY UW1 N IH0 F L OW2\n" for word in words), encoding="utf-8")
    sys.exit(0)
if command == "align":
    corpus, output = Path(args[1]), Path(args[4])
    fixtures = json.loads(os.environ["MFA_STANDIN_FIXTURES"])
    for lab in sorted(corpus.glob("*/*.lab")):
        words = lab.read_text(encoding="utf-8").split()
        chosen = [fixtures[word] for word in words if word in fixtures]
        if not chosen:
            continue  # MFA writes nothing for an utterance it cannot align
        target = output / lab.parent.name / (lab.stem + ".TextGrid")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chosen[0], target)
    sys.exit(0)
sys.exit(2)
"""

# english_us_arpa's format: word, pronunciation probability, three silence probabilities, phones.
DICTIONARY = """i\t0.99\t0.14\t1.0\t1.0\tAY1
said\t0.99\t0.12\t1.0\t1.0\tS EH1 D
white\t0.99\t0.1\t1.0\t1.0\tW AY1 T
white\t0.05\t0.1\t1.0\t1.0\tHH W AY1 T
not\t0.99\t0.14\t1.0\t1.0\tN AA1 T
bait\t1.0\t0.2\t1.0\t1.0\tB EY1 T
garbled\t1.0\t0.2\t1.0\t1.0\tG AA1 R B AH0 L D
words\t1.0\t0.2\t1.0\t1.0\tW ER1 D Z"""


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Path:
    """An executable fake `mfa` that logs every call to tmp_path/calls.jsonl."""
    binary = tmp_path / "aligner_env" / "bin" / "mfa"
    binary.parent.mkdir(parents=True)
    binary.write_text(STANDIN.replace("{python}", sys.executable), encoding="utf-8")
    binary.chmod(0o755)
    monkeypatch.setenv("MFA_STANDIN_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv(
        "MFA_STANDIN_FIXTURES",
        json.dumps(
            {"white": str(DATA / "mfa3_english_us_arpa_long.TextGrid"), "uniflow": str(DATA / "mfa3_unknown_words_long.TextGrid")}
        ),
    )
    monkeypatch.delenv("MFA_STANDIN_FAIL", raising=False)
    monkeypatch.delenv(BINARY_ENV, raising=False)
    return binary


def calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


@pytest.fixture
def dictionary(tmp_path) -> Path:
    path = tmp_path / "english_us_arpa.dict"
    path.write_text(DICTIONARY + "\n", encoding="utf-8")
    return path


def batch(tmp_path: Path) -> list[AlignItem]:
    """A whole 16 kHz file, a segment of a 44.1 kHz stereo FLAC, one unalignable, two broken items."""
    rng = np.random.default_rng(7)
    audio = tmp_path / "audio"
    audio.mkdir(exist_ok=True)
    whole = audio / "whole.wav"
    sf.write(whole, 0.1 * rng.standard_normal(66_000), 16_000)  # 4.125 s, the fixtures' length
    stereo = audio / "long.flac"
    sf.write(stereo, 0.1 * rng.standard_normal((6 * 44_100, 2)), 44_100)
    return [
        AlignItem("libritts/19/198/0001", whole, "I said WHITE, not \u201cbait\u201d!", speaker="libritts/19"),
        AlignItem("vctk/p225/003.seg1", stereo, "Uniflow said white", speaker="vctk/p225", start=1.0, end=5.125),
        AlignItem("libritts/19/198/0002", whole, "garbled words", speaker="libritts/19"),
        AlignItem("libritts/19/198/0003", whole, " -- !! ", speaker="libritts/19"),
        AlignItem("libritts/19/198/0004", audio / "missing.wav", "not said", speaker="libritts/19"),
    ]


def settings_for(standin: Path, dictionary: Path, **overrides) -> MfaSettings:
    return MfaSettings(binary=str(standin), dictionary=str(dictionary), **overrides)


# --- command lines ---------------------------------------------------------------------------


def test_align_command_uses_documented_mfa3_options(tmp_path):
    settings = MfaSettings(acoustic_model="english_us_arpa", beam=100, retry_beam=400)
    command = build_align_command(
        "/envs/aligner/bin/mfa", tmp_path / "corpus", "/d/en.dict", tmp_path / "out", tmp_path / "tmp", settings
    )
    assert command == [
        "/envs/aligner/bin/mfa", "align", str(tmp_path / "corpus"), "/d/en.dict", "english_us_arpa", str(tmp_path / "out"),
        "--output_format", "long_textgrid",
        "--num_jobs", "1", "--no_use_mp",
        "--beam", "100", "--retry_beam", "400",
        "--temporary_directory", str(tmp_path / "tmp"),
        "--clean", "--overwrite",
    ]  # fmt: skip


def test_align_command_options_follow_settings(tmp_path):
    settings = MfaSettings(num_jobs=4, output_format="short_textgrid", single_speaker=True, extra_args=("--fine_tune",))
    command = build_align_command("mfa", tmp_path, "d.dict", tmp_path / "o", tmp_path / "t", settings)
    assert command[command.index("--num_jobs") + 1] == "4" and "--use_mp" in command and "--no_use_mp" not in command
    assert command[command.index("--output_format") + 1] == "short_textgrid"
    assert command[-2:] == ["--single_speaker", "--fine_tune"]


def test_g2p_command_is_input_model_output(tmp_path):
    command = build_g2p_command("mfa", tmp_path / "oovs.txt", tmp_path / "g2p.dict", tmp_path / "t", MfaSettings(num_jobs=2))
    assert command == [
        "mfa", "g2p", str(tmp_path / "oovs.txt"), "english_us_arpa", str(tmp_path / "g2p.dict"),
        "--num_jobs", "2", "--temporary_directory", str(tmp_path / "t"), "--clean",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        build_g2p_command("mfa", tmp_path, tmp_path, tmp_path, MfaSettings(g2p_model=None))


def test_settings_are_strict():
    with pytest.raises(ValueError):
        MfaSettings(beams=3)
    with pytest.raises(ValueError):
        MfaSettings(output_format="TextGrid")


# --- transcripts, dictionary, OOV pass -------------------------------------------------------


def test_transcripts_are_normalized_as_mfa_looks_words_up():
    assert (
        normalize_transcript("I said WHITE, not \u201cbait\u201d! Don\u2019t re-enter...")
        == "i said white not bait don't re-enter"
    )
    assert normalize_transcript(" -- !! ") == ""


def test_dictionary_words_in_every_mfa_format(tmp_path):
    path = tmp_path / "mixed.dict"
    path.write_text(
        "Hello HH AH0 L OW1\nworld\t1.0\tW ER1 L D\nthe\t0.99\t0.1\t1.0\t1.0\tDH AH0\n\n{LG}\tspn\n", encoding="utf-8"
    )
    assert read_dictionary_words(path) == {"hello", "world", "the", "{lg}"}


def test_oov_pass_finds_words_mfa_cannot_pronounce():
    lexicon = {"i", "said", "john", "'s", "re", "enter", "white"}
    transcripts = ["i said uniflow", "john's re-enter", "zorblax-enter [laughter] white", "kate's"]
    assert find_oovs(transcripts, lexicon) == ["kate's", "uniflow", "zorblax"]


# --- corpus layout ---------------------------------------------------------------------------


def test_corpus_layout_speaker_folders_lab_files_and_names(tmp_path):
    items = batch(tmp_path)
    prepared, failures = write_corpus(items, tmp_path / "work" / "corpus")
    corpus = tmp_path / "work" / "corpus"
    assert sorted(path.name for path in corpus.iterdir()) == ["s0000", "s0001"]
    assert sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*")) == [
        "s0000", "s0000/u00000.lab", "s0000/u00000.wav", "s0000/u00002.lab", "s0000/u00002.wav",
        "s0001", "s0001/u00001.lab", "s0001/u00001.wav",
    ]  # fmt: skip
    assert (corpus / "s0000/u00000.lab").read_text(encoding="utf-8") == "i said white not bait\n"
    # A whole mono file is linked; a segment is cut and converted to 16 kHz mono.
    assert (corpus / "s0000/u00000.wav").is_symlink() and (corpus / "s0000/u00000.wav").resolve() == items[0].audio
    segment = sf.info(str(corpus / "s0001/u00001.wav"))
    assert (segment.samplerate, segment.channels) == (16_000, 1)
    assert abs(segment.frames - 66_000) <= 1
    assert [(p.item.id, p.speaker_dir, p.name) for p in prepared] == [
        ("libritts/19/198/0001", "s0000", "u00000"),
        ("vctk/p225/003.seg1", "s0001", "u00001"),
        ("libritts/19/198/0002", "s0000", "u00002"),
    ]
    assert prepared[0].duration == 4.125 and abs(prepared[1].duration - 4.125) < 1e-3
    assert [(f.id, f.reason) for f in failures] == [
        ("libritts/19/198/0003", "transcript empty"),
        ("libritts/19/198/0004", "audio unreadable"),
    ]
    mapping = json.loads((tmp_path / "work" / "mapping.json").read_text(encoding="utf-8"))
    assert mapping["s0001/u00001"] == {"id": "vctk/p225/003.seg1", "speaker": "vctk/p225"}


# --- a batch through the stand-in mfa --------------------------------------------------------


def test_batch_end_to_end(tmp_path, standin, dictionary):
    items = batch(tmp_path)
    workdir = tmp_path / "work"
    results = list(MfaAligner(settings_for(standin, dictionary)).align_batch(items, workdir))

    assert [r.id for r in results] == [item.id for item in items]
    spoken, segment, skipped, empty, missing = results
    assert isinstance(spoken, Alignment) and spoken.aligner == "mfa"
    assert [w.label for w in spoken.words] == ["i", "said", "white", "not", "bait"]
    assert spoken.duration == 4.125 and spoken.phones[1] == Interval("AY1", 0.44, 0.53)
    assert spoken.extra == {"speaker": "libritts/19"}
    assert isinstance(segment, Alignment) and [w.label for w in segment.words] == ["<unk>"] * 5
    assert segment.extra == {"speaker": "vctk/p225", "g2p_words": ["uniflow"]}
    assert abs(segment.duration - 4.125) < 1e-3
    assert isinstance(skipped, AlignFailure) and skipped.reason == "aligner produced no output"
    assert "s0000/u00002.TextGrid" in skipped.detail
    assert (empty.reason, missing.reason) == ("transcript empty", "audio unreadable")

    g2p, align = calls(tmp_path)
    assert (
        g2p
        == build_g2p_command(
            str(standin),
            workdir / "g2p/oovs.txt",
            workdir / "g2p/g2p.dict",
            workdir / "tmp_g2p",
            settings_for(standin, dictionary),
        )[1:]
    )
    assert (workdir / "g2p/oovs.txt").read_text(encoding="utf-8") == "uniflow\n"
    batch_dictionary = workdir / "dictionary.dict"
    assert (
        align
        == build_align_command(
            str(standin),
            workdir / "corpus",
            batch_dictionary,
            workdir / "output",
            workdir / "tmp",
            settings_for(standin, dictionary),
        )[1:]
    )
    merged = batch_dictionary.read_text(encoding="utf-8").splitlines()
    assert merged[: len(DICTIONARY.splitlines())] == DICTIONARY.splitlines()
    assert merged[-1] == "uniflow\tY UW1 N IH0 F L OW2"


def test_batch_without_oovs_uses_the_dictionary_as_is(tmp_path, standin, dictionary):
    items = batch(tmp_path)[:1]
    results = list(MfaAligner(settings_for(standin, dictionary)).align_batch(items, tmp_path / "work"))
    assert isinstance(results[0], Alignment)
    (align,) = calls(tmp_path)
    assert align[0] == "align" and align[2] == str(dictionary)


def test_failing_mfa_fails_the_batch_with_its_output(tmp_path, standin, dictionary, monkeypatch):
    aligner = MfaAligner(settings_for(standin, dictionary))
    workdir = tmp_path / "work"
    assert isinstance(next(iter(aligner.align_batch(batch(tmp_path)[:1], workdir))), Alignment)
    # The retry after a crash must not pick up the TextGrids of the earlier attempt.
    monkeypatch.setenv("MFA_STANDIN_FAIL", "align")
    results = list(aligner.align_batch(batch(tmp_path), workdir))
    assert [r.reason for r in results] == ["mfa align failed"] * 3 + ["transcript empty", "audio unreadable"]
    assert "exited with status 1" in results[0].detail
    assert "KaldiProcessingError: There was an error in the run." in results[0].detail


def test_rerun_never_reads_previous_outputs(tmp_path, standin, dictionary, monkeypatch):
    aligner = MfaAligner(settings_for(standin, dictionary))
    items = batch(tmp_path)[:1]
    assert isinstance(next(iter(aligner.align_batch(items, tmp_path / "work"))), Alignment)
    # Second attempt in the same workdir: this time MFA aligns nothing.
    monkeypatch.setenv("MFA_STANDIN_FIXTURES", "{}")
    (result,) = aligner.align_batch(items, tmp_path / "work")
    assert result.reason == "aligner produced no output"


def test_failing_g2p_fails_the_batch(tmp_path, standin, dictionary, monkeypatch):
    monkeypatch.setenv("MFA_STANDIN_FAIL", "g2p")
    results = list(MfaAligner(settings_for(standin, dictionary)).align_batch(batch(tmp_path)[:2], tmp_path / "work"))
    assert [r.reason for r in results] == ["mfa g2p failed"] * 2
    assert [call[0] for call in calls(tmp_path)] == ["g2p"]


def test_missing_binary_or_dictionary_fail_items_not_the_run(tmp_path, dictionary, monkeypatch):
    monkeypatch.delenv(BINARY_ENV, raising=False)
    items = batch(tmp_path)[:1]
    no_binary = MfaAligner(MfaSettings(binary=str(tmp_path / "none" / "mfa"), dictionary=str(dictionary)))
    (result,) = no_binary.align_batch(items, tmp_path / "a")
    assert result.reason == "mfa not found" and "conda create -n aligner -c conda-forge montreal-forced-aligner" in result.detail
    no_dictionary = MfaAligner(MfaSettings(binary=sys.executable, dictionary="nowhere_arpa", root_dir=str(tmp_path / "root")))
    (result,) = no_dictionary.align_batch(items, tmp_path / "b")
    assert result.reason == "dictionary not found" and "mfa model download dictionary nowhere_arpa" in result.detail


# --- finding mfa, uniflow doctor -------------------------------------------------------------


def test_binary_from_setting_environment_or_path(standin, monkeypatch):
    assert resolve_binary(MfaSettings(binary=str(standin))) == str(standin)
    monkeypatch.setenv(BINARY_ENV, str(standin))
    assert resolve_binary(MfaSettings()) == str(standin)
    monkeypatch.delenv(BINARY_ENV)
    monkeypatch.setenv("PATH", str(standin.parent) + os.pathsep + os.environ.get("PATH", ""))
    assert resolve_binary(MfaSettings()) == str(standin)


def test_doctor_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv(BINARY_ENV, raising=False)
    settings = MfaSettings(binary=str(tmp_path / "missing" / "mfa"), root_dir=str(tmp_path / "mfa_root"))
    checks = {check.name: check for check in check_mfa(settings)}
    assert list(checks) == ["mfa executable", "mfa acoustic model", "mfa dictionary", "mfa g2p model"]
    assert not any(check.ok for check in checks.values())
    assert "conda create -n aligner -c conda-forge montreal-forced-aligner" in checks["mfa executable"].fix
    assert checks["mfa acoustic model"].fix == "mfa model download acoustic english_us_arpa"
    assert checks["mfa dictionary"].fix == "mfa model download dictionary english_us_arpa"
    assert checks["mfa g2p model"].fix == "mfa model download g2p english_us_arpa"


def test_doctor_passes_with_mfa_and_downloaded_models(tmp_path, standin, monkeypatch):
    root = tmp_path / "mfa_root" / "pretrained_models"
    (root / "acoustic").mkdir(parents=True)
    (root / "acoustic" / "english_us_arpa.zip").write_bytes(b"PK")
    (root / "dictionary").mkdir()
    (root / "dictionary" / "english_us_arpa.dict").write_text(DICTIONARY, encoding="utf-8")
    # The G2P model is known to mfa itself (saved elsewhere): found through `mfa model inspect`.
    monkeypatch.setenv("MFA_STANDIN_MODELS", "g2p:english_us_arpa")
    checks = check_mfa(MfaSettings(binary=str(standin), root_dir=str(tmp_path / "mfa_root")))
    assert all(check.ok for check in checks), checks
    assert checks[0].detail == f"{standin} (MFA 3.1.4)"
    assert checks[2].detail == str(root / "dictionary" / "english_us_arpa.dict")
    assert ["model", "inspect", "g2p", "english_us_arpa"] in calls(tmp_path)
    # Without it, the G2P check fails and says how to get it.
    monkeypatch.setenv("MFA_STANDIN_MODELS", "")
    g2p = check_mfa(MfaSettings(binary=str(standin), root_dir=str(tmp_path / "mfa_root")))[3]
    assert not g2p.ok and g2p.fix == "mfa model download g2p english_us_arpa"
    assert check_mfa(MfaSettings(binary=str(standin), g2p_model=None, root_dir=str(tmp_path / "mfa_root")))[3].ok
