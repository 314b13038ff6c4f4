"""Execution records: the columnar layouts the Core Runtime fills, their growable buffers and writers.

Every table is a numpy structured array written by the compiled loop; the run layer persists them.
Timestamps are int64 ns: ``local_ts`` is the runtime's clock (the Event stream's local time),
``exch_ts`` the venue's time where hftbacktest reports it. A :class:`Records` holds every table and the
count of valid rows of each (``counts[ORDERS]`` ...): the loop appends, the Python side grows the tables
when the loop asks for room.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from hftlab.jit import engine_jit, plain, record_array

# --- order lifecycle events (orders.event) --------------------------------------------------------
#: The strategy wanted the order but Risk refused it (``rule`` says why); it was never sent.
RISK_REJECTED = 1
#: A new-order request was dispatched to the venue.
SENT = 2
#: The venue acknowledged the order (it rests on the book).
ACKNOWLEDGED = 3
#: Part of the order executed (``qty`` = executed so far, ``leaves`` = remaining).
PARTIALLY_FILLED = 4
#: The order executed completely.
FILLED = 5
#: A cancel request was dispatched.
CANCEL_SENT = 6
#: The venue confirmed the cancel.
CANCELLED = 7
#: The venue expired the order (e.g. a post-only order that would have crossed).
EXPIRED = 8
#: The venue rejected the order or request.
VENUE_REJECTED = 9

ORDER_EVENTS = {
    RISK_REJECTED: "risk_rejected",
    SENT: "sent",
    ACKNOWLEDGED: "acknowledged",
    PARTIALLY_FILLED: "partially_filled",
    FILLED: "filled",
    CANCEL_SENT: "cancel_sent",
    CANCELLED: "cancelled",
    EXPIRED: "expired",
    VENUE_REJECTED: "venue_rejected",
}

# --- rules of Risk and Execution Control (risk.rule / throttles.rule) ----------------------------
RULE_INVALID_PRICE = 1  #: price NaN, infinite or <= 0
RULE_OFF_TICK = 2  #: price not on the tick grid
RULE_INVALID_QTY = 3  #: quantity NaN, infinite, <= 0 or off the lot grid
RULE_INVALID_SIDE = 4  #: side not +1/-1
RULE_MAX_ORDER_QTY = 5
RULE_MAX_NOTIONAL = 6
RULE_PRICE_BAND = 7  #: |price - mid| / mid above the band
RULE_MAX_POSITION = 8  #: position + wanted same-side quantity beyond the limit
RULE_MAX_OPEN_ORDERS = 9
RULE_KILL_SWITCH = 10  #: quoting stopped by the kill switch
RULE_RATE = 11  #: max order actions per second reached
RULE_MIN_REST = 12  #: order has not rested long enough to be cancelled/replaced
RULE_DUPLICATE = 13  #: an order is already live at this side and price
RULE_NO_MID = 14  #: no two-sided book: price band / notional checks impossible
# Rules of the strategy output contract (hftlab.runtime.contract): a broken one stops the run.
RULE_TOO_MANY_ORDERS = 15  #: the strategy returned more orders than its output has rows (or < 0)
RULE_OFF_LOT = 16  #: quantity not a multiple of the lot size
RULE_INVALID_TIF = 17  #: time in force not one of GTC, GTX, FOK, IOC

RULES = {
    RULE_INVALID_PRICE: "invalid_price",
    RULE_OFF_TICK: "off_tick",
    RULE_INVALID_QTY: "invalid_qty",
    RULE_INVALID_SIDE: "invalid_side",
    RULE_MAX_ORDER_QTY: "max_order_qty",
    RULE_MAX_NOTIONAL: "max_notional",
    RULE_PRICE_BAND: "price_band",
    RULE_MAX_POSITION: "max_position",
    RULE_MAX_OPEN_ORDERS: "max_open_orders",
    RULE_KILL_SWITCH: "kill_switch",
    RULE_RATE: "max_actions_per_second",
    RULE_MIN_REST: "min_rest",
    RULE_DUPLICATE: "duplicate_level",
    RULE_NO_MID: "no_mid",
    RULE_TOO_MANY_ORDERS: "too_many_orders",
    RULE_OFF_LOT: "off_lot",
    RULE_INVALID_TIF: "invalid_tif",
}

# --- dispatch actions -------------------------------------------------------------------------------
ACTION_NEW = 1
ACTION_CANCEL = 2
ACTION_FLATTEN = 3  #: market order sent by the kill switch to flatten the position

#: Order lifecycle: one row per transition.
ORDER_DTYPE = np.dtype(
    [
        ("local_ts", "i8"),
        ("exch_ts", "i8"),  #: venue time of the transition (0 where not reported)
        ("order_id", "u8"),  #: 0 for risk-rejected orders (never sent)
        ("event", "i1"),  #: one of ORDER_EVENTS
        ("side", "i1"),
        ("price", "f8"),
        ("qty", "f8"),  #: order quantity (executed so far for fill events)
        ("leaves", "f8"),
        ("rule", "i1"),  #: for RISK_REJECTED: the Risk rule
    ]
)

#: One row per fill, in canonical order (exchange time, then order id).
FILL_DTYPE = np.dtype(
    [
        ("local_ts", "i8"),  #: when the runtime learned of the fill
        ("exch_ts", "i8"),  #: when it happened at the venue
        ("order_id", "u8"),
        ("side", "i1"),
        ("price", "f8"),
        ("qty", "f8"),
        ("fee", "f8"),  #: negative = rebate
        ("maker", "?"),
        ("order_price", "f8"),
        ("order_qty", "f8"),
        ("mid", "f8"),  #: mid when the runtime learned of the fill
        ("position", "f8"),  #: position after the fill
    ]
)

#: Every request sent to the venue.
DISPATCH_DTYPE = np.dtype(
    [
        ("local_ts", "i8"),
        ("order_id", "u8"),
        ("action", "i1"),  #: ACTION_NEW / ACTION_CANCEL / ACTION_FLATTEN
        ("side", "i1"),
        ("price", "f8"),
        ("qty", "f8"),
        ("tif", "u1"),  #: hftbacktest time in force: 0 GTC, 1 GTX (post-only), 2 FOK, 3 IOC
        ("result", "i8"),  #: hftbacktest's return code (0 = accepted for sending)
    ]
)

#: Risk rejections and Execution Control throttles, with the rule and the values compared.
CHECK_DTYPE = np.dtype(
    [
        ("local_ts", "i8"),
        ("order_id", "u8"),  #: the live order concerned (throttled cancels), else 0
        ("rule", "i1"),
        ("side", "i1"),
        ("price", "f8"),
        ("qty", "f8"),
        ("value", "f8"),  #: the value that broke the rule
        ("limit", "f8"),  #: the configured limit
    ]
)

#: State series at a fixed event-time interval, and a last row at the end of the data.
STATE_DTYPE = np.dtype(
    [
        ("local_ts", "i8"),
        ("position", "f8"),
        ("cash", "f8"),
        ("fees", "f8"),
        ("equity", "f8"),  #: cash + position marked at mid (net of fees)
        ("mid", "f8"),
        ("spread", "f8"),
        ("open_orders", "i8"),
    ]
)

#: Tables the loop writes, in ``counts`` order.
TABLES = {
    "orders": ORDER_DTYPE,
    "fills": FILL_DTYPE,
    "dispatch": DISPATCH_DTYPE,
    "risk": CHECK_DTYPE,
    "throttles": CHECK_DTYPE,
    "state": STATE_DTYPE,
}
ORDERS, FILLS, DISPATCH, RISK, THROTTLES, STATE = range(6)


class Records(NamedTuple):
    """The loop's record tables (preallocated) and the count of valid rows of each."""

    orders: np.ndarray
    fills: np.ndarray
    dispatch: np.ndarray
    risk: np.ndarray
    throttles: np.ndarray
    state: np.ndarray
    counts: np.ndarray  #: int64[6], in TABLES order


