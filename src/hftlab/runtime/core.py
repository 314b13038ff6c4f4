"""The cacheable half of the Core Runtime: State derivation, Risk, Execution Control, records.

Pure numpy + numba (``cache=True``, no fastmath): nothing here touches hftbacktest, so a second process
loads these from the cache and only the Venue Adapter loop (:mod:`hftlab.runtime.adapter`) compiles.
Every decision iterates our own arrays in order-id order; no hash-map iteration order reaches it.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from hftlab.runtime import records as R

# --- account state: float64 array indexes -------------------------------------------------------
POSITION = 0
CASH = 1
FEES = 2
EQUITY = 3
PEAK_EQUITY = 4
MID = 5  #: last valid mid
KILLED = 6  #: 1.0 once the kill switch fired
NEXT_RECORD_TS = 7
NEXT_ORDER_ID = 8
TICK = 9
LOT = 10
CONTRACT_SIZE = 11
INVERSE = 12  #: 1.0 for inverse contracts
FEE_MODEL = 13  #: 0 value, 1 qty, 2 flat
MAKER_FEE = 14
TAKER_FEE = 15
RECORD_INTERVAL = 16
N_LIVE = 17
ACCOUNT_SIZE = 18

# --- risk / execution config arrays (RiskConfig.as_array, ExecutionConfig.as_array) ------------
R_MAX_POSITION, R_MAX_ORDER_QTY, R_MAX_NOTIONAL, R_PRICE_BAND, R_MAX_OPEN, R_MAX_DD, R_MAX_LOSS, R_FLATTEN = range(8)
E_RATE, E_MIN_REST, E_POST_ONLY = range(3)

#: Our table of live orders (sorted by order id; compacted as orders end).
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
        ("matched", "?"),  #: scratch for reconciliation
    ]
)

BUY_FLAG = np.uint64(1 << 29)
SELL_FLAG = np.uint64(1 << 28)

TABLE_ORDERS, TABLE_FILLS, TABLE_DISPATCH, TABLE_RISK, TABLE_THROTTLES, TABLE_STATE = range(6)


@nb.njit(cache=True)
def trade_value(acct, price, qty):
    """Value of a trade in the account currency (quote for linear, base for inverse contracts)."""
    if acct[INVERSE] > 0.0:
        return qty * acct[CONTRACT_SIZE] / price
    return qty * price * acct[CONTRACT_SIZE]


@nb.njit(cache=True)
def fee_of(acct, price, qty, maker):
    rate = acct[MAKER_FEE] if maker else acct[TAKER_FEE]
    model = acct[FEE_MODEL]
    if model == 0.0:
        return rate * trade_value(acct, price, qty)
    if model == 1.0:
        return rate * qty
    return rate


@nb.njit(cache=True)
def mark_equity(acct, mid):
    """Update the last valid mid and the equity (cash + position marked at mid)."""
    if np.isfinite(mid):
        acct[MID] = mid
    m = acct[MID]
    pos = acct[POSITION]
    if not np.isfinite(m) or pos == 0.0:
        acct[EQUITY] = acct[CASH]
    elif acct[INVERSE] > 0.0:
        acct[EQUITY] = acct[CASH] - pos * acct[CONTRACT_SIZE] / m
    else:
        acct[EQUITY] = acct[CASH] + pos * m * acct[CONTRACT_SIZE]
    if acct[EQUITY] > acct[PEAK_EQUITY]:
        acct[PEAK_EQUITY] = acct[EQUITY]


@nb.njit(cache=True)
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


@nb.njit(cache=True)
def apply_fill(acct, side, price, qty, maker):
    """Apply one fill to position, cash and fees; return the fee."""
    fee = fee_of(acct, price, qty, maker)
    value = trade_value(acct, price, qty)
    if acct[INVERSE] > 0.0:
        acct[CASH] += side * value - fee
    else:
        acct[CASH] += -side * value - fee
    acct[POSITION] += side * qty
    acct[FEES] += fee
    return fee


@nb.njit(cache=True)
def record_order(rec, counts, local_ts, exch_ts, order_id, event, side, price, qty, leaves, rule):
    k = counts[TABLE_ORDERS]
    rec[k].local_ts = local_ts
    rec[k].exch_ts = exch_ts
    rec[k].order_id = order_id
    rec[k].event = event
    rec[k].side = side
    rec[k].price = price
    rec[k].qty = qty
    rec[k].leaves = leaves
    rec[k].rule = rule
    counts[TABLE_ORDERS] = k + 1


@nb.njit(cache=True)
def record_check(rec, counts, table, local_ts, order_id, rule, side, price, qty, value, limit):
    k = counts[table]
    rec[k].local_ts = local_ts
    rec[k].order_id = order_id
    rec[k].rule = rule
    rec[k].side = side
    rec[k].price = price
    rec[k].qty = qty
    rec[k].value = value
    rec[k].limit = limit
    counts[table] = k + 1


@nb.njit(cache=True)
def record_dispatch(rec, counts, local_ts, order_id, action, side, price, qty, tif, result):
    k = counts[TABLE_DISPATCH]
    rec[k].local_ts = local_ts
    rec[k].order_id = order_id
    rec[k].action = action
    rec[k].side = side
    rec[k].price = price
    rec[k].qty = qty
    rec[k].tif = tif
    rec[k].result = result
    counts[TABLE_DISPATCH] = k + 1


@nb.njit(cache=True)
def record_state(rec, counts, acct, now, mid, spread, n_open):
    """Append a state-series row when event time reached the next sampling point."""
    if now < acct[NEXT_RECORD_TS]:
        return
    k = counts[TABLE_STATE]
    rec[k].local_ts = now
    rec[k].position = acct[POSITION]
    rec[k].cash = acct[CASH]
    rec[k].fees = acct[FEES]
    rec[k].equity = acct[EQUITY]
    rec[k].mid = mid
    rec[k].spread = spread
    rec[k].open_orders = n_open
    counts[TABLE_STATE] = k + 1
    interval = acct[RECORD_INTERVAL]
    acct[NEXT_RECORD_TS] = (np.floor(now / interval) + 1.0) * interval


@nb.njit(cache=True)
def on_tick(price, tick):
    t = price / tick
    return abs(t - np.rint(t)) <= 1e-6


@nb.njit(cache=True)
def risk_check(acct, risk, wanted, n_wanted, accepted, rules, mid, now, rec, counts):
    """Check every wanted order against Risk; set ``accepted[i]`` and ``rules[i]`` (0 = passed); record
    each rejection.

    Position limits count the position plus every accepted wanted order on the same side (wanted
    orders replace working ones), so the limit holds if all of them fill; half a lot of slack absorbs
    float sums of lot multiples (0.1 + 0.2 > 0.3).
    """
    tick = acct[TICK]
    lot = acct[LOT]
    buy_total = 0.0
    sell_total = 0.0
    n_open = 0
    for i in range(n_wanted):
        side = wanted[i, 0]
        price = wanted[i, 1]
        qty = wanted[i, 2]
        rule = 0
        value = 0.0
        limit = 0.0
        if acct[KILLED] > 0.0:
            rule = R.RULE_KILL_SWITCH
        elif side != 1.0 and side != -1.0:
            rule = R.RULE_INVALID_SIDE
            value = side
        elif not np.isfinite(price) or price <= 0.0:
            rule = R.RULE_INVALID_PRICE
            value = price
        elif not on_tick(price, tick):
            rule = R.RULE_OFF_TICK
            value = price
            limit = tick
        elif not np.isfinite(qty) or qty <= 0.0 or not on_tick(qty, lot):
            rule = R.RULE_INVALID_QTY
            value = qty
            limit = lot
        elif qty > risk[R_MAX_ORDER_QTY]:
            rule = R.RULE_MAX_ORDER_QTY
            value = qty
            limit = risk[R_MAX_ORDER_QTY]
        elif trade_value(acct, price, qty) > risk[R_MAX_NOTIONAL]:
            rule = R.RULE_MAX_NOTIONAL
            value = trade_value(acct, price, qty)
            limit = risk[R_MAX_NOTIONAL]
        elif np.isfinite(risk[R_PRICE_BAND]) and not np.isfinite(mid):
            rule = R.RULE_NO_MID
        elif np.isfinite(risk[R_PRICE_BAND]) and abs(price - mid) / mid > risk[R_PRICE_BAND]:
            rule = R.RULE_PRICE_BAND
            value = abs(price - mid) / mid
            limit = risk[R_PRICE_BAND]
        elif side > 0 and acct[POSITION] + buy_total + qty > risk[R_MAX_POSITION] + 0.5 * lot:
            rule = R.RULE_MAX_POSITION
            value = acct[POSITION] + buy_total + qty
            limit = risk[R_MAX_POSITION]
        elif side < 0 and -(acct[POSITION] - sell_total - qty) > risk[R_MAX_POSITION] + 0.5 * lot:
            rule = R.RULE_MAX_POSITION
            value = -(acct[POSITION] - sell_total - qty)
            limit = risk[R_MAX_POSITION]
        elif n_open + 1 > risk[R_MAX_OPEN]:
            rule = R.RULE_MAX_OPEN_ORDERS
            value = n_open + 1
            limit = risk[R_MAX_OPEN]
        rules[i] = rule
        if rule == 0:
            accepted[i] = True
            n_open += 1
            if side > 0:
                buy_total += qty
            else:
                sell_total += qty
        else:
            accepted[i] = False
            record_check(rec, counts, TABLE_RISK, now, 0, rule, np.int8(side), price, qty, value, limit)
    return n_open


@nb.njit(cache=True)
def kill_check(acct, risk):
    """True once when equity breaks the drawdown or loss limit (the kill switch fires)."""
    if acct[KILLED] > 0.0:
        return False
    if acct[PEAK_EQUITY] - acct[EQUITY] > risk[R_MAX_DD] or -acct[EQUITY] > risk[R_MAX_LOSS]:
        acct[KILLED] = 1.0
        return True
    return False


@nb.njit(cache=True)
def rate_allows(action_times, now):
    """Sliding 1 s window: ``action_times`` is a ring of the last len() action times (-1 = free)."""
    if len(action_times) == 0:
        return True
    oldest = action_times[0]
    return oldest < 0 or now - oldest >= 1_000_000_000


@nb.njit(cache=True)
def rate_take(action_times, now):
    n = len(action_times)
    for i in range(n - 1):
        action_times[i] = action_times[i + 1]
    if n:
        action_times[n - 1] = now


@nb.njit(cache=True)
def new_order_priority(wanted, n_wanted, idx):
    """Fill ``idx[:n_wanted]`` with wanted-order indexes: bids from the highest price down, then asks
    from the lowest up; stable on ties (insertion sort: small n, no allocation on the hot path)."""
    for i in range(n_wanted):
        idx[i] = i
    for i in range(1, n_wanted):
        j = i
        while j > 0:
            a = idx[j - 1]
            b = idx[j]
            sa = wanted[a, 0] > 0
            sb = wanted[b, 0] > 0
            after = (
                (not sa and sb)
                or (sa and sb and wanted[a, 1] < wanted[b, 1])
                or (not sa and not sb and wanted[a, 1] > wanted[b, 1])
            )
            if not after:
                break
            idx[j - 1], idx[j] = b, a
            j -= 1


@nb.njit(cache=True)
def plan_actions(
    live, n_live, wanted, n_wanted, accepted, execution, action_times, now, tick, rec, counts, plan, order
):
    """Execution Control: reconcile wanted vs live orders into a plan of requests.

    ``plan`` rows: (action, live index or wanted index, side, price, qty, tif). Cancels come first in
    order-id order, then new orders: bids from the highest price down, then asks from the lowest up.
    A live order matches a wanted one with the same side, price tick and quantity; unmatched live
    orders are cancelled (unless they have not rested ``min_rest_ns``); unmatched wanted orders are
    sent unless an order is already live at that side and price (no duplicate levels). Requests over
    the action-rate limit are throttled. Every throttle is recorded. Returns the plan length.
    """
    min_rest = execution[E_MIN_REST]
    post_only = execution[E_POST_ONLY] > 0.0
    for k in range(n_live):
        live[k].matched = False
    # the second half of ``order`` (2 × max wanted) marks matched wanted orders: no allocation per step
    wanted_matched = order[n_wanted : 2 * n_wanted]
    wanted_matched[:] = 0
    for k in range(n_live):
        if live[k].cancel_pending:
            continue
        for i in range(n_wanted):
            if not accepted[i] or wanted_matched[i]:
                continue
            if (
                wanted[i, 0] == live[k].side
                and np.int64(np.rint(wanted[i, 1] / tick)) == live[k].tick
                and abs(wanted[i, 2] - live[k].qty) < 1e-12 * max(1.0, wanted[i, 2])
            ):
                live[k].matched = True
                wanted_matched[i] = 1
                break
    n = 0
    for k in range(n_live):
        if live[k].matched or live[k].cancel_pending:
            continue
        if now - live[k].sent_ts < min_rest:
            record_check(
                rec, counts, TABLE_THROTTLES, now, live[k].order_id, R.RULE_MIN_REST, live[k].side,
                live[k].price, live[k].qty, float(now - live[k].sent_ts), min_rest,
            )  # fmt: skip
            continue
        if not rate_allows(action_times, now):
            record_check(
                rec, counts, TABLE_THROTTLES, now, live[k].order_id, R.RULE_RATE, live[k].side,
                live[k].price, live[k].qty, float(len(action_times)), execution[E_RATE],
            )  # fmt: skip
            continue
        rate_take(action_times, now)
        plan[n, 0] = R.ACTION_CANCEL
        plan[n, 1] = k
        plan[n, 2] = live[k].side
        plan[n, 3] = live[k].price
        plan[n, 4] = live[k].qty
        plan[n, 5] = 0
        n += 1
    # New orders in price priority: bids high to low, then asks low to high (stable on ties).
    new_order_priority(wanted, n_wanted, order)
    for j in range(n_wanted):
        i = order[j]
        if not accepted[i] or wanted_matched[i]:
            continue
        side = wanted[i, 0]
        t = np.int64(np.rint(wanted[i, 1] / tick))
        busy = False
        for k in range(n_live):
            if live[k].side == side and live[k].tick == t:
                busy = True
                break
        for q in range(n):  # also a new order planned in this step at the same level
            if plan[q, 0] == R.ACTION_NEW and plan[q, 2] == side and np.int64(np.rint(plan[q, 3] / tick)) == t:
                busy = True
                break
        if busy:
            record_check(
                rec, counts, TABLE_THROTTLES, now, 0, R.RULE_DUPLICATE, np.int8(side), wanted[i, 1], wanted[i, 2],
                wanted[i, 1], 0.0,
            )  # fmt: skip
            continue
        if not rate_allows(action_times, now):
            record_check(
                rec, counts, TABLE_THROTTLES, now, 0, R.RULE_RATE, np.int8(side), wanted[i, 1], wanted[i, 2],
                float(len(action_times)), execution[E_RATE],
            )  # fmt: skip
            continue
        rate_take(action_times, now)
        plan[n, 0] = R.ACTION_NEW
        plan[n, 1] = i
        plan[n, 2] = side
        plan[n, 3] = wanted[i, 1]
        plan[n, 4] = wanted[i, 2]
        plan[n, 5] = 1.0 if post_only else wanted[i, 3]
        n += 1
    return n


@nb.njit(cache=True)
def append_trades(trade_ts, trades, trade_count, last):
    """Append market trades (hftbacktest event rows) to the view's ring, oldest first."""
    cap = len(trade_ts)
    for i in range(len(last)):
        n = trade_count[0]
        if n == cap:
            for j in range(cap - 1):
                trade_ts[j] = trade_ts[j + 1]
                trades[0, j] = trades[0, j + 1]
                trades[1, j] = trades[1, j + 1]
                trades[2, j] = trades[2, j + 1]
            n = cap - 1
        ev = last[i].ev
        trade_ts[n] = last[i].local_ts
        trades[0, n] = last[i].px
        trades[1, n] = last[i].qty
        trades[2, n] = 1.0 if ev & BUY_FLAG else (-1.0 if ev & SELL_FLAG else 0.0)
        trade_count[0] = n + 1


@nb.njit(cache=True)
def add_live(live, acct, order_id, side, price, qty, tif, now):
    k = np.int64(acct[N_LIVE])
    live[k].order_id = order_id
    live[k].side = side
    live[k].price = price
    live[k].tick = np.int64(np.rint(price / acct[TICK]))
    live[k].qty = qty
    live[k].leaves = qty
    live[k].tif = tif
    live[k].sent_ts = now
    live[k].acked = False
    live[k].cancel_pending = False
    live[k].matched = False
    acct[N_LIVE] = k + 1


@nb.njit(cache=True)
def compact_live(live, acct, ended):
    """Drop ended orders (``ended[k] != 0``), keeping order-id order."""
    n = np.int64(acct[N_LIVE])
    j = 0
    for k in range(n):
        if ended[k] == 0:
            if j != k:
                live[j] = live[k]
            j += 1
    acct[N_LIVE] = j
