"""Sweeps end to end: Hydra multirun forms, manifest and summary, run cache, failures, resume, parallel, concurrency."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hftlab.sweep.fork_launcher import worker_count
from tests.run.test_run_e2e import HFTLAB, SYNTH, digests, hftlab, make_project

GRID = ("-m", "experiment=grid_sweep")
# Tests that count executed runs give them a grid_num of their own: the run cache is global, so a point the
# grid_sweep experiment of the shared project already computed would be reused, not executed.


def manifest(project: Path, experiment: str) -> dict:
    return json.loads((project / "results" / experiment / "manifest.json").read_text())


def run_dirs(project: Path, experiment: str) -> dict[str, dict[str, str]]:
    runs = project / "results" / experiment / "runs"
    return {p.name: digests(p) for p in sorted(runs.iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A project where the named experiment's grid (3 x 2) has run once, serially."""
    project = make_project(tmp_path_factory.mktemp("sweep") / "p")
    out = hftlab(project, "run", *GRID)
    return project, out


def test_named_experiment_sweep_completes_with_one_summary_row_per_point(swept):
    """`run -m experiment=grid_sweep`: 6 runs done, status reports complete, summary has 6 rows."""
    project, out = swept
    assert "6 runs: 6 executed, 0 cached, 0 failed" in out.stdout
    status = hftlab(project, "status", "results/grid_sweep")
    assert "6/6 complete" in status.stdout and status.stdout.rstrip().endswith("complete")
    table = pq.read_table(project / "results" / "grid_sweep" / "summary.parquet")
    assert 6 == table.num_rows
    assert {0.1, 0.2, 0.4} == set(table.column("param.strategy.params.half_spread").to_pylist())
    assert {0.0, 0.5} == set(table.column("param.strategy.params.skew").to_pylist())
    assert 7 == len((project / "results" / "grid_sweep" / "summary.csv").read_text().splitlines())
    summary = json.loads((project / "results" / "grid_sweep" / "summary.json").read_text())
    assert {"total": 6, "complete": 6, "failed": 0} == summary["counts"]
    net = table.column("net_pnl").to_pylist()
    assert max(net) == summary["best"]["net_pnl"]["value"]
    m = manifest(project, "grid_sweep")
    assert ["strategy.params.half_spread=0.1,0.2,0.4", "strategy.params.skew=0.0,0.5", "experiment=grid_sweep"] == m[
        "grid"
    ]
    assert all(r["status"] == "done" and len(r["run_id"]) == 16 for r in m["runs"])


def test_rerunning_the_same_sweep_executes_nothing(swept):
    """The same sweep again: 0 executed, 6 cached, results untouched."""
    project, _ = swept
    before = run_dirs(project, "grid_sweep")
    out = hftlab(project, "run", *GRID)
    assert "6 runs: 0 executed, 6 cached, 0 failed" in out.stdout
    assert before == run_dirs(project, "grid_sweep")


def test_command_line_sweep_changing_one_point_executes_one(swept):
    """A sweep from the command line; changing one grid value executes exactly that one run."""
    project, _ = swept
    first = hftlab(
        project,
        "run",
        "-m",
        "experiment_name=cli_sweep",
        "strategy.params.half_spread=0.1,0.2",
        "strategy.params.grid_num=3",
    )
    assert "2 runs: 2 executed, 0 cached" in first.stdout
    second = hftlab(
        project,
        "run",
        "-m",
        "experiment_name=cli_sweep",
        "strategy.params.half_spread=0.1,0.3",
        "strategy.params.grid_num=3",
    )
    assert "2 runs: 1 executed, 1 cached" in second.stdout
    assert 3 == len(run_dirs(project, "cli_sweep"))
    assert 2 == len(manifest(project, "cli_sweep")["runs"])


def test_a_grid_repeating_a_point_says_so_and_runs_it_once(swept):
    """`half_spread=0.1,0.2,0.1`: Hydra launches 3 jobs; the sweep says the grid repeats a point, executes
    2 runs, and its manifest holds 2 finished points (none left pending)."""
    project, _ = swept
    out = hftlab(
        project,
        "run",
        "-m",
        "experiment_name=repeat",
        "strategy.params.half_spread=0.1,0.2,0.1",
        "strategy.params.grid_num=4",
    )
    assert "the grid repeats points: 3 jobs, 2 distinct" in out.stdout
    assert 2 == len(run_dirs(project, "repeat"))
    assert ["cached", "done"] == sorted(r["status"] for r in manifest(project, "repeat")["runs"])
    assert 0 == hftlab(project, "status", "results/repeat").returncode


