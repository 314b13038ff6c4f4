"""kill -9 at named points (:mod:`hftlab.faults`), in real processes: the killed command leaves nothing
that looks complete, and the same command again executes only what is missing and ends with the bytes of
an uninterrupted one. Points: an import before and after its promotion rename, a run while it feeds,
fills the event cache, loops and writes its results, a sweep between two points and in its summary."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hftlab.faults import POINTS
from hftlab.storage import Catalog
from tests.conftest import tree_snapshot
from tests.run.test_run_e2e import HFTLAB, SYNTH, digests, hftlab, make_project, run_dir_of
from tests.sweep.test_sweep_e2e import GRID, manifest, run_dirs

KILLED = -signal.SIGKILL


def killed_at(point: str, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``hftlab <args>`` with the fault point armed; asserts that it was killed there."""
    full_env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project), "HFTLAB_FAULT": point, **env}
    out = subprocess.run([HFTLAB, *args], cwd=project, capture_output=True, text=True, env=full_env)
    assert KILLED == out.returncode, f"not killed at {point} (exit {out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


def versions(root: Path) -> dict[str, bytes]:
    """The promoted versions under a storage root, file by file (staging and locks aside)."""
    return {k: v for k, v in tree_snapshot(root).items() if not k.startswith(".")}


#: Overrides of the runs killed mid-way: evaluating on every fed event makes the loop return for progress.
RUNS = {"default": (), "every_feed": ("runtime.evaluation=every_feed",)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """An uninterrupted import and runs: the bytes every interrupted one must end with."""
    project = make_project(tmp_path_factory.mktemp("reference") / "p")
    for overrides in RUNS.values():
        hftlab(project, "run", *overrides)
    return project, {name: digests(run_dir_of(project, *overrides)) for name, overrides in RUNS.items()}


def test_killed_before_the_promotion_rename_leaves_no_version_and_the_rerun_promotes_the_same(reference, tmp_path):
    root = tmp_path / "canonical"
    killed_at("import.staged", tmp_path, "--root", str(root), *SYNTH)
    assert [] == Catalog(root).versions("synthetic")
    assert "synthetic" not in hftlab(tmp_path, "--root", str(root), "data", "list").stdout
    hftlab(tmp_path, "--root", str(root), *SYNTH)
    assert versions(reference[0] / "data" / "canonical") == versions(root)


def test_killed_after_the_promotion_rename_leaves_a_whole_version(reference, tmp_path):
    root = tmp_path / "canonical"
    killed_at("import.promoted", tmp_path, "--root", str(root), *SYNTH)
    (dataset,) = Catalog(root).versions("synthetic")
    Catalog(root).verify("synthetic", dataset.version, full=True)
    again = hftlab(tmp_path, "--root", str(root), *SYNTH)
    assert "already" in again.stdout + again.stderr
    assert versions(reference[0] / "data" / "canonical") == versions(root)


@pytest.mark.parametrize(
    ("point", "run"),
    [("feed.read", "default"), ("feed.cache", "default"), ("run.loop", "every_feed"), ("run.write", "default")],
)
def test_a_run_killed_mid_way_leaves_no_run_and_the_rerun_gives_the_same_bytes(
    reference, tmp_path, monkeypatch, point, run
):
    project = make_project(tmp_path / "p")
    cache = str(tmp_path / "events")  # an empty event cache: the run feeds (and fills it) for real
    killed_at(point, project, "run", *RUNS[run], HFTLAB_EVENT_CACHE=cache, HFTLAB_PROGRESS="log")
    run_dir = run_dir_of(project, *RUNS[run])
    assert not run_dir.exists()
    assert 0 != hftlab(project, "status", "results/scratch", check=False).returncode
    monkeypatch.setenv("HFTLAB_EVENT_CACHE", cache)
    out = hftlab(project, "run", *RUNS[run])
    assert f"run {run_dir.name}: done" in out.stdout
    assert reference[1][run] == digests(run_dir)
    assert [run_dir] == list(run_dir.parent.iterdir())  # the killed run's temporary directory is gone


def test_a_sweep_killed_between_two_points_and_then_in_its_summary_resumes_to_the_same_bytes(tmp_path):
    """kill -9 of a sweep right after its 2nd point was recorded done: the manifest says so (2 done, the rest
    pending), status is not complete; the same sweep again executes only the 4 missing points and is killed
    while writing its summary (one summary file written whole, none half-written); once more, it executes
    nothing and ends with the runs and summary bytes of an uninterrupted sweep."""
    project = make_project(tmp_path / "p")
    exp = project / "results" / "grid_sweep"
    killed_at("sweep.between@2", project, "run", *GRID)
    assert ["done"] * 2 + ["pending"] * 4 == sorted(r["status"] for r in manifest(project, "grid_sweep")["runs"])
    assert 2 == len(run_dirs(project, "grid_sweep"))
    assert 0 != hftlab(project, "status", "results/grid_sweep", check=False).returncode
    killed_at("sweep.summary", project, "run", *GRID)
    assert 6 == len(run_dirs(project, "grid_sweep"))
    assert 6 == pq.read_table(exp / "summary.parquet").num_rows
    assert [] == [p.name for p in exp.iterdir() if p.name.startswith("summary.") and p.suffix != ".parquet"]
    out = hftlab(project, "run", *GRID)
    assert "6 runs: 0 executed, 6 cached, 0 failed" in out.stdout
    uninterrupted = make_project(tmp_path / "uninterrupted")
    hftlab(uninterrupted, "run", *GRID)
    assert run_dirs(uninterrupted, "grid_sweep") == run_dirs(project, "grid_sweep")
    for name in ("summary.csv", "summary.json", "summary.parquet"):
        assert (uninterrupted / "results" / "grid_sweep" / name).read_bytes() == (exp / name).read_bytes(), name
    assert [] == [p.name for p in exp.iterdir() if ".tmp" in p.name]


def test_every_fault_point_is_wired_once_and_killed_at_by_this_suite():
    """Each declared point is reached in the source exactly once and armed by a test: here, or where the
    processes it kills need more than this suite starts (``worker.fetched``: a Ray worker, in
    ``tests/sweep/test_ray_workers.py``)."""
    src = Path(__file__).parents[2] / "src" / "hftlab"
    code = "".join(p.read_text() for p in src.rglob("*.py"))
    here = Path(__file__).read_text() + (Path(__file__).parents[1] / "sweep" / "test_ray_workers.py").read_text()
    for name in POINTS:
        assert 1 == code.count(f'faults.point("{name}")'), name
        assert f'"{name}' in here or f"HFTLAB_FAULT={name}" in here, name
