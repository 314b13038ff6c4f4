"""Order lifecycle: our table of live orders, execution feedback from the venue, and dispatch to it.

Every order we send is a row of the live table (kept in order-id order, compacted as orders end). At each
evaluation point, execution feedback is read by looking each live order up by id in hftbacktest's order
map (never by iterating it: its order is a randomly seeded hash order); the quantity executed since the
last look (from ``leaves_qty``, so partial fills are not lost) becomes a fill; the step's fills are applied
in canonical order (exchange time, then order id). Lifecycle rows record every transition.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hftlab.hftbacktest_types import (
    IOC,
    MARKET,
    REQ_NONE,
    STATUS_CANCELED,
    STATUS_EXPIRED,
    STATUS_FILLED,
    STATUS_NEW,
    STATUS_PARTIALLY_FILLED,
    STATUS_REJECTED,
)
from hftlab.jit import engine_jit, record_array
from hftlab.runtime import records as R
from hftlab.runtime import state as S
from hftlab.venue import abi

#: How a live order ended (``LIVE_DTYPE.end``), set by feedback and cleared when the row is compacted.
LIVE, ENDED_FILLED, ENDED_CANCELLED, ENDED_EXPIRED, ENDED_REJECTED = 0, 1, 2, 3, 4
_END_EVENTS = (0, 0, R.CANCELLED, R.EXPIRED, R.VENUE_REJECTED)  # lifecycle event of each end

#: One of our orders while it may still be working.
LIVE_DTYPE = np.dtype(
    [
        ("order_id", "u8"),
        ("side", "i1"),
        ("price", "f8"),
        ("tick", "i8"),
        ("qty", "f8"),
        ("leaves", "f8"),
        ("tif", "u1"),
        ("sent_ts", "i8"),
        ("acked", "?"),
        ("cancel_pending", "?"),
        ("matched", "?"),  #: scratch of Execution Control's reconciliation
        ("end", "i1"),  #: LIVE or ENDED_* (set by feedback in a step, the row is dropped at the step's end)
        ("end_ts", "i8"),  #: venue time of the end
    ]
)

#: A request Execution Control plans for this step.
PLAN_DTYPE = np.dtype(
    [
        ("action", "i1"),  #: R.ACTION_NEW or R.ACTION_CANCEL
        ("index", "i8"),  #: row of the live table (cancel) or of the wanted orders (new)
        ("side", "i1"),
        ("price", "f8"),
        ("qty", "f8"),
        ("tif", "u1"),
    ]
)


class Orders(NamedTuple):
    """The order-side buffers of the loop: what the strategy wants, what is live, what is planned."""

    live: np.ndarray  #: LIVE_DTYPE[max_live]
    wanted: np.ndarray  #: float64[max_orders, 4]: the strategy's output (side, price, qty, tif)
    accepted: np.ndarray  #: bool[max_orders]: passed Risk
    rules: np.ndarray  #: int8[max_orders]: the Risk rule that refused each (0: none)
    plan: np.ndarray  #: PLAN_DTYPE[max_live + max_orders]
    order_idx: np.ndarray  #: int64[2 * max_orders]: new-order priority, then matched-wanted marks
    action_times: np.ndarray  #: int64[rate]: ring of the last request times (rate limit); -1 = free
    step_fills: np.ndarray  #: FILL_DTYPE[max_live]: fills seen this step, before canonical ordering
    visible: np.ndarray  #: float64[3, max_live]: side, price, leaves of live orders (the strategy's view)


def new_orders(max_orders: int, max_actions_per_second: float) -> Orders:
    """Buffers for a strategy wanting up to ``max_orders`` at once (live orders: 4 × that)."""
    max_live = 4 * max_orders
    rate = 0 if np.isinf(max_actions_per_second) else max(int(max_actions_per_second), 0)
    return Orders(
        live=record_array(max_live, LIVE_DTYPE),
        wanted=np.zeros((max_orders, 4), dtype=np.float64),
        accepted=np.zeros(max_orders, dtype=np.bool_),
        rules=np.zeros(max_orders, dtype=np.int8),
        plan=record_array(max_live + max_orders, PLAN_DTYPE),
        order_idx=np.zeros(2 * max_orders, dtype=np.int64),
        action_times=np.full(rate, -1, dtype=np.int64),
        step_fills=record_array(max_live, R.FILL_DTYPE),
        visible=np.zeros((3, max_live), dtype=np.float64),
    )


def rows_per_step(orders: Orders) -> int:
    """Most record rows one evaluation step can append to any table."""
    return 4 * len(orders.live) + 3 * len(orders.wanted) + 8


@engine_jit(forceinline=True)
def add_live(orders, account, contract, order_id, side, price, qty, tif, now):
    k = account.n_live
    row = orders.live[k]
    row.order_id = order_id
    row.side = side
    row.price = price
    row.tick = np.int64(np.rint(price / contract.tick_size))
    row.qty = qty
    row.leaves = qty
    row.tif = tif
    row.sent_ts = now
    row.acked = False
    row.cancel_pending = False
    row.matched = False
    row.end = LIVE
    row.end_ts = 0
    account.n_live = k + 1


@engine_jit(forceinline=True)
def compact_live(orders, account):
    """Drop ended orders, keeping order-id order."""
    live = orders.live
    j = 0
    for k in range(account.n_live):
        if live[k].end == LIVE:
            if j != k:
                live[j] = live[k]
            j += 1
    account.n_live = j


@engine_jit(forceinline=True)
def fill_order(fills, n):
    """Indexes of the step's fills sorted by (exchange time, order id): the canonical fill order."""
    idx = np.arange(n)
    for i in range(1, n):
        j = i
        while j > 0:
            a = fills[idx[j - 1]]
            b = fills[idx[j]]
            if a.exch_ts > b.exch_ts or (a.exch_ts == b.exch_ts and a.order_id > b.order_id):
                idx[j - 1], idx[j] = idx[j], idx[j - 1]
                j -= 1
            else:
                break
    return idx


