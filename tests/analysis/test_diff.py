"""`hftlab diff` on a real temporary git repository with two commits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hftlab.analysis.diff import diff_markdown
from hftlab.errors import HftlabError

SUMMARY_HEADER = "param.strategy.params.half_spread,run_id,status,net_pnl,trades,sharpe_annualized\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Commit 1: half_spread 0.2 and a two-run sweep; commit 2: half_spread 0.3, one run changed, one added."""
    r = tmp_path / "repo"
    (r / "conf" / "strategy").mkdir(parents=True)
    (r / "results" / "sweep").mkdir(parents=True)
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.email", "t@hftlab.invalid")
    git(r, "config", "user.name", "t")
    (r / "params.yaml").write_text("strategy:\n  params:\n    half_spread: 0.2\n")
    (r / "conf" / "strategy" / "grid.yaml").write_text("name: grid\nparams:\n  grid_num: 5\n")
    (r / "results" / "sweep" / "summary.csv").write_text(
        SUMMARY_HEADER + "0.1,aaaa,done,10.0,100,1.5\n0.2,bbbb,done,20.0,200,2.0\n"
    )
    git(r, "add", "-A")
    git(r, "commit", "-qm", "base")
    (r / "params.yaml").write_text("strategy:\n  params:\n    half_spread: 0.3\n")
    (r / "results" / "sweep" / "summary.csv").write_text(
        SUMMARY_HEADER + "0.1,aaaa,done,10.0,100,1.5\n0.2,cccc,done,25.0,180,2.0\n0.4,dddd,done,5.0,50,0.5\n"
    )
    git(r, "commit", "-qam", "head")
    return r


def test_diff_reports_parameter_and_metric_deltas(repo: Path, tmp_path: Path):
    """The changed parameter, the changed run's metric deltas, the added run, and a rendered chart."""
    md = diff_markdown(repo, "HEAD~1", "HEAD", tmp_path / "plots")
    assert "| `params.yaml: strategy.params.half_spread` | 0.2 | 0.3 |" in md
    assert "grid_num" not in md  # unchanged config is not listed
    assert "| `strategy.params.half_spread=0.2` | net_pnl | 20 | 25 | +5 (+25.0%) |" in md
    assert "| `strategy.params.half_spread=0.2` | trades | 200 | 180 | -20 (-10.0%) |" in md
    assert "strategy.params.half_spread=0.1` | net_pnl" not in md  # unchanged run
    assert "Runs added: `strategy.params.half_spread=0.4`" in md
    png = tmp_path / "plots" / "sweep_net_pnl.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"![sweep net_pnl]({png.as_posix()})" in md


def test_diff_against_the_working_tree(repo: Path):
    """Without HEAD, the working tree is compared; an uncommitted parameter change shows."""
    (repo / "params.yaml").write_text("strategy:\n  params:\n    half_spread: 0.5\n")
    md = diff_markdown(repo, "HEAD", None, None)
    assert "`HEAD` → `working tree`" in md
    assert "| `params.yaml: strategy.params.half_spread` | 0.3 | 0.5 |" in md


def test_unknown_revision_is_a_clear_error(repo: Path):
    """A revision that does not exist is named in the error."""
    with pytest.raises(HftlabError, match="nope"):
        diff_markdown(repo, "nope", None, None)


def test_cli_writes_markdown(repo: Path, tmp_path: Path):
    """`hftlab diff BASE HEAD --output FILE` through the console script."""
    out = tmp_path / "diff.md"
    hftlab = str(Path(sys.executable).with_name("hftlab"))
    subprocess.run([hftlab, "diff", "main~1", "main", "--plots", "", "--output", str(out)], cwd=repo, check=True)
    assert "half_spread" in out.read_text()
