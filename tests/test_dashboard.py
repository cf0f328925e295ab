"""`uniflow dashboard` starts a real Prefect server on 127.0.0.1, and flows report to it via PREFECT_API_URL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from support import DATASETS, PROJECT
from uniflow.storage import ROLES

pytestmark = pytest.mark.prefect
UNIFLOW = str(Path(sys.executable).with_name("uniflow"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 150) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dashboard exited early:\n{server.stdout.read()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not healthy after {seconds} s")


def test_dashboard_serves_and_flows_report_to_it(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    server = subprocess.Popen(
        [UNIFLOW, "dashboard", "--port", str(port)],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        wait_healthy(url, server)
        profile = tmp_path / "profile.yaml"
        profile.write_text(yaml.safe_dump({"name": "t", "roles": {role: str(tmp_path / role) for role in ROLES}}))
        run = subprocess.run(
            [UNIFLOW, "prepare", "ljspeech", "--profile", str(profile), "--datasets", str(DATASETS)],
            cwd=PROJECT, env={**env, "PREFECT_API_URL": f"{url}/api"}, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"Prefect server at {url}/api" in run.stdout
        runs = httpx.post(f"{url}/api/flow_runs/filter", json={"limit": 10, "sort": "START_TIME_DESC"}, timeout=30).json()
        assert any(r["state_type"] == "COMPLETED" for r in runs), runs
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
    assert f"Prefect dashboard: {url}" in output
