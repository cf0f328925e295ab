"""Fixtures for corpus acquisition tests: a fault-injecting loopback HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from http_faults import FaultPlan, FaultServer  # tests/ is on sys.path via tests/conftest.py


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    """A factory: ``fault_server(payload, drop_after=..., error_status=..., ...)`` starts a server."""
    servers: list[FaultServer] = []

    def start(payload: bytes, **faults) -> FaultServer:
        server = FaultServer(FaultPlan(payload, **faults))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
