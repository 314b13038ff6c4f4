"""The Venue Adapter's view of hftbacktest matches the installed package, and the View's buffers behave."""

from __future__ import annotations

import numpy as np
import pytest

from hftlab import hftbacktest_types as K
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.runtime.state import append_trades, new_market
from hftlab.venue import abi


def test_constants_and_order_dtype_match_hftbacktest():
    """Flags, kinds, statuses, time in force, order types and the order record layout are hftbacktest's."""
    import hftbacktest.order as order
    import hftbacktest.types as types

    for name in ("EXCH_EVENT", "LOCAL_EVENT", "BUY_EVENT", "SELL_EVENT", "DEPTH_EVENT", "TRADE_EVENT",
                 "DEPTH_CLEAR_EVENT", "DEPTH_SNAPSHOT_EVENT", "DEPTH_BBO_EVENT", "ADD_ORDER_EVENT",
                 "CANCEL_ORDER_EVENT", "MODIFY_ORDER_EVENT", "FILL_EVENT"):  # fmt: skip
        assert int(getattr(K, name)) == int(getattr(types, name)), name
    for ours, theirs in (("STATUS_NEW", "NEW"), ("STATUS_EXPIRED", "EXPIRED"), ("STATUS_FILLED", "FILLED"),
                         ("STATUS_CANCELED", "CANCELED"), ("STATUS_PARTIALLY_FILLED", "PARTIALLY_FILLED"),
                         ("STATUS_REJECTED", "REJECTED"), ("REQ_NONE", "NONE"), ("GTC", "GTC"), ("GTX", "GTX"),
                         ("FOK", "FOK"), ("IOC", "IOC"), ("LIMIT", "LIMIT"), ("MARKET", "MARKET"), ("BUY", "BUY"),
                         ("SELL", "SELL")):  # fmt: skip
        assert int(getattr(K, ours)) == int(getattr(order, theirs)), ours
    assert abi.ORDER_DTYPE == types.order_dtype
    assert EVENT_DTYPE == types.event_dtype


def _naive(batches: list[np.ndarray], cap: int) -> np.ndarray:
    rows = np.concatenate(batches) if batches else np.zeros(0, EVENT_DTYPE)
    return rows[-cap:]


@pytest.mark.parametrize("sizes", [[3, 4], [5, 1, 7, 2, 9], [20], [8, 8, 8], [0, 2, 0]])
def test_trade_buffer_keeps_the_most_recent_trades_oldest_first(sizes):
    """Batches of market trades of any size (smaller or larger than the buffer) leave exactly the last
    ``cap`` trades, oldest first, with their side from the event flags."""
    cap = 8
    market = new_market(levels=5, trade_buffer=cap)
    batches = []
    serial = 0
    for size in sizes:
        batch = np.zeros(size, EVENT_DTYPE)
        for i in range(size):
            serial += 1
            batch[i]["local_ts"] = serial
            batch[i]["px"] = 100.0 + serial
            batch[i]["qty"] = serial / 10
            batch[i]["ev"] = K.TRADE_EVENT | (K.BUY_EVENT if serial % 3 else K.SELL_EVENT if serial % 2 else 0)
        batches.append(batch)
        append_trades(market, batch)
        expected = _naive(batches, cap)
        n = int(market.trade_count[0])
        assert n == len(expected)
        assert market.trade_ts[:n].tolist() == expected["local_ts"].tolist()
        assert market.trades[0, :n].tolist() == expected["px"].tolist()
        assert market.trades[1, :n].tolist() == expected["qty"].tolist()
        sides = [1.0 if ev & K.BUY_EVENT else -1.0 if ev & K.SELL_EVENT else 0.0 for ev in expected["ev"]]
        assert market.trades[2, :n].tolist() == sides
