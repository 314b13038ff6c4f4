"""The reference: a plain hftbacktest loop implementing the grid strategy, as hftbacktest's tutorial does.

No Risk, no Execution Control, no own state: order ids are price ticks, cancels and submits go straight
to hftbacktest. It logs each order that hftbacktest reports FILLED (before clearing inactive orders),
which with the no-partial-fill exchange is each fill. The parity test and ``benchmarks/runtime.py``
compare the Core Runtime running ``strategies/grid.py`` against it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numba.typed import Dict

from hftlab.feed import FeedData
from hftlab.venue.config import VenueConfig
from hftlab.venue.simulated import SimulatedVenue

#: One logged fill of the reference loop.
REFERENCE_FILL_DTYPE = np.dtype([("exch_ts", "i8"), ("order_id", "u8"), ("side", "i1"), ("price", "f8"), ("qty", "f8")])
_FILLED = 3
_BUY, _SELL = 1, -1
_GTX, _LIMIT = 1, 0


@njit
def plain_grid_loop(hbt, interval, grid_num, grid_interval, half_spread, skew, order_qty, max_position, log, cancels):
    tick_size = hbt.depth(0).tick_size
    n = 0
    while hbt.elapse(interval) == 0:
        orders = hbt.orders(0)
        values = orders.values()
        while values.has_next():
            order = values.get()
            if order.status == _FILLED and n < len(log):
                log[n].exch_ts = order.exch_timestamp
                log[n].order_id = order.order_id
                log[n].side = order.side
                log[n].price = order.exec_price_tick * tick_size
                log[n].qty = order.qty
                n += 1
        hbt.clear_inactive_orders(0)
        depth = hbt.depth(0)
        position = hbt.position(0)
        best_bid = depth.best_bid
        best_ask = depth.best_ask
        mid = (best_bid + best_ask) / 2.0
        if not np.isfinite(mid):
            continue
        reservation = mid - skew * position
        bid = np.floor(min(reservation - half_spread, best_bid) / grid_interval + 1e-9) * grid_interval
        ask = np.ceil(max(reservation + half_spread, best_ask) / grid_interval - 1e-9) * grid_interval
        new_bids = Dict.empty(np.uint64, np.float64)
        if position < max_position and np.isfinite(bid):
            for _ in range(grid_num):
                new_bids[np.uint64(round(bid / tick_size))] = bid
                bid -= grid_interval
        new_asks = Dict.empty(np.uint64, np.float64)
        if position > -max_position and np.isfinite(ask):
            for _ in range(grid_num):
                new_asks[np.uint64(round(ask / tick_size))] = ask
                ask += grid_interval
        # Cancel in order-id order: hftbacktest's map iterates in hash order.
        m = 0
        values = orders.values()
        while values.has_next():
            order = values.get()
            if order.cancellable and (
                (order.side == _BUY and order.order_id not in new_bids)
                or (order.side == _SELL and order.order_id not in new_asks)
            ):
                cancels[m] = order.order_id
                m += 1
        for order_id in np.sort(cancels[:m]):
            hbt.cancel(0, order_id, False)
        for order_id, price in new_bids.items():
            if order_id not in orders:
                hbt.submit_buy_order(0, order_id, price, order_qty, _GTX, _LIMIT, False)
        for order_id, price in new_asks.items():
            if order_id not in orders:
                hbt.submit_sell_order(0, order_id, price, order_qty, _GTX, _LIMIT, False)
    return n


def run_reference_grid(fed: FeedData, venue: VenueConfig, params: Any, interval_ns: int) -> dict[str, Any]:
    """Run the plain loop; return its fills (sorted by exchange time, side, price) and final state."""
    sim = SimulatedVenue(fed, venue)
    log = np.zeros(max(1_000_000, len(fed.events) // 4), dtype=REFERENCE_FILL_DTYPE)
    cancels = np.zeros(4 * params.grid_num + 64, dtype=np.uint64)
    with sim:
        hbt = sim.jitclass()
        n = plain_grid_loop(
            hbt, interval_ns, params.grid_num, params.grid_interval, params.half_spread, params.skew,
            params.order_qty, params.max_position, log, cancels,
        )  # fmt: skip
        state = hbt.state_values(0)
        depth = hbt.depth(0)
        mid = (depth.best_bid + depth.best_ask) / 2.0
        position = hbt.position(0)
        result = {
            "position": float(position),
            "balance": float(state.balance),
            "fee": float(state.fee),
            "num_trades": int(state.num_trades),
            "mid": float(mid),
        }
    fills = log[:n]
    fills = fills[np.lexsort((fills["price"], fills["side"], fills["exch_ts"]))]
    result["fills"] = fills
    return result
