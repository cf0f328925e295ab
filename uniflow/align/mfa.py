"""Montreal Forced Aligner 3, run as its users run it: the ``mfa`` command of its own conda environment.

MFA needs Kaldi from conda-forge, so it is never imported; it is called as a subprocess, found
through ``MfaSettings.binary``, the ``UNIFLOW_MFA_BIN`` environment variable, or ``mfa`` on PATH.
For one batch (a chunk of the alignment stage) ``MfaAligner.align_batch``:

1. writes MFA's corpus layout under ``workdir/corpus``: one folder per speaker holding
   ``<utterance>.wav`` (a link to the source file, or a 16 kHz mono cut when the item is a segment
   of a file) and ``<utterance>.lab`` with the normalized transcript; file names are batch-local
   (``u00000``...), mapped back to the item ids afterwards;
2. finds the batch's words that are not in the pronunciation dictionary, runs ``mfa g2p`` on them
   and merges the result into a batch dictionary;
3. runs ``mfa align`` and reads each utterance's TextGrid back with ``read_textgrid``.

An utterance MFA could not align (it writes no TextGrid for it) becomes an ``AlignFailure``; a
failing ``mfa`` command fails every utterance of the batch, with the end of its log as detail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr
from pydantic import Field

from uniflow.align.alignment import AlignFailure, AlignItem, Alignment, AlignmentError
from uniflow.align.phones import UnknownPhone
from uniflow.align.textgrid import TextGridError, read_textgrid
from uniflow.config import StrictModel
from uniflow.doctor import DoctorCheck

BINARY_ENV = "UNIFLOW_MFA_BIN"
MFA_SAMPLE_RATE = 16_000  # the rate of MFA's pretrained models' features
_LOG_TAIL_CHARS = 2000
_INSTALL_MFA = "conda create -n aligner -c conda-forge montreal-forced-aligner"
_MODEL_EXTENSIONS = {"acoustic": (".zip",), "dictionary": (".dict", ".txt"), "g2p": (".zip",)}
# Source formats MFA reads as they are; anything else (and any multi-channel file) is converted.
_LINKABLE_SUFFIXES = {".wav", ".flac"}


class MfaSettings(StrictModel):
    """Where MFA and its models are, and how ``mfa align`` is run."""

    binary: str | None = Field(None, description=f"mfa executable; default ${BINARY_ENV}, then `mfa` on PATH")
    acoustic_model: str = Field("english_us_arpa", description="downloaded model name or path to its .zip")
    dictionary: str = Field("english_us_arpa", description="downloaded dictionary name or path to the file")
    g2p_model: str | None = Field("english_us_arpa", description="G2P model for OOV words; None: OOVs align as spn")
    root_dir: str | None = Field(None, description="MFA_ROOT_DIR holding pretrained_models/; default ~/Documents/MFA")
    num_jobs: int = Field(1, ge=1)
    beam: int = Field(10, ge=1)
    retry_beam: int = Field(40, ge=1)
    output_format: Literal["long_textgrid", "short_textgrid", "json"] = "long_textgrid"
    single_speaker: bool = Field(False, description="split work by utterance instead of by speaker")
    timeout_s: float | None = Field(None, gt=0, description="kill an mfa command running longer than this")
    extra_args: tuple[str, ...] = ()


# --- locating MFA and its models -------------------------------------------------------------


def resolve_binary(settings: MfaSettings) -> str | None:
    """Path of the mfa executable from the setting, ``$UNIFLOW_MFA_BIN`` or PATH; None when absent."""
    candidate = settings.binary or os.environ.get(BINARY_ENV) or "mfa"
    if os.sep in candidate or (os.altsep and os.altsep in candidate):
        path = Path(candidate).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(candidate)


def mfa_root_dir(settings: MfaSettings) -> Path:
    """The folder ``mfa model download`` saves into (``$MFA_ROOT_DIR``, default ~/Documents/MFA)."""
    root = settings.root_dir or os.environ.get("MFA_ROOT_DIR") or "~/Documents/MFA"
    return Path(root).expanduser()


def resolve_model_file(settings: MfaSettings, model_type: str, name_or_path: str) -> Path | None:
    """The file behind a model setting: an existing path, or a downloaded model of that name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    folder = mfa_root_dir(settings) / "pretrained_models" / model_type
    for extension in _MODEL_EXTENSIONS[model_type]:
        candidate = folder / f"{name_or_path}{extension}"
        if candidate.is_file():
            return candidate
    return None


