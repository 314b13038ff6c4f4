"""The tear sheet of one run in the report: what ran (header), what to be wary of (badges), its metrics
grouped with their units, and its Risk and Execution Control refusals counted by rule.

Units: money metrics are in the settlement currency (``quote`` currency for linear contracts, the
``coin`` for inverse ones: :mod:`hftlab.metrics.compute`); quantities in contracts; markouts and spreads
in price units or bps; fractions as percentages; durations in seconds. Nothing here reads the clock or
the git state: the page is a function of the run directory.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from hftlab.metrics.display import shown
from hftlab.run.results import RECORDS_DIR, RUN_FILE
from hftlab.runtime.records import RULES
from hftlab.times import iso

MONEY = "money"  #: a unit placeholder: the settlement currency of the run
#: (group, [(metric, unit)]); markout_* and anything not listed go to the last groups.
GROUPS: list[tuple[str, list[tuple[str, str]]]] = [
    ("PnL and its attribution", [
        ("net_pnl", MONEY), ("gross_pnl", MONEY), ("spread_capture", MONEY), ("spread_capture_maker", MONEY),
        ("spread_capture_taker", MONEY), ("inventory_pnl", MONEY), ("fees", MONEY), ("fees_paid", MONEY),
        ("rebates", MONEY), ("return", "%"), ("attribution_no_mid_n", "fills"), ("money_unit", ""),
    ]),
    ("Risk", [
        ("max_drawdown", MONEY), ("return_over_max_drawdown", "ratio"), ("final_position", "contracts"),
        ("inventory_time_weighted_abs", "contracts"), ("inventory_mean_abs", "contracts"),
        ("inventory_max_abs", "contracts"), ("killed", ""),
    ]),
    ("Trading and quoting", [
        ("trades", "fills"), ("volume", "contracts"), ("traded_value", MONEY), ("turnover", "x capital"),
        ("maker_share", "%"), ("fill_ratio", "%"), ("order_to_trade", "orders per fill"),
        ("quoting_uptime", "%"), ("quoted_spread", "price"), ("quoted_spread_bps", "bps"),
        ("risk_rejections", "orders"), ("throttled", "actions"),
    ]),
    ("Statistics of sampled returns", [
        ("sharpe", "per interval"), ("sortino", "per interval"), ("sharpe_annualized", "annualized"),
        ("sortino_annualized", "annualized"), ("annualize_days", "days"), ("psr", "probability"),
        ("returns_n", "returns"), ("returns_too_few", ""), ("returns_skew", ""), ("returns_kurtosis", ""),
        ("sample_interval_ns", "s"),
    ]),
]  # fmt: skip


def currency(definition: dict[str, Any]) -> str:
    """The settlement currency's name for this run: ``coin`` (inverse) or ``quote`` (linear)."""
    return "coin" if definition["dataset"]["instrument"]["contract_type"] == "inverse" else "quote"


def header(run_dir: Path, state: np.ndarray) -> str:
    """Strategy and parameters, dataset and window, venue model, run id and engine, as a definition list."""
    d = json.loads((run_dir / RUN_FILE).read_text())
    ds, venue, engine, strategy = d["dataset"], d["config"]["venue"], d["engine"], d["strategy"]
    inst = ds["instrument"]
    queue = venue["queue"]["model"] + (
        f" (exponent {venue['queue']['exponent']})" if venue["queue"]["model"] == "power_prob" else ""
    )
    lat = venue["latency"]
    window = f"{iso(int(state['local_ts'][0]))} .. {iso(int(state['local_ts'][-1]))}" if len(state) else "(no state)"
    items = {
        "run": run_dir.name,
        "strategy": f"{strategy['name']} ({strategy['source']}, sha256 {strategy['sha256'][:12]})",
        "parameters": " ".join(f"{k}={v}" for k, v in strategy["params"].items()),
        "dataset": f"{ds['id']} version {ds['version']}: {inst['venue']} {inst['symbol']}, {inst['contract_type']}, "
        f"tick {inst['tick_size']:g}, lot {inst['lot_size']:g}, contract {inst['contract_size']:g}",
        "window (event time)": window,
        "feeds": f"{', '.join(ds['feeds'])} ({data_level(list(ds['feeds']))})",
        "venue": f"queue {queue}, exchange {venue['exchange']}, latency {lat['model']}"
        + (f" ({lat['entry_ns'] / 1e6:g} ms in, {lat['response_ns'] / 1e6:g} ms out)" if lat["model"] == "constant" else "")
        + f", fees {venue['fees']['model']} (maker {venue['fees']['maker']:g}, taker {venue['fees']['taker']:g})",
        "money": f"in the settlement currency ({currency(d)}); capital {d['config']['metrics']['capital']:,g} "
        f"{currency(d)} (metrics.capital: returns and turnover are over it)",
        "engine": f"hftlab {engine['hftlab']} (sources {engine['hftlab_source_sha256'][:12]}), hftbacktest "
        f"{engine['hftbacktest']}, numba {engine['numba']}, Python {engine['python']}",
        "commit": commit_hint(run_dir),
    }  # fmt: skip
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd><code>{html.escape(str(v))}</code></dd>" for k, v in items.items())
    return f"<dl class='header'>{rows}</dl>"


