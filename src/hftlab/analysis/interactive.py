"""Interactive figures of the report, drawn with Bokeh into a standalone page.

Why Bokeh: it is already in the pinned dependency set, its standalone output works offline from a
``file://`` URL with its JavaScript inlined (:func:`resources`, about 2 MB, once per page), its WebGL
backend draws 100k+ fills (not used by default: see :data:`BACKEND`), and its ``DataTable`` sorts by any column. Plotly would add a package and a
bundle of the same size.

Pages must be deterministic for given results: Bokeh names documents and root elements with random
UUIDs and models with a process-wide counter; :func:`page_parts` renumbers both in order of appearance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.embed import components
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, FactorRange, HoverTool, LinearColorMapper
from bokeh.models.widgets import DataTable, NumberFormatter, Select, TableColumn
from bokeh.plotting import figure
from bokeh.resources import Resources

from hftlab.analysis import tearsheet

WIDTH = 1000
#: Canvas, not WebGL: on machines without a GPU (headless CI, servers) Chromium's software WebGL drew a
#: 25k-fill page in 7.3 s against 2.0 s on canvas.
BACKEND = "canvas"
#: Lines (equity, mid) are thinned to at most this many points per figure: drawing more shows nothing
#: more at this width; fills are drawn all (WebGL).
MAX_LINE_POINTS = 20_000


def resources() -> str:
    """The Bokeh JavaScript the pages use (core, widgets, tables; not WebGL or MathJax), inlined (no
    network): put once in the page's ``<head>``."""
    return str(Resources(mode="inline", components=["bokeh", "bokeh-widgets", "bokeh-tables"]).render_js())


def _thin(*cols: np.ndarray) -> list[np.ndarray]:
    n = len(cols[0])
    if n <= MAX_LINE_POINTS:
        return list(cols)
    idx = np.unique(np.linspace(0, n - 1, MAX_LINE_POINTS).astype(np.int64))
    return [c[idx] for c in cols]


def _time(ts: np.ndarray) -> np.ndarray:
    return ts.astype("datetime64[ns]").astype("datetime64[ms]")


def _figure(title: str, y_label: str, x_range: Any = None, height: int = 260) -> Any:
    kw = {"x_range": x_range} if x_range is not None else {}
    p = figure(title=title, width=WIDTH, height=height, x_axis_type="datetime", output_backend="canvas",
               tools="xpan,xwheel_zoom,box_zoom,reset,save", active_scroll="xwheel_zoom", **kw)  # fmt: skip
    p.xaxis.axis_label = "event time (UTC)"
    p.yaxis.axis_label = y_label
    return p


@dataclass
class RunData:
    """What the figures of one run draw: one column mapping per data source, and the figure titles."""

    label: str
    data: dict[str, dict[str, np.ndarray]]
    titles: dict[str, str]


def run_data(label: str, state: np.ndarray, fills: np.ndarray, metrics: dict[str, Any], money: str) -> RunData:
    """The figure data of one run: equity with its attribution, inventory (exact, from the fills), the mid,
    the fills by side, the markout curve (:func:`hftlab.analysis.tearsheet.markout_curve` of its metrics)."""
    t, equity, mid = _thin(_time(state["local_ts"]), state["equity"], state["mid"])
    fill_t = _time(fills["local_ts"])
    cum_fees = np.cumsum(fills["fee"]) if len(fills) else np.zeros(0)
    ti, fi = t.astype(np.int64), fill_t.astype(np.int64)
    fees_at = np.interp(ti, fi, cum_fees, left=0.0) if len(fills) else np.zeros(len(t))
    data: dict[str, dict[str, np.ndarray]] = {
        "equity": {"t": t, "net": equity, "gross": equity + fees_at, "fees": -fees_at},
        "inventory": {"t": np.concatenate([t[:1], fill_t]), "position": np.concatenate([[0.0], fills["position"]])},
        "mid": {"t": t, "mid": mid},
    }
    for side, name in ((1, "buy"), (-1, "sell")):
        mask = fills["side"] == side
        data[name] = {"t": fill_t[mask], "price": fills["price"][mask], "qty": fills["qty"][mask]}
    curve = tearsheet.markout_curve(metrics)
    h, bps, se = (np.array(c, dtype=float) for c in zip(*curve, strict=True)) if curve else (np.zeros(0),) * 3
    data["markout"] = {"h": h, "bps": bps, "lo": bps - 1.96 * se, "hi": bps + 1.96 * se}

    def total(key: str) -> str:
        v = metrics.get(key)
        return "-" if v is None else f"{v:,.6g}"

    titles = {
        "equity": f"{label}: equity ({money}), net {total('net_pnl')} = spread capture {total('spread_capture')} + "
        f"inventory {total('inventory_pnl')} - fees {total('fees')}",
        "fills": f"{label}: fills on the mid ({len(fills):,} fills)",
    }
    return RunData(label, data, titles)


