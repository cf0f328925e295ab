"""Waiting on many task futures while the dashboard shows how far along they are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed


def outcomes_with_progress(futures: list[PrefectFuture], key: str, description: str) -> Iterator[tuple[PrefectFuture, Any]]:
    """Yield ``(future, result)`` as futures finish (``result`` is the exception for a task that
    failed after its retries), updating the progress artifact ``key`` after each."""
    artifact = create_progress_artifact(0.0, key=key, description=description)
    for done, future in enumerate(as_completed(futures), 1):
        yield future, future.result(raise_on_failure=False)
        update_progress_artifact(artifact, 100.0 * done / len(futures))
    update_progress_artifact(artifact, 100.0)