@engine_jit(forceinline=True)
def _observe(orders, k, o, now, contract, n_fills, rec):
    """Compare live row ``k`` with hftbacktest's record ``o``: ack, new fill (into step_fills), end."""
    row = orders.live[k]
    status = o.status
    if not row.acked and o.req == REQ_NONE and (status in (STATUS_NEW, STATUS_PARTIALLY_FILLED, STATUS_FILLED)):
        row.acked = True
        R.record_order(rec, now, o.exch_timestamp, row.order_id, R.ACKNOWLEDGED, row.side, row.price, row.qty,
                       row.leaves, 0)  # fmt: skip
    leaves = 0.0 if status == STATUS_FILLED else o.leaves_qty
    if leaves < row.leaves - 1e-12 * row.qty:
        f = orders.step_fills[n_fills]
        f.local_ts = now
        f.exch_ts = o.exch_timestamp
        f.order_id = row.order_id
        f.side = row.side
        px = o.exec_price_tick * contract.tick_size
        f.price = px if px > 0.0 else row.price
        f.qty = S.on_lot(contract, row.leaves - leaves)
        f.maker = o.maker
        f.order_price = row.price
        f.order_qty = row.qty
        row.leaves = leaves
        n_fills += 1
    if status == STATUS_FILLED:
        row.end = ENDED_FILLED
    elif status in (STATUS_CANCELED, STATUS_EXPIRED, STATUS_REJECTED):
        row.end = (
            ENDED_CANCELLED
            if status == STATUS_CANCELED
            else (ENDED_EXPIRED if status == STATUS_EXPIRED else ENDED_REJECTED)
        )
        row.end_ts = o.exch_timestamp
    return n_fills


@engine_jit(forceinline=True)
def _apply_fills(orders, n_fills, account, contract, mid, rec):
    """Apply the step's fills in canonical order; record each and the order's lifecycle transition."""
    idx = fill_order(orders.step_fills, n_fills)
    live = orders.live
    for j in range(n_fills):
        f = orders.step_fills[idx[j]]
        fee = S.apply_fill(account, contract, f.side, f.price, f.qty, f.maker)
        row = rec.fills[rec.counts[R.FILLS]]
        row.local_ts = f.local_ts
        row.exch_ts = f.exch_ts
        row.order_id = f.order_id
        row.side = f.side
        row.price = f.price
        row.qty = f.qty
        row.fee = fee
        row.maker = f.maker
        row.order_price = f.order_price
        row.order_qty = f.order_qty
        row.mid = mid
        row.position = S.on_lot(contract, account.position)
        rec.counts[R.FILLS] += 1
        for q in range(account.n_live):
            if live[q].order_id == f.order_id:
                ev = R.FILLED if live[q].leaves <= 1e-12 * live[q].qty else R.PARTIALLY_FILLED
                R.record_order(rec, f.local_ts, f.exch_ts, f.order_id, ev, f.side, f.order_price,
                               S.on_lot(contract, live[q].qty - live[q].leaves), S.on_lot(contract, live[q].leaves),
                               0)  # fmt: skip
                break


