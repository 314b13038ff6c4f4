"""The Core Runtime loop: the compiled half of the Venue Adapter, driving hftbacktest.

This is the only compiled code that touches hftbacktest objects, so it cannot be cached (numba refuses
``cache=True`` for functions that use its ctypes pointers) and compiles once per process and strategy.
Everything it decides goes through the cached functions of :mod:`hftlab.runtime.core`.

At each evaluation point (every ``interval_ns`` of event time, or at every feed event / order response):

1. Execution feedback: each of our live orders (in order-id order) is looked up by id in hftbacktest's
   order map — never iterated — and its executed quantity since the last look (from ``leaves_qty``,
   so partial fills are not lost) becomes a fill; fills are applied in canonical order (exchange time,
   then order id) to our own position, cash and fees.
2. State: book top levels (``qty_at_tick``; the ROI vector's ``best_*_qty`` binding bug is avoided),
   recent trades, equity marked at mid; the kill switch is checked.
3. Strategy evaluation, then Risk, then Execution Control, then the requests to the venue.
4. Records: order lifecycle, fills, dispatch, risk rejections, throttles, state series.

The loop returns when the data ends (0), when a record table may not hold one more step (2; the
caller grows the tables), or every ``progress_steps`` steps (3; the caller reports progress); then it is
called again: every piece of state lives in the arrays passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftlab.runtime import core as C
from hftlab.runtime import records as R
from hftlab.runtime.strategy import View

# hftbacktest order statuses and request codes (hftbacktest.order)
_NEW, _EXPIRED, _FILLED, _CANCELED, _PARTIALLY_FILLED, _REJECTED = 1, 2, 3, 4, 5, 6
_REQ_NONE = 0
_LIMIT, _MARKET = 0, 1
_IOC = 3
_EMPTY_BID = np.iinfo(np.int64).min  # hftbacktest's best_bid_tick of an empty side (i64::MIN)
_EMPTY_ASK = np.iinfo(np.int64).max  # hftbacktest's best_ask_tick of an empty side (i64::MAX)
_END_EVENTS = (0, 0, R.CANCELLED, R.EXPIRED, R.VENUE_REJECTED)  # by ``ended`` code

DONE = 0
NEED_ROOM = 2
PROGRESS = 3  #: returned every ``progress_steps`` evaluation steps (0: never); call again to go on


@njit
def _top_levels(depth, best, side, tick, levels_px, levels_qty, max_scan):
    """Fill the top non-empty levels of one side, scanning ticks away from the best price."""
    n = 0
    for j in range(max_scan):
        if n == len(levels_px):
            break
        t = best - j if side > 0 else best + j
        q = depth.bid_qty_at_tick(t) if side > 0 else depth.ask_qty_at_tick(t)
        if q > 0.0:
            levels_px[n] = t * tick
            levels_qty[n] = q
            n += 1
    for j in range(n, len(levels_px)):
        levels_px[j] = np.nan
        levels_qty[j] = np.nan
    return n


@njit
def run_loop(
    hbt,
    evaluate,
    params,
    scratch,
    acct,
    risk,
    execution,
    live,
    action_times,
    wanted,
    plan,
    step_fills,
    book,
    trade_ts,
    trades,
    trade_count,
    order_view,
    mode,
    interval,
    timeout,
    max_scan,
    orders_rec,
    fills_rec,
    dispatch_rec,
    risk_rec,
    throttles_rec,
    state_rec,
    counts,
    room_needed,
    progress_steps,
    ended,
    ended_ts,
    accepted,
    rules,
    order_idx,
):
    tick = acct[C.TICK]
    lot = acct[C.LOT]
    max_live = len(live)
    steps = 0
    while True:
        if progress_steps > 0 and steps >= progress_steps:
            return PROGRESS
        steps += 1
        for t in range(6):
            if (
                counts[t] + room_needed
                > (
                    len(orders_rec),
                    len(fills_rec),
                    len(dispatch_rec),
                    len(risk_rec),
                    len(throttles_rec),
                    len(state_rec),
                )[t]
            ):
                return NEED_ROOM
        if mode == 0:
            r = hbt.elapse(interval)
        else:
            r = hbt.wait_next_feed(True, timeout)
        if r == 1:
            return DONE
        if r != 0 and r != 2 and r != 3:
            return r
        now = hbt.current_timestamp
        depth = hbt.depth(0)
        bid_tick = depth.best_bid_tick
        ask_tick = depth.best_ask_tick
        best_bid = bid_tick * tick if bid_tick != _EMPTY_BID else np.nan
        best_ask = ask_tick * tick if ask_tick != _EMPTY_ASK else np.nan
        mid = (best_bid + best_ask) / 2.0
        spread = best_ask - best_bid

        # 1. execution feedback -> fills in canonical order, lifecycle records
        orders = hbt.orders(0)
        n_live = np.int64(acct[C.N_LIVE])
        ended[:n_live] = 0  # 1 filled, 2 cancelled, 3 expired, 4 rejected: rows written after the fills
        n_fills = 0
        for k in range(n_live):
            oid = live[k].order_id
            if oid not in orders:
                continue
            o = orders.get(oid)
            status = o.status
            if (
                not live[k].acked
                and o.req == _REQ_NONE
                and (status == _NEW or status == _PARTIALLY_FILLED or status == _FILLED)
            ):
                live[k].acked = True
                C.record_order(orders_rec, counts, now, o.exch_timestamp, oid, R.ACKNOWLEDGED, live[k].side,
                               live[k].price, live[k].qty, live[k].leaves, 0)  # fmt: skip
            leaves = 0.0 if status == _FILLED else o.leaves_qty
            if leaves < live[k].leaves - 1e-12 * live[k].qty:
                f = step_fills[n_fills]
                f.local_ts = now
                f.exch_ts = o.exch_timestamp
                f.order_id = oid
                f.side = live[k].side
                px = o.exec_price_tick * tick
                f.price = px if px > 0.0 else live[k].price
                f.qty = live[k].leaves - leaves
                f.maker = o.arr[0].maker  # the Order class has no maker property in 2.4.4
                f.order_price = live[k].price
                f.order_qty = live[k].qty
                live[k].leaves = leaves
                n_fills += 1
            if status == _FILLED:
                ended[k] = 1
            elif status == _CANCELED or status == _EXPIRED or status == _REJECTED:
                ended[k] = 2 if status == _CANCELED else (3 if status == _EXPIRED else 4)
                ended_ts[k] = o.exch_timestamp
        if n_fills > 0:
            idx = C.fill_order(step_fills, n_fills)
            for j in range(n_fills):
                f = step_fills[idx[j]]
                fee = C.apply_fill(acct, f.side, f.price, f.qty, f.maker)
                row = fills_rec[counts[C.TABLE_FILLS]]
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
                row.position = acct[C.POSITION]
                counts[C.TABLE_FILLS] += 1
                # lifecycle: find the order to report executed-so-far and leaves
                for q in range(n_live):
                    if live[q].order_id == f.order_id:
                        ev = R.FILLED if live[q].leaves <= 1e-12 * live[q].qty else R.PARTIALLY_FILLED
                        C.record_order(orders_rec, counts, now, f.exch_ts, f.order_id, ev, f.side, f.order_price,
                                       live[q].qty - live[q].leaves, live[q].leaves, 0)  # fmt: skip
                        break
        for k in range(n_live):  # an order's end comes after the fills it had before ending
            if ended[k] >= 2:
                C.record_order(orders_rec, counts, now, ended_ts[k], live[k].order_id, _END_EVENTS[ended[k]],
                               live[k].side, live[k].price, live[k].qty - live[k].leaves, live[k].leaves, 0)  # fmt: skip
        C.compact_live(live, acct, ended)
        hbt.clear_inactive_orders(0)

        # 2. state: equity, kill switch, book levels, recent trades
        C.mark_equity(acct, mid)
        killed_now = C.kill_check(acct, risk)
        n_live = np.int64(acct[C.N_LIVE])
        if killed_now:
            for k in range(n_live):
                if not live[k].cancel_pending:
                    res = hbt.cancel(0, live[k].order_id, False)
                    live[k].cancel_pending = True
                    C.record_dispatch(dispatch_rec, counts, now, live[k].order_id, R.ACTION_CANCEL, live[k].side,
                                      live[k].price, live[k].leaves, 0, res)  # fmt: skip
                    C.record_order(orders_rec, counts, now, 0, live[k].order_id, R.CANCEL_SENT, live[k].side,
                                   live[k].price, live[k].qty, live[k].leaves, R.RULE_KILL_SWITCH)  # fmt: skip
            pos = acct[C.POSITION]
            if risk[C.R_FLATTEN] > 0.0 and pos != 0.0 and np.isfinite(mid):
                oid = np.uint64(acct[C.NEXT_ORDER_ID])
                acct[C.NEXT_ORDER_ID] += 1.0
                qty = abs(pos)
                if pos > 0:
                    res = hbt.submit_sell_order(0, oid, best_bid, qty, _IOC, _MARKET, False)
                    side = np.int8(-1)
                    px = best_bid
                else:
                    res = hbt.submit_buy_order(0, oid, best_ask, qty, _IOC, _MARKET, False)
                    side = np.int8(1)
                    px = best_ask
                C.record_dispatch(dispatch_rec, counts, now, oid, R.ACTION_FLATTEN, side, px, qty, _IOC, res)
                C.record_order(orders_rec, counts, now, 0, oid, R.SENT, side, px, qty, qty, R.RULE_KILL_SWITCH)
                if res == 0 and n_live < max_live:
                    C.add_live(live, acct, oid, side, px, qty, _IOC, now)
                    n_live += 1
        nb_ = _top_levels(depth, bid_tick, 1, tick, book[0], book[1], max_scan) if bid_tick != _EMPTY_BID else 0
        na_ = _top_levels(depth, ask_tick, -1, tick, book[2], book[3], max_scan) if ask_tick != _EMPTY_ASK else 0
        if bid_tick == _EMPTY_BID:
            book[0, :] = np.nan
            book[1, :] = np.nan
        if ask_tick == _EMPTY_ASK:
            book[2, :] = np.nan
            book[3, :] = np.nan
        last = hbt.last_trades(0)
        if len(last) > 0:
            C.append_trades(trade_ts, trades, trade_count, last)
            hbt.clear_last_trades(0)
        for k in range(n_live):
            order_view[0, k] = live[k].side
            order_view[1, k] = live[k].price
            order_view[2, k] = live[k].leaves

        # 3. strategy -> Risk -> Execution Control -> venue
        if acct[C.KILLED] == 0.0:
            view = View(
                now, best_bid, best_ask, mid, tick, lot, book[0], book[1], book[2], book[3], nb_, na_,
                trade_ts, trades[0], trades[1], trades[2], trade_count[0],
                acct[C.POSITION], acct[C.CASH], acct[C.EQUITY], acct[C.FEES],
                order_view[0], order_view[1], order_view[2], n_live,
            )  # fmt: skip
            n_wanted = evaluate(view, params, scratch, wanted)
            if n_wanted > len(wanted):
                n_wanted = len(wanted)
            C.risk_check(acct, risk, wanted, n_wanted, accepted, rules, mid, now, risk_rec, counts)
            for i in range(n_wanted):
                if not accepted[i]:
                    side_i = np.int8(wanted[i, 0]) if abs(wanted[i, 0]) <= 1 else np.int8(0)
                    C.record_order(orders_rec, counts, now, 0, 0, R.RISK_REJECTED, side_i, wanted[i, 1], wanted[i, 2],
                                   wanted[i, 2], rules[i])  # fmt: skip
            n_plan = C.plan_actions(live, n_live, wanted, n_wanted, accepted, execution, action_times, now, tick,
                                    throttles_rec, counts, plan, order_idx)  # fmt: skip
            for j in range(n_plan):
                action = np.int64(plan[j, 0])
                side = np.int8(plan[j, 2])
                px = plan[j, 3]
                qty = plan[j, 4]
                if action == R.ACTION_CANCEL:
                    lk = np.int64(plan[j, 1])
                    res = hbt.cancel(0, live[lk].order_id, False)
                    live[lk].cancel_pending = True
                    C.record_dispatch(dispatch_rec, counts, now, live[lk].order_id, R.ACTION_CANCEL, side, px,
                                      live[lk].leaves, 0, res)  # fmt: skip
                    C.record_order(orders_rec, counts, now, 0, live[lk].order_id, R.CANCEL_SENT, side, px, qty,
                                   live[lk].leaves, 0)  # fmt: skip
                else:
                    if np.int64(acct[C.N_LIVE]) >= max_live:
                        C.record_check(throttles_rec, counts, C.TABLE_THROTTLES, now, 0, R.RULE_MAX_OPEN_ORDERS,
                                       side, px, qty, float(max_live), float(max_live))  # fmt: skip
                        continue
                    tif = np.uint8(plan[j, 5])
                    oid = np.uint64(acct[C.NEXT_ORDER_ID])
                    acct[C.NEXT_ORDER_ID] += 1.0
                    if side > 0:
                        res = hbt.submit_buy_order(0, oid, px, qty, tif, _LIMIT, False)
                    else:
                        res = hbt.submit_sell_order(0, oid, px, qty, tif, _LIMIT, False)
                    C.record_dispatch(dispatch_rec, counts, now, oid, R.ACTION_NEW, side, px, qty, tif, res)
                    if res == 0:
                        C.add_live(live, acct, oid, side, px, qty, tif, now)
                        C.record_order(orders_rec, counts, now, 0, oid, R.SENT, side, px, qty, qty, 0)
                    else:
                        C.record_order(orders_rec, counts, now, 0, oid, R.VENUE_REJECTED, side, px, qty, qty, 0)
        C.record_state(state_rec, counts, acct, now, mid, spread, np.int64(acct[C.N_LIVE]))
