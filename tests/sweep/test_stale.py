"""`hftlab check` flags committed sweep results that the current code, config and data would not give,
naming the experiment and what changed (a config key, the strategy file, the grid), with real Hydra
composition and real runs; after the sweep runs again it passes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.run.test_run_e2e import hftlab, make_project
from tests.sweep.test_sweep_e2e import GRID
from tests.test_integrity_check import check


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("stale") / "p")
    hftlab(project, "run", *GRID)
    return project


def stale_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("FAILED: results/grid_sweep: stale: ")]


@contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    try:
        yield
    finally:
        path.write_text(text)


def test_fresh_results_pass_and_the_summary_records_the_command_line(swept):
    out = check(swept)
    assert 0 == out.returncode, out.stderr
    assert "ok: 6 run directories, 1 dataset versions, 1 experiments against the current code" in out.stdout
    summary = json.loads((swept / "results" / "grid_sweep" / "summary.json").read_text())
    assert ["experiment=grid_sweep"] == summary["overrides"]


def test_status_shows_the_committed_grid_and_judges_it(swept):
    """`hftlab status`: fresh results say so; a config change is flagged per run; a live manifest.json of
    another grid (as a checkout leaves it) is set aside with a note; without one (a fresh clone) the
    committed summary's grid is shown."""
    exp = swept / "results" / "grid_sweep"
    fresh = hftlab(swept, "status", "results/grid_sweep")
    assert "current: the 6 points' run ids are those the current code, config and data give" in fresh.stdout
    assert "note:" not in fresh.stdout and "cached" in fresh.stdout  # the live manifest: done vs cached
    with edited(swept / "conf" / "strategy" / "grid.yaml", "grid_num: 5", "grid_num: 6"):
        stale = hftlab(swept, "status", "results/grid_sweep")
    flagged = [line for line in stale.stdout.splitlines() if line.startswith("stale: [")]
    assert 6 == len(flagged) and all("strategy.params.grid_num (5 -> 6)" in line for line in flagged), stale.stdout
    live = (exp / "manifest.json").read_text()
    other = json.loads(live)
    other["runs"] = [{**r, "run_id": f"{i:016x}"} for i, r in enumerate(other["runs"][:4])]
    (exp / "manifest.json").write_text(json.dumps(other))
    try:
        foreign = hftlab(swept, "status", "results/grid_sweep")
        other["runs"][0] = {**other["runs"][0], "status": "pending", "run_id": None}
        (exp / "manifest.json").write_text(json.dumps(other))
        under_way = hftlab(swept, "status", "results/grid_sweep", "--no-stale", check=False)
        (exp / "manifest.json").unlink()
        clone = hftlab(swept, "status", "results/grid_sweep", "--no-stale")
    finally:
        (exp / "manifest.json").write_text(live)
    assert "note: manifest.json (not tracked) describes another grid (4 points" in foreign.stdout
    assert "grid_sweep: 6/6 complete" in foreign.stdout and "0000000000000000" not in foreign.stdout
    assert "note: a sweep is under way: shown is its live manifest.json" in under_way.stdout
    assert 1 == under_way.returncode and "grid_sweep: 0/4 complete" in under_way.stdout  # the live grid
    assert "pending 1" in under_way.stdout  # (its made-up run ids have no directories: incomplete)
    assert "grid_sweep: 6/6 complete" in clone.stdout and "note:" not in clone.stdout
    assert "current:" not in clone.stdout and clone.stdout.endswith("complete\n")


def test_a_changed_config_key_is_named_for_every_run(swept):
    with edited(swept / "conf" / "strategy" / "grid.yaml", "grid_num: 5", "grid_num: 6"):
        out = check(swept)
    assert 1 == out.returncode
    lines = stale_lines(out)
    assert 6 == len(lines), out.stderr
    assert all("changed strategy.params.grid_num (5 -> 6)" in line and "run id " in line for line in lines), lines


def test_an_edited_strategy_file_is_named(swept):
    with edited(swept / "strategies" / "grid.py", "SCRATCH_SIZE", "# an edit\nSCRATCH_SIZE"):
        out = check(swept)
    lines = stale_lines(out)
    assert 1 == out.returncode and 6 == len(lines), out.stderr
    assert all("changed strategy.sha256 (" in line for line in lines), lines


def test_a_changed_grid_names_the_new_points_and_the_runs_no_point_gives(swept):
    with edited(swept / "conf" / "experiment" / "grid_sweep.yaml", "0.1,0.2,0.4", "0.1,0.2,0.3"):
        out = check(swept)
    lines = stale_lines(out)
    assert 1 == out.returncode and 4 == len(lines), out.stderr
    new = [line for line in lines if "a new grid point" in line]
    assert 2 == len(new) and all("strategy.params.half_spread=0.3" in line for line in new), lines
    gone = [line for line in lines if "no current grid point gives it" in line]
    assert 2 == len(gone) and all("'half_spread': 0.4" in line for line in gone), lines


