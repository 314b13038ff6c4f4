"""The run watchdog (:mod:`hftlab.watchdog`) with a strategy that loops forever: a single run, and a sweep
under every local launcher, is stopped within its limit, recorded as failed with the reason, leaves no
partial output and no process behind; the sweep completes its other points. Ctrl-C stops a run at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.run.test_run_e2e import HFTLAB, hftlab, make_project
from tests.sweep.test_sweep_e2e import children

STALL = ("strategy=stall", "strategy.params.forever=1")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project with the endless strategy (``strategy=stall``)."""
    path = make_project(tmp_path_factory.mktemp("watchdog") / "p")
    shutil.copyfile(Path(__file__).with_name("stall_strategy.py"), path / "strategies" / "stall.py")
    (path / "conf" / "strategy" / "stall.yaml").write_text(
        "defaults:\n  - /strategy_schema_stall@_here_\nname: stall\nparams:\n  forever: 0\n"
    )
    return path


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped by init is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftovers(project: Path, experiment: str) -> list[str]:
    runs = project / "results" / experiment / "runs"
    return sorted(p.name for p in runs.iterdir() if p.name.startswith(".")) if runs.is_dir() else []


@pytest.mark.parametrize(("limit", "rule"), [("watchdog.stall_s=2", "stalled"), ("watchdog.timeout_s=2", "timeout")])
def test_a_run_that_never_returns_is_stopped_within_its_limit(project, limit, rule):
    t0 = time.monotonic()
    out = hftlab(project, "run", *STALL, "experiment_name=single", limit, "watchdog.stall_s=2" if rule == "stalled" else "watchdog.stall_s=0", check=False)  # fmt: skip
    took = time.monotonic() - t0
    assert 2 == out.returncode, out.stdout + out.stderr
    assert f"[{rule}]" in out.stderr and "stopped by the watchdog" in out.stderr and "Traceback" not in out.stderr
    assert took < 60, f"stopped after {took:.0f} s"
    assert [] == leftovers(project, "single")
    assert not (project / "results" / "single" / "runs").is_dir() or not any(
        (p / "run.json").is_file() for p in (project / "results" / "single" / "runs").iterdir()
    )


@pytest.mark.parametrize("launcher", ["basic", "forked", "parallel"])
def test_a_sweep_records_the_stopped_run_failed_and_completes_the_others(project, launcher):
    experiment = f"stall_{launcher}"
    out = hftlab(
        project, "run", "-m", "strategy=stall", "strategy.params.forever=0,1", f"experiment_name={experiment}",
        "watchdog.stall_s=3", f"hydra/launcher={launcher}", check=False,
    )  # fmt: skip
    assert 0 != out.returncode and "1 failed" in out.stdout, out.stdout + out.stderr
    runs = json.loads((project / "results" / experiment / "manifest.json").read_text())["runs"]
    statuses = {r["key"]: r["status"] for r in runs}
    failed = [r for r in runs if r["status"] == "failed"]
    assert sorted(statuses.values()) == ["done", "failed"] or sorted(statuses.values()) == ["cached", "failed"]
    assert 1 == len(failed) and "[stalled]" in failed[0]["error"] and "forever=1" in failed[0]["key"]
    assert [] == leftovers(project, experiment)


def test_ctrl_c_stops_a_run_inside_compiled_code_at_once(project):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    args = [HFTLAB, "run", *STALL, "experiment_name=interrupted", "watchdog.stall_s=0"]  # no limit: only Ctrl-C
    proc = subprocess.Popen(
        args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell ignores SIGINT
    )  # fmt: skip
    deadline = time.monotonic() + 120
    child = []
    while not child and time.monotonic() < deadline and proc.poll() is None:
        child = children(proc.pid)
        time.sleep(0.05)
    assert child, proc.communicate()
    time.sleep(1.0)  # inside the endless evaluation by now
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    finally:
        survived = running(child[0])
        if survived:
            os.kill(child[0], signal.SIGKILL)
    assert not survived, "the run's process survived Ctrl-C"
    assert time.monotonic() - t0 < 10
    assert 0 != proc.returncode
    assert [] == leftovers(project, "interrupted")


def test_a_killed_run_command_takes_its_run_process_with_it(project):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    args = [HFTLAB, "run", *STALL, "experiment_name=killed", "watchdog.stall_s=0"]
    proc = subprocess.Popen(args, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    child = []
    while not child and time.monotonic() < deadline and proc.poll() is None:
        child = children(proc.pid)
        time.sleep(0.05)
    assert child
    proc.kill()
    proc.wait()
    time.sleep(0.5)
    survived = running(child[0])
    if survived:
        os.kill(child[0], signal.SIGKILL)
    assert not survived, "the run's process survived its killed parent"
