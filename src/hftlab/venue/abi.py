"""The Venue Adapter's compiled half: hftbacktest's C functions, callable from cached compiled code.

hftbacktest's Python API wraps its Rust library in numba jitclasses that hold ctypes function pointers,
and numba refuses to cache any function using them ("dynamic globals"), so every process would compile
the whole Core Runtime again. The same library exports plain ``extern "C"`` functions (the ones
``hftbacktest/binding.py`` declares through ctypes). After ``load_library_permanently`` numba links them
by symbol name (``types.ExternalFunction``): code calling them caches like any other.

A backtest is a :class:`Backtest`: the address of hftbacktest's backtest object and which depth
implementation it was built with (ROI vector or hash map: the C functions differ by prefix). Pointers
travel as ``uint64`` (every platform hftbacktest ships wheels for is 64-bit). Only asset 0 is used.
hftbacktest's order records are read through their dtype (``hftbacktest.types.order_dtype``, repeated
here as :data:`ORDER_DTYPE`; a test checks it against the installed package).

In Python mode (``NUMBA_DISABLE_JIT=1``, the debug mode) the same names are ctypes functions of the same
library, so the Core Runtime runs unchanged as Python.
"""

from __future__ import annotations

import ctypes
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from hftlab.hftbacktest_types import BUY, EVENT_DTYPE, LIMIT
from hftlab.jit import PYTHON_MODE, engine_jit

#: hftbacktest's order record (``hftbacktest.types.order_dtype``, aligned like the Rust struct).
ORDER_DTYPE = np.dtype(
    [
        ("qty", "f8"),
        ("leaves_qty", "f8"),
        ("exec_qty", "f8"),
        ("exec_price_tick", "i8"),
        ("price_tick", "i8"),
        ("tick_size", "f8"),
        ("exch_timestamp", "i8"),
        ("local_timestamp", "i8"),
        ("order_id", "u8"),
        ("_q1", "u8"),
        ("_q2", "u8"),
        ("maker", "?"),
        ("order_type", "u1"),
        ("req", "u1"),
        ("status", "u1"),
        ("side", "i1"),
        ("time_in_force", "u1"),
    ],
    align=True,
)


class Backtest(NamedTuple):
    """One hftbacktest backtest object: its address, and whether it is the hash-map depth variant."""

    ptr: int
    hashmap: bool


def library_path() -> str:
    """The shared library of hftbacktest's Rust core."""
    from hftbacktest import _hftbacktest

    return str(_hftbacktest.__file__)


_U64, _I64, _F64, _BOOL, _U8, _VOID = types.uint64, types.int64, types.float64, types.boolean, types.uint8, types.void
_CTYPES = {
    _U64: ctypes.c_uint64,
    _I64: ctypes.c_int64,
    _F64: ctypes.c_double,
    _BOOL: ctypes.c_bool,
    _U8: ctypes.c_uint8,
}

if PYTHON_MODE:
    _LIB: Any = ctypes.CDLL(library_path())
else:
    import llvmlite.binding as llvm

    llvm.load_library_permanently(library_path())


def _c(name: str, restype: Any, *argtypes: Any) -> Any:
    """The C function ``name``: a numba ExternalFunction, or in Python mode a ctypes function."""
    if PYTHON_MODE:
        fn = getattr(_LIB, name)
        fn.restype = None if restype is _VOID else _CTYPES[restype]
        fn.argtypes = [_CTYPES[a] for a in argtypes]
        return fn
    return types.ExternalFunction(name, restype(*argtypes))


def _pair(suffix: str, restype: Any, *argtypes: Any) -> tuple[Any, Any]:
    """The ROI-vector and hash-map variants of one backtest function."""
    return _c(f"roivecbt_{suffix}", restype, *argtypes), _c(f"hashmapbt_{suffix}", restype, *argtypes)


