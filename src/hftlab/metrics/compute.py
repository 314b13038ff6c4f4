"""Run metrics: small functions over execution records, assembled by :func:`compute_metrics`.

Conventions: PnL, fees, traded value and capital in the settlement currency (quote for linear contracts,
the coin for inverse ones); ``fees`` > 0 is a cost, < 0 a rebate; returns are relative to the configured
``capital`` (in that currency); a metric that cannot be computed (no fills, no variance) is None.
Sharpe and Sortino use equity sampled every ``sample_interval_ns`` of event time and are per sampling
interval, with their sample size ``returns_n`` (``returns_too_few`` below :data:`MIN_RETURNS`); they are
annualized only when ``annualize_days`` is set (its docstring states the assumption).
``psr`` is the Probabilistic Sharpe Ratio against zero (:mod:`hftlab.metrics.overfitting`).
PnL attribution, time-weighted inventory and quoting: :mod:`hftlab.metrics.attribution`.
Markouts: ``side × (mid(t + h) − fill price)`` for each fill at local time ``t`` (positive = the market
moved our way, negative = adverse selection), with ``mid`` at exactly ``t + h`` from the run's event
stream (:mod:`hftlab.metrics.marks`; not the sampled state series, which would read it up to one
sampling interval early); fills whose horizon passes the end of the data are left out, and ``_n`` counts
the fills each markout averages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hftlab.checks import ranged
from hftlab.metrics.attribution import pnl_attribution, quoting, time_weighted_inventory
from hftlab.metrics.overfitting import moments, psr

#: ``mid_at(times)``: the mid at each of ``times`` (sorted, unique, int64 ns of local time); NaN where
#: none is known (after the data's end, or a side of the book empty).
MidAt = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MetricsConfig:
    """How metrics are computed from a run's records (recorded with the metrics, not in the run id)."""

    capital: float = ranged(10_000.0, gt=0)  #: capital for return and turnover, in the account currency
    sample_interval_ns: int = ranged(60_000_000_000, gt=0)  #: equity sampling for Sharpe/Sortino
    markout_horizons_ns: list[int] = ranged([100_000_000, 1_000_000_000, 10_000_000_000, 60_000_000_000], gt=0)
    #: Annualize Sharpe and Sortino over this many days of trading time a year (0: do not). The scaling
    #: sqrt(days x 1 d / sample interval) assumes independent returns and trading all day on those days:
    #: 365 for markets that never close (crypto), 252 x 6.5 / 24 = 68.25 for US equities' regular hours.
    annualize_days: float = ranged(0.0, ge=0)


class Records(Protocol):
    """What metrics are computed from: a run's record tables, its final account and the contract size
    (:class:`hftlab.runtime.runner.RunOutput` right after a run, :class:`hftlab.run.results.StoredRun`
    from a results directory)."""

    @property
    def tables(self) -> Mapping[str, np.ndarray]: ...

    @property
    def account(self) -> Mapping[str, Any]: ...

    @property
    def contract_size(self) -> float: ...

    @property
    def inverse(self) -> bool:
        """An inverse contract: values settle in the base currency (qty x contract size / price)."""
        ...


DAY_NS = 86_400 * 1_000_000_000
#: Fewer sampled returns than this: Sharpe, Sortino and PSR are shown with a warning (``returns_too_few``).
MIN_RETURNS = 30
SENT = 2  # records.SENT
ACTION_NEW, ACTION_CANCEL = 1, 2


