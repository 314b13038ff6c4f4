"""`hftlab report` on a real sweep: a self-contained HTML (every image embedded, nothing from the network)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.run.test_run_e2e import hftlab, make_project

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("report") / "p")
    hftlab(
        project,
        "run",
        "-m",
        "experiment=grid_sweep",
        "strategy.params.half_spread=0.1,0.3",
        "strategy.params.skew=0,0.5",
    )
    out = hftlab(project, "report", "results/grid_sweep", "--out", "reports")
    return project, out


def test_report_writes_html_and_pngs(reported):
    """One index.html plus every figure as a PNG: run figures and, for the sweep, heatmap and sensitivity."""
    project, out = reported
    folder = project / "reports" / "grid_sweep"
    assert "report: reports/grid_sweep/index.html" in out.stdout
    names = sorted(p.name for p in folder.glob("*.png"))
    assert [
        "equity_drawdown.png", "fills_on_price.png", "heatmap.png", "inventory.png", "markout_curve.png",
        "sensitivity.png",
    ] == names  # fmt: skip
    for p in folder.glob("*.png"):
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, p.name


def test_every_image_is_embedded_and_nothing_comes_from_the_network(reported):
    """Each <img> is a non-empty base64 PNG; no http(s) or protocol-relative reference, no external script."""
    project, _ = reported
    html = (project / "reports" / "grid_sweep" / "index.html").read_text()
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)
    assert 6 == len(sources)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(PNG) and len(data) > 5_000
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "Tear sheet" in html and "net_pnl" in html


def test_the_tear_sheet_names_the_run_groups_metrics_with_units_and_warns(reported):
    """The best run's header (run id, strategy and parameters, dataset version, venue, engine), a badge for
    synthetic data, metrics in groups with their units (money in the quote currency of this linear
    contract, fractions in %), and the refusals by rule."""
    import json

    project, _ = reported
    page = (project / "reports" / "grid_sweep" / "index.html").read_text()
    best = json.loads((project / "results" / "grid_sweep" / "summary.json").read_text())["best"]["net_pnl"]
    run_dir = project / "results" / "grid_sweep" / "runs" / best["run_id"]
    definition = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"<dt>run</dt><dd><code>{best['run_id']}</code></dd>" in page
    assert (
        f"<dt>strategy</dt><dd><code>grid (strategies/grid.py, sha256 {definition['strategy']['sha256'][:12]})" in page
    )
    assert f"synthetic version {definition['dataset']['version']}: synthetic SYNUSDT, linear" in page
    assert "⚠ synthetic data: a generated market" in page
    assert "<h4>PnL and its attribution</h4>" in page and "<h4>Markouts (negative: adverse selection)</h4>" in page
    assert f"<tr><th>net_pnl</th><td>{metrics['net_pnl']:,.6g}</td><td class='unit'>quote</td></tr>" in page
    assert f"<tr><th>maker_share</th><td>{metrics['maker_share'] * 100:.4g} %</td>" in page
    assert f"<tr><th>trades</th><td>{metrics['trades']:,}</td><td class='unit'>fills</td></tr>" in page
    assert "No order refused by Risk or throttled by Execution Control." in page or "<h4>Refusals by rule</h4>" in page
    o = json.loads((project / "results" / "grid_sweep" / "summary.json").read_text())["overfitting"]
    assert f"out of <b>{o['trials']} trials</b>" in page and "Deflated Sharpe Ratio <b>" in page


def test_report_is_deterministic(reported):
    """Reporting the same results again gives byte-identical files."""
    project, _ = reported
    folder = project / "reports" / "grid_sweep"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    hftlab(project, "report", "results/grid_sweep", "--out", "reports")
    assert before == {p.name: p.read_bytes() for p in folder.iterdir()}


def test_report_on_missing_results_is_a_clear_error(tmp_path: Path):
    """No experiments to report: exit 2 naming the folder."""
    project = make_project(tmp_path / "empty")
    out = hftlab(project, "report", "results", check=False)
    assert 2 == out.returncode and "results" in out.stderr


def test_the_report_draws_the_committed_grid_and_lists_other_runs(reported, tmp_path: Path):
    """After another grid ran into the same experiment, the summary files are put back as `git checkout`
    would: the report draws the 4 points they list (not the live manifest's 1) and names the run outside."""
    project, _ = reported
    exp = project / "results" / "grid_sweep"
    committed = {name: (exp / name).read_bytes() for name in ("summary.json", "summary.csv")}
    before = {p.name for p in (exp / "runs").iterdir()}
    hftlab(project, "run", "-m", "experiment=grid_sweep", "strategy.params.half_spread=0.2", "strategy.params.skew=0")
    (other,) = {p.name for p in (exp / "runs").iterdir()} - before
    for name, data in committed.items():
        (exp / name).write_bytes(data)
    hftlab(project, "report", "results/grid_sweep", "--out", str(tmp_path / "r"))
    page = (tmp_path / "r" / "grid_sweep" / "index.html").read_text()
    assert "<p>4 runs: 4 complete, 0 failed.</p>" in page
    assert f"1 run directories outside this grid, not shown: <code>{other}</code>" in page


def test_refusals_are_counted_by_rule_name(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hftlab.analysis.tearsheet import rule_counts
    from hftlab.runtime import records as R

    records = tmp_path / "run" / "records"
    records.mkdir(parents=True)
    pq.write_table(pa.table({"rule": pa.array([R.RULE_MAX_POSITION, R.RULE_RATE, R.RULE_MAX_POSITION], pa.int8())}),
                   records / "risk.parquet")  # fmt: skip
    pq.write_table(pa.table({"rule": pa.array([R.RULE_MIN_REST], pa.int8())}), records / "throttles.parquet")
    text = rule_counts(tmp_path / "run")
    assert "<tr><td>Risk rejections</td><th>max_position</th><td>2</td></tr>" in text
    assert "<tr><td>Risk rejections</td><th>max_actions_per_second</th><td>1</td></tr>" in text
    assert "<tr><td>Execution Control throttles</td><th>min_rest</th><td>1</td></tr>" in text
