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
from pathlib import Path
from typing import Any

import numpy as np

from hftlab.analysis import interactive, plots, tearsheet
from hftlab.errors import HftlabError
from hftlab.files import atomic_write
from hftlab.ranking import Goal, goal, ranked
from hftlab.run import results
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


def read_table(run_dir: Path, name: str) -> np.ndarray:
    """The record table ``name`` of a run directory as one structured array."""
    return results.read_table(run_dir / RECORDS_DIR / f"{name}.parquet")


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


def _choose(rows: list[dict[str, Any]], metric: Goal) -> list[int]:
    """Indexes of ``rows``, best first by ``metric`` (:func:`hftlab.ranking.ranked`, the rule of every
    chooser); the only row when there is one and it does not rank."""
    order = ranked([r.get(metric.metric) for r in rows], metric.lower)
    return order if order or len(rows) != 1 else [0]


def _run_data(run_dir: Path, out: Path | None) -> interactive.RunData:
    """One run's figure data; with ``out``, also its PNGs there (static copies, e.g. for a pull request)."""
    state, fills = read_table(run_dir, "state"), read_table(run_dir, "fills")
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    if out is not None:
        plots.equity_drawdown(state, out / "equity_drawdown.png")
        plots.inventory(state, out / "inventory.png")
        plots.fills_on_price(state, fills, out / "fills_on_price.png")
        curve = tearsheet.markout_curve(metrics)
        if curve:
            h, bps, se = (np.array(c, dtype=float) for c in zip(*curve, strict=True))
            plots.markout_curve(h, bps, se, out / "markout_curve.png")
    money = tearsheet.currency(json.loads((run_dir / RUN_FILE).read_text()))
    return interactive.run_data(f"run {run_dir.name}", state, fills, metrics, money)


def _sweep_figures(rows: list[dict[str, Any]], metric: str, out: Path) -> list[Any]:
    """Parameter sensitivity and, over two swept parameters, the heatmap of ``metric``: interactive figures,
    and their PNGs in ``out``."""
    params = [k for k in rows[0] if k.startswith("param.") and len({r.get(k) for r in rows}) > 1] if rows else []
    figures: list[Any] = []
    if not params:
        return figures
    label = lambda p: p.removeprefix("param.")  # noqa: E731
    series = {}
    for p in params:
        values = sorted({r[p] for r in rows}, key=lambda v: (isinstance(v, str), v))
        means = [float(np.nanmean([_num(r.get(metric)) for r in rows if r[p] == v])) for v in values]
        series[p] = (values, means)
    plots.sensitivity(series, metric, out / "sensitivity.png")
    figures.append(interactive.sensitivity_figure({label(k): v for k, v in series.items()}, metric))
    if len(params) >= 2:
        px, py = params[0], params[1]
        xs, ys = series[px][0], series[py][0]
        grid = np.full((len(ys), len(xs)), np.nan)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                vals = [_num(r.get(metric)) for r in rows if r[px] == x and r[py] == y]
                grid[i, j] = np.nanmean(vals) if vals else np.nan
        plots.heatmap(xs, ys, grid, label(px), label(py), metric, out / "heatmap.png")
        figures.append(interactive.heatmap_figure(xs, ys, grid, label(px), label(py), metric))
    return figures


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


#: Columns of the sweep table after the parameters, run id, status and the chosen metric.
SWEEP_COLUMNS = ("net_pnl", "spread_capture", "inventory_pnl", "fees", "sharpe", "returns_n", "max_drawdown",
                 "trades", "maker_share", "markout_1s_bps", "quoting_uptime")  # fmt: skip
#: How many runs get a drill-down (tear sheet and figures): the best ones by the report's metric.
DRILL_DOWN = 5


def slot(name: str) -> str:
    """Where figure ``name`` goes in the page parts (:func:`html_page` puts it there)."""
    return f"<!--figure:{name}-->"


def _top_runs(rows: list[dict[str, Any]], by: Goal, runs: Path) -> list[str]:
    """Run ids of the best :data:`DRILL_DOWN` complete runs by ``by`` (or the only run), best first."""
    usable = [r for r in rows if r.get("run_id") and (runs / str(r["run_id"]) / METRICS_FILE).is_file()]
    return [str(usable[i]["run_id"]) for i in _choose(usable, by)[:DRILL_DOWN]]


