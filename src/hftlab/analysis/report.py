"""``hftlab report RESULTS_DIR``: a self-contained HTML report per experiment, with its PNGs.

For each experiment under RESULTS_DIR (``results`` or ``results/<experiment>``) it writes
``<out>/<experiment>/index.html`` (every image embedded as base64, no network resource) and the PNGs
beside it: for the experiment's best run by the chosen metric (or its only run) equity and drawdown,
inventory, fills on the price path and the markout curve, plus a tear sheet of its metrics; for a sweep,
a heatmap of two swept parameters against the metric and a parameter-sensitivity view, and the table
of all runs. Outputs are deterministic for given results.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from hftlab.analysis import plots, tearsheet
from hftlab.errors import HftlabError
from hftlab.files import atomic_write
from hftlab.ranking import Goal, best_index, goal
from hftlab.run.results import METRICS_FILE, RECORDS_DIR, RUN_FILE, WARNINGS_FILE
from hftlab.sweep import manifest as M
from hftlab.sweep.project import SCRATCH
from hftlab.sweep.summary import committed_manifest, summary_rows
from hftlab.sweep.walkforward import RESULTS_JSON as WALKFORWARD_JSON

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:6px 0}code{background:#f6f6f6}
.groups{display:flex;flex-wrap:wrap;gap:12px}.group th{text-align:left}.unit{color:#777;text-align:left}
.badge{background:#fff4d6;border:1px solid #e0b84c;padding:4px 8px;margin:4px 0}
dl.header{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}dl.header dt{color:#555}"""


def _read_table(run_dir: Path, name: str) -> np.ndarray:
    table = pq.read_table(run_dir / RECORDS_DIR / f"{name}.parquet")
    cols = {c: table.column(c).to_numpy() for c in table.column_names}
    out = np.zeros(table.num_rows, dtype=[(c, v.dtype) for c, v in cols.items()])
    for c, v in cols.items():
        out[c] = v
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return "" if v is None else html.escape(str(v))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _choose(rows: list[dict[str, Any]], metric: Goal) -> dict[str, Any] | None:
    """The best run by ``metric`` (:func:`hftlab.ranking.best_index`), else the only run, if there is one."""
    best = best_index([r.get(metric.metric) for r in rows], metric.lower)
    return rows[best] if best is not None else (rows[0] if len(rows) == 1 else None)


def _run_figures(run_dir: Path, out: Path) -> list[str]:
    state, fills = _read_table(run_dir, "state"), _read_table(run_dir, "fills")
    parts = [
        _img(plots.equity_drawdown(state, out / "equity_drawdown.png"), "Equity and drawdown"),
        _img(plots.inventory(state, out / "inventory.png"), "Inventory"),
        _img(plots.fills_on_price(state, fills, out / "fills_on_price.png"), "Fills on the price path"),
    ]
    curve = markout_curve(json.loads((run_dir / METRICS_FILE).read_text()))
    if curve:
        h, bps, se = (np.array(c, dtype=float) for c in zip(*curve, strict=True))
        parts.append(_img(plots.markout_curve(h, bps, se, out / "markout_curve.png"), "Markout curve"))
    return parts


def markout_curve(metrics: dict[str, Any]) -> list[tuple[float, float, float]]:
    """(horizon in s, mean markout in bps, its standard error; NaN where none) for every markout horizon in a
    run's metrics (``metrics.markout_horizons_ns``: exact horizons, see :mod:`hftlab.metrics.marks`)."""
    found = []
    for key in metrics:
        m = re.fullmatch(r"markout_([0-9.e+-]+)s_bps", key)
        if m:
            se = metrics.get(f"markout_{m[1]}s_bps_se")
            value = metrics[key]
            found.append((float(m[1]), np.nan if value is None else value, np.nan if se is None else se))
    return sorted(found)


