"""Sweeps lose nothing and claim nothing they did not do, with real processes, Hydra and kill -9: the summary
survives a writer killed mid-write; concurrent sweeps with different grids keep each other's runs; pruning
moves runs aside (and a run needed again comes back); a killed sweep takes its workers with it; a point a
dead sweep left running is queued again; a sweep whose own run vanished before it ended does not succeed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hftlab.run.results import PRUNED_DIR, check_complete
from hftlab.sweep.manifest import CLOCK_SLACK
from hftlab.sweep.summary import SUMMARY_FILES, write_summary
from tests.run.test_run_e2e import HFTLAB, SYNTH, hftlab, make_project
from tests.sweep.test_sweep_e2e import children

BIGGER = [*SYNTH[:-1], "400"]  # runs of about half a second: long enough to act mid-sweep
# Tests that need runs executed give them a grid_num of their own: the run cache is global, so a point another
# test of this project already computed would be reused, not executed.
RUN_LINE = re.compile(r"^run ([0-9a-f]{16}): (?:done|cached)", re.M)


def env(project: Path) -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}


def start(project: Path, *args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HFTLAB, *args], cwd=project, env=env(project), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **kwargs,
    )  # fmt: skip


def rows(project: Path, experiment: str) -> list[dict]:
    path = project / "results" / experiment / "manifest.json"
    try:
        return json.loads(path.read_text())["runs"]
    except (FileNotFoundError, ValueError):
        return []


def runs_in(project: Path, experiment: str, where: str = "runs") -> set[str]:
    folder = project / "results" / experiment / where
    return {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        kids = children(todo.pop())
        out.update(kids)
        todo += kids
    return out


@pytest.fixture(scope="module")
def bigger(tmp_path_factory) -> Path:
    """A project with runs long enough to act on mid-sweep (shared: each test uses its own experiment)."""
    return make_project(tmp_path_factory.mktemp("integrity") / "p", BIGGER)


# -- the summary ---------------------------------------------------------------------------------------------

_WRITER = """
import json, sys
from pathlib import Path
from hftlab.sweep.summary import write_summary
exp_dir, manifest = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
print("writing", flush=True)
while True:
    write_summary(exp_dir, manifest, ["net_pnl"])
