"""Benchmark: how long the interactive report of a ~100k-fill run takes to open in a browser, and its size.

Sets up a throwaway project (this repository's ``conf/`` and ``strategies/`` plus a synthetic dataset of
``--days`` days; the grid strategy at half_spread 0.1 fills about 100k times a day), runs it once, writes
``hftlab report`` for it, and opens the page in Chromium (Debian's ``chromium``, driven by Playwright) from
a ``file://`` URL, timing from navigation to every figure drawn. Baselines measured in the same run:
the same for a run of a quarter of the days (a quarter of the fills) and a page holding only the Bokeh
library and one empty figure.

Prints a table and ends with ``report_open ratio=<seconds to open / 5 s> aim=1.0`` (issue 16: under 5 s on
this machine); the line above it, ``report_scaling ratio=<full / quarter> aim=4.0``, says how opening
grows with the number of fills (linear: 4).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HFTLAB = str(Path(sys.executable).with_name("hftlab"))
BUDGET_S = 5.0
DRAWN = """(least) => { if (!window.Bokeh || Bokeh.documents.length !== 1) return false; let n = 0;
  const walk = (root) => { for (const el of root.querySelectorAll('*')) { if (el.tagName === 'CANVAS') n++;
  if (el.shadowRoot) walk(el.shadowRoot); } }; walk(document); return n >= least; }"""


def hftlab(project: Path, *args: str) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([HFTLAB, *args], cwd=project, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"hftlab {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - t0


def project_with_run(root: Path, name: str, days: float) -> tuple[Path, int]:
    """A project with one grid run over ``days`` of synthetic data; the path of its report and its fills."""
    import json

    path = root / name
    path.mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "conf", path / "conf")
    shutil.copytree(PROJECT_ROOT / "strategies", path / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    hftlab(path, "--root", str(path / "data" / "canonical"), "data", "synth", "--id", "synthetic", "--seed", "7",
           "--days", str(days), "--events-per-second", "40")  # fmt: skip
    hftlab(path, "run", "experiment_name=bench", "strategy.params.half_spread=0.1", "output.progress=off")
    (run,) = (path / "results" / "bench" / "runs").iterdir()
    return path, int(json.loads((run / "metrics.json").read_text())["trades"])


def open_seconds(chromium: str, url: str, repeat: int, canvases: int) -> float:
    """Median seconds from navigation to ``canvases`` figure canvases drawn, each time in a fresh page."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(repeat):
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_function(DRAWN, arg=canvases, timeout=120_000, polling=20)
            times.append(time.perf_counter() - t0)
            if errors:
                raise SystemExit(f"{url}: page errors: {errors}")
            page.close()
        browser.close()
    return statistics.median(times)


def bokeh_only(folder: Path) -> Path:
    """A page with the report's Bokeh library and one empty figure: what any report costs to open."""
    from bokeh.plotting import figure

    from hftlab.analysis.interactive import page_parts, resources

    empty = figure(width=400, height=300)
    empty.scatter([0.0], [0.0])
    script, divs = page_parts({"empty": empty})
    path = folder / "bokeh_only.html"
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{resources()}{script}</head><body>"
                    f"{divs['empty']}</body></html>")  # fmt: skip
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=1.1, help="days of synthetic data (default 1.1: ~100k fills)")
    parser.add_argument("--repeat", type=int, default=3, help="opens per page (median; default 3)")
    args = parser.parse_args()
    chromium = os.environ.get("HFTLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("report: skipped: no Chromium here (`apt-get install chromium`)")
        return 0
    with tempfile.TemporaryDirectory(prefix="hftlab-bench-report-") as tmp:
        root = Path(tmp)
        rows = []
        for name, days in (("quarter", args.days / 4), ("full", args.days)):
            project, fills = project_with_run(root, name, days)
            seconds_report = hftlab(project, "report", "results/bench", "--out", "reports")
            page = project / "reports" / "bench" / "index.html"
            rows.append(
                (
                    name,
                    fills,
                    page.stat().st_size,
                    seconds_report,
                    open_seconds(chromium, page.as_uri(), args.repeat, 4),
                )
            )
        base = bokeh_only(root)
        library, library_mb = open_seconds(chromium, base.as_uri(), args.repeat, 1), base.stat().st_size / 1e6
    print(f"{'page':<12} {'fills':>9} {'size MB':>8} {'write s':>8} {'open s':>7} {'open / library':>15}")
    print(f"{'bokeh only':<12} {'-':>9} {library_mb:8.2f} {'-':>8} {library:7.2f} {1.0:15.2f}")
    for name, fills, size, write, opened in rows:
        print(f"{name:<12} {fills:9,d} {size / 1e6:8.2f} {write:8.2f} {opened:7.2f} {opened / library:15.2f}")
    full, quarter = rows[1][4], rows[0][4]
    print(f"report_scaling ratio={full / quarter:.2f} aim=4.0")
    print(f"report_open ratio={full / BUDGET_S:.2f} aim=1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