def _run_section(run_dir: Path, open_: bool) -> str:
    """One run's tear sheet (header, badges, grouped metrics, refusals) in a collapsible block."""
    definition = json.loads((run_dir / RUN_FILE).read_text())
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    inner = "".join(tearsheet.badges(definition, metrics)) + tearsheet.header(run_dir, read_table(run_dir, "state"))
    lot = definition["dataset"]["instrument"]["lot_size"]
    inner += "<h3>Tear sheet</h3>" + tearsheet.metric_groups(metrics, tearsheet.currency(definition), lot)
    inner += tearsheet.rule_counts(run_dir)
    summary = f"Run {html.escape(run_dir.name)}: net_pnl {_fmt(metrics.get('net_pnl'))}"
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>{inner}</details>"


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


def _runs_section(top: list[str], runs: Path, out: Path, spec: str, models: dict[str, Any]) -> list[str]:
    """The tear sheets of the ``top`` runs (best first), their figures with a run selector, and the runs
    overlaid; their figures are added to ``models``."""
    parts: list[str] = []
    parts.append(f"<h2>Runs: the best by {html.escape(spec)}" + (f" and the next {len(top) - 1}" if len(top) > 1 else "")
                 + "</h2>")  # fmt: skip
    for i, rid in enumerate(top):
        parts.append(_run_section(runs / rid, i == 0))
    data = [_run_data(runs / rid, out if i == 0 else None) for i, rid in enumerate(top)]
    models["runs"] = interactive.run_figures(data)
    parts.append("<h3>Figures</h3><p class='hint'>Drag to pan, scroll to zoom the time axis (the three "
                 "figures follow each other), box-zoom with the toolbar, reset to go back; hover a fill for its "
                 "details." + (" Choose the run to show above the figures." if len(top) > 1 else "") + "</p>"
                 + slot("runs"))  # fmt: skip
    if len(data) > 1:
        models["overlay"] = interactive.overlay_figures(data)
        parts.append(f"<h3>The {len(data)} runs overlaid</h3><p class='hint'>Click a legend entry to hide its "
                     "run; <code>hftlab compare</code> does the same for any runs, with metric deltas.</p>"
                     + slot("overlay"))  # fmt: skip
    return parts


def _sweep_section(
    exp_dir: Path, rows: list[dict[str, Any]], metric: str, out: Path, models: dict[str, Any]
) -> list[str]:
    """The sweep: Deflated Sharpe Ratio, sensitivity and heatmap, and the sortable table of every run;
    its figures are added to ``models``."""
    parts: list[str] = []
    parts.append("<h2>Sweep</h2>")
    parts.append(_overfitting(exp_dir))
    for k, fig in enumerate(_sweep_figures(rows, metric, out)):
        models[f"sweep{k}"] = fig
        parts.append(slot(f"sweep{k}"))
    columns = [c for c in rows[0] if c.startswith("param.")]
    columns += ["run_id", "status", metric] + [c for c in SWEEP_COLUMNS if c != metric]
    models["table"] = interactive.sweep_table(rows, columns)
    parts.append("<h3>All runs</h3><p class='hint'>Click a column's header to sort by it.</p>" + slot("table"))
    return parts


def html_page(title: str, parts: list[str], models: dict[str, Any]) -> str:
    """A whole page: ``parts`` (HTML) with each figure slot (:func:`slot`) replaced by its figure of
    ``models``, Bokeh's library and the figures' data inlined in the head when there are figures."""
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
    body = "".join(parts)
    if models:
        script, divs = interactive.page_parts(models)
        head += interactive.resources() + script
        for name, div in divs.items():
            body = body.replace(slot(name), div)
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>\n"


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
    models: dict[str, Any] = {}
    top = _top_runs(rows, chosen_by, runs)
    if top:
        parts += _runs_section(top, runs, out, spec, models)
    if len(rows) > 1:
        parts += _sweep_section(exp_dir, rows, metric, out, models)
    page = html_page(exp_dir.name, parts, models)
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
