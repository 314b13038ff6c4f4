"""Execution records: the columnar layouts the Core Runtime fills, and their growable buffers.

Every table is a numpy structured array written by the compiled loop; the run layer persists them.
Timestamps are int64 ns: ``local_ts`` is the runtime's clock (the Event stream's local time),
``exch_ts`` the venue's time where hftbacktest reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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

#: State series at a fixed event-time interval.
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

TABLES = {
    "orders": ORDER_DTYPE,
    "fills": FILL_DTYPE,
    "dispatch": DISPATCH_DTYPE,
    "risk": CHECK_DTYPE,
    "throttles": CHECK_DTYPE,
    "state": STATE_DTYPE,
}


@dataclass
class RecordBuffers:
    """Preallocated tables plus a count per table (``counts[i]`` rows of table ``i`` are valid)."""

    orders: np.ndarray
    fills: np.ndarray
    dispatch: np.ndarray
    risk: np.ndarray
    throttles: np.ndarray
    state: np.ndarray
    counts: np.ndarray  #: int64[6], in TABLES order

    @classmethod
    def allocate(cls, capacity: int) -> RecordBuffers:
        return cls(**{name: np.zeros(capacity, dtype) for name, dtype in TABLES.items()}, counts=np.zeros(6, np.int64))

    def grown(self) -> RecordBuffers:
        """Copies with twice the room of every table that is more than half full."""
        out = {}
        for i, name in enumerate(TABLES):
            table = getattr(self, name)
            if self.counts[i] * 2 > len(table):
                bigger = np.zeros(len(table) * 2, table.dtype)
                bigger[: self.counts[i]] = table[: self.counts[i]]
                table = bigger
            out[name] = table
        return RecordBuffers(**out, counts=self.counts)

    def room(self) -> int:
        """Rows free in the fullest table."""
        return int(min(len(getattr(self, name)) - self.counts[i] for i, name in enumerate(TABLES)))

    def tables(self) -> dict[str, np.ndarray]:
        """The valid rows of every table (copies, so the buffers can be freed)."""
        return {name: getattr(self, name)[: self.counts[i]].copy() for i, name in enumerate(TABLES)}