def _none_if_nan(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def traded_value(price: np.ndarray, qty: np.ndarray, contract_size: float, inverse: bool) -> float:
    """Value traded, in the settlement currency as the account keeps it: sum of price x qty x contract size
    (linear: quote currency), or of qty x contract size / price (inverse: base currency, e.g. BTC)."""
    if inverse:
        return float((qty * contract_size / price).sum())
    return float((price * qty).sum() * contract_size)


def net_pnl(final_equity: float) -> float:
    """Equity at the end (cash + position at mid, net of fees); the run starts flat with zero cash."""
    return float(final_equity)


def gross_pnl(final_equity: float, fees: float) -> float:
    """PnL before fees and rebates."""
    return float(final_equity + fees)


def fees_and_rebates(fill_fees: np.ndarray) -> dict[str, float]:
    """Fees paid (positive fees) and rebates received (negative fees, reported positive)."""
    return {"fees_paid": float(fill_fees[fill_fees > 0].sum()), "rebates": float(-fill_fees[fill_fees < 0].sum())}


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall of equity below its running peak (0 for an empty series)."""
    if len(equity) == 0:
        return 0.0
    return float(np.max(np.maximum.accumulate(equity) - equity))


def sample_equity(ts: np.ndarray, equity: np.ndarray, interval_ns: int) -> np.ndarray:
    """Equity at t0, t0 + interval, ... (the last state sample at or before each point)."""
    if len(ts) == 0:
        return np.empty(0)
    grid = np.arange(ts[0], ts[-1] + 1, interval_ns, dtype=np.int64)
    return equity[np.searchsorted(ts, grid, side="right") - 1]


def sharpe(returns: np.ndarray) -> float | None:
    """Mean over standard deviation (ddof 1) of per-interval equity changes."""
    if len(returns) < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    return None if sd == 0.0 else float(np.mean(returns) / sd)


def sortino(returns: np.ndarray) -> float | None:
    """Mean over downside deviation sqrt(mean(min(r, 0)^2)) of per-interval equity changes."""
    if len(returns) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return None if downside == 0.0 else float(np.mean(returns) / downside)


def fill_ratio(orders_event: np.ndarray, orders_id: np.ndarray, fills_id: np.ndarray) -> float | None:
    """Orders with at least one fill / orders sent."""
    sent = np.unique(orders_id[orders_event == SENT])
    if len(sent) == 0:
        return None
    return float(np.isin(sent, np.unique(fills_id)).sum() / len(sent))


def order_to_trade(dispatch_action: np.ndarray, n_fills: int) -> float | None:
    """Order messages (new + cancel requests) per fill."""
    if n_fills == 0:
        return None
    return float(np.isin(dispatch_action, (ACTION_NEW, ACTION_CANCEL)).sum() / n_fills)


def maker_share(qty: np.ndarray, maker: np.ndarray) -> float | None:
    """Share of filled quantity executed as maker."""
    total = float(qty.sum())
    return None if total == 0.0 else float(qty[maker].sum() / total)


def inventory(position: np.ndarray) -> dict[str, float]:
    """Mean and max absolute position over the state series."""
    if len(position) == 0:
        return {"inventory_mean_abs": 0.0, "inventory_max_abs": 0.0}
    a = np.abs(position)
    return {"inventory_mean_abs": float(a.mean()), "inventory_max_abs": float(a.max())}


def markouts(
    fill_ts: np.ndarray, side: np.ndarray, price: np.ndarray, horizons_ns: list[int], mid_at: MidAt
) -> dict[str, float | int | None]:
    """Mean markout per horizon ``h``: side x (mid at the fill's local time + h - fill price), in price units
    and in basis points of the fill price (``_bps_se``: its standard error), and ``_n``, the fills it
    averages: those whose time + h is within
    the data with both sides of the book known. ``mid_at`` gives the mid at exact times (one call for
    every horizon: :func:`hftlab.metrics.marks.replay_mids` replays the stream once)."""
    targets = [fill_ts.astype(np.int64) + np.int64(h) for h in horizons_ns]
    times = np.unique(np.concatenate(targets)) if len(fill_ts) else np.zeros(0, np.int64)
    mids = mid_at(times) if len(times) else np.zeros(0)
    out: dict[str, float | int | None] = {}
    for h, target in zip(horizons_ns, targets, strict=True):
        label = f"{h / 1e9:g}s"
        m = side * (mids[np.searchsorted(times, target)] - price) if len(times) else np.zeros(0)
        valid = np.isfinite(m)
        out[f"markout_{label}"] = _none_if_nan(float(m[valid].mean())) if valid.any() else None
        bps = m[valid] / price[valid] * 1e4
        out[f"markout_{label}_bps"] = _none_if_nan(float(bps.mean())) if valid.any() else None
        out[f"markout_{label}_bps_se"] = (
            _none_if_nan(float(bps.std(ddof=1) / math.sqrt(len(bps)))) if len(bps) > 1 else None
        )
        out[f"markout_{label}_n"] = int(valid.sum())
    return out


def _asked_once(mid_at: MidAt, fill_ts: np.ndarray, offsets: list[int]) -> MidAt:
    """``mid_at`` asked once for every ``fill_ts + offset``; the result answers any subset of those times."""
    times = np.unique(np.concatenate([fill_ts.astype(np.int64) + np.int64(o) for o in offsets]))
    mids = mid_at(times) if len(times) else np.zeros(0)

    def known(asked: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(times, asked)
        if len(asked) and (np.any(idx >= len(times)) or np.any(times[np.minimum(idx, len(times) - 1)] != asked)):
            raise ValueError("mid asked at a time not computed")
        return mids[idx]

    return known


def compute_metrics(records: Records, config: MetricsConfig, *, mid_at: MidAt) -> dict[str, Any]:
    """Every metric of one run, as a flat JSON-ready dict (sorted keys when written). ``mid_at`` gives the
    mid at exact times for markouts: :func:`hftlab.metrics.marks.replay_mids` over the run's fed stream."""
    tables, account, contract_size = records.tables, records.account, records.contract_size
    capital, sample_interval_ns = config.capital, config.sample_interval_ns
    fills, state = tables["fills"], tables["state"]
    equity = state["equity"]
    net = net_pnl(account["equity"])
    mdd = max_drawdown(np.append(equity, account["equity"]) if len(equity) else np.array([account["equity"]]))
    sampled = sample_equity(state["local_ts"], equity, sample_interval_ns)
    returns = np.diff(sampled) / capital
    s, so = sharpe(returns), sortino(returns)
    skew, kurtosis = moments(returns)
    annualized: dict[str, Any] = {}
    if config.annualize_days:
        scale = math.sqrt(config.annualize_days * DAY_NS / sample_interval_ns)
        annualized = {"sharpe_annualized": None if s is None else s * scale,
                      "sortino_annualized": None if so is None else so * scale,
                      "annualize_days": config.annualize_days}  # fmt: skip
    value = traded_value(fills["price"], fills["qty"], contract_size, records.inverse)
    horizons = list(config.markout_horizons_ns)
    mid_at = _asked_once(mid_at, fills["local_ts"], [0, *horizons])  # one replay for every time asked
    start, end = (int(state["local_ts"][0]), int(state["local_ts"][-1])) if len(state) else (0, 0)
    out: dict[str, Any] = {
        "money_unit": "coin" if records.inverse else "quote",  # the settlement currency of every money metric
        "net_pnl": net,
        "gross_pnl": gross_pnl(account["equity"], account["fees"]),
        "fees": float(account["fees"]),
        **fees_and_rebates(fills["fee"]),
        "return": net / capital,
        "sharpe": s,
        "sortino": so,
        **annualized,
        "sample_interval_ns": int(sample_interval_ns),
        "returns_n": len(returns),
        "returns_too_few": len(returns) < MIN_RETURNS,
        "returns_skew": skew,
        "returns_kurtosis": kurtosis,
        "psr": None if s is None else psr(s, len(returns), skew, kurtosis),
        "max_drawdown": mdd,
        "return_over_max_drawdown": None if mdd == 0.0 else net / mdd,
        "trades": len(fills),
        "volume": float(fills["qty"].sum()),
        "traded_value": value,
        "turnover": value / capital,
        "fill_ratio": fill_ratio(tables["orders"]["event"], tables["orders"]["order_id"], fills["order_id"]),
        "order_to_trade": order_to_trade(tables["dispatch"]["action"], len(fills)),
        "maker_share": maker_share(fills["qty"], fills["maker"]),
        **pnl_attribution(fills, mid_at(fills["local_ts"]), float(account["mid"]), contract_size, records.inverse),
        **inventory(state["position"]),
        "inventory_time_weighted_abs": time_weighted_inventory(fills["local_ts"], fills["position"], start, end),
        **quoting(tables["orders"], start, end),
        **markouts(fills["local_ts"], fills["side"].astype(np.float64), fills["price"], horizons, mid_at),
        "final_position": float(account["position"]),
        "killed": bool(account["killed"]),
        "risk_rejections": len(tables["risk"]),
        "throttled": len(tables["throttles"]),
    }
    return out
