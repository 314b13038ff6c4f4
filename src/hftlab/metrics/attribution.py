"""Market-making PnL attribution, inventory over time and quoting, from a run's records.

**PnL attribution** (in the settlement currency, like ``net_pnl``): each fill's value is split at the mid
at the fill's local time (exact, from the event stream: :mod:`hftlab.metrics.marks`) into

- ``spread_capture``: what the fill earned against that mid, ``side x qty x cs x (mid_fill - price)``
  (linear) or ``side x qty x cs x (1/price - 1/mid_fill)`` (inverse), split into ``_maker`` and ``_taker``;
- ``inventory_pnl``: what the position made from the fill's mid to the final mid, ``side x qty x cs x
  (mid_end - mid_fill)`` (linear) or ``side x qty x cs x (1/mid_fill - 1/mid_end)`` (inverse);
- ``fees`` (> 0 paid, < 0 rebates; ``fees_paid`` and ``rebates`` apart).

so that ``spread_capture + inventory_pnl - fees == net_pnl`` (to float rounding; exactly for values exact
in binary). A fill with no two-sided book at its time (no mid) is all inventory (its spread capture 0) and
counted in ``attribution_no_mid_n``. ``mid_end`` is the last valid mid (what equity is marked at).

**Inventory**: ``inventory_time_weighted_abs``, the mean absolute position over the run's time (the
position is a step function changing at fills), from the first to the last state row.

**Quoting**: an order quotes from its acknowledgement to its end (filled, cancelled, expired or rejected),
in local time. ``quoting_uptime``: the fraction of the run's time with at least one live bid and one live
ask; ``quoted_spread`` (price units) and ``quoted_spread_bps`` (of the quotes' mid): our best ask minus our
best bid, time-weighted over that two-sided time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hftlab.runtime import records as R

_LIVE_FROM = (R.ACKNOWLEDGED,)
_LIVE_UNTIL = (R.FILLED, R.CANCELLED, R.EXPIRED, R.VENUE_REJECTED)


def pnl_attribution(
    fills: np.ndarray, mid_fill: np.ndarray, mid_end: float, contract_size: float, inverse: bool
) -> dict[str, Any]:
    """Spread capture (all, maker, taker) and inventory PnL of ``fills`` (FILL_DTYPE rows) given the mid
    at each fill's local time; see the module doc."""
    side = fills["side"].astype(np.float64)
    size = fills["qty"] * contract_size
    price = fills["price"]
    known = np.isfinite(mid_fill)
    at = np.where(known, mid_fill, price)  # no mid: the fill's value is all inventory
    if inverse:
        capture = side * size * (1.0 / price - 1.0 / at)
        inventory = side * size * (1.0 / at - 1.0 / mid_end) if np.isfinite(mid_end) else np.zeros(len(fills))
    else:
        capture = side * size * (at - price)
        inventory = side * size * (mid_end - at) if np.isfinite(mid_end) else np.zeros(len(fills))
    maker = fills["maker"].astype(bool)
    return {
        "spread_capture": float(capture.sum()),
        "spread_capture_maker": float(capture[maker].sum()),
        "spread_capture_taker": float(capture[~maker].sum()),
        "inventory_pnl": float(inventory.sum()),
        "attribution_no_mid_n": int((~known).sum()),
    }


def time_weighted_inventory(fill_ts: np.ndarray, position: np.ndarray, start: int, end: int) -> float | None:
    """Mean |position| over [start, end]: flat before the first fill, ``position[i]`` from ``fill_ts[i]``."""
    if end <= start:
        return None
    times = np.clip(np.concatenate([[start], fill_ts, [end]]), start, end).astype(np.int64)
    held = np.abs(np.concatenate([[0.0], position]))
    return float((held * np.diff(times)).sum() / (end - start))


def quoting(orders: Any, start: int, end: int) -> dict[str, float | None]:
    """Quoting uptime and the time-weighted spread of our own best quotes (see the module doc); ``orders``:
    the lifecycle table (ORDER_DTYPE columns, in record order)."""
    empty: dict[str, float | None] = {"quoting_uptime": None, "quoted_spread": None, "quoted_spread_bps": None}
    if end <= start:
        return empty
    events = orders["event"]
    keep = np.isin(events, (*_LIVE_FROM, *_LIVE_UNTIL))
    live: dict[int, tuple[int, float]] = {}
    two_sided = spread_time = spread_bps_time = 0.0
    last = start
    for ts, oid, event, side, price in zip(
        np.clip(orders["local_ts"][keep], start, end).tolist(), orders["order_id"][keep].tolist(),
        events[keep].tolist(), orders["side"][keep].tolist(), orders["price"][keep].tolist(), strict=True,
    ):  # fmt: skip
        two_sided, spread_time, spread_bps_time = _accrue(live, last, ts, two_sided, spread_time, spread_bps_time)
        last = ts
        if event in _LIVE_FROM:
            live[oid] = (side, price)
        else:
            live.pop(oid, None)
    two_sided, spread_time, spread_bps_time = _accrue(live, last, end, two_sided, spread_time, spread_bps_time)
    return {
        "quoting_uptime": two_sided / (end - start),
        "quoted_spread": spread_time / two_sided if two_sided else None,
        "quoted_spread_bps": spread_bps_time / two_sided if two_sided else None,
    }


def _accrue(
    live: dict[int, tuple[int, float]], t0: int, t1: int, two_sided: float, spread: float, spread_bps: float
) -> tuple[float, float, float]:
    if t1 <= t0:
        return two_sided, spread, spread_bps
    bids = [p for s, p in live.values() if s > 0]
    asks = [p for s, p in live.values() if s < 0]
    if not bids or not asks:
        return two_sided, spread, spread_bps
    bid, ask = max(bids), min(asks)
    dt = float(t1 - t0)
    return two_sided + dt, spread + (ask - bid) * dt, spread_bps + (ask - bid) / ((ask + bid) / 2.0) * 1e4 * dt