def commit_hint(run_dir: Path) -> str:
    """How to find the git commit holding a run. The run does not name it: that commit is made after the
    run, and a run's bytes must not depend on which commit re-creates it (its code is pinned by the sha256
    of the strategy and of the engine's sources instead). The commit that added the run id to its
    experiment's committed summary is the one that holds it."""
    return f"git log -1 --format='%h %cs %s' -S {run_dir.name} -- '*/{run_dir.parent.parent.name}/summary.json'"


def data_level(feeds: list[str]) -> str:
    """``L3 (market by order)`` or ``L2 (market by price)`` for the feeds a run read."""
    from hftlab.storage.schema import L3_FEEDS

    return "L3 (market by order)" if set(feeds) & set(L3_FEEDS) else "L2 (market by price)"


def badges(definition: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """Warnings a reader needs before trusting the numbers: synthetic data, too few returns for the
    statistics, markouts over few fills."""
    out = []
    if definition["dataset"]["instrument"]["venue"] == "synthetic":
        out.append("synthetic data: a generated market, not a real one; no statistic here says anything about "
                   "a real market")  # fmt: skip
    if metrics.get("returns_too_few"):
        out.append(f"Sharpe, Sortino and PSR from {metrics.get('returns_n')} sampled returns: too few to mean much")
    thin = [k[len("markout_") : -2] for k, v in metrics.items() if re.fullmatch(r"markout_.*s_n", k) and v < 30]
    if thin:
        out.append(f"markouts at {', '.join(thin)} average fewer than 30 fills")
    return [f"<p class='badge'>⚠ {html.escape(text)}</p>" for text in out]


def metric_groups(metrics: dict[str, Any], money: str, lot: float | None = None) -> str:
    """Every metric of ``metrics`` in its group, formatted, with its unit (``money``: the currency name;
    lot multiples with the ``lot``'s decimals; ``n/a`` where it is undefined, e.g. Sortino without a
    negative return); the markouts as one row per horizon."""
    listed = {n for _, g in GROUPS for n, _ in g}
    other = [(k, "") for k in sorted(metrics) if k not in listed and not k.startswith("markout_")]
    parts = []
    for title, items in [*GROUPS, ("Other", other)]:
        present = [(n, u) for n, u in items if n in metrics]
        if present:
            rows = "".join(
                f"<tr><th>{html.escape(n)}</th><td>{html.escape(shown(n, metrics[n], lot) or 'n/a')}</td>"
                f"<td class='unit'>{html.escape(money if u == MONEY else u)}</td></tr>"
                for n, u in present
            )
            parts.append(f"<div class='group'><h4>{html.escape(title)}</h4><table>{rows}</table></div>")
        if title == GROUPS[-1][0]:
            parts.append(_markouts(metrics))
    return "<div class='groups'>" + "".join(parts) + "</div>"


def _markouts(metrics: dict[str, Any]) -> str:
    """The markouts as one row per horizon (shortest first): mean in price and bps, its standard error, fills."""
    horizons = sorted({float(m[1]) for k in metrics if (m := re.fullmatch(r"markout_([0-9.e+-]+)s", k))})
    if not horizons:
        return ""
    head = "<tr><th>horizon</th><th>mean (price)</th><th>mean (bps)</th><th>± 1 s.e. (bps)</th><th>fills</th></tr>"
    rows = ""
    for h in horizons:
        key = f"markout_{h:g}s"
        cells = [shown(key, metrics.get(key + suffix)) for suffix in ("", "_bps", "_bps_se", "_n")]
        rows += f"<tr><th>{h:g} s</th>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    return f"<div class='group'><h4>Markouts (negative: adverse selection)</h4><table>{head}{rows}</table></div>"


def rule_counts(run_dir: Path) -> str:
    """Risk rejections and Execution Control throttles of the run, counted by rule ("" when none)."""
    rows = []
    for table, what in (("risk", "Risk rejections"), ("throttles", "Execution Control throttles")):
        path = run_dir / RECORDS_DIR / f"{table}.parquet"
        rules = pq.read_table(path, columns=["rule"]).column("rule").to_numpy() if path.is_file() else np.zeros(0)
        for rule, n in zip(*np.unique(rules, return_counts=True), strict=True):
            rows.append(
                f"<tr><td>{what}</td><th>{html.escape(RULES.get(int(rule), str(rule)))}</th><td>{int(n):,}</td></tr>"
            )
    if not rows:
        return "<p>No order refused by Risk or throttled by Execution Control.</p>"
    return "<h4>Refusals by rule</h4><table>" + "".join(rows) + "</table>"


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
