"""PnL attribution, time-weighted inventory and quoting on hand-made records, every value computed by
hand (prices and quantities exact in binary, so sums are exact)."""

from __future__ import annotations

import numpy as np
import pytest

from hftlab.metrics.attribution import pnl_attribution, quoting, time_weighted_inventory
from hftlab.runtime import records as R


def fills(rows):
    """rows: (side, price, qty, fee, maker)"""
    out = np.zeros(len(rows), R.FILL_DTYPE)
    for i, (side, price, qty, fee, maker) in enumerate(rows):
        out[i]["side"], out[i]["price"], out[i]["qty"], out[i]["fee"], out[i]["maker"] = side, price, qty, fee, maker
    return out


def test_linear_attribution_sums_exactly_to_net_pnl():
    """Buy 2 at 99.5 (mid 100, maker, rebate 0.25), sell 1 at 101 (mid 100.5, maker, rebate 0.125), buy 1
    at 101.5 (mid 101, taker, fee 0.5); final mid 102. Net PnL from cash and position: cash = -199 + 101
    - 101.5 - 0.125 = -199.625, position 2 at 102: +204, so 4.375."""
    f = fills([(1, 99.5, 2.0, -0.25, True), (-1, 101.0, 1.0, -0.125, True), (1, 101.5, 1.0, 0.5, False)])
    a = pnl_attribution(f, np.array([100.0, 100.5, 101.0]), 102.0, 1.0, inverse=False)
    assert 1.0 == a["spread_capture"]  # 2 x 0.5 + 1 x 0.5 - 1 x 0.5
    assert (1.5, -0.5) == (a["spread_capture_maker"], a["spread_capture_taker"])
    assert 3.5 == a["inventory_pnl"]  # 2 x (102 - 100) - 1 x (102 - 100.5) + 1 x (102 - 101)
    fees = float(f["fee"].sum())
    assert 0.125 == fees
    assert 4.375 == a["spread_capture"] + a["inventory_pnl"] - fees
    assert 0 == a["attribution_no_mid_n"]


def test_inverse_attribution_is_in_the_coin_and_sums_exactly():
    """Inverse, contract size 128: buy 1 at 64 (mid 128, fee 0.25), final mid 256. Cash +128/64 - 0.25 =
    1.75 coin, the position marked at -128/256: equity 1.25 coin. Capture 128 x (1/64 - 1/128) = 1,
    inventory 128 x (1/128 - 1/256) = 0.5."""
    a = pnl_attribution(fills([(1, 64.0, 1.0, 0.25, True)]), np.array([128.0]), 256.0, 128.0, inverse=True)
    assert (1.0, 0.5) == (a["spread_capture"], a["inventory_pnl"])
    assert 1.25 == a["spread_capture"] + a["inventory_pnl"] - 0.25


def test_a_fill_without_a_mid_is_all_inventory_and_counted():
    a = pnl_attribution(fills([(1, 99.0, 1.0, 0.0, True)]), np.array([np.nan]), 100.0, 1.0, inverse=False)
    assert (0.0, 1.0, 1) == (a["spread_capture"], a["inventory_pnl"], a["attribution_no_mid_n"])


def test_time_weighted_inventory_by_hand():
    """Flat until 2, long 1 until 6, short 1 until 10: (0 x 2 + 1 x 4 + 1 x 4) / 10."""
    assert 0.8 == time_weighted_inventory(np.array([2, 6]), np.array([1.0, -1.0]), 0, 10)
    assert time_weighted_inventory(np.array([2]), np.array([1.0]), 5, 5) is None


def test_quoting_uptime_and_quoted_spread_by_hand():
    """Bid 99 live 0-4, ask 101 live 2-8 (filled), bid 100 live 5-10 (to the end): two-sided 2-4 (spread 2,
    200 bps of 100) and 5-8 (spread 1, of 100.5): uptime 5/10, spread (2 x 2 + 1 x 3) / 5."""
    rows = [(0, 1, R.ACKNOWLEDGED, 1, 99.0), (1, 2, R.SENT, -1, 101.0), (2, 2, R.ACKNOWLEDGED, -1, 101.0),
            (3, 1, R.CANCEL_SENT, 1, 99.0), (4, 1, R.CANCELLED, 1, 99.0), (5, 3, R.ACKNOWLEDGED, 1, 100.0),
            (7, 2, R.PARTIALLY_FILLED, -1, 101.0), (8, 2, R.FILLED, -1, 101.0)]  # fmt: skip
    orders = np.zeros(len(rows), R.ORDER_DTYPE)
    for i, (ts, oid, event, side, price) in enumerate(rows):
        orders[i]["local_ts"], orders[i]["order_id"], orders[i]["event"] = ts, oid, event
        orders[i]["side"], orders[i]["price"] = side, price
    q = quoting(orders, 0, 10)
    assert 0.5 == q["quoting_uptime"] and 1.4 == q["quoted_spread"]
    assert pytest.approx((200.0 * 2 + 1 / 100.5 * 1e4 * 3) / 5, rel=1e-15) == q["quoted_spread_bps"]
    assert {"quoting_uptime": 0.0, "quoted_spread": None, "quoted_spread_bps": None} == quoting(orders[:2], 0, 10)