@engine_jit(forceinline=True)
def collect_feedback(bt, now, mid, account, contract, orders, rec):
    """Execution feedback for every live order: acks, fills (applied to the account in canonical order),
    ends; lifecycle rows (an order's end after the fills it had); ended rows dropped. Returns the fills."""
    book = abi.orders(bt)
    live = orders.live
    n_fills = 0
    for k in range(account.n_live):
        o = abi.order_record(book, live[k].order_id)
        if len(o) == 1:
            n_fills = _observe(orders, k, o[0], now, contract, n_fills, rec)
    if n_fills > 0:
        _apply_fills(orders, n_fills, account, contract, mid, rec)
    for k in range(account.n_live):
        row = live[k]
        if row.end >= ENDED_CANCELLED:
            R.record_order(rec, now, row.end_ts, row.order_id, _END_EVENTS[row.end], row.side, row.price,
                           row.qty - row.leaves, row.leaves, 0)  # fmt: skip
    compact_live(orders, account)
    abi.clear_inactive_orders(bt)
    return n_fills


@engine_jit(forceinline=True)
def send_cancel(bt, now, orders, k, rule, rec):
    """Request the cancel of live row ``k``; record the request and the lifecycle row."""
    row = orders.live[k]
    res = abi.cancel(bt, row.order_id)
    row.cancel_pending = True
    R.record_dispatch(rec, now, row.order_id, R.ACTION_CANCEL, row.side, row.price, row.leaves, 0, res)
    R.record_order(rec, now, 0, row.order_id, R.CANCEL_SENT, row.side, row.price, row.qty, row.leaves, rule)


@engine_jit(forceinline=True)
def send_new(bt, now, account, contract, orders, order, order_type, action, rule, rec):
    """Send a new order with the next order id; it becomes live unless the venue refused the request.

    ``order``: its (side, price, qty, time in force), as in a wanted or planned row."""
    side, price, qty, tif = order
    order_id = account.next_order_id
    account.next_order_id += 1
    res = abi.submit(bt, order_id, side, price, qty, tif, order_type)
    R.record_dispatch(rec, now, order_id, action, side, price, qty, tif, res)
    if res == 0:
        R.record_order(rec, now, 0, order_id, R.SENT, side, price, qty, qty, rule)
        if account.n_live < len(orders.live):
            add_live(orders, account, contract, order_id, side, price, qty, tif, now)
    else:
        R.record_order(rec, now, 0, order_id, R.VENUE_REJECTED, side, price, qty, qty, rule)
    return res


@engine_jit(forceinline=True)
def dispatch(bt, now, account, contract, orders, n_plan, rec):
    """Send the step's planned requests: cancels first, then new orders (Execution Control's order)."""
    max_live = len(orders.live)
    for j in range(n_plan):
        p = orders.plan[j]
        if p.action == R.ACTION_CANCEL:
            send_cancel(bt, now, orders, p.index, 0, rec)
        elif account.n_live >= max_live:
            R.record_check(rec, R.THROTTLES, now, 0, R.RULE_MAX_OPEN_ORDERS, p.side, p.price, p.qty,
                           float(max_live), float(max_live))  # fmt: skip
        else:
            send_new(bt, now, account, contract, orders, (p.side, p.price, p.qty, p.tif), 0, R.ACTION_NEW, 0, rec)


@engine_jit(forceinline=True)
def kill_orders(bt, now, account, contract, orders, flatten, best_bid, best_ask, mid, rec):
    """The kill switch fired: cancel every live order; with ``flatten``, close the position at market."""
    for k in range(account.n_live):
        if not orders.live[k].cancel_pending:
            send_cancel(bt, now, orders, k, R.RULE_KILL_SWITCH, rec)
    pos = account.position
    if flatten and pos != 0.0 and np.isfinite(mid):
        side = np.int8(-1) if pos > 0 else np.int8(1)
        px = best_bid if pos > 0 else best_ask
        send_new(bt, now, account, contract, orders, (side, px, abs(pos), IOC), MARKET, R.ACTION_FLATTEN,
                 R.RULE_KILL_SWITCH, rec)  # fmt: skip


@engine_jit(forceinline=True)
def fill_order_view(orders, n_live):
    """Side, price and leaves of the live orders, for the strategy's View."""
    for k in range(n_live):
        orders.visible[0, k] = orders.live[k].side
        orders.visible[1, k] = orders.live[k].price
        orders.visible[2, k] = orders.live[k].leaves
