"""The DVC pipeline on real clones of this repository: reproduce the committed results, run cache,
push/pull, DVC experiments. Tests run in order and share two clones (this is one workflow)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow
BIN = str(Path(sys.executable).parent)
HOME: Path | None = None  #: the home folder the clones' DVC sees (set by the `place` fixture)


def sh(cwd: Path, *cmd: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
    env.pop("HFTLAB_PROJECT", None)
    if HOME is not None:  # the default remote is ~/.local/share/hftlab/dvc-remote: the test's own home
        env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")  # warm caches
        env["HOME"] = str(HOME)
    out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def clone(target: Path) -> Path:
    committed = sh(PROJECT_ROOT, "git", "rev-parse", "HEAD").stdout.strip()
    sh(target.parent, "git", "clone", "-q", str(PROJECT_ROOT), target.name)
    sh(target, "git", "checkout", "-q", committed)
    sh(target, "git", "config", "user.email", "test@hftlab.invalid")
    sh(target, "git", "config", "user.name", "hftlab test")
    return target


def changed_stages(repo: Path) -> set[str]:
    out = sh(repo, "dvc", "status", "--json").stdout
    return set(json.loads(out or "{}"))


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder holding the clones and the home folder whose ~/.local/share/hftlab/dvc-remote is the
    clones' default remote."""
    global HOME
    folder = tmp_path_factory.mktemp("pipeline")
    HOME = folder / "home"
    HOME.mkdir()
    yield folder
    HOME = None


@pytest.fixture(scope="module")
def clone_a(place: Path) -> Path:
    return clone(place / "a")


def test_fresh_clone_reproduces_the_committed_experiments_bit_identically(clone_a: Path):
    """Fresh clone + the pull-request review script (no remote reachable yet: the pipeline regenerates
    everything): the results are current, dvc.lock and the committed metrics unchanged (git status clean)."""
    review = review_of(clone_a, "HEAD", "fresh")
    assert "Running stage 'experiment@grid_sweep'" in review.log
    assert "" == sh(clone_a, "git", "status", "--porcelain").stdout
    assert review.stale is False and "✅ **Results are current**" in review.text
    assert "no DVC remote was reachable" in review.text and "No configuration changes." in review.text


@dataclass
class Review:
    """What `.github/scripts/review` wrote: review.md, its log, its `stale` output, its charts."""

    text: str
    log: str
    stale: bool
    plots: list[str]


def review_of(repo: Path, base: str, name: str) -> Review:
    out, outputs = repo.parent / f"review-{name}", repo.parent / f"review-{name}.outputs"
    sh(repo, str(repo / ".github" / "scripts" / "review"), base, str(out), GITHUB_OUTPUT=str(outputs))
    stale = outputs.read_text().strip()
    assert stale in ("stale=true", "stale=false")
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    return Review((out / "review.md").read_text(), (out / "review.log").read_text(), stale == "stale=true", plots)


def test_no_op_repro_and_status_report_up_to_date(clone_a: Path):
    """With nothing changed, repro runs nothing (its speed is measured in benchmarks/dvc_noop.py)."""
    assert "Data and pipelines are up to date." in sh(clone_a, "dvc", "repro").stdout
    assert set() == changed_stages(clone_a)


def test_forced_repro_leaves_the_lock_unchanged(clone_a: Path):
    """`dvc repro -f` at another path re-runs every stage and reproduces every hash in dvc.lock."""
    out = sh(clone_a, "dvc", "repro", "-f")
    assert "0 executed, 6 cached" in out.stdout  # the run cache: nothing changed, nothing re-executed
    assert "" == sh(clone_a, "git", "status", "--porcelain").stdout


def test_ad_hoc_runs_go_to_scratch_and_the_pipeline_neither_sees_nor_prunes_them(clone_a: Path):
    """A run and a sweep without experiment= land in results/scratch: git status stays clean, dvc status
    up to date, dvc repro runs nothing and keeps them; a managed experiment refuses overrides that would
    change its results (single run and sweep), writing nothing."""
    run = sh(clone_a, "hftlab", "run", "strategy.params.half_spread=0.3")
    sweep = sh(clone_a, "hftlab", "run", "-m", "strategy.params.half_spread=0.3,0.5")
    assert "results/scratch/runs/" in run.stdout and "2 runs: 1 executed, 1 cached" in sweep.stdout
    scratch = clone_a / "results" / "scratch" / "runs"
    kept = sorted(p.name for p in scratch.iterdir())
    assert 2 == len(kept)
    assert "" == sh(clone_a, "git", "status", "--porcelain").stdout
    assert set() == changed_stages(clone_a)
    assert "Data and pipelines are up to date." in sh(clone_a, "dvc", "repro").stdout
    assert kept == sorted(p.name for p in scratch.iterdir())
    for cmd in (["run", "experiment=default", "strategy.params.half_spread=0.3"],
                ["run", "-m", "experiment=grid_sweep", "strategy.params.skew=0.1"]):  # fmt: skip
        out = sh(clone_a, "hftlab", *cmd, check=False)
        assert 2 == out.returncode and "hftlab: error: experiment: [managed-experiment]" in out.stderr, out.stderr
    assert "" == sh(clone_a, "git", "status", "--porcelain").stdout
    assert set() == changed_stages(clone_a)