"""


def _mid_write(exp_dir: Path, expected: dict[str, bytes]) -> bool:
    """Whether a summary write is under way: a temporary file exists, or a summary file is not whole."""
    for name, data in expected.items():
        try:
            if (exp_dir / name).stat().st_size != len(data):
                return True
        except FileNotFoundError:
            return True
    return any(".tmp-" in p.name for p in exp_dir.iterdir())


def test_a_writer_killed_mid_summary_leaves_the_previous_summary_readable(bigger, tmp_path):
    """kill -9 of a process writing the summary over and over, 12 times, each the moment a write is seen
    under way: every summary file is still whole (the bytes of a complete write), and the next write
    removes the temporary files the killed writers left."""
    out = hftlab(
        bigger,
        "run",
        "-m",
        "experiment_name=summary_kill",
        "strategy.params.half_spread=0.1",
        "strategy.params.grid_num=2",
    )
    (run_id,) = RUN_LINE.findall(out.stdout)
    exp_dir = bigger / "results" / "summary_kill"
    points = [{"key": f"p={i:05d}", "overrides": [f"strategy.params.half_spread=0.{i:05d}"], "run_id": run_id,
               "status": "done", "error": None} for i in range(8000)]  # fmt: skip
    big = {"experiment": "summary_kill", "grid": ["strategy.params.half_spread=..."], "runs": points}
    (tmp_path / "manifest.json").write_text(json.dumps(big))
    write_summary(exp_dir, big, ["net_pnl"])
    expected = {name: (exp_dir / name).read_bytes() for name in SUMMARY_FILES}
    caught = left = 0
    for _ in range(12):
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(exp_dir), str(tmp_path / "manifest.json")],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert "writing" == writer.stdout.readline().strip()
        deadline = time.monotonic() + 20
        while not _mid_write(exp_dir, expected) and time.monotonic() < deadline:
            pass
        caught += time.monotonic() < deadline
        writer.kill()
        writer.wait()
        writer.stdout.close()
        left += any(".tmp-" in p.name for p in exp_dir.iterdir())  # the next writer removes it
        for name in SUMMARY_FILES:
            assert expected[name] == (exp_dir / name).read_bytes(), name
    assert caught >= 10, f"only {caught} of 12 kills landed while a write was under way"
    assert left >= 1  # killed writers left temporary files (a kill can land just after a rename)
    write_summary(exp_dir, big, ["net_pnl"])
    assert [] == [p.name for p in exp_dir.iterdir() if ".tmp-" in p.name]


# -- concurrent sweeps, pruning ------------------------------------------------------------------------------

GRID_A = ("strategy.params.half_spread=0.1,0.2,0.3", "strategy.params.skew=0.0", "strategy.params.grid_num=3")
GRID_B = ("strategy.params.half_spread=0.4,0.5", "strategy.params.skew=0.0,0.5", "strategy.params.grid_num=3")


@pytest.fixture(scope="module")
def two_sweeps(bigger):
    """Two sweeps of experiment `both` with different grids (and sweep.prune=true) started together."""
    common = ("run", "-m", "experiment_name=both", "sweep.prune=true")
    procs = [start(bigger, *common, *GRID_A), start(bigger, *common, *GRID_B)]
    outs = [p.communicate(timeout=600) for p in procs]
    return bigger, [p.returncode for p in procs], outs


def test_two_sweeps_with_different_grids_at_once_keep_every_run(two_sweeps):
    """Both succeed, every run either reported is complete where it was, none was pruned (they ran
    alongside each other), and the experiment's status is complete."""
    project, codes, outs = two_sweeps
    assert [0, 0] == codes, outs
    ids = [set(RUN_LINE.findall(out)) for out, _ in outs]
    assert [3, 4] == [len(i) for i in ids], outs
    assert ids[0] | ids[1] == runs_in(project, "both")
    for rid in ids[0] | ids[1]:
        assert [] == check_complete(project / "results" / "both" / "runs" / rid)
    assert "3 runs: 3 executed" in outs[0][0] and "4 runs: 4 executed" in outs[1][0]
    assert all("not pruning: another sweep of this experiment ran at the same time" in out for out, _ in outs)
    assert set() == runs_in(project, "both", PRUNED_DIR)
    assert 0 == hftlab(project, "status", "results/both").returncode


def test_pruning_moves_runs_aside_and_a_run_needed_again_is_restored(two_sweeps):
    """A sweep of grid A alone prunes: grid B's runs move to results/both/.pruned (ignored by git), said so;
    sweeping grid B again restores them instead of executing them."""
    project, _, outs = two_sweeps
    a_ids, b_ids = (set(RUN_LINE.findall(out)) for out, _ in outs)
    # pruning spares directories changed within CLOCK_SLACK of its start (another process may be writing
    # them): grid B's runs must be older than that, which a fast machine does not guarantee by itself
    runs = project / "results" / "both" / "runs"
    newest = max(max(st.st_mtime, st.st_ctime) for st in (p.stat() for p in runs.iterdir()))
    time.sleep(max(0.0, newest + CLOCK_SLACK + 0.5 - time.time()))
    alone = hftlab(project, "run", "-m", "experiment_name=both", "sweep.prune=true", *GRID_A)
    assert "3 runs: 0 executed, 3 cached" in alone.stdout
    assert "moved 4 run directories outside the grid aside to results/both/.pruned" in alone.stdout
    assert a_ids == runs_in(project, "both") and b_ids == runs_in(project, "both", PRUNED_DIR)
    assert "*" in (project / "results" / "both" / PRUNED_DIR / ".gitignore").read_text()
    back = hftlab(project, "run", "-m", "experiment_name=both", *GRID_B)
    assert "4 runs: 0 executed, 4 cached" in back.stdout
    assert 4 == back.stderr.count("restored from ")
    assert a_ids | b_ids == runs_in(project, "both")


