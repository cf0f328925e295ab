"""Choosing an aligner: MFA where it is installed (the paper's setup), pocketsphinx otherwise."""

from __future__ import annotations

import logging
import threading
from typing import Literal

AlignerName = Literal["auto", "mfa", "pocketsphinx"]
logger = logging.getLogger(__name__)


def resolve_aligner_name(name: AlignerName, mfa_settings_json: str | None = None) -> str:
    """``auto`` becomes ``mfa`` when every MFA check passes, else ``pocketsphinx`` (with the reason logged)."""
    if name != "auto":
        return name
    from uniflow.align.mfa import MfaSettings, check_mfa

    settings = MfaSettings.model_validate_json(mfa_settings_json) if mfa_settings_json else MfaSettings()
    failed = [check for check in check_mfa(settings) if not check.ok]
    if not failed:
        return "mfa"
    logger.warning("MFA is not usable (%s); aligning with pocketsphinx. `uniflow doctor` says how to install MFA.",
                   "; ".join(f"{check.name}: {check.detail}" for check in failed))
    return "pocketsphinx"


_per_thread = threading.local()


def make_aligner(name: str, mfa_settings_json: str | None = None):
    """One aligner per thread and configuration: models load once, and decoders (which are not
    thread-safe) are never shared between the task runner's threads."""
    cache = _per_thread.__dict__.setdefault("aligners", {})
    key = (name, mfa_settings_json)
    if key not in cache:
        cache[key] = _build_aligner(name, mfa_settings_json)
    return cache[key]


def _build_aligner(name: str, mfa_settings_json: str | None):
    if name == "pocketsphinx":
        from uniflow.align.sphinx import PocketsphinxAligner

        return PocketsphinxAligner()
    if name == "mfa":
        from uniflow.align.mfa import MfaAligner, MfaSettings

        settings = MfaSettings.model_validate_json(mfa_settings_json) if mfa_settings_json else MfaSettings()
        return MfaAligner(settings)
    raise ValueError(f"unknown aligner {name!r}; choose mfa or pocketsphinx")