def run_figures(runs: list[RunData]) -> Any:
    """Equity with attribution, inventory, fills on the mid (one shared, zoomable time axis) and markouts
    of the first run; with more runs, a selector swaps every figure's data to the chosen run (the
    drill-down: one set of figures is drawn, whichever run is shown)."""
    first = runs[0]
    src = {name: ColumnDataSource(cols) for name, cols in first.data.items()}
    eq = _figure(first.titles["equity"], "settlement currency")
    eq.line("t", "net", source=src["equity"], legend_label="net (equity)", line_width=1.5)
    eq.line("t", "gross", source=src["equity"], legend_label="before fees and rebates", color="#2ca02c")
    eq.line("t", "fees", source=src["equity"], legend_label="rebates (+) and fees (-)", color="#ff7f0e")
    eq.legend.location = "top_left"
    eq.add_tools(
        HoverTool(tooltips=[("time", "@t{%F %T}"), ("net", "@net{0,0.[000000]}")], formatters={"@t": "datetime"})
    )
    inv = _figure("Inventory", "position (contracts)", eq.x_range, 200)
    inv.step("t", "position", source=src["inventory"], mode="after")
    px = _figure(first.titles["fills"], "price", eq.x_range, 320)
    px.line("t", "mid", source=src["mid"], color="#888888", legend_label="mid")
    for name, color, marker in (("buy", "#2ca02c", "triangle"), ("sell", "#d62728", "inverted_triangle")):
        px.scatter("t", "price", source=src[name], marker=marker, size=6, color=color, alpha=0.6, legend_label=name)
    px.add_tools(HoverTool(tooltips=[("time", "@t{%F %T.%3N}"), ("price", "@price"), ("qty", "@qty")],
                           formatters={"@t": "datetime"}))  # fmt: skip
    px.legend.location = "top_left"
    mk = figure(title="Markouts: mean with 95% band (negative: adverse selection)", width=WIDTH // 2, height=300,
                x_axis_type="log", tools="pan,wheel_zoom,reset,save")  # fmt: skip
    mk.varea("h", "lo", "hi", source=src["markout"], alpha=0.25)
    mk.line("h", "bps", source=src["markout"])
    mk.scatter("h", "bps", source=src["markout"], size=6)
    mk.xaxis.axis_label = "horizon after the fill (s)"
    mk.yaxis.axis_label = "mean markout (bps)"
    if len(runs) == 1:
        return column(eq, inv, px, mk)
    options: list[str | tuple[Any, str]] = [r.label for r in runs]
    select = Select(title="Run", value=first.label, options=options, width=400)
    stored = {r.label: {name: ColumnDataSource(cols) for name, cols in r.data.items()} for r in runs}
    titles = {r.label: r.titles for r in runs}
    select.js_on_change("value", CustomJS(args={"shown": src, "stored": stored, "titles": titles, "eq": eq.title,
                                                "px": px.title}, code=_SWAP))  # fmt: skip
    return column(select, eq, inv, px, mk)


#: Drill-down: point the drawn sources at the chosen run's columns and show its titles (Bokeh hands dict
#: arguments to JavaScript as Maps).
_SWAP = """
const get = (m, k) => (m instanceof Map ? m.get(k) : m[k]);
const chosen = get(stored, cb_obj.value);
const names = shown instanceof Map ? [...shown.keys()] : Object.keys(shown);
for (const name of names) { get(shown, name).data = get(chosen, name).data; }
eq.text = get(get(titles, cb_obj.value), "equity");
px.text = get(get(titles, cb_obj.value), "fills");
"""


