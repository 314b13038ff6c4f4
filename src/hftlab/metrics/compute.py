"""Run metrics: small functions over execution records, assembled by :func:`compute_metrics`.

Conventions: PnL in the account currency; ``fees`` > 0 is a cost, < 0 a rebate; returns are relative
to the configured ``capital``; a metric that cannot be computed (no fills, no variance) is None.
Sharpe and Sortino use equity sampled every ``sample_interval_ns`` of event time and are reported per
interval and annualized over 365 days (``sqrt(365 d / interval)``); the interval is in the output.
``psr`` is the Probabilistic Sharpe Ratio against zero (:mod:`hftlab.metrics.overfitting`).
Markouts: ``side × (mid(t + h) − fill price)`` for each fill at local time ``t`` (positive = the market
moved our way, negative = adverse selection), with ``mid`` from the state series (last sample at or
before ``t + h``); fills whose horizon passes the end of the data are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hftlab.checks import ranged
from hftlab.metrics.overfitting import moments, psr


@dataclass(frozen=True)
class MetricsConfig:
    """How metrics are computed from a run's records (recorded with the metrics, not in the run id)."""

    capital: float = ranged(10_000.0, gt=0)  #: capital for return and turnover, in the account currency
    sample_interval_ns: int = ranged(60_000_000_000, gt=0)  #: equity sampling for Sharpe/Sortino
    markout_horizons_ns: list[int] = ranged([1_000_000_000, 10_000_000_000, 60_000_000_000], gt=0)


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


YEAR_NS = 365 * 86_400 * 1_000_000_000
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
    fill_ts: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    state_ts: np.ndarray,
    mid: np.ndarray,
    horizons_ns: list[int],
) -> dict[str, float | None]:
    """Mean markout per horizon in price units and in basis points of the fill price."""
    out: dict[str, float | None] = {}
    for h in horizons_ns:
        label = f"{h / 1e9:g}s"
        target = fill_ts + h
        ok = (target <= (state_ts[-1] if len(state_ts) else -1)) & (len(state_ts) > 0)
        if not np.any(ok):
            out[f"markout_{label}"] = None
            out[f"markout_{label}_bps"] = None
            continue
        idx = np.searchsorted(state_ts, target[ok], side="right") - 1
        m = side[ok] * (mid[idx] - price[ok])
        valid = np.isfinite(m)
        out[f"markout_{label}"] = _none_if_nan(float(m[valid].mean())) if valid.any() else None
        bps = m[valid] / price[ok][valid] * 1e4
        out[f"markout_{label}_bps"] = _none_if_nan(float(bps.mean())) if valid.any() else None
    return out


def compute_metrics(records: Records, config: MetricsConfig) -> dict[str, Any]:
    """Every metric of one run, as a flat JSON-ready dict (sorted keys when written)."""
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
    scale = math.sqrt(YEAR_NS / sample_interval_ns)
    value = traded_value(fills["price"], fills["qty"], contract_size, records.inverse)
    out: dict[str, Any] = {
        "net_pnl": net,
        "gross_pnl": gross_pnl(account["equity"], account["fees"]),
        "fees": float(account["fees"]),
        **fees_and_rebates(fills["fee"]),
        "return": net / capital,
        "sharpe": s,
        "sharpe_annualized": None if s is None else s * scale,
        "sortino": so,
        "sortino_annualized": None if so is None else so * scale,
        "sample_interval_ns": int(sample_interval_ns),
        "returns_n": len(returns),
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
        **inventory(state["position"]),
        **markouts(
            fills["local_ts"],
            fills["side"].astype(np.float64),
            fills["price"],
            state["local_ts"],
            state["mid"],
            list(config.markout_horizons_ns),
        ),
        "final_position": float(account["position"]),
        "killed": bool(account["killed"]),
        "risk_rejections": len(tables["risk"]),
        "throttled": len(tables["throttles"]),
    }
    return out