_elapse = _pair("elapse", _I64, _U64, _U64)
_wait_next_feed = _pair("wait_next_feed", _I64, _U64, _BOOL, _I64)
_current_timestamp = _pair("current_timestamp", _I64, _U64)
_depth = _pair("depth", _U64, _U64, _U64)
_orders = _pair("orders", _U64, _U64, _U64)
_position = _pair("position", _F64, _U64, _U64)
_submit_buy = _pair("submit_buy_order", _I64, _U64, _U64, _U64, _F64, _F64, _U8, _U8, _BOOL)
_submit_sell = _pair("submit_sell_order", _I64, _U64, _U64, _U64, _F64, _F64, _U8, _U8, _BOOL)
_cancel = _pair("cancel", _I64, _U64, _U64, _U64, _BOOL)
_clear_inactive = _pair("clear_inactive_orders", _VOID, _U64, _U64)
_last_trades = _pair("last_trades", _U64, _U64, _U64, _U64)
_clear_last_trades = _pair("clear_last_trades", _VOID, _U64, _U64)
_close = _pair("close", _I64, _U64)
_best_bid_tick = (_c("roivecdepth_best_bid_tick", _I64, _U64), _c("hashmapdepth_best_bid_tick", _I64, _U64))
_best_ask_tick = (_c("roivecdepth_best_ask_tick", _I64, _U64), _c("hashmapdepth_best_ask_tick", _I64, _U64))
_bid_qty_at = (
    _c("roivecdepth_bid_qty_at_tick", _F64, _U64, _I64),
    _c("hashmapdepth_bid_qty_at_tick", _F64, _U64, _I64),
)
_ask_qty_at = (
    _c("roivecdepth_ask_qty_at_tick", _F64, _U64, _I64),
    _c("hashmapdepth_ask_qty_at_tick", _F64, _U64, _I64),
)
_orders_get = _c("orders_get", _U64, _U64, _U64)

_RV_ELAPSE, _HM_ELAPSE = _elapse
_RV_WAIT, _HM_WAIT = _wait_next_feed
_RV_NOW, _HM_NOW = _current_timestamp
_RV_DEPTH, _HM_DEPTH = _depth
_RV_ORDERS, _HM_ORDERS = _orders
_RV_POSITION, _HM_POSITION = _position
_RV_BUY, _HM_BUY = _submit_buy
_RV_SELL, _HM_SELL = _submit_sell
_RV_CANCEL, _HM_CANCEL = _cancel
_RV_CLEAR, _HM_CLEAR = _clear_inactive
_RV_TRADES, _HM_TRADES = _last_trades
_RV_CLEAR_TRADES, _HM_CLEAR_TRADES = _clear_last_trades
_RV_CLOSE, _HM_CLOSE = _close
_RV_BID_TICK, _HM_BID_TICK = _best_bid_tick
_RV_ASK_TICK, _HM_ASK_TICK = _best_ask_tick
_RV_BID_QTY, _HM_BID_QTY = _bid_qty_at
_RV_ASK_QTY, _HM_ASK_QTY = _ask_qty_at

if PYTHON_MODE:

    def _rows(address: int, n: Any, dtype: np.dtype) -> np.ndarray:
        """``n`` records of ``dtype`` at ``address``, as a recarray (rows read by attribute, as compiled)."""
        if address == 0 or n == 0:
            return np.zeros(0, dtype).view(np.recarray)
        buffer = (ctypes.c_byte * (int(n) * dtype.itemsize)).from_address(int(address))
        return np.frombuffer(memoryview(buffer), dtype).view(np.recarray)

    def _order_rows(address: int, n: Any) -> np.ndarray:
        return _rows(address, n, ORDER_DTYPE)

    def _event_rows(address: int, n: Any) -> np.ndarray:
        return _rows(address, n, EVENT_DTYPE)

    def borrowed(a: np.ndarray) -> np.ndarray:
        return a

else:

    @intrinsic
    def _voidptr(typingctx: Any, address: Any) -> Any:
        """An integer address as a ``void*`` (what ``numba.carray`` takes)."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(types.uint64), codegen

    @engine_jit
    def borrowed(a):
        """``a`` (C-contiguous) seen through its data pointer: an array without a reference count.

        Compiled code increments and decrements (atomically) the reference count of every array it takes out
        of a tuple; the loop's state is tuples of arrays, so it works on borrowed views instead, made once per
        call of the loop. The caller keeps the arrays alive.
        """
        address = np.uint64(a.ctypes.data)
        return numba.carray(_voidptr(address), a.shape, a.dtype)  # type: ignore[call-arg]

    @engine_jit
    def _order_rows(address, n):
        return numba.carray(_voidptr(address), n, ORDER_DTYPE)  # type: ignore[call-arg]

    @engine_jit
    def _event_rows(address, n):
        return numba.carray(_voidptr(address), n, EVENT_DTYPE)  # type: ignore[call-arg]


@engine_jit(forceinline=True)
def elapse(bt, duration):
    """Advance the backtest by ``duration`` ns of local time: 0 ok, 1 end of data, >= 10 an error."""
    return _HM_ELAPSE(bt.ptr, duration) if bt.hashmap else _RV_ELAPSE(bt.ptr, duration)


@engine_jit(forceinline=True)
def wait_next_feed(bt, include_order_response, timeout):
    """Advance to the next feed event (or order response, or ``timeout`` ns): 1 end, 2 feed, 3 response."""
    if bt.hashmap:
        return _HM_WAIT(bt.ptr, include_order_response, timeout)
    return _RV_WAIT(bt.ptr, include_order_response, timeout)


@engine_jit(forceinline=True)
def current_timestamp(bt):
    return _HM_NOW(bt.ptr) if bt.hashmap else _RV_NOW(bt.ptr)


@engine_jit(forceinline=True)
def position(bt):
    """hftbacktest's own position of asset 0 (it misses partial fills: the runtime keeps its own)."""
    return _HM_POSITION(bt.ptr, 0) if bt.hashmap else _RV_POSITION(bt.ptr, 0)


