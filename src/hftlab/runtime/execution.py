"""Execution Control: reconcile the orders the strategy wants with the live ones into venue requests.

A live order matches a wanted one with the same side, price tick and quantity and is left alone;
unmatched live orders are cancelled (unless they have not rested ``min_rest_ns``); unmatched wanted orders
are sent unless an order is already live (or planned) at that side and price. Cancels come first in
order-id order, then new orders in price priority: bids from the highest price down, then asks from the
lowest up. Requests beyond ``max_actions_per_second`` (a sliding second of event time) are throttled.
Every throttle is a row of the ``throttles`` table.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hftlab.hftbacktest_types import GTX
from hftlab.jit import engine_jit
from hftlab.runtime import records as R

NS_PER_SECOND = 1_000_000_000


class ExecutionRules(NamedTuple):
    """Execution Control as the compiled loop reads it (from :class:`hftlab.runtime.config.ExecutionConfig`)."""

    max_actions_per_second: float
    min_rest_ns: int
    post_only: bool


@engine_jit(forceinline=True)
def rate_allows(action_times, now):
    """Sliding 1 s window: ``action_times`` is a ring of the last len() request times (-1 = free)."""
    if len(action_times) == 0:
        return True
    oldest = action_times[0]
    return oldest < 0 or now - oldest >= NS_PER_SECOND


@engine_jit(forceinline=True)
def rate_take(action_times, now):
    n = len(action_times)
    for i in range(n - 1):
        action_times[i] = action_times[i + 1]
    if n:
        action_times[n - 1] = now


@engine_jit(forceinline=True)
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


@engine_jit(forceinline=True)
def _add(plan, n, action, index, side, price, qty, tif):
    row = plan[n]
    row.action = action
    row.index = index
    row.side = side
    row.price = price
    row.qty = qty
    row.tif = tif
    return n + 1


@engine_jit(forceinline=True)
def _match(orders, n_live, n_wanted, tick, wanted_matched):
    """Mark live orders that match a wanted order (same side, price tick, quantity), one to one."""
    live = orders.live
    wanted = orders.wanted
    for k in range(n_live):
        live[k].matched = False
    for k in range(n_live):
        if live[k].cancel_pending:
            continue
        for i in range(n_wanted):
            if not orders.accepted[i] or wanted_matched[i]:
                continue
            if (
                wanted[i, 0] == live[k].side
                and np.int64(np.rint(wanted[i, 1] / tick)) == live[k].tick
                and abs(wanted[i, 2] - live[k].qty) < 1e-12 * max(1.0, wanted[i, 2])
            ):
                live[k].matched = True
                wanted_matched[i] = 1
                break


@engine_jit(forceinline=True)
def _level_busy(orders, n_live, n, side, t, tick):
    """An order is live, or a new one already planned, at this side and price tick."""
    for k in range(n_live):
        if orders.live[k].side == side and orders.live[k].tick == t:
            return True
    for q in range(n):
        p = orders.plan[q]
        if p.action == R.ACTION_NEW and p.side == side and np.int64(np.rint(p.price / tick)) == t:
            return True
    return False


@engine_jit(forceinline=True)
def plan_actions(orders, n_live, n_wanted, rules, now, tick, rec):
    """Reconcile wanted (``orders.wanted[:n_wanted]``, Risk-accepted ones) with live orders into
    ``orders.plan``; returns the plan's length. See the module docstring for the rules."""
    live = orders.live
    wanted = orders.wanted
    plan = orders.plan
    # the second half of order_idx (2 × max wanted) marks matched wanted orders: no allocation per step
    wanted_matched = orders.order_idx[n_wanted : 2 * n_wanted]
    wanted_matched[:] = 0
    _match(orders, n_live, n_wanted, tick, wanted_matched)
    n = 0
    for k in range(n_live):
        row = live[k]
        if row.matched or row.cancel_pending:
            continue
        if now - row.sent_ts < rules.min_rest_ns:
            R.record_check(rec, R.THROTTLES, now, row.order_id, R.RULE_MIN_REST, row.side, row.price, row.qty,
                           float(now - row.sent_ts), float(rules.min_rest_ns))  # fmt: skip
            continue
        if not rate_allows(orders.action_times, now):
            R.record_check(rec, R.THROTTLES, now, row.order_id, R.RULE_RATE, row.side, row.price, row.qty,
                           float(len(orders.action_times)), rules.max_actions_per_second)  # fmt: skip
            continue
        rate_take(orders.action_times, now)
        n = _add(plan, n, R.ACTION_CANCEL, k, row.side, row.price, row.qty, 0)
    new_order_priority(wanted, n_wanted, orders.order_idx)
    for j in range(n_wanted):
        i = orders.order_idx[j]
        if not orders.accepted[i] or wanted_matched[i]:
            continue
        side = np.int8(wanted[i, 0])
        if _level_busy(orders, n_live, n, side, np.int64(np.rint(wanted[i, 1] / tick)), tick):
            R.record_check(rec, R.THROTTLES, now, 0, R.RULE_DUPLICATE, side, wanted[i, 1], wanted[i, 2],
                           wanted[i, 1], 0.0)  # fmt: skip
            continue
        if not rate_allows(orders.action_times, now):
            R.record_check(rec, R.THROTTLES, now, 0, R.RULE_RATE, side, wanted[i, 1], wanted[i, 2],
                           float(len(orders.action_times)), rules.max_actions_per_second)  # fmt: skip
            continue
        rate_take(orders.action_times, now)
        tif = np.uint8(GTX) if rules.post_only else np.uint8(wanted[i, 3])
        n = _add(plan, n, R.ACTION_NEW, i, side, wanted[i, 1], wanted[i, 2], tif)
    return n
