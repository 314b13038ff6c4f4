"""hftbacktest 2.4.4's event record and constants, in one place: the event dtype, event flags and kinds,
order statuses, request states, time-in-force and order-type codes, and the return codes of its C functions.

Plain integers (numpy-typed where they are bit flags), so compiled code and the feeder use them without
importing hftbacktest. Values are those of ``hftbacktest.types`` / ``hftbacktest.order`` and of the
``extern "C"`` functions of its Rust library; a test checks them against the installed package.
"""

from __future__ import annotations

import numpy as np

#: hftbacktest's event record (64 bytes, aligned); defined here so reading data needs no hftbacktest import.
EVENT_DTYPE = np.dtype(
    {
        "names": ["ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval"],
        "formats": ["<u8", "<i8", "<i8", "<f8", "<f8", "<u8", "<i8", "<f8"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
        "aligned": True,
    }
)

# --- event record flags (the ``ev`` field of hftbacktest's event_dtype) ---------------------------------
#: A row the exchange processor handles at its exchange timestamp.
EXCH_EVENT = np.uint64(1 << 31)
#: A row the local processor handles at its local timestamp.
LOCAL_EVENT = np.uint64(1 << 30)
#: Depth rows: bid side; trade rows: buyer-initiated.
BUY_EVENT = np.uint64(1 << 29)
#: Depth rows: ask side; trade rows: seller-initiated.
SELL_EVENT = np.uint64(1 << 28)
#: The low byte of ``ev`` is the event kind.
KIND_MASK = np.uint64(0xFF)

# --- event kinds -----------------------------------------------------------------------------------------
DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4
DEPTH_BBO_EVENT = 5
ADD_ORDER_EVENT = 10
CANCEL_ORDER_EVENT = 11
MODIFY_ORDER_EVENT = 12
FILL_EVENT = 13
#: Kinds that change the book (what a depth replay reads).
BOOK_KINDS = (DEPTH_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_BBO_EVENT)

# --- order status (``Order.status``) ------------------------------------------------------------------------
STATUS_NONE = 0
STATUS_NEW = 1
STATUS_EXPIRED = 2
STATUS_FILLED = 3
STATUS_CANCELED = 4
STATUS_PARTIALLY_FILLED = 5
STATUS_REJECTED = 6

#: ``Order.req``: no request in flight.
REQ_NONE = 0

# --- time in force and order type -------------------------------------------------------------------------
GTC = 0  #: good till cancel
GTX = 1  #: post-only
FOK = 2  #: fill or kill
IOC = 3  #: immediate or cancel
TIME_IN_FORCE = (GTC, GTX, FOK, IOC)
LIMIT = 0
MARKET = 1

# --- sides ------------------------------------------------------------------------------------------------
BUY = 1
SELL = -1

# --- return codes of elapse / wait_next_feed / submit / cancel ---------------------------------------------
RESULT_OK = 0
RESULT_END_OF_DATA = 1
RESULT_MARKET_FEED = 2  #: wait_next_feed returned on a feed event
RESULT_ORDER_RESPONSE = 3  #: wait_next_feed returned on an order response
#: hftbacktest's BacktestError codes, by value.
BACKTEST_ERRORS = {
    10: "OrderIdExist",
    11: "OrderRequestInProcess",
    12: "OrderNotFound",
    13: "InvalidOrderRequest",
    14: "InvalidOrderStatus",
    15: "EndOfData",
    16: "DataError",
}

#: best_bid_tick of an empty bid side (i64::MIN) and best_ask_tick of an empty ask side (i64::MAX).
EMPTY_BID_TICK = np.iinfo(np.int64).min
EMPTY_ASK_TICK = np.iinfo(np.int64).max