@engine_jit(forceinline=True)
def depth(bt):
    """Address of the market depth of asset 0 (valid until the backtest is closed)."""
    return _HM_DEPTH(bt.ptr, 0) if bt.hashmap else _RV_DEPTH(bt.ptr, 0)


@engine_jit(forceinline=True)
def best_ticks(bt, depth_ptr):
    """(best bid tick, best ask tick); EMPTY_BID_TICK / EMPTY_ASK_TICK for an empty side."""
    if bt.hashmap:
        return _HM_BID_TICK(depth_ptr), _HM_ASK_TICK(depth_ptr)
    return _RV_BID_TICK(depth_ptr), _RV_ASK_TICK(depth_ptr)


@engine_jit(forceinline=True)
def qty_at_tick(bt, depth_ptr, side, tick):
    """Resting quantity at ``tick`` on the bid (``side`` > 0) or ask side.

    (hftbacktest's ``best_bid_qty`` of the ROI vector returns the price: levels are always read by tick.)
    """
    if bt.hashmap:
        return _HM_BID_QTY(depth_ptr, tick) if side > 0 else _HM_ASK_QTY(depth_ptr, tick)
    return _RV_BID_QTY(depth_ptr, tick) if side > 0 else _RV_ASK_QTY(depth_ptr, tick)


@engine_jit(forceinline=True)
def orders(bt):
    """Address of hftbacktest's order map of asset 0."""
    return _HM_ORDERS(bt.ptr, 0) if bt.hashmap else _RV_ORDERS(bt.ptr, 0)


@engine_jit(forceinline=True)
def order_record(orders_ptr, order_id):
    """hftbacktest's record of order ``order_id``: a 1-row view of ORDER_DTYPE, or 0 rows if not in the map.

    Looked up by id, never by iterating the map (its order is a randomly seeded hash order).
    """
    address = _orders_get(orders_ptr, order_id)
    return _order_rows(address, 1 if address != 0 else 0)


@engine_jit(forceinline=True)
def submit(bt, order_id, side, price, qty, time_in_force, order_type):
    """Send a new order (LIMIT or MARKET); returns hftbacktest's code (0: accepted for sending)."""
    if side == BUY:
        if bt.hashmap:
            return _HM_BUY(bt.ptr, 0, order_id, price, qty, time_in_force, order_type, False)
        return _RV_BUY(bt.ptr, 0, order_id, price, qty, time_in_force, order_type, False)
    if bt.hashmap:
        return _HM_SELL(bt.ptr, 0, order_id, price, qty, time_in_force, order_type, False)
    return _RV_SELL(bt.ptr, 0, order_id, price, qty, time_in_force, order_type, False)


@engine_jit(forceinline=True)
def submit_limit(bt, order_id, side, price, qty, time_in_force):
    return submit(bt, order_id, side, price, qty, time_in_force, LIMIT)


@engine_jit(forceinline=True)
def cancel(bt, order_id):
    return _HM_CANCEL(bt.ptr, 0, order_id, False) if bt.hashmap else _RV_CANCEL(bt.ptr, 0, order_id, False)


@engine_jit(forceinline=True)
def clear_inactive_orders(bt):
    """Drop filled, cancelled, expired and rejected orders from hftbacktest's map."""
    if bt.hashmap:
        _HM_CLEAR(bt.ptr, 0)
    else:
        _RV_CLEAR(bt.ptr, 0)


@engine_jit(forceinline=True)
def last_trades(bt, length):
    """Market trades since the last clear, as event rows (a view; ``length`` is a 1-element uint64 buffer)."""
    address = length.ctypes.data
    ptr = _HM_TRADES(bt.ptr, 0, address) if bt.hashmap else _RV_TRADES(bt.ptr, 0, address)
    n = np.int64(length[0]) if ptr != 0 else np.int64(0)
    return _event_rows(ptr, n)


@engine_jit(forceinline=True)
def clear_last_trades(bt):
    if bt.hashmap:
        _HM_CLEAR_TRADES(bt.ptr, 0)
    else:
        _RV_CLEAR_TRADES(bt.ptr, 0)


@engine_jit(forceinline=True)
def close(bt):
    """Free the backtest (exactly once: a second close aborts the process)."""
    return _HM_CLOSE(bt.ptr) if bt.hashmap else _RV_CLOSE(bt.ptr)