def allocate_records(capacity: int) -> Records:
    tables = [record_array(capacity, dtype) for dtype in TABLES.values()]
    return Records._make([*tables, np.zeros(len(TABLES), np.int64)])


def grown(rec: Records, need: int, writer: Any = None, capacity: int = 0) -> Records:
    """Room for ``need`` more rows in every table: a table short of room doubles (until it has room).

    With a ``writer`` (a :class:`~hftlab.runtime.record_files.RecordWriter`), a table short of room that
    cannot double within ``capacity`` rows first gives all its rows but the last to the writer, keeping
    the last one first (the loop reads the previous state row): memory stays bounded however many rows a
    run writes."""
    tables = []
    for i, (name, table) in enumerate(zip(TABLES, rec[: len(TABLES)], strict=False)):
        n = int(rec.counts[i])
        if writer is not None and len(table) - n <= need and len(table) * 2 > capacity and n > 1:
            writer.spill(name, plain(table[: n - 1]))
            table[0] = table[n - 1]
            n = 1
            rec.counts[i] = 1
        size = len(table)
        while size - n <= need:
            size *= 2
        if size != len(table):
            bigger = record_array(size, table.dtype)
            bigger[:n] = table[:n]
            table = bigger
        tables.append(table)
    return Records._make([*tables, rec.counts])


