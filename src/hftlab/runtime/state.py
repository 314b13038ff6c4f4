"""State derivation: the account from our own fills, and the market as the strategy sees it.

The account is one record (:data:`ACCOUNT_DTYPE`), derived only from fills taken in canonical order
(hftbacktest's own position misses partial fills, and its balance depends on a randomly seeded hash
order). The market view (top book levels, recent trades, our live orders) is read from the Simulated
Venue at each evaluation point into the runtime's buffers, which the strategy's View points at.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hftlab.hftbacktest_types import BUY_EVENT, EMPTY_ASK_TICK, EMPTY_BID_TICK, SELL_EVENT
from hftlab.jit import engine_jit, record_array
from hftlab.runtime import records as R
from hftlab.venue import abi

#: The account of a run, derived from its fills (one row).
ACCOUNT_DTYPE = np.dtype(
    [
        ("position", "f8"),
        ("cash", "f8"),  #: in the account currency: quote (linear) or base (inverse contracts)
        ("fees", "f8"),  #: paid, net of rebates
        ("equity", "f8"),  #: cash + position marked at the last valid mid
        ("peak_equity", "f8"),
        ("mid", "f8"),  #: last valid mid (NaN before the book had two sides)
        ("killed", "?"),  #: the kill switch fired
        ("next_record_ts", "i8"),  #: when the next state-series row is due
        ("next_order_id", "u8"),
        ("n_live", "i8"),  #: rows of the live-order table in use
    ]
)

FEE_ON_VALUE, FEE_ON_QTY, FEE_FLAT = 0, 1, 2
FEE_MODELS = {"value": FEE_ON_VALUE, "qty": FEE_ON_QTY, "flat": FEE_FLAT}


class Contract(NamedTuple):
    """The instrument and fee terms of the Simulated Venue (resolved venue config)."""

    tick_size: float
    lot_size: float
    contract_size: float
    inverse: bool
    fee_model: int  #: FEE_ON_VALUE, FEE_ON_QTY or FEE_FLAT
    maker_fee: float  #: negative = rebate
    taker_fee: float
    #: The lot size as the exact fraction lot_num / lot_den (0.001 = 1/1000): stored quantities are
    #: snapped to it (:func:`on_lot`).
    lot_num: float
    lot_den: float


class Market(NamedTuple):
    """Buffers the market part of the strategy's View points at (refreshed at each evaluation point)."""

    book: np.ndarray  #: float64[4, levels]: bid prices, bid qtys, ask prices, ask qtys (best first, NaN-padded)
    trade_ts: np.ndarray  #: int64[T]: recent market trades, oldest first
    trades: np.ndarray  #: float64[3, T]: price, qty, side (+1 buyer-initiated, -1 seller, 0 unknown)
    trade_count: np.ndarray  #: int64[1]
    trades_length: np.ndarray  #: uint64[1]: out-parameter of hftbacktest's last_trades


def new_account() -> np.ndarray:
    """A flat account with no cash (one row): the runtime's starting state."""
    account = record_array(1, ACCOUNT_DTYPE)
    account["mid"] = np.nan
    account["next_order_id"] = 1
    return account


def new_market(levels: int, trade_buffer: int) -> Market:
    return Market(
        book=np.full((4, levels), np.nan),
        trade_ts=np.zeros(trade_buffer, dtype=np.int64),
        trades=np.zeros((3, trade_buffer), dtype=np.float64),
        trade_count=np.zeros(1, dtype=np.int64),
        trades_length=np.zeros(1, dtype=np.uint64),
    )


@engine_jit(forceinline=True)
def trade_value(contract, price, qty):
    """Value of a trade in the account currency (quote for linear, base for inverse contracts)."""
    if contract.inverse:
        return qty * contract.contract_size / price
    return qty * price * contract.contract_size


@engine_jit(forceinline=True)
def fee_of(contract, price, qty, maker):
    rate = contract.maker_fee if maker else contract.taker_fee
    if contract.fee_model == FEE_ON_VALUE:
        return rate * trade_value(contract, price, qty)
    if contract.fee_model == FEE_ON_QTY:
        return rate * qty
    return rate


@engine_jit(forceinline=True)
def apply_fill(account, contract, side, price, qty, maker):
    """Apply one fill to position, cash and fees; return the fee."""
    fee = fee_of(contract, price, qty, maker)
    value = trade_value(contract, price, qty)
    if contract.inverse:
        account.cash += side * value - fee
    else:
        account.cash += -side * value - fee
    account.position += side * qty
    account.fees += fee
    return fee