def _subprocess_env(binary: str, settings: MfaSettings) -> dict[str, str]:
    env = dict(os.environ)
    # A conda environment's mfa finds its helper programs next to itself even when the
    # environment is not activated.
    env["PATH"] = os.pathsep.join([str(Path(binary).parent), env.get("PATH", "")])
    if settings.root_dir:
        env["MFA_ROOT_DIR"] = str(Path(settings.root_dir).expanduser())
    return env


# --- command lines ---------------------------------------------------------------------------


def build_align_command(
    binary: str,
    corpus_dir: Path,
    dictionary_path: str | Path,
    output_dir: Path,
    temporary_dir: Path,
    settings: MfaSettings,
) -> list[str]:
    """``mfa align CORPUS_DIRECTORY DICTIONARY_PATH ACOUSTIC_MODEL_PATH OUTPUT_DIRECTORY`` + options.

    ``--beam``/``--retry_beam`` are MFA's alignment configuration parameters, which it accepts on
    the command line; ``--clean`` and ``--overwrite`` make a retried batch start fresh, and a
    per-batch ``--temporary_directory`` keeps concurrent batches out of each other's way.
    """
    command = [
        binary,
        "align",
        str(corpus_dir),
        str(dictionary_path),
        settings.acoustic_model,
        str(output_dir),
        "--output_format",
        settings.output_format,
        "--num_jobs",
        str(settings.num_jobs),
        "--use_mp" if settings.num_jobs > 1 else "--no_use_mp",
        "--beam",
        str(settings.beam),
        "--retry_beam",
        str(settings.retry_beam),
        "--temporary_directory",
        str(temporary_dir),
        "--clean",
        "--overwrite",
    ]
    if settings.single_speaker:
        command.append("--single_speaker")
    return command + list(settings.extra_args)


def build_g2p_command(binary: str, word_list: Path, output_path: Path, temporary_dir: Path, settings: MfaSettings) -> list[str]:
    """``mfa g2p INPUT_PATH G2P_MODEL_PATH OUTPUT_PATH`` for a word list, one word per line."""
    if settings.g2p_model is None:
        raise ValueError("no G2P model is configured")
    return [
        binary,
        "g2p",
        str(word_list),
        settings.g2p_model,
        str(output_path),
        "--num_jobs",
        str(settings.num_jobs),
        "--temporary_directory",
        str(temporary_dir),
        "--clean",
    ]


# --- transcripts and the pronunciation dictionary --------------------------------------------

# A word: letters/digits, with apostrophes or hyphens inside (clitics, compounds) as MFA keeps them.
_WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
_BRACKETED = re.compile(r"^[\[{<(].*[\]}>)]$")


def normalize_transcript(text: str) -> str:
    """Lower-case words without punctuation, as MFA looks them up in its dictionary."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(_WORD.findall(text))


def _dictionary_entry(line: str) -> tuple[str, list[str]] | None:
    """(word, phones) of a dictionary line; MFA's formats put up to four probabilities in between."""
    fields = line.split()
    if not fields:
        return None
    word, rest = fields[0].lower(), fields[1:]
    while rest and _is_number(rest[0]):
        rest = rest[1:]
    return word, rest


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_dictionary_words(path: Path) -> set[str]:
    """The words of an MFA pronunciation dictionary (plain, or with pronunciation/silence probabilities)."""
    words = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            entry = _dictionary_entry(line)
            if entry:
                words.add(entry[0])
    return words


def _covered(word: str, lexicon: set[str]) -> bool:
    """Whether MFA can pronounce ``word``: listed, or split into listed compound parts or clitics."""
    if word in lexicon:
        return True
    if "-" in word:
        return all(_covered(part, lexicon) for part in word.split("-") if part)
    if "'" in word:
        stem, _, suffix = word.partition("'")
        return stem in lexicon and f"'{suffix}" in lexicon
    return False


def find_oovs(transcripts: Iterable[str], lexicon: set[str]) -> list[str]:
    """Sorted words of normalized transcripts that the dictionary cannot pronounce.

    An uncovered compound contributes its unknown parts (MFA splits compounds on hyphens);
    bracketed annotations such as ``[laughter]`` are not words and are skipped, as ``mfa g2p`` does.
    """
    oovs: set[str] = set()
    for transcript in transcripts:
        for word in transcript.split():
            if _BRACKETED.match(word) or _covered(word, lexicon):
                continue
            if "-" in word:
                oovs.update(part for part in word.split("-") if part and not _covered(part, lexicon))
            else:
                oovs.add(word)
    return sorted(oovs)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_g2p_output(path: Path) -> dict[str, list[str]]:
    """Pronunciations ``mfa g2p`` wrote (``word<TAB>PH ONES`` per line; extra variants kept)."""
    pronunciations: dict[str, list[str]] = {}
    if not path.is_file():
        return pronunciations
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            entry = _dictionary_entry(line)
            if entry and entry[1]:
                pronunciations.setdefault(entry[0], []).append(" ".join(entry[1]))
    return pronunciations