def room(rec: Records) -> int:
    """Rows free in the fullest table."""
    return int(min(len(table) - rec.counts[i] for i, table in enumerate(rec[: len(TABLES)])))


def valid_rows(rec: Records) -> dict[str, np.ndarray]:
    """The valid rows of every table, by name (copies, so the buffers can be freed)."""
    return {name: plain(rec[i][: rec.counts[i]].copy()) for i, name in enumerate(TABLES)}


@engine_jit(forceinline=True)
def has_room(rec, rows):
    """True when every table can take ``rows`` more rows."""
    return (
        rec.counts[ORDERS] + rows <= len(rec.orders)
        and rec.counts[FILLS] + rows <= len(rec.fills)
        and rec.counts[DISPATCH] + rows <= len(rec.dispatch)
        and rec.counts[RISK] + rows <= len(rec.risk)
        and rec.counts[THROTTLES] + rows <= len(rec.throttles)
        and rec.counts[STATE] + rows <= len(rec.state)
    )


@engine_jit(forceinline=True)
def record_order(rec, local_ts, exch_ts, order_id, event, side, price, qty, leaves, rule):
    """Append an order-lifecycle row."""
    k = rec.counts[ORDERS]
    row = rec.orders[k]
    row.local_ts = local_ts
    row.exch_ts = exch_ts
    row.order_id = order_id
    row.event = event
    row.side = side
    row.price = price
    row.qty = qty
    row.leaves = leaves
    row.rule = rule
    rec.counts[ORDERS] = k + 1


@engine_jit(forceinline=True)
def record_check(rec, table, local_ts, order_id, rule, side, price, qty, value, limit):
    """Append a row to the ``RISK`` or ``THROTTLES`` table: the rule, and the value that broke its limit."""
    rows = rec.risk if table == RISK else rec.throttles
    k = rec.counts[table]
    row = rows[k]
    row.local_ts = local_ts
    row.order_id = order_id
    row.rule = rule
    row.side = side
    row.price = price
    row.qty = qty
    row.value = value
    row.limit = limit
    rec.counts[table] = k + 1


@engine_jit(forceinline=True)
def record_dispatch(rec, local_ts, order_id, action, side, price, qty, tif, result):
    """Append a row for one request sent to the venue."""
    k = rec.counts[DISPATCH]
    row = rec.dispatch[k]
    row.local_ts = local_ts
    row.order_id = order_id
    row.action = action
    row.side = side
    row.price = price
    row.qty = qty
    row.tif = tif
    row.result = result
    rec.counts[DISPATCH] = k + 1