def test_a_failing_run_is_recorded_and_the_others_complete(swept):
    """One invalid grid point fails with its message in the manifest; the rest complete; exit code non-zero."""
    project, _ = swept
    out = hftlab(
        project,
        "run",
        "-m",
        "experiment_name=with_failure",
        "strategy.params.order_qty=0.01,-1,0.02",
        "strategy.params.grid_num=6",
        check=False,
    )
    assert 0 != out.returncode
    assert "1 failed" in out.stdout and "order_qty" in out.stdout
    m = manifest(project, "with_failure")
    by_status = {r["status"]: r for r in m["runs"]}
    assert {"done", "failed"} == set(by_status)
    assert 2 == sum(r["status"] == "done" for r in m["runs"])
    assert "strategy.params.order_qty" in by_status["failed"]["error"]
    status = hftlab(project, "status", "results/with_failure", check=False)
    assert 1 == status.returncode and "failed 1" in status.stdout


def test_a_summary_that_cannot_be_written_fails_the_sweep(swept):
    """Bookkeeping errors are not swallowed (Hydra only warns about a callback's exception): exit 2, named."""
    project, _ = swept
    blocker = project / "results" / "unwritable" / "summary.csv"
    blocker.mkdir(parents=True)  # a directory where the summary file goes
    out = hftlab(project, "run", "-m", "experiment_name=unwritable", "strategy.params.grid_num=7", check=False)
    assert 2 == out.returncode
    assert "hftlab: error:" in out.stderr and "summary.csv" in out.stderr
    assert "done" == manifest(project, "unwritable")["runs"][0]["status"]  # the run itself completed


@pytest.mark.parametrize("launcher", ["parallel", "forked"])
def test_parallel_launchers_give_the_same_bytes_as_serial(swept, tmp_path, launcher):
    """The joblib launcher (fresh worker processes) and the forked launcher (workers forked after the first
    compile) produce the same run ids and bytes as the serial sweep."""
    project, _ = swept
    other = make_project(tmp_path / launcher)
    out = hftlab(other, "run", *GRID, f"hydra/launcher={launcher}")
    assert "6 runs: 6 executed" in out.stdout
    if launcher == "forked":
        assert f"forking {min(worker_count(-1), 5)} workers for 5 jobs" in out.stdout + out.stderr
    assert run_dirs(project, "grid_sweep") == run_dirs(other, "grid_sweep")
    for name in ("summary.csv", "summary.json", "summary.parquet"):
        assert (project / "results" / "grid_sweep" / name).read_bytes() == (
            other / "results" / "grid_sweep" / name
        ).read_bytes()


