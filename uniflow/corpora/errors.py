"""Errors shared by the acquisition sources."""


class ManualStepNeeded(RuntimeError):
    """The user must act (request access, accept terms, place a file); the message says how.

    Acquisition reports these as "manual" rather than "failed", and never retries them.
    """
