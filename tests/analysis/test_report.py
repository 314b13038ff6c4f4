"""`hftlab report` on a real sweep: a self-contained HTML (every image embedded, nothing from the network)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
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


def test_the_page_is_self_contained_with_the_figures_library_inlined_once(reported):
    """Every script is inline (Bokeh's library once, then the figures' data), no element loads anything by
    URL, no <img> (the figures are interactive; the PNGs stay beside for pull requests). What the page
    fetches when it runs is checked in a real browser (test_report_browser.py)."""
    project, _ = reported
    html = (project / "reports" / "grid_sweep" / "index.html").read_text()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and not any("src=" in attrs for attrs in scripts)
    assert 1 == html.count("/* BEGIN bokeh.min.js */")  # the library, once
    outside = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert "<img" not in outside and "<link" not in outside and "@import" not in outside
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", outside)
    assert 5 == outside.count("<div id=") and "Tear sheet" in outside and "net_pnl" in outside  # 5 figure slots


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
    assert "<td></td>" not in page  # an undefined metric reads n/a, not a blank
    if metrics["sortino"] is None:
        assert "<tr><th>sortino</th><td>n/a</td>" in page
    o = json.loads((project / "results" / "grid_sweep" / "summary.json").read_text())["overfitting"]
    assert f"out of <b>{o['trials']} trials</b>" in page and "Deflated Sharpe Ratio <b>" in page


def test_the_header_command_names_the_commit_holding_the_run(reported, tmp_path: Path):
    """The header's ``commit`` row is a git command; run in a repository holding the experiment's summary
    (committed twice: the run id appears in the first commit only), it prints that commit."""
    import html as html_lib
    import subprocess

    project, _ = reported
    page = (project / "reports" / "grid_sweep" / "index.html").read_text()
    best = json.loads((project / "results" / "grid_sweep" / "summary.json").read_text())["best"]["net_pnl"]
    found = re.search(r"<dt>commit</dt><dd><code>([^<]*)</code></dd>", page)
    assert found is not None
    command = html_lib.unescape(found.group(1))
    assert best["run_id"] in command and command.startswith("git log -1 ")
    repo = tmp_path / "repo"
    (repo / "results" / "grid_sweep").mkdir(parents=True)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    shutil.copy(project / "results" / "grid_sweep" / "summary.json", repo / "results" / "grid_sweep")
    git("add", "-A")
    git("commit", "-qm", "sweep")
    holding = git("rev-parse", "HEAD")
    (repo / "README").write_text("later\n")
    git("add", "-A")
    git("commit", "-qm", "later")
    out = subprocess.run(command, shell=True, cwd=repo, check=True, capture_output=True, text=True).stdout.split()
    assert holding.startswith(out[0]) and len(out[0]) >= 7 and out[-1] == "sweep"


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


CHROMIUM = os.environ.get("HFTLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
TITLES = (
    "() => Array.from(Bokeh.documents[0].all_models).filter(m => m.type === 'Title').map(m => m.text).filter(t => t)"
)
FILLS_DRAWN = """() => Array.from(Bokeh.documents[0].all_models)
  .filter(m => m.type === 'GlyphRenderer' && m.glyph.type === 'Scatter')
  .filter(m => (d => (d instanceof Map ? d.has('price') : 'price' in d))(m.data_source.data))
  .reduce((n, m) => n + m.data_source.get_length(), 0)"""
CANVASES = """() => { let n = 0; const walk = (root) => { for (const el of root.querySelectorAll('*')) {
  if (el.tagName === 'CANVAS') n++; if (el.shadowRoot) walk(el.shadowRoot); } }; walk(document); return n; }"""


@pytest.mark.skipif(
    not CHROMIUM and os.environ.get("HFTLAB_REQUIRE_BROWSER") != "1",
    reason="no Chromium here (`apt-get install chromium`; CI installs it and sets HFTLAB_REQUIRE_BROWSER=1)",
)
def test_the_report_renders_in_chromium_offline_and_the_drill_down_swaps_the_run(reported, tmp_path: Path):
    """Debian's Chromium, driven by Playwright, opens the page from a file:// URL: no console error, no
    request but the page itself, every figure drawn (canvases), the best run shown; choosing the second run
    in the drill-down draws its fills and titles. The screenshot is kept (HFTLAB_SCREENSHOTS=<dir>)."""
    from playwright.sync_api import sync_playwright

    project, _ = reported
    page_path = project / "reports" / "grid_sweep" / "index.html"
    summary = json.loads((project / "results" / "grid_sweep" / "summary.json").read_text())
    with (project / "results" / "grid_sweep" / "summary.csv").open() as fh:
        rows = {r["run_id"]: r for r in csv.DictReader(fh)}
    best = summary["best"]["net_pnl"]["run_id"]
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length === 1", timeout=60_000)
        page.wait_for_timeout(500)
        titles = page.evaluate(TITLES)
        canvases = page.evaluate(CANVASES)
        drawn = page.evaluate(FILLS_DRAWN)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot))
        options = page.locator("select option").all_inner_texts()
        page.locator("select").select_option(index=1)
        page.wait_for_timeout(300)
        second = options[1].removeprefix("run ")
        titles_after, drawn_after = page.evaluate(TITLES), page.evaluate(FILLS_DRAWN)
        browser.close()
    assert [] == problems
    assert [page_path.as_uri()] == requests  # nothing else fetched: the library is inlined
    assert canvases >= 6, canvases  # equity, inventory, fills, markouts, sensitivity, heatmap (+ the table's)
    assert any(t.startswith(f"run {best}: equity") for t in titles), titles
    assert int(rows[best]["trades"]) == drawn
    assert min(5, len(rows)) == len(options) and f"run {best}" == options[0]
    assert any(t.startswith(f"run {second}: equity") for t in titles_after), titles_after
    assert int(rows[second]["trades"]) == drawn_after != drawn
    assert shot.stat().st_size > 50_000
    if os.environ.get("HFTLAB_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["HFTLAB_SCREENSHOTS"]) / "report_grid_sweep.png")


def test_compare_tabulates_deltas_against_the_first_run_and_overlays_them(reported):
    """`hftlab compare A B` (run ids looked up under results/): each metric per run and B - A; the page
    overlays both runs. An unknown run is refused naming it."""
    project, _ = reported
    with (project / "results" / "grid_sweep" / "summary.csv").open() as fh:
        a, b = [r["run_id"] for r in csv.DictReader(fh)][:2]
    runs = project / "results" / "grid_sweep" / "runs"
    ma, mb = (json.loads((runs / rid / "metrics.json").read_text()) for rid in (a, b))
    out = hftlab(project, "compare", a, str(runs / b), "--out", "reports/compare")
    header, _, *rows = out.stdout.splitlines()
    assert header.split() == ["metric", a, b, "Δ", b[:8]]
    trades = next(r.split() for r in rows if r.startswith("trades "))
    assert [f"{ma['trades']:,}", f"{mb['trades']:,}", f"{mb['trades'] - ma['trades']:+,}"] == trades[1:]
    net = next(r.split() for r in rows if r.startswith("net_pnl "))
    assert f"{mb['net_pnl'] - ma['net_pnl']:+,.6g}" == net[3]
    page = (project / "reports" / "compare" / "index.html").read_text()
    assert f"run {a}" in page and f"run {b}" in page and "Overlaid" in page
    missing = hftlab(project, "compare", a, "0123456789abcdef", check=False)
    assert 2 == missing.returncode and "RUN: [no-such-run] '0123456789abcdef'" in missing.stderr
    broken = project / "elsewhere" / b
    shutil.copytree(runs / b, broken)
    (broken / "metrics.json").unlink()
    incomplete = hftlab(project, "compare", a, str(broken), check=False)
    assert 2 == incomplete.returncode and f"RUN: [incomplete-run] {broken}: not a complete run" in incomplete.stderr
