"""PNG figures of runs and sweeps (matplotlib, Agg). Files are deterministic: no timestamps or
software metadata, fixed size and dpi, fonts shipped with matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

DPI = 100
plt.rcParams.update({"svg.hashsalt": "hftlab", "figure.max_open_warning": 0})


def literal(text: object) -> str:
    """``text`` drawn as given: a user string (parameter value, dataset id, metric, experiment) with two
    ``$`` would otherwise be typeset as mathtext, or stop the report with a parse error."""
    return str(text).replace("$", r"\$")


def _tick(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else literal(v)


def _hours(ts: np.ndarray, t0: int) -> np.ndarray:
    return (ts - t0) / 3.6e12


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, format="png")
    plt.close(fig)
    return path


def equity_drawdown(state: np.ndarray, path: Path) -> Path:
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, height_ratios=[2, 1])
    if len(state):
        t = _hours(state["local_ts"], int(state["local_ts"][0]))
        eq = state["equity"]
        a.plot(t, eq, lw=1.0, color="#1f77b4")
        b.fill_between(t, eq - np.maximum.accumulate(eq), 0.0, color="#d62728", alpha=0.6, lw=0)
    a.set_ylabel("equity")
    a.set_title("Equity and drawdown")
    b.set_ylabel("drawdown")
    b.set_xlabel("hours from start (event time)")
    return _save(fig, path)


def inventory(state: np.ndarray, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 3))
    if len(state):
        ax.step(_hours(state["local_ts"], int(state["local_ts"][0])), state["position"], where="post", lw=1.0)
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_title("Inventory (position)")
    ax.set_xlabel("hours from start (event time)")
    return _save(fig, path)


def fills_on_price(state: np.ndarray, fills: np.ndarray, path: Path, max_points: int = 20_000) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    if len(state):
        t0 = int(state["local_ts"][0])
        ax.plot(_hours(state["local_ts"], t0), state["mid"], lw=0.8, color="grey", label="mid")
        f = fills[:: max(1, len(fills) // max_points)]
        for side, color, label in ((1, "#2ca02c", "buy fills"), (-1, "#d62728", "sell fills")):
            s = f[f["side"] == side]
            ax.scatter(_hours(s["local_ts"], t0), s["price"], s=6, color=color, label=label, lw=0)
        ax.legend(loc="best", fontsize=8)
    ax.set_title("Fills on the price path")
    ax.set_xlabel("hours from start (event time)")
    return _save(fig, path)


def markout_curve(horizons_s: np.ndarray, bps: np.ndarray, se: np.ndarray, path: Path) -> Path:
    """Mean markout per horizon with a 95% band (± 1.96 standard errors)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(horizons_s, bps - 1.96 * se, bps + 1.96 * se, alpha=0.25, lw=0, label="95% confidence band")
    ax.plot(horizons_s, bps, marker="o", lw=1.0, label="mean")
    ax.legend(fontsize=7)
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("horizon after the fill (s)")
    ax.set_ylabel("mean markout (bps)")
    ax.set_title("Markout curve (negative = adverse selection)")
    return _save(fig, path)


def heatmap(xs: list, ys: list, grid: np.ndarray, xlabel: str, ylabel: str, metric: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xs)), [_tick(x) for x in xs])
    ax.set_yticks(range(len(ys)), [_tick(y) for y in ys])
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(im, ax=ax, label=literal(metric))
    ax.set_xlabel(literal(xlabel))
    ax.set_ylabel(literal(ylabel))
    ax.set_title(literal(f"{metric} over the grid"))
    return _save(fig, path)


def sensitivity(series: dict[str, tuple[list, list]], metric: str, path: Path) -> Path:
    """For each parameter: the metric's mean over the other parameters, per value."""
    n = max(1, len(series))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, (name, (values, means)) in zip(axes[0], series.items(), strict=False):
        ax.plot(range(len(values)), means, marker="o")
        ax.set_xticks(range(len(values)), [_tick(v) for v in values])
        ax.set_xlabel(literal(name.removeprefix("param.").removeprefix("strategy.params.")))
        ax.set_ylabel(literal(f"mean {metric}"))
    fig.suptitle(literal(f"Parameter sensitivity of {metric}"))
    return _save(fig, path)


def walkforward(folds: list[int], is_rate: np.ndarray, oos_rate: np.ndarray, metric: str, path: Path) -> Path:
    """In-sample and out-of-sample metric per hour, side by side per fold."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(folds))
    ax.bar(x - 0.2, is_rate, 0.4, label="in-sample")
    ax.bar(x + 0.2, oos_rate, 0.4, label="out-of-sample")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xticks(x, [str(f) for f in folds])
    ax.set_xlabel("fold")
    ax.set_ylabel(literal(f"{metric} per hour"))
    ax.set_title(literal(f"Walk-forward: {metric} per hour of each period"))
    ax.legend(fontsize=7)
    return _save(fig, path)