def test_push_then_pull_in_another_clone_restores_results_without_running(clone_a: Path, place: Path):
    """dvc push to the default remote; a clone in another folder finds the same remote, pulls every result,
    needs no re-run, `hftlab check` finds every experiment current, and a pulled run reproduces."""
    sh(clone_a, "dvc", "push")
    assert (HOME / ".local" / "share" / "hftlab" / "dvc-remote" / "files" / "md5").is_dir()
    (place / "elsewhere").mkdir()
    b = clone(place / "elsewhere" / "b")
    sh(b, "dvc", "pull")
    assert set() == changed_stages(b)
    check = sh(b, "hftlab", "check").stdout
    assert "ok: " in check and ", 3 experiments against the current code, config and data checked" in check
    status = sh(b, "hftlab", "status", "results/grid_sweep").stdout  # no live manifest in a fresh clone
    assert "grid_sweep: 6/6 complete" in status and "current: the 6 points' run ids are those" in status
    summary = json.loads((b / "results" / "default" / "summary.json").read_text())
    run_id = summary["best"]["net_pnl"]["run_id"]
    assert (b / "results" / "default" / "runs" / run_id / "records" / "fills.parquet").is_file()
    out = sh(b, "hftlab", "reproduce", f"results/default/runs/{run_id}")
    assert "reproduced: every deterministic file matches" in out.stdout


def test_stale_results_fail_check_until_rerun_and_a_branch_switch_reports_that_commits_grid(clone_a: Path):
    """On a branch, a committed config change without a re-run fails `hftlab check` naming the experiments
    and the key; `dvc repro` + commit makes it pass; back on main with `dvc checkout`, check passes and the
    report draws main's runs only."""
    with open(clone_a / "results" / "grid_sweep" / "summary.csv", newline="") as fh:
        main_ids = [row["run_id"] for row in csv.DictReader(fh)]
    sh(clone_a, "git", "checkout", "-q", "-b", "grid-num-6")
    config = clone_a / "conf" / "strategy" / "grid.yaml"
    config.write_text(config.read_text().replace("grid_num: 5", "grid_num: 6"))
    sh(clone_a, "git", "commit", "-qam", "grid_num 6, not re-run")
    stale = sh(clone_a, "hftlab", "check", check=False)
    assert 1 == stale.returncode
    for exp in ("default", "grid_sweep"):
        assert f"FAILED: results/{exp}: stale: [experiment={exp}" in stale.stderr, stale.stderr
    assert "changed strategy.params.grid_num (5 -> 6)" in stale.stderr
    review = review_of(clone_a, "HEAD~1", "stale")  # as the pull request's workflow: flags, regenerates, diffs
    assert review.stale is True and "⚠️ **Stale results**" in review.text
    assert "the committed datasets and runs were pulled from the DVC remote" in review.text
    for name in ("dvc.lock", "results/default/summary.csv", "results/grid_sweep/summary.json"):
        assert f"`{name}`" in review.text.split("Files that `dvc repro` changed: ")[1].splitlines()[0]
    assert "changed strategy.params.grid_num (5 -> 6)" in review.text  # the check of the committed results
    assert "| `conf/strategy/grid.yaml: params.grid_num` | 5 | 6 |" in review.text  # the diff of the regenerated
    assert "grid_sweep_net_pnl.png" in review.plots and "/grid_sweep_net_pnl.png)" in review.text
    assert 0 == sh(clone_a, "hftlab", "check").returncode  # the regenerated results are current
    sh(clone_a, "git", "commit", "-qam", "re-run")
    assert 0 == sh(clone_a, "hftlab", "check").returncode
    sh(clone_a, "git", "checkout", "-q", "-")
    sh(clone_a, "dvc", "checkout")
    back = sh(clone_a, "hftlab", "check")  # the branch's 7 runs leave their DVC-ignored telemetry.json behind
    assert "note: 7 run directories hold only telemetry.json (left by a dvc checkout" in back.stdout
    assert "" == sh(clone_a, "git", "status", "--porcelain").stdout
    sh(clone_a, "hftlab", "report", "results/grid_sweep", "--out", str(clone_a.parent / "branch-report"))
    page = (clone_a.parent / "branch-report" / "grid_sweep" / "index.html").read_text()
    assert 6 == len(main_ids) and all(rid in page for rid in main_ids) and "outside this grid" not in page


def test_editing_one_strategy_reruns_only_its_experiment(clone_a: Path):
    """Editing strategies/obi.py: dvc status lists exactly the experiment using it; repro runs only it."""
    source = clone_a / "strategies" / "obi.py"
    source.write_text(source.read_text() + "\n# a comment changes the strategy's source hash\n")
    assert {"experiment@obi_default"} == changed_stages(clone_a)
    out = sh(clone_a, "dvc", "repro")
    ran = {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")}
    assert {"experiment@obi_default", "report"} == ran
    assert "1 runs: 1 executed, 0 cached" in out.stdout


def test_dvc_experiments_with_our_configuration(place: Path):
    """`dvc exp run -S`, a queued sweep, and `dvc exp show` listing our metrics, on a pulled clone."""
    b = place / "elsewhere" / "b"
    out = sh(b, "dvc", "exp", "run", "-S", "strategy.params.half_spread=0.3")
    assert "dvc_experiment" in out.stdout
    metrics = json.loads((b / "results" / "dvc_experiment" / "metrics.json").read_text())
    assert metrics["trades"] > 0
    sh(b, "dvc", "exp", "run", "--queue", "-S", "strategy.params.half_spread=0.1,0.4")
    sh(b, "dvc", "exp", "run", "--run-all", "-j", "1")
    table = sh(b, "dvc", "exp", "show", "--md", "--no-pager").stdout
    assert "net_pnl" in table
    for value in ("0.1", "0.3", "0.4"):
        assert f"| {value} " in table.replace("|  ", "| ") or value in table
    rows = [line for line in table.splitlines() if "Success" in line or "[" in line]
    assert len(rows) >= 3
