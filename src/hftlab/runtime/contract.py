"""The strategy contract, compiled side: the View a strategy reads, and the checks of what it returns.

At each evaluation point the strategy gets a :data:`View` (market and own state) and writes the orders it
wants working into ``out`` rows ``(side ±1, price, qty, time in force)``, returning how many. Output that
breaks the contract is a bug in the strategy, not a Risk decision: the run stops with
:class:`~hftlab.errors.StrategyError` naming the rule, the event time and the row. The rules
(``hftlab.runtime.records.RULES`` names):

- ``too_many_orders``: the count returned is negative or larger than ``out`` has rows;
- ``invalid_side``: side not +1 or -1;
- ``invalid_price``: price NaN, infinite or <= 0; ``off_tick``: price not on the tick grid;
- ``invalid_qty``: quantity NaN, infinite or <= 0; ``off_lot``: quantity not a multiple of the lot size;
- ``invalid_tif``: time in force not GTC (0), GTX (1), FOK (2) or IOC (3).

Writing outside ``out`` or ``scratch`` is caught by bounds checks: strategies are compiled with them.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from hftlab.hftbacktest_types import IOC
from hftlab.jit import engine_jit
from hftlab.runtime import records as R

#: What a strategy sees at an evaluation point. Arrays are views of the runtime's buffers: read only.
View = namedtuple(
    "View",
    [
        "ts",  # int64: local (event) time of this evaluation, ns
        "best_bid",  # float: NaN when that side is empty
        "best_ask",
        "mid",  # float: NaN unless both sides exist
        "tick_size",
        "lot_size",
        "bid_px",  # float64[L]: top bid levels, best first, NaN-padded
        "bid_qty",
        "ask_px",
        "ask_qty",
        "n_bid",  # int: valid entries of bid_px / bid_qty
        "n_ask",
        "trade_ts",  # int64[T]: recent market trades, oldest first
        "trade_px",
        "trade_qty",
        "trade_side",  # float64[T]: +1 buyer-initiated, -1 seller-initiated, 0 unknown
        "n_trades",
        "position",  # own state, derived from our fills
        "cash",
        "equity",
        "fees",
        "order_side",  # float64[M]: our live orders (oldest first)
        "order_price",
        "order_leaves",
        "n_orders",
    ],
)

#: Where a broken output rule was found (one row; ``rule`` 0 = none), and whether the strategy is running
#: (``in_strategy``: an exception raised now is the strategy's).
OUTPUT_ERROR_DTYPE = np.dtype(
    [("rule", "i1"), ("row", "i8"), ("ts", "i8"), ("count", "i8"), ("capacity", "i8"), ("side", "f8"),
     ("price", "f8"), ("qty", "f8"), ("tif", "f8"), ("in_strategy", "?")]
)  # fmt: skip


@engine_jit(forceinline=True)
def on_grid(value, step):
    """``value`` is a whole multiple of ``step`` (to 1e-6 of a step: prices and sizes are decimal)."""
    t = value / step
    return abs(t - np.rint(t)) <= 1e-6


@engine_jit(forceinline=True)
def _row_rule(side, price, qty, tif, tick_size, lot_size):
    if side != 1.0 and side != -1.0:
        return R.RULE_INVALID_SIDE
    if not np.isfinite(price) or price <= 0.0:
        return R.RULE_INVALID_PRICE
    if not on_grid(price, tick_size):
        return R.RULE_OFF_TICK
    if not np.isfinite(qty) or qty <= 0.0:
        return R.RULE_INVALID_QTY
    if not on_grid(qty, lot_size):
        return R.RULE_OFF_LOT
    if tif != np.rint(tif) or tif < 0.0 or tif > IOC:
        return R.RULE_INVALID_TIF
    return 0


@engine_jit(forceinline=True)
def check_output(n, wanted, tick_size, lot_size, now, error):
    """Check the strategy's output (``n`` rows of ``wanted``); on the first broken rule fill ``error[0]``
    and return False."""
    e = error[0]
    e.ts = now
    e.count = n
    e.capacity = wanted.shape[0]
    if n < 0 or n > wanted.shape[0]:
        e.rule = R.RULE_TOO_MANY_ORDERS
        e.row = -1
        return False
    for i in range(n):
        rule = _row_rule(wanted[i, 0], wanted[i, 1], wanted[i, 2], wanted[i, 3], tick_size, lot_size)
        if rule != 0:
            e.rule = rule
            e.row = i
            e.side = wanted[i, 0]
            e.price = wanted[i, 1]
            e.qty = wanted[i, 2]
            e.tif = wanted[i, 3]
            return False
    return True
