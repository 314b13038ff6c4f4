"""``hftlab compare RUN [RUN ...]``: runs side by side: their metrics with deltas against the first, and one
page overlaying their equity, inventory and markouts.

A run is named by its directory (``results/<experiment>/runs/<run_id>``) or by its run id alone, looked
up in every experiment folder under ``results`` (scratch included). The table goes to stdout; the page
(:mod:`hftlab.analysis.interactive`, self-contained like the report) to ``--out``.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from hftlab.analysis import interactive, tearsheet
from hftlab.errors import ConfigError
from hftlab.files import atomic_write
from hftlab.metrics.display import shown
from hftlab.run.results import METRICS_FILE, RUN_FILE, is_complete

#: The metrics compared, in this order (those a run lacks are left blank).
COMPARED = (
    "net_pnl", "gross_pnl", "spread_capture", "inventory_pnl", "fees", "max_drawdown", "sharpe", "returns_n",
    "trades", "volume", "traded_value", "maker_share", "fill_ratio", "quoting_uptime", "quoted_spread",
    "inventory_time_weighted_abs", "final_position", "markout_1s_bps", "markout_10s_bps", "markout_60s_bps",
    "risk_rejections", "throttled",
)  # fmt: skip


def find_run(name: str, results: Path) -> Path:
    """The complete run directory ``name`` names: a path, or a run id under ``results/*/runs``."""
    path = Path(name)
    found = [path] if (path / RUN_FILE).is_file() else sorted(results.glob(f"*/runs/{name}"))
    if not found:
        raise ConfigError(f"{name!r}: no run directory and no run of that id under {results}/*/runs", key="RUN",
                          rule="no-such-run")  # fmt: skip
    if not is_complete(found[0]):
        raise ConfigError(f"{found[0]}: not a complete run (hftlab check names why)", key="RUN", rule="incomplete-run")
    return found[0]


def metric_table(runs: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: each compared metric, its value per run and, for every run after the first, the
    delta against the first (``Δ <its run id's first 8 characters>``)."""
    metrics = [json.loads((r / METRICS_FILE).read_text()) for r in runs]
    header = ["metric", *(r.name for r in runs), *(f"Δ {r.name[:8]}" for r in runs[1:])]
    rows = []
    for key in COMPARED:
        values = [m.get(key) for m in metrics]
        if all(v is None for v in values):
            continue
        deltas = [_delta(values[0], v) for v in values[1:]]
        rows.append([key, *(shown(key, v) or "-" for v in values), *deltas])
    return header, rows


def _delta(a: Any, b: Any) -> str:
    ok = all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (a, b))
    if not ok:
        return "-"
    return f"{b - a:+,.2f}" if abs(b - a) >= 1e5 else f"{b - a:+,.6g}"


def text_table(
    header: list[str], rows: list[list[str]], left: frozenset[int] = frozenset({0}), rule: bool = True, indent: str = ""
) -> str:
    """``header`` and ``rows`` as aligned text columns: those in ``left`` left-aligned, the others right
    (numbers); a dashed rule under the header with ``rule``; every line after ``indent``."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        aligned = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return (indent + "  ".join(aligned)).rstrip()

    head = [line(header), line(["-" * w for w in widths])] if rule else [line(header)]
    return "\n".join([*head, *(line(r) for r in rows)])


def compare_page(runs: list[Path], out: Path) -> Path:
    """Write the page overlaying the runs' equity, inventory and markouts, with the metric table."""
    from hftlab.analysis.report import html_page, read_table, slot

    data = []
    for r in runs:
        definition = json.loads((r / RUN_FILE).read_text())
        metrics = json.loads((r / METRICS_FILE).read_text())
        data.append(interactive.run_data(f"run {r.name}", read_table(r, "state"), read_table(r, "fills"), metrics,
                                         tearsheet.currency(definition)))  # fmt: skip
    header, rows = metric_table(runs)
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows) + "</table>"  # fmt: skip
    names = ", ".join(f"<code>{html.escape(str(r))}</code>" for r in runs)
    parts = [f"<h1>Runs compared</h1><p>{names}</p><h2>Metrics (deltas against the first)</h2>{table}",
             f"<h2>Overlaid</h2>{slot('overlay')}"]  # fmt: skip
    page = html_page("compare", parts, {"overlay": interactive.overlay_figures(data)})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "index.html", page)
    return out / "index.html"