def overlay_figures(runs: list[RunData]) -> Any:
    """Equity, inventory (one shared time axis) and markouts of several runs overlaid, one colour each."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    eq = _figure("Equity (net)", "settlement currency")
    inv = _figure("Inventory", "position (contracts)", eq.x_range, 220)
    mk = figure(title="Markouts: mean with 95% band", width=WIDTH // 2, height=300, x_axis_type="log",
                tools="pan,wheel_zoom,reset,save")  # fmt: skip
    for k, run in enumerate(runs):
        color = palette[k % len(palette)]
        eq.line(run.data["equity"]["t"], run.data["equity"]["net"], color=color, legend_label=run.label)
        inv.step(run.data["inventory"]["t"], run.data["inventory"]["position"], mode="after", color=color,
                 legend_label=run.label)  # fmt: skip
        m = run.data["markout"]
        if len(m["h"]):
            mk.varea(m["h"], m["lo"], m["hi"], color=color, alpha=0.15)
            mk.line(m["h"], m["bps"], color=color, legend_label=run.label)
            mk.scatter(m["h"], m["bps"], color=color, size=6)
    for p in (eq, inv, mk):
        p.legend.location = "top_left"
        p.legend.click_policy = "hide"
    mk.xaxis.axis_label = "horizon after the fill (s)"
    mk.yaxis.axis_label = "mean markout (bps)"
    return column(eq, inv, mk)


def sweep_table(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """Every run of a sweep, one row each, sortable by any column (click its header)."""
    data = {c: [_cell(r.get(c)) for r in rows] for c in columns}
    cols = [TableColumn(field=c, title=c, formatter=NumberFormatter(format="0,0.[000000]"))
            if all(isinstance(v, float) for v in data[c] if v == v) and any(isinstance(v, float) for v in data[c])
            else TableColumn(field=c, title=c) for c in columns]  # fmt: skip
    return DataTable(source=ColumnDataSource(data), columns=cols, width=WIDTH, height=min(600, 28 * len(rows) + 30),
                     sortable=True, reorderable=False, index_position=None)  # fmt: skip


def _cell(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int | float):
        return float(v)
    return str(v)


def heatmap_figure(xs: list[Any], ys: list[Any], grid: np.ndarray, xlabel: str, ylabel: str, metric: str) -> Any:
    """``metric`` over two swept parameters, each cell labelled with its value."""
    xf, yf = (
        [f"{x:g}" if isinstance(x, float) else str(x) for x in xs],
        [f"{y:g}" if isinstance(y, float) else str(y) for y in ys],
    )
    cells = [(xf[j], yf[i], float(grid[i, j])) for i in range(len(ys)) for j in range(len(xs))]
    finite = grid[np.isfinite(grid)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    # labels dark on the light (high) end of Viridis, light on the dark end
    ink = [
        "black" if np.isfinite(c[2]) and high > low and (c[2] - low) / (high - low) > 0.6 else "white" for c in cells
    ]
    src = ColumnDataSource({"x": [c[0] for c in cells], "y": [c[1] for c in cells], "v": [c[2] for c in cells],
                            "label": ["" if not np.isfinite(c[2]) else f"{c[2]:.4g}" for c in cells], "ink": ink})  # fmt: skip
    mapper = LinearColorMapper(palette="Viridis256", low=low, high=high)
    p = figure(title=f"{metric} over the grid", x_range=FactorRange(factors=xf), y_range=FactorRange(factors=yf), width=WIDTH // 2, height=360, tools="hover,save",
               tooltips=[(xlabel, "@x"), (ylabel, "@y"), (metric, "@v")])  # fmt: skip
    p.rect("x", "y", 1, 1, source=src, fill_color={"field": "v", "transform": mapper}, line_color="white")
    p.text("x", "y", text="label", source=src, text_align="center", text_baseline="middle", text_font_size="13px",
           text_color="ink", text_font_style="bold")  # fmt: skip
    p.xaxis.axis_label, p.yaxis.axis_label = xlabel, ylabel
    return p


def sensitivity_figure(series: dict[str, tuple[list[Any], list[float]]], metric: str) -> Any:
    """Mean ``metric`` against each swept parameter's values (the others averaged out)."""
    p = figure(title=f"Sensitivity: mean {metric} per parameter value", width=WIDTH // 2, height=360,
               tools="pan,wheel_zoom,reset,save")  # fmt: skip
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for k, (name, (values, means)) in enumerate(series.items()):
        idx = np.arange(len(values), dtype=np.float64)
        p.line(idx, means, color=palette[k % len(palette)], legend_label=name)
        p.scatter(idx, means, color=palette[k % len(palette)], size=6)
    p.xaxis.axis_label = "parameter value (index, in grid order)"
    p.yaxis.axis_label = f"mean {metric}"
    return p


def page_parts(models: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The ``<script>`` holding every model's data and one ``<div>`` per name, with stable ids."""
    script, divs = components(models)
    names = list(divs)
    text = script + "\x00" + "\x00".join(divs[n] for n in names)
    uuids: dict[str, str] = {}
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                  lambda m: uuids.setdefault(m[0], f"00000000-0000-4000-8000-{len(uuids) + 1:012d}"), text)  # fmt: skip
    ids: dict[str, str] = {}
    text = re.sub(r'(?<=")p(\d+)(?=")', lambda m: ids.setdefault(m[0], f"p{len(ids) + 1}"), text)
    parts = text.split("\x00")
    return parts[0], dict(zip(names, parts[1:], strict=True))
