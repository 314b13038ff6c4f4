"""A run directory is complete only when proven so: its content.json lists every other file (but telemetry)
with size and sha256, written last. An edited metric, a deleted or truncated record table, an added file or
no content.json make the run incomplete: `hftlab status` says so, the summary does not use it, and the next
run executes it again, saying why, and gets the same bytes (real Hydra and processes, no mocks)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from hftlab.files import exchange_paths
from hftlab.run.results import CONTENT_FILE, TELEMETRY_FILE, check_complete, deterministic_files
from hftlab.sweep import manifest
from hftlab.sweep.summary import summary_rows
from tests.run.test_run_e2e import digests, hftlab, make_project

EXPERIMENT = "integrity"
SWEEP = ("run", "-m", f"experiment_name={EXPERIMENT}", "strategy.params.half_spread=0.1,0.2")


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A project where a two-point sweep ran once."""
    project = make_project(tmp_path_factory.mktemp("complete") / "p")
    hftlab(project, *SWEEP)
    return project


@pytest.fixture
def project(swept, tmp_path) -> Path:
    """A copy of the swept project, for one test to damage."""
    return Path(shutil.copytree(swept, tmp_path / "p", symlinks=True))


def run_dirs(project: Path) -> list[Path]:
    return sorted(p for p in (project / "results" / EXPERIMENT / "runs").iterdir() if not p.name.startswith("."))


def best_net_pnl(project: Path) -> float:
    return json.loads((project / "results" / EXPERIMENT / "summary.json").read_text())["best"]["net_pnl"]["value"]


def test_every_run_directory_lists_its_content(swept):
    """content.json: every deterministic file but itself, with its size and sha256; not telemetry."""
    for run_dir in run_dirs(swept):
        content = json.loads((run_dir / CONTENT_FILE).read_text())["files"]
        expected = [rel for rel in deterministic_files(run_dir) if rel != CONTENT_FILE]
        assert expected == sorted(content) and TELEMETRY_FILE not in content
        for rel, entry in content.items():
            data = (run_dir / rel).read_bytes()
            assert {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} == entry
        assert [] == check_complete(run_dir)
    assert 0 == hftlab(swept, "status", f"results/{EXPERIMENT}").returncode


def test_an_edited_metric_is_not_trusted_and_the_run_executes_again(project):
    """net_pnl edited by hand (same size): status says incomplete, the summary leaves it out, the next sweep
    re-executes that run saying why, and the summary's best is the real one."""
    run_dir = run_dirs(project)[0]
    before, real_best = digests(run_dir), best_net_pnl(project)
    metrics = run_dir / "metrics.json"
    text = metrics.read_text()
    value = json.dumps(json.loads(text)["net_pnl"])
    edited = "9" * len(value)  # the same number of bytes: only the hash can tell
    metrics.write_text(text.replace(f'"net_pnl": {value}', f'"net_pnl": {edited}'))
    assert float(edited) > real_best
    problem = "metrics.json does not match its recorded sha256 (edited?)"
    assert [problem] == check_complete(run_dir)

    status = hftlab(project, "status", f"results/{EXPERIMENT}", check=False)
    assert 1 == status.returncode and "incomplete" in status.stdout and problem in status.stdout
    exp_dir = project / "results" / EXPERIMENT
    rows = summary_rows(exp_dir, manifest.read(exp_dir))
    assert [None] == [r.get("net_pnl") for r in rows if r["run_id"] == run_dir.name]

    again = hftlab(project, *SWEEP)
    assert f"run {run_dir.name}: {problem}: re-executing" in again.stderr
    assert "2 runs: 1 executed, 1 cached, 0 failed, 0 not finished" in again.stdout
    assert before == digests(run_dir) and real_best == best_net_pnl(project)
    assert 0 == hftlab(project, "status", f"results/{EXPERIMENT}").returncode


def test_deleted_files_are_found_and_the_run_executes_again(project):
    """metrics.json and records/fills.parquet deleted: not complete (status exit 1); the next sweep executes
    that run again and restores the same bytes."""
    run_dir = run_dirs(project)[1]
    before = digests(run_dir)
    (run_dir / "metrics.json").unlink()
    (run_dir / "records" / "fills.parquet").unlink()
    assert ["metrics.json is missing", "records/fills.parquet is missing"] == check_complete(run_dir)
    status = hftlab(project, "status", f"results/{EXPERIMENT}", check=False)
    assert 1 == status.returncode and status.stdout.rstrip().endswith("NOT complete")

    again = hftlab(project, *SWEEP)
    assert f"run {run_dir.name}: metrics.json is missing (and 1 more problem(s)): re-executing" in again.stderr
    assert "2 runs: 1 executed, 1 cached" in again.stdout
    assert before == digests(run_dir)


def _truncate(run_dir: Path) -> None:
    path = run_dir / "records" / "orders.parquet"
    path.write_bytes(path.read_bytes()[:100])


def _add_file(run_dir: Path) -> None:
    shutil.copyfile(run_dir / "records" / "fills.parquet", run_dir / "records" / "extra.parquet")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_truncate, "records/orders.parquet has 100 bytes, not the"),
        (_add_file, "records/extra.parquet is not in content.json"),
        (lambda d: (d / CONTENT_FILE).unlink(), "no content.json (written last: the run was interrupted"),
        (lambda d: (d / CONTENT_FILE).write_text("{"), "content.json is not a content list written by hftlab"),
    ],
    ids=["truncated", "added-file", "no-content-json", "bad-content-json"],
)
def test_a_single_run_re_executes_an_incomplete_directory(project, damage, problem):
    """`hftlab run` (no sweep) over a damaged run directory: says why, executes it, replaces the directory."""
    overrides = (f"experiment_name={EXPERIMENT}", "strategy.params.half_spread=0.1")
    out = hftlab(project, "run", *overrides)
    run_dir = project / "results" / EXPERIMENT / "runs" / out.stdout.split("run ", 1)[1].split(":", 1)[0]
    assert "cached" in out.stdout
    before = digests(run_dir)
    damage(run_dir)
    assert check_complete(run_dir)[0].startswith(problem)
    again = hftlab(project, "run", *overrides)
    assert f"run {run_dir.name}: {problem}" in again.stderr and "re-executing" in again.stderr
    assert f"run {run_dir.name}: done" in again.stdout
    assert before == digests(run_dir) and [] == check_complete(run_dir)
    assert [] == [p.name for p in run_dir.parent.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_exchange_paths_swaps_two_directories(tmp_path):
    """The atomic replacement of an incomplete run directory (renameat2 RENAME_EXCHANGE where supported)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not exchange_paths(a, b):
        pytest.skip("this filesystem or system has no atomic exchange (the fallback renames twice)")
    assert ("b", "a") == ((a / "x").read_text(), (b / "x").read_text())