def _sweep_figures(rows: list[dict[str, Any]], metric: str, out: Path) -> list[str]:
    params = [k for k in rows[0] if k.startswith("param.") and len({r.get(k) for r in rows}) > 1] if rows else []
    parts: list[str] = []
    if not params:
        return parts
    series = {}
    for p in params:
        values = sorted({r[p] for r in rows}, key=lambda v: (isinstance(v, str), v))
        means = [float(np.nanmean([_num(r.get(metric)) for r in rows if r[p] == v])) for v in values]
        series[p] = (values, means)
    parts.append(_img(plots.sensitivity(series, metric, out / "sensitivity.png"), "Parameter sensitivity"))
    if len(params) >= 2:
        px, py = params[0], params[1]
        xs, ys = series[px][0], series[py][0]
        grid = np.full((len(ys), len(xs)), np.nan)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                vals = [_num(r.get(metric)) for r in rows if r[px] == x and r[py] == y]
                grid[i, j] = np.nanmean(vals) if vals else np.nan
        label = lambda p: p.removeprefix("param.")  # noqa: E731
        parts.append(_img(plots.heatmap(xs, ys, grid, label(px), label(py), metric, out / "heatmap.png"), "Heatmap"))
    return parts


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


def _run_warnings(runs: Path, run_ids: list[str]) -> dict[str, list[str]]:
    """Each warning the runs recorded (``warnings.json``), with the runs that recorded it."""
    out: dict[str, list[str]] = {}
    for rid in run_ids:
        path = runs / rid / WARNINGS_FILE
        for text in json.loads(path.read_text()) if path.is_file() else []:
            out.setdefault(str(text), []).append(rid)
    return out


def _overfitting(exp_dir: Path) -> str:
    """The Deflated Sharpe Ratio of the sweep's best run with the trial count behind it ("" without one)."""
    path = exp_dir / "summary.json"
    o = json.loads(path.read_text()).get("overfitting") if path.is_file() else None
    if not o or o.get("dsr") is None:
        return ""
    return (
        f"<p class='dsr'>Best Sharpe {_fmt(o['best_sharpe'])} per interval (run <code>{html.escape(str(o['best_run_id']))}"
        f"</code>) out of <b>{o['trials']} trials</b>: a luck-only best would reach {_fmt(o['expected_max_sharpe'])}; "
        f"Probabilistic Sharpe Ratio {_fmt(o['best_psr'])}, Deflated Sharpe Ratio <b>{_fmt(o['dsr'])}</b> (the "
        "probability that the best run's true Sharpe is above zero once the number of trials is accounted for; "
        "Bailey &amp; López de Prado 2014).</p>"
    )


def _walkforward_section(result: dict[str, Any], out: Path) -> list[str]:
    """The folds of ``walkforward.json``: a table (partial folds marked) and IS vs OOS per hour."""
    metric, summary = result["metric"], result["summary"]
    rows = [{"fold": f["fold"], "partial": "partial" if f["partial"] else "", "in-sample": f"{f['is_start']} .. {f['is_end']}",
             "out-of-sample": f"{f['oos_start']} .. {f['oos_end']}",
             "chosen": " ".join(f["chosen"]["overrides"]) if f["chosen"] else "(none)",
             f"IS {metric}": f["is_metric"], f"OOS {metric}": f["oos_metric"],
             "IS per hour": f["is_per_hour"], "OOS per hour": f["oos_per_hour"]} for f in result["folds"]]  # fmt: skip
    rate = np.array([np.nan if f["is_per_hour"] is None else f["is_per_hour"] for f in result["folds"]], dtype=float)
    oos = np.array([np.nan if f["oos_per_hour"] is None else f["oos_per_hour"] for f in result["folds"]], dtype=float)
    figure = plots.walkforward([f["fold"] for f in result["folds"]], rate, oos, metric, out / "walkforward.png")
    return [
        "<h2>Walk-forward</h2>",
        f"<p>train {html.escape(result['train'])}, test {html.escape(result['test'])}, step "
        f"{html.escape(result['step'])}; {summary['folds']} folds ({summary['partial']} partial), chosen by "
        f"{html.escape(result['goal'])} {html.escape(metric)}; walk-forward efficiency (mean OOS per hour / mean "
        f"IS per hour): <b>{_fmt(summary['wfe'])}</b></p>",
        _table(rows, list(rows[0])) if rows else "",
        _img(figure, "In-sample vs out-of-sample per hour"),
    ]