@engine_jit(forceinline=True)
def on_lot(contract, qty):
    """``qty`` snapped to the lot grid, as the double nearest to that exact multiple of the lot.

    Float sums drift: a position that took 0.001 in and out many times reads -3.5e-18 when flat, a partial
    fill of 0.3 - 0.1 reads 0.19999999999999998. A fill's quantity is snapped when it is observed (a no-op
    for a whole fill of an on-lot order); the position is snapped where it is stored (execution records,
    state series, final account) and where equity is marked, so that equity = cash + stored position x
    mid. The running position the strategy and Risk read is the plain float sum, as in a plain hftbacktest
    loop, so decisions at a limit (position < max_position) stay those of such a loop. Prices need no
    snapping: hftbacktest's are price ticks x tick size, stored bit for bit as it gives them.
    """
    return np.rint(qty / contract.lot_size) * contract.lot_num / contract.lot_den + 0.0  # + 0.0: no -0.0


def on_lot_value(contract: Contract, qty: float) -> float:
    """:func:`on_lot` called from Python (the final account, tests): the same code, not compiled."""
    return float(getattr(on_lot, "py_func", on_lot)(contract, qty))


@engine_jit(forceinline=True)
def mark_equity(account, contract, mid):
    """Update the last valid mid and the equity (cash + position marked at mid)."""
    if np.isfinite(mid):
        account.mid = mid
    m = account.mid
    pos = on_lot(contract, account.position)  # the stored position: equity = cash + stored position x mid
    if not np.isfinite(m) or pos == 0.0:
        account.equity = account.cash
    elif contract.inverse:
        account.equity = account.cash - pos * contract.contract_size / m
    else:
        account.equity = account.cash + pos * m * contract.contract_size
    if account.equity > account.peak_equity:
        account.peak_equity = account.equity


@engine_jit(forceinline=True)
def top_levels(bt, depth, best, side, tick_size, px, qty, max_scan):
    """Fill ``px``/``qty`` with the top non-empty levels of one side, scanning ticks away from ``best``;
    NaN-pad the rest. Returns the number of levels found."""
    n = 0
    if (side > 0 and best != EMPTY_BID_TICK) or (side < 0 and best != EMPTY_ASK_TICK):
        for j in range(max_scan):
            if n == len(px):
                break
            t = best - j if side > 0 else best + j
            q = abi.qty_at_tick(bt, depth, side, t)
            if q > 0.0:
                px[n] = t * tick_size
                qty[n] = q
                n += 1
    for j in range(n, len(px)):
        px[j] = np.nan
        qty[j] = np.nan
    return n


@engine_jit(forceinline=True)
def append_trades(market, last):
    """Append market trades (hftbacktest event rows) to the view's buffer, oldest first, keeping the most
    recent ones when it is full (one shift per batch, not per trade)."""
    cap = len(market.trade_ts)
    trades = market.trades
    k = len(last)
    first = max(0, k - cap)  # of a batch larger than the buffer, only its last cap trades are kept
    k -= first
    n = market.trade_count[0]
    drop = max(0, n + k - cap)
    if drop > 0:
        keep = n - drop
        market.trade_ts[:keep] = market.trade_ts[drop:n]
        for row in range(3):
            trades[row, :keep] = trades[row, drop:n]
        n = keep
    for i in range(k):
        t = last[first + i]
        ev = t.ev
        market.trade_ts[n + i] = t.local_ts
        trades[0, n + i] = t.px
        trades[1, n + i] = t.qty
        trades[2, n + i] = 1.0 if ev & BUY_EVENT else (-1.0 if ev & SELL_EVENT else 0.0)
    market.trade_count[0] = n + k


@engine_jit(forceinline=True)
def record_state(rec, account, contract, now, mid, spread, n_open, interval, force):
    """Append a state-series row when event time reached the next sampling point (or ``force``: the end of
    the data, which replaces a row of the same time)."""
    if now < account.next_record_ts and not force:
        return
    k = rec.counts[R.STATE]
    if force and k > 0 and rec.state[k - 1].local_ts == now:
        k -= 1  # the end of the data at a sampling point: one row, with the final feedback applied
    row = rec.state[k]
    row.local_ts = now
    row.position = on_lot(contract, account.position)
    row.cash = account.cash
    row.fees = account.fees
    row.equity = account.equity
    row.mid = mid
    row.spread = spread
    row.open_orders = n_open
    rec.counts[R.STATE] = k + 1
    account.next_record_ts = (now // interval + 1) * interval
