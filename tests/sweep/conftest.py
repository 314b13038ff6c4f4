"""Fixtures of the sweep tests: a real local Ray cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster for the tests of one module (its address). ``ray start --block`` runs in its own session, so stopping
    it ends exactly this cluster's processes (``ray stop`` would end every Ray cluster on the machine)."""
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")  # session files; short enough for Ray's unix sockets
    log = temp / "start.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [
        RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(start, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, f"ray start failed:\n{log.read_text()}"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()  # `ray start --block` stops the processes it started
        try:
            proc.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # stragglers of its session, if any
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