# -- a killed sweep ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["forked", "parallel"])
def test_a_killed_sweep_takes_its_workers_with_it(bigger, launcher):
    """kill -9 of the sweep's main process while workers run jobs: within a few seconds none of its
    processes (workers, their helpers) runs any more; the same sweep again completes."""
    args = ("run", "-m", f"experiment_name=killed_{launcher}", "strategy.params.half_spread=0.1,0.2,0.3,0.4",
            "strategy.params.skew=0.0,0.5", f"hydra/launcher={launcher}")  # fmt: skip
    # no pipes: surviving workers would hold them open, and reading them would wait for their end
    proc = subprocess.Popen([HFTLAB, *args], cwd=bigger, env=env(bigger), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= descendants(proc.pid)
        statuses = [r["status"] for r in rows(bigger, f"killed_{launcher}")]
        # mid-sweep for sure: workers exist, one is running a job and most of the grid remains
        if len(children(proc.pid)) >= 2 and "running" in statuses and statuses.count("done") <= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    seen |= descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    while any(alive(p) for p in seen) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    survivors = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in seen if alive(p)}
    for pid in survivors:  # this test's own processes: do not leave them behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert {} == survivors, f"still running {time.monotonic() - t0:.1f} s after the sweep was killed"
    again = hftlab(bigger, *args)
    assert "8 runs:" in again.stdout and "0 failed, 0 not finished" in again.stdout
    assert 0 == hftlab(bigger, "status", f"results/killed_{launcher}").returncode


def test_a_point_a_dead_sweep_left_running_is_queued_again(bigger):
    """kill -9 of a sweep (its whole process group) while a run is `running`: the manifest keeps saying
    so (status: not complete); the next sweep re-queues it, executes what is missing and completes."""
    args = (
        "run",
        "-m",
        "experiment_name=left_running",
        "strategy.params.half_spread=0.1,0.2,0.3,0.4",
        "strategy.params.grid_num=4",
    )
    proc = start(bigger, *args, start_new_session=True)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        statuses = [r["status"] for r in rows(bigger, "left_running")]
        if "done" in statuses and "running" in statuses:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.communicate()
    left = rows(bigger, "left_running")
    assert "running" in [r["status"] for r in left], left
    status = hftlab(bigger, "status", "results/left_running", check=False)
    assert 1 == status.returncode and "running 1" in status.stdout
    finished = len(runs_in(bigger, "left_running"))
    again = hftlab(bigger, *args)
    assert f"4 runs: {4 - finished} executed, {finished} cached, 0 failed, 0 not finished" in again.stdout
    assert all(r["status"] in ("done", "cached") for r in rows(bigger, "left_running"))
    assert 0 == hftlab(bigger, "status", "results/left_running").returncode


def test_a_sweep_whose_run_vanished_before_it_ended_does_not_succeed(bigger):
    """A finished run's directory deleted by someone else while the sweep goes on: the sweep checks its own
    runs at its end, says which is not complete and exits non-zero; the same sweep again completes it."""
    import shutil

    args = (
        "run",
        "-m",
        "experiment_name=vanished",
        "strategy.params.half_spread=0.1,0.2,0.3,0.4",
        "strategy.params.grid_num=6",
    )
    proc = start(bigger, *args)
    deleted = None
    deadline = time.monotonic() + 180
    while deleted is None and proc.poll() is None and time.monotonic() < deadline:
        done = [r for r in rows(bigger, "vanished") if r["status"] == "done"]
        if done and any(r["status"] == "pending" for r in rows(bigger, "vanished")):
            deleted = done[0]["run_id"]
            shutil.rmtree(bigger / "results" / "vanished" / "runs" / deleted)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=300)
    assert deleted is not None, f"no run finished while others were pending:\n{out}\n{err}"
    assert 1 == proc.returncode, out + err
    assert "1 not finished" in out and "1 of its runs are not complete" in out
    assert "incomplete [" in out and "no such run directory" in out
    again = hftlab(bigger, *args)
    assert "4 runs: 1 executed, 3 cached, 0 failed, 0 not finished" in again.stdout