def experiment_report(exp_dir: Path, out: Path, metric: str = "net_pnl") -> Path:
    """Write ``out/index.html`` and PNGs for one experiment directory; return the HTML path.

    The grid and its runs come from the committed summary files when there are some (so after ``git
    checkout`` + ``dvc checkout`` the report shows that commit's grid), else from the live manifest; run
    directories outside that grid are listed, not drawn."""
    m = committed_manifest(exp_dir) or M.read(exp_dir)
    runs = exp_dir / "runs"
    if m is None:  # a single run without a sweep manifest: report every run directory
        ids = sorted(p.name for p in runs.iterdir() if (p / RUN_FILE).is_file()) if runs.is_dir() else []
        m = {
            "experiment": exp_dir.name,
            "grid": [],
            "runs": [{"key": i, "overrides": [], "run_id": i, "status": "done"} for i in ids],
        }
    rows = summary_rows(exp_dir, m)
    if not rows:
        raise HftlabError(f"{exp_dir}: no runs to report")
    out.mkdir(parents=True, exist_ok=True)
    spec = metric
    chosen_by = goal(spec, "--metric")
    metric = chosen_by.metric
    best = _choose(rows, chosen_by)
    parts = [f"<h1>Experiment {html.escape(exp_dir.name)}</h1>"]
    warned = _run_warnings(runs, [str(r["run_id"]) for r in rows if r.get("run_id")])
    if warned:
        parts.append("<h2>Warnings</h2><ul class='warnings'>" + "".join(
            f"<li>{html.escape(text)} <small>(runs: {html.escape(', '.join(ids))})</small></li>"
            for text, ids in warned.items()
        ) + "</ul>")  # fmt: skip
    listed = {str(r.get("run_id")) for r in m["runs"]}
    extra = (
        sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name not in listed and (p / RUN_FILE).is_file())
        if runs.is_dir()
        else []
    )
    if (exp_dir / WALKFORWARD_JSON).is_file():
        parts += _walkforward_section(json.loads((exp_dir / WALKFORWARD_JSON).read_text()), out)
    if extra:
        parts.append(f"<p class='extra'>{len(extra)} run directories outside this grid, not shown: "
                     + ", ".join(f"<code>{html.escape(e)}</code>" for e in extra) + "</p>")  # fmt: skip
    if m["grid"]:
        parts.append("<p>Grid: " + " ".join(f"<code>{html.escape(g)}</code>" for g in m["grid"]) + "</p>")
    counts = M.counts(m)
    parts.append(
        f"<p>{counts['total']} runs: {counts['done'] + counts['cached']} complete, {counts['failed']} failed.</p>"
    )
    if best and best.get("run_id") and (runs / best["run_id"] / METRICS_FILE).is_file():
        run_dir = runs / best["run_id"]
        parts.append(f"<h2>Run {html.escape(str(best['run_id']))} (best by {html.escape(spec)})</h2>")
        definition = json.loads((run_dir / RUN_FILE).read_text())
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        parts += tearsheet.badges(definition, metrics)
        parts.append(tearsheet.header(run_dir, _read_table(run_dir, "state")))
        parts.append("<h3>Tear sheet</h3>" + tearsheet.metric_groups(metrics, tearsheet.currency(definition)))
        parts.append(tearsheet.rule_counts(run_dir))
        parts += _run_figures(run_dir, out)
    if len(rows) > 1:
        parts.append("<h2>Sweep</h2>")
        parts.append(_overfitting(exp_dir))
        parts += _sweep_figures(rows, metric, out)
        columns = [c for c in rows[0] if c.startswith("param.")] + [
            "run_id",
            "status",
            metric,
            "sharpe",
            "returns_n",
            "max_drawdown",
            "trades",
        ]
        parts.append(_table(rows, columns))
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(exp_dir.name)}</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    index = out / "index.html"
    atomic_write(index, page)
    return index


def report(results: Path, out: Path, metric: str = "net_pnl") -> list[Path]:
    """Reports for ``results/<experiment>`` or for every experiment under ``results`` but the scratch area
    of ad-hoc runs (:data:`~hftlab.sweep.project.SCRATCH`: reported only when named)."""
    if (results / "runs").is_dir() or (results / M.MANIFEST).is_file():
        return [experiment_report(results, out / results.name, metric)]
    exps = (
        sorted(p for p in results.iterdir() if p.is_dir() and (p / "runs").is_dir() and p.name != SCRATCH)
        if results.is_dir()
        else []
    )
    if not exps:
        raise HftlabError(f"{results}: no experiments (results/<experiment>/runs) to report")
    return [experiment_report(e, out / e.name, metric) for e in exps]