# --- the corpus layout -----------------------------------------------------------------------


@dataclass(slots=True)
class PreparedUtterance:
    """An item as MFA sees it: its speaker folder, file name, transcript and audio length."""

    item: AlignItem
    speaker_dir: str
    name: str
    transcript: str
    duration: float
    words: list[str] = field(default_factory=list)


def _item_audio(item: AlignItem, target: Path) -> float:
    """Place the item's audio at ``target`` (link or 16 kHz mono cut) and return its length in seconds."""
    info = sf.info(str(item.audio))
    if item.start is None and item.end is None:
        if item.audio.suffix.lower() in _LINKABLE_SUFFIXES and info.channels == 1:
            target = target.with_suffix(item.audio.suffix.lower())
            target.symlink_to(item.audio.resolve())
            return info.frames / info.samplerate
        first, last = 0, info.frames
    else:
        first = round((item.start or 0.0) * info.samplerate)
        last = min(info.frames, round(item.end * info.samplerate)) if item.end is not None else info.frames
    if last <= first:
        raise ValueError(f"segment [{item.start}, {item.end}] s is empty in a {info.frames / info.samplerate:.3f} s file")
    samples, rate = sf.read(str(item.audio), start=first, stop=last, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != MFA_SAMPLE_RATE:
        mono = soxr.resample(mono, rate, MFA_SAMPLE_RATE)
    sf.write(str(target), np.clip(mono, -1.0, 1.0), MFA_SAMPLE_RATE, subtype="PCM_16")
    return len(mono) / MFA_SAMPLE_RATE


def write_corpus(items: list[AlignItem], corpus_dir: Path) -> tuple[list[PreparedUtterance], list[AlignFailure]]:
    """Write MFA's corpus layout for ``items``; items that cannot be prepared become failures.

    Speakers become ``s0000``... folders and utterances ``u00000``... files, because ids hold
    characters MFA cannot take in file names ('/', dots); ``mapping.json`` beside the corpus
    records the names for whoever debugs a batch.
    """
    corpus_dir.mkdir(parents=True, exist_ok=True)
    speaker_dirs: dict[str, str] = {}
    prepared: list[PreparedUtterance] = []
    failures: list[AlignFailure] = []
    for index, item in enumerate(items):
        transcript = normalize_transcript(item.text)
        if not transcript:
            failures.append(AlignFailure(item.id, "transcript empty", f"no words in {item.text!r}"))
            continue
        speaker_dir = speaker_dirs.setdefault(item.speaker, f"s{len(speaker_dirs):04d}")
        name = f"u{index:05d}"
        folder = corpus_dir / speaker_dir
        folder.mkdir(exist_ok=True)
        try:
            duration = _item_audio(item, folder / f"{name}.wav")
        except (OSError, RuntimeError, ValueError, sf.LibsndfileError) as exc:
            failures.append(AlignFailure(item.id, "audio unreadable", f"{item.audio}: {exc}"))
            continue
        (folder / f"{name}.lab").write_text(transcript + "\n", encoding="utf-8")
        prepared.append(PreparedUtterance(item, speaker_dir, name, transcript, duration, transcript.split()))
    mapping = {f"{p.speaker_dir}/{p.name}": {"id": p.item.id, "speaker": p.item.speaker} for p in prepared}
    (corpus_dir.parent / "mapping.json").write_text(json.dumps(mapping, indent=1, ensure_ascii=False), encoding="utf-8")
    return prepared, failures


# --- running mfa -----------------------------------------------------------------------------


class MfaCommandError(RuntimeError):
    """An mfa command exited non-zero (or timed out); ``tail`` is the end of its output."""

    def __init__(self, command: str, returncode: int | None, tail: str) -> None:
        status = "timed out" if returncode is None else f"exited with status {returncode}"
        super().__init__(f"mfa {command} {status}")
        self.command, self.returncode, self.tail = command, returncode, tail


def _log_tail(log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return text[-_LOG_TAIL_CHARS:].strip()


def _run(command: list[str], log_path: Path, env: dict[str, str], timeout: float | None) -> None:
    """Run an mfa command with its output in ``log_path``; raise MfaCommandError on failure."""
    with open(log_path, "wb") as log:
        try:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise MfaCommandError(command[1], None, _log_tail(log_path)) from None
        except OSError as exc:
            raise MfaCommandError(command[1], -1, f"cannot start {command[0]}: {exc}") from None
    if result.returncode != 0:
        raise MfaCommandError(command[1], result.returncode, _log_tail(log_path))


class MfaAligner:
    """The Aligner contract on top of the ``mfa`` command line (MFA 3)."""

    name = "mfa"

    def __init__(self, settings: MfaSettings | None = None, binary: str | None = None) -> None:
        self.settings = settings or MfaSettings()
        if binary is not None:
            self.settings = self.settings.model_copy(update={"binary": binary})
        self._lexicon: tuple[Path, float, set[str]] | None = None

    def _lexicon_words(self, path: Path) -> set[str]:
        # A pretrained dictionary has ~200k entries: read it once per aligner, again only if it changes.
        mtime = path.stat().st_mtime
        if self._lexicon is None or self._lexicon[:2] != (path, mtime):
            self._lexicon = (path, mtime, read_dictionary_words(path))
        return self._lexicon[2]

    def _batch_dictionary(
        self, binary: str, dictionary: Path, prepared: list[PreparedUtterance], workdir: Path, env: dict[str, str]
    ) -> tuple[Path, dict[str, list[str]], set[str]]:
        """Dictionary for ``mfa align`` (the configured one plus G2P pronunciations of the OOVs)."""
        oovs = find_oovs((p.transcript for p in prepared), self._lexicon_words(dictionary))
        if not oovs or self.settings.g2p_model is None:
            return dictionary, {}, set(oovs)
        g2p_dir = workdir / "g2p"
        g2p_dir.mkdir()
        word_list = g2p_dir / "oovs.txt"
        word_list.write_text("\n".join(oovs) + "\n", encoding="utf-8")
        generated = g2p_dir / "g2p.dict"
        command = build_g2p_command(binary, word_list, generated, workdir / "tmp_g2p", self.settings)
        _run(command, workdir / "mfa_g2p.log", env, self.settings.timeout_s)
        pronunciations = {word: prons for word, prons in read_g2p_output(generated).items() if word in set(oovs)}
        merged = workdir / "dictionary.dict"
        with open(merged, "w", encoding="utf-8") as out, open(dictionary, encoding="utf-8", errors="replace") as source:
            shutil.copyfileobj(source, out)
            if dictionary.stat().st_size and not _ends_with_newline(dictionary):
                out.write("\n")
            for word, prons in sorted(pronunciations.items()):
                out.writelines(f"{word}\t{pron}\n" for pron in prons)
        return merged, pronunciations, set(oovs) - set(pronunciations)

    def align_batch(self, items: list[AlignItem], workdir: Path) -> Iterator[Alignment | AlignFailure]:
        """Align one batch with MFA; yields one Alignment or AlignFailure per item, in item order."""
        results: dict[str, Alignment | AlignFailure] = {}
        workdir = Path(workdir)
        for stale in ("corpus", "output", "g2p", "tmp", "tmp_g2p"):
            # A rerun after an interruption must never read TextGrids of the previous attempt.
            shutil.rmtree(workdir / stale, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        prepared, failures = write_corpus(items, workdir / "corpus")
        results.update((failure.id, failure) for failure in failures)
        if prepared:
            results.update((result.id, result) for result in self._align_prepared(prepared, workdir))
        for item in items:
            yield results[item.id]

    def _align_prepared(self, prepared: list[PreparedUtterance], workdir: Path) -> Iterator[Alignment | AlignFailure]:
        binary = resolve_binary(self.settings)
        if binary is None:
            detail = f"no mfa executable (setting, ${BINARY_ENV}, PATH); install: {_INSTALL_MFA}"
            yield from (AlignFailure(p.item.id, "mfa not found", detail) for p in prepared)
            return
        dictionary = resolve_model_file(self.settings, "dictionary", self.settings.dictionary)
        if dictionary is None:
            detail = (
                f"dictionary {self.settings.dictionary!r} not found; mfa model download dictionary {self.settings.dictionary}"
            )
            yield from (AlignFailure(p.item.id, "dictionary not found", detail) for p in prepared)
            return
        env = _subprocess_env(binary, self.settings)
        output_dir = workdir / "output"
        try:
            batch_dictionary, g2p_words, unresolved = self._batch_dictionary(binary, dictionary, prepared, workdir, env)
            command = build_align_command(
                binary, workdir / "corpus", batch_dictionary, output_dir, workdir / "tmp", self.settings
            )
            _run(command, workdir / "mfa_align.log", env, self.settings.timeout_s)
        except MfaCommandError as exc:
            yield from (AlignFailure(p.item.id, f"mfa {exc.command} failed", f"{exc}: {exc.tail}") for p in prepared)
            return
        for utterance in prepared:
            yield self._read_result(utterance, output_dir, g2p_words, unresolved)

    def _read_result(
        self, utterance: PreparedUtterance, output_dir: Path, g2p_words: dict[str, list[str]], unresolved: set[str]
    ) -> Alignment | AlignFailure:
        extension = ".json" if self.settings.output_format == "json" else ".TextGrid"
        candidates = [
            output_dir / utterance.speaker_dir / f"{utterance.name}{extension}",
            output_dir / f"{utterance.name}{extension}",
        ]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        item_id = utterance.item.id
        if path is None:
            return AlignFailure(item_id, "aligner produced no output", f"MFA wrote no {candidates[0].relative_to(output_dir)}")
        try:
            alignment = read_textgrid(path, item_id, utterance.duration)
        except UnknownPhone as exc:
            return AlignFailure(item_id, "phone outside phone set", str(exc))
        except (TextGridError, AlignmentError) as exc:
            return AlignFailure(item_id, "unreadable aligner output", str(exc))
        alignment.extra["speaker"] = utterance.item.speaker
        generated = sorted(word for word in set(utterance.words) if word in g2p_words)
        if generated:
            alignment.extra["g2p_words"] = generated
        unknown = sorted(word for word in set(utterance.words) if word in unresolved)
        if unknown:
            alignment.extra["oov_words"] = unknown
        return alignment


# --- uniflow doctor --------------------------------------------------------------------------


def _mfa_output(binary: str, arguments: list[str], settings: MfaSettings, timeout: float = 120) -> tuple[int, str]:
    try:
        result = subprocess.run(
            [binary, *arguments], capture_output=True, text=True, env=_subprocess_env(binary, settings), timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return result.returncode, (result.stdout + result.stderr).strip()


def _model_check(settings: MfaSettings, binary: str | None, model_type: str, label: str, name: str) -> DoctorCheck:
    fix = f"mfa model download {model_type} {name}"
    path = resolve_model_file(settings, model_type, name)
    if path is not None:
        return DoctorCheck(label, True, str(path))
    if binary is not None and model_type != "dictionary":
        # A model saved under another root (`mfa model save`) is still found by mfa itself.
        code, output = _mfa_output(binary, ["model", "inspect", model_type, name], settings)
        if code == 0:
            return DoctorCheck(label, True, f"{name} (mfa model inspect {model_type} {name})")
    where = mfa_root_dir(settings) / "pretrained_models" / model_type
    return DoctorCheck(label, False, f"{name!r} is neither a file nor a model in {where}", fix)


def check_mfa(settings: MfaSettings | None = None) -> list[DoctorCheck]:
    """What ``uniflow doctor`` reports for MFA: the executable, its version, and the three models."""
    settings = settings or MfaSettings()
    checks = []
    binary = resolve_binary(settings)
    if binary is None:
        wanted = settings.binary or os.environ.get(BINARY_ENV) or "mfa on PATH"
        checks.append(
            DoctorCheck(
                "mfa executable",
                False,
                f"not found ({wanted})",
                f"{_INSTALL_MFA}; then set {BINARY_ENV}=<conda env>/bin/mfa or activate the environment",
            )
        )
    else:
        code, output = _mfa_output(binary, ["version"], settings)
        version = output.splitlines()[-1].strip() if output else ""
        if code != 0:
            checks.append(DoctorCheck("mfa executable", False, f"{binary} version failed: {output[-300:]}", _INSTALL_MFA))
            binary = None
        elif not version.startswith("3."):
            fix = "conda install -n aligner -c conda-forge 'montreal-forced-aligner>=3,<4'"
            checks.append(DoctorCheck("mfa executable", False, f"{binary} is MFA {version or '?'}; uniflow needs 3.x", fix))
        else:
            checks.append(DoctorCheck("mfa executable", True, f"{binary} (MFA {version})"))
    checks.append(_model_check(settings, binary, "acoustic", "mfa acoustic model", settings.acoustic_model))
    checks.append(_model_check(settings, binary, "dictionary", "mfa dictionary", settings.dictionary))
    if settings.g2p_model is None:
        checks.append(DoctorCheck("mfa g2p model", True, "disabled: out-of-vocabulary words align as spn"))
    else:
        checks.append(_model_check(settings, binary, "g2p", "mfa g2p model", settings.g2p_model))
    return checks