def test_forked_launcher_isolates_a_failing_run(swept):
    """A failing grid point under the forked launcher: recorded in the manifest, the others complete."""
    project, _ = swept
    out = hftlab(
        project, "run", "-m", "experiment_name=forked_failure", "strategy.params.order_qty=0.01,-1,0.02,0.03",
        "strategy.params.grid_num=8",
        "hydra/launcher=forked", check=False,
    )  # fmt: skip
    assert 0 != out.returncode
    assert "1 failed" in out.stdout
    statuses = sorted(r["status"] for r in manifest(project, "forked_failure")["runs"])
    assert ["done", "done", "done", "failed"] == statuses


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_a_dead_forked_worker_stops_the_sweep_and_the_rerun_completes_it(tmp_path):
    """kill -9 of one forked worker: the sweep exits non-zero saying so (never hangs); the same command
    again executes only what is missing."""
    bigger = [*SYNTH[:-1], "400"]  # runs long enough (~0.5 s) to kill a worker mid-sweep
    project = make_project(tmp_path / "p", bigger)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    args = ["run", *GRID, "hydra/launcher=forked"]
    proc = subprocess.Popen([HFTLAB, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    path = project / "results" / "grid_sweep" / "manifest.json"
    deadline = time.monotonic() + 180
    killed, done = None, 0
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        workers = children(proc.pid)
        statuses = [r["status"] for r in json.loads(path.read_text())["runs"]] if workers and path.is_file() else []
        done = statuses.count("done")
        # mid-sweep for sure: the first run (in the launching process, whose watched child is a child too) is
        # done, so the children are the forked workers; one has started a run and at least 3 of 6 remain
        if "running" in statuses and 1 <= done <= 3:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=120)
    assert killed is not None, f"no worker was seen mid-sweep:\n{out}\n{err}"
    assert 0 != proc.returncode, f"worker {killed} killed with {done} runs done, yet the sweep succeeded:\n{out}\n{err}"
    assert "a forked worker process died" in out + err
    m = manifest(project, "grid_sweep")
    finished = sum(r["status"] == "done" for r in m["runs"])
    assert finished < 6
    again = hftlab(project, *args)
    complete = 6 - int(re.search(r"6 runs: (\d+) executed", again.stdout).group(1))
    assert complete == len([r for r in m["runs"] if r["status"] == "done"])
    assert 0 == hftlab(project, "status", "results/grid_sweep").returncode


def test_kill_mid_sweep_then_resume_runs_only_the_missing(swept, tmp_path):
    """kill -9 after some runs finished: the next sweep executes only what is missing, and ends with the
    bytes of an uninterrupted sweep."""
    project = make_project(tmp_path / "p")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    proc = subprocess.Popen(
        [HFTLAB, "run", *GRID], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    path = project / "results" / "grid_sweep" / "manifest.json"
    deadline = time.monotonic() + 180
    done = 0
    while proc.poll() is None and time.monotonic() < deadline:
        if path.is_file():
            done = sum(r["status"] == "done" for r in json.loads(path.read_text())["runs"])
            if done >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    proc.wait()
    assert 2 <= done < 6, f"could not interrupt the sweep mid-way (done={done})"
    complete = len(run_dirs(project, "grid_sweep"))
    out = hftlab(project, "run", *GRID)
    assert f"6 runs: {6 - complete} executed, {complete} cached, 0 failed" in out.stdout
    assert 0 == hftlab(project, "status", "results/grid_sweep").returncode
    uninterrupted, _ = swept
    assert run_dirs(uninterrupted, "grid_sweep") == run_dirs(project, "grid_sweep")
    for name in ("summary.csv", "summary.json", "summary.parquet"):
        expected = (uninterrupted / "results" / "grid_sweep" / name).read_bytes()
        assert expected == (project / "results" / "grid_sweep" / name).read_bytes(), name


def test_two_sweeps_at_once_do_not_corrupt_each_other(tmp_path):
    """Two sweeps of one experiment started together both succeed; manifest and results stay whole."""
    project = make_project(tmp_path / "p")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    procs = [
        subprocess.Popen(
            [HFTLAB, "run", *GRID], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    assert [0, 0] == [p.wait(timeout=300) for p in procs]
    m = manifest(project, "grid_sweep")
    assert 6 == len(m["runs"]) and all(r["status"] in ("done", "cached") for r in m["runs"])
    dirs = run_dirs(project, "grid_sweep")
    assert {r["run_id"] for r in m["runs"]} == set(dirs)
    assert 0 == hftlab(project, "status", "results/grid_sweep").returncode


def test_status_ranks_the_best_runs_by_a_metric(swept):
    """`status --top 2 --by=-max_drawdown`: the two runs with the smallest drawdown, in order, with their grid
    values; an unknown metric is refused naming the option."""
    project, _ = swept
    runs = project / "results" / "grid_sweep" / "runs"
    drawdown = {p.name: json.loads((p / "metrics.json").read_text())["max_drawdown"] for p in runs.iterdir()}
    out = hftlab(project, "status", "results/grid_sweep", "--top", "2", "--by=-max_drawdown")
    assert "top 2 of 6 finished runs by max_drawdown (min); unranked: 0" in out.stdout
    table = out.stdout.split("top 2 of 6", 1)[1].splitlines()[2:4]
    assert [rid for rid, _ in sorted(drawdown.items(), key=lambda kv: kv[1])[:2]] == [r.split()[1] for r in table]
    assert all(f"{drawdown[r.split()[1]]:.6g}" == r.split()[2] and "strategy.params.half_spread=" in r for r in table)
    bad = hftlab(project, "status", "results/grid_sweep", "--top", "2", "--by", "nope", check=False)
    assert 2 == bad.returncode and "hftlab: error: --by: [unknown-metric] 'nope'" in bad.stderr


def test_runs_lists_the_most_recent_runs_of_every_experiment(swept):
    """`hftlab runs -n 2`: the two newest run directories of results/, each with its strategy parameters
    and its metrics as stored."""
    project, _ = swept
    found = sorted(project.glob("results/*/runs/*"), key=lambda p: p.stat().st_mtime, reverse=True)
    out = hftlab(project, "runs", "-n", "2").stdout.splitlines()
    assert f"2 most recent of {len(found)} runs in results/" == out[0]
    for p, head, values in zip(found[:2], out[1::2], out[2::2], strict=True):
        metrics = json.loads((p / "metrics.json").read_text())
        assert f"{p.parent.parent.name:16} {p.name}  grid " in head and "half_spread=" in head, head
        assert values.startswith(f"    net_pnl {metrics['net_pnl']:.6g}  gross_pnl "), values
    broken = project / "results" / "broken" / "runs" / found[0].name
    shutil.copytree(found[0], broken)
    (broken / "metrics.json").write_text("{}")  # the newest run, and not complete: said, no metrics shown
    os.utime(broken)  # copytree kept the source's time
    try:
        out = hftlab(project, "runs", "-n", "1").stdout.splitlines()
    finally:
        shutil.rmtree(broken.parent.parent)
    assert f"broken           {broken.name}  grid " in out[1] and "    not complete (hftlab check names why)" == out[2]
