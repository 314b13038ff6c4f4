"""What the cluster tests and benchmarks start: local Ray clusters (``ray start --block`` processes on
127.0.0.1, stopped by PID), and projects whose data is tracked by DVC and pushed to a remote.

Each Ray node runs in its own session, so stopping it ends exactly the processes it started (``ray stop``
would end every Ray cluster on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_nodes(nodes: Sequence[Mapping[str, str]], cpus: int = 1) -> Iterator[str]:
    """A head node and ``len(nodes) - 1`` more on 127.0.0.1, ``cpus`` CPUs each, every node with its own
    temp folder (short, in the system's temp directory: Ray's unix sockets live there, at most 107 bytes
    long; removed at the end) and its own environment (``os.environ`` updated with its mapping in
    ``nodes``: what its worker processes see); the head's address."""
    temp = Path(tempfile.mkdtemp(prefix="hftlab-ray-"))
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    common = ["--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--disable-usage-stats"]
    try:
        for i, extra in enumerate(nodes):
            role = (
                ["--head", f"--port={port}", "--include-dashboard=false"] if i == 0 else [f"--address=127.0.0.1:{port}"]
            )
            folder = temp / f"n{i}"
            folder.mkdir()
            log = folder / "start.log"
            env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **extra}
            with log.open("w") as out:
                procs.append(subprocess.Popen([RAY, "start", *role, *common, f"--temp-dir={folder}"], stdout=out,
                                              stderr=subprocess.STDOUT, env=env, start_new_session=True))  # fmt: skip
            deadline = time.monotonic() + 120
            while "Ray runtime started" not in log.read_text():
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ray start failed:\n{log.read_text()}")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            proc.terminate()  # `ray start --block` stops the processes it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            with contextlib.suppress(ProcessLookupError):  # stragglers of its session, if any
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def dvc_track(project: Path, env: Mapping[str, str]) -> None:
    """Make ``project`` a git + DVC repository whose ``data/canonical`` is tracked (``dvc add``)."""
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "data/canonical"]):
        _run(project, env, cmd)


def dvc_push(project: Path, env: Mapping[str, str], name: str, url: str, **options: str) -> None:
    """Add the default remote ``name`` at ``url`` (with ``options``: ``dvc remote modify``) and push to it."""
    _run(project, env, ["dvc", "remote", "add", "-d", name, url])
    for key, value in options.items():
        _run(project, env, ["dvc", "remote", "modify", name, key, value])
    _run(project, env, ["dvc", "push", "-q"])


def _run(cwd: Path, env: Mapping[str, str], cmd: list[str]) -> None:
    out = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