def test_a_stale_experiment_passes_once_its_sweep_ran_again(swept):
    with edited(swept / "conf" / "strategy" / "grid.yaml", "grid_num: 5", "grid_num: 4"):
        assert 1 == check(swept).returncode
        rerun = hftlab(swept, "run", *GRID)
        assert "6 runs: 6 executed" in rerun.stdout
        out = check(swept)
        assert 0 == out.returncode, out.stderr
    assert 1 == check(swept).returncode  # the committed results are now those of grid_num 4
    assert 0 == check(swept, "--no-stale").returncode


def test_diff_warns_when_the_working_tree_results_are_stale(swept):
    """`hftlab diff HEAD` (working tree) puts a stale-results warning above the metrics; fresh: none."""
    hftlab(swept, "run", *GRID)  # the committed summary of the current config again (an earlier test changed it)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=t@hftlab.invalid", "-c", "user.name=t", "commit", "-qm", "results"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=swept, check=True, capture_output=True)
    fresh = hftlab(swept, "diff", "HEAD", "--plots", "")
    assert "Stale results" not in fresh.stdout
    with edited(swept / "conf" / "strategy" / "grid.yaml", "grid_num: 5", "grid_num: 6"):
        stale = hftlab(swept, "diff", "HEAD", "--plots", "")
    assert "### ⚠ Stale results" in stale.stdout
    assert (
        "- **grid_sweep**: 6 problem(s), e.g. [" in stale.stdout and "strategy.params.grid_num (5 -> 6)" in stale.stdout
    )
    assert "| `conf/strategy/grid.yaml: params.grid_num` | 5 | 6 |" in stale.stdout


def test_a_command_line_grid_is_judged_and_the_scratch_area_is_not(swept):
    """A sweep whose grid is on its command line (`x=0.3,0.5`) is recomposed from it and found fresh; an
    ad-hoc sweep (results/scratch) is not judged at all."""
    hftlab(
        swept, "run", "-m", "experiment_name=cl", "strategy.params.half_spread=0.3,0.5", "strategy.params.grid_num=3"
    )
    hftlab(swept, "run", "-m", "strategy.params.half_spread=0.3,0.5")
    assert (swept / "results" / "scratch" / "summary.json").is_file()
    out = check(swept)
    assert 0 == out.returncode, out.stderr
    assert ", 2 experiments against the current code" in out.stdout
    with edited(swept / "conf" / "strategy" / "grid.yaml", "order_qty: 0.01", "order_qty: 0.02"):
        stale = check(swept)
    assert 1 == stale.returncode and "results/cl: stale: [experiment_name=cl strategy.params.grid_num=3" in stale.stderr
    assert "results/scratch" not in stale.stderr


def test_summaries_that_cannot_be_judged_are_named(swept):
    """A summary written before summaries recorded their command line, and one whose dataset is gone: each
    is a problem naming the experiment (never passed as fresh, never a traceback)."""
    exp = swept / "results" / "grid_sweep"
    summary = json.loads((exp / "summary.json").read_text())
    for name, overrides in (("legacy", None), ("gone", ["experiment_name=gone", "dataset.id=nope"])):
        (swept / "results" / name).mkdir()
        (swept / "results" / name / "summary.csv").write_bytes((exp / "summary.csv").read_bytes())
        data = {k: v for k, v in summary.items() if k != "overrides"}
        (swept / "results" / name / "summary.json").write_text(json.dumps(data if overrides is None else
                                                                          {**data, "overrides": overrides}))  # fmt: skip
    try:
        out = check(swept)
    finally:
        for name in ("legacy", "gone"):
            shutil.rmtree(swept / "results" / name)
    assert 1 == out.returncode
    assert "FAILED: results/legacy: stale: summary.json does not record its command line" in out.stderr
    assert "FAILED: results/gone: stale: cannot recompute its runs: " in out.stderr and "nope" in out.stderr
    assert "Traceback" not in out.stderr


def test_diff_does_not_judge_a_head_that_is_not_checked_out(swept):
    """`hftlab diff A B` with B not the checked-out commit says the stale check was not made."""
    git = ["git", "-c", "user.email=t@hftlab.invalid", "-c", "user.name=t"]
    if not (swept / ".git").is_dir():
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=swept, check=True)
    subprocess.run(["git", "add", "-A"], cwd=swept, check=True)
    subprocess.run([*git, "commit", "-qm", "one", "--allow-empty"], cwd=swept, check=True)
    subprocess.run([*git, "commit", "-qm", "two", "--allow-empty"], cwd=swept, check=True)
    out = hftlab(swept, "diff", "HEAD", "HEAD~1", "--plots", "")
    assert "Stale results: not checked (the head revision is not checked out)." in out.stdout
