"""Compiled kernels of the Historical Input Feeder (pure numpy + numba, cached on disk).

They take plain column arrays, never hftbacktest objects, so ``cache=True`` works and a second
process loads them instead of compiling. No fastmath: results must be bit-identical everywhere.
"""

from __future__ import annotations

import heapq

import numpy as np

from hftlab.hftbacktest_types import (
    ADD_ORDER_EVENT,
    BUY_EVENT,
    CANCEL_ORDER_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    LOCAL_EVENT,
    MODIFY_ORDER_EVENT,
    SELL_EVENT,
)
from hftlab.jit import engine_jit


@engine_jit
def scatter_rows(out, pos, exch_ts, local_ts, kind, side, price, qty, order_id):
    """Write canonical rows into the event array at positions ``pos``, flagged EXCH|LOCAL.

    A canonical ``CANCEL`` that leaves quantity (a partial cancel) is hftbacktest's ``MODIFY`` to that
    quantity at the same price (which keeps the order's queue place); one that leaves 0 is its ``CANCEL``.
    """
    both = EXCH_EVENT | LOCAL_EVENT
    n = len(out)
    for i in range(len(pos)):
        j = pos[i]
        if j < 0 or j >= n:  # positions come from stored ranks: never write outside the array
            raise IndexError("a row's rank places it outside the fed array")
        k = np.uint64(MODIFY_ORDER_EVENT) if kind[i] == CANCEL_ORDER_EVENT and qty[i] > 0.0 else np.uint64(kind[i])
        ev = k | both
        if side[i] > 0:
            ev |= BUY_EVENT
        elif side[i] < 0:
            ev |= SELL_EVENT
        out[j]["ev"] = ev
        out[j]["exch_ts"] = exch_ts[i]
        out[j]["local_ts"] = local_ts[i]
        out[j]["px"] = price[i]
        out[j]["qty"] = qty[i]
        out[j]["order_id"] = order_id[i]
        out[j]["ival"] = 0
        out[j]["fval"] = 0.0


@engine_jit
def rank_positions(seqs, lo, hi):
    """Dense rank of every selected ``seq`` in [lo, hi] (selected rows may leave gaps)."""
    mark = np.zeros(hi - lo + 1, dtype=np.int64)
    for s in seqs:
        if s < lo or s > hi:
            raise IndexError("a rank outside [lo, hi]")
        mark[s - lo] = 1
    acc = 0
    for k in range(len(mark)):
        if mark[k]:
            mark[k] = acc
            acc += 1
    out = np.empty(len(seqs), dtype=np.int64)
    for i in range(len(seqs)):
        out[i] = mark[seqs[i] - lo]
    return out


@engine_jit
def local_order_is_monotone(events):
    for i in range(1, len(events)):
        if events[i]["local_ts"] < events[i - 1]["local_ts"]:
            return False
    return True


@engine_jit
def split_exch_local(events, local_order):
    """Processing Order when exchange and local order disagree.

    ``events`` are in exchange order; ``local_order`` is a stable argsort of their local timestamps.
    A row that sits at the same place in both orders keeps EXCH|LOCAL; any other row is emitted twice:
    an EXCH-only copy at its exchange-order place and a LOCAL-only copy at its local-order place. This is
    hftbacktest's ``correct_event_order`` rule, but rows are matched by identity (not by timestamps),
    and the kernel is cacheable.
    """
    n = len(events)
    out = np.empty(2 * n, dtype=events.dtype)
    flags = EXCH_EVENT | LOCAL_EVENT
    keep = ~flags
    o = 0
    e = 0
    loc = 0
    while e < n or loc < n:
        if e < n and loc < n:
            li = local_order[loc]
            if e == li:
                out[o] = events[e]
                e += 1
                loc += 1
            elif events[e]["exch_ts"] < events[li]["exch_ts"] or (
                events[e]["exch_ts"] == events[li]["exch_ts"] and events[e]["local_ts"] < events[li]["local_ts"]
            ):
                out[o] = events[e]
                out[o]["ev"] = (events[e]["ev"] & keep) | EXCH_EVENT
                e += 1
            else:
                out[o] = events[li]
                out[o]["ev"] = (events[li]["ev"] & keep) | LOCAL_EVENT
                loc += 1
        elif e < n:
            out[o] = events[e]
            out[o]["ev"] = (events[e]["ev"] & keep) | EXCH_EVENT
            e += 1
        else:
            li = local_order[loc]
            out[o] = events[li]
            out[o]["ev"] = (events[li]["ev"] & keep) | LOCAL_EVENT
            loc += 1
        o += 1
    return out[:o].copy()


@engine_jit
def replay_book(kind, side, price, qty, tick_size):
    """Replay book rows (in Processing Order) and return the rows that set the final levels.

    Returns (bid_rows, ask_rows): indexes of the rows holding each remaining level, bids best-first
    (descending price), asks best-first (ascending). DEPTH and SNAPSHOT set a level (qty 0 removes
    it); CLEAR removes one side's levels from the best price through ``price``, as hftbacktest's depth
    does. Levels are keyed by integer tick; iteration order of the maps never reaches the output.
    """
    bids = {np.int64(0): np.int64(0)}
    asks = {np.int64(0): np.int64(0)}
    del bids[np.int64(0)]
    del asks[np.int64(0)]
    for i in range(len(kind)):
        t = np.int64(np.rint(price[i] / tick_size))
        book = bids if side[i] > 0 else asks
        k = kind[i]
        if k == DEPTH_EVENT or k == DEPTH_SNAPSHOT_EVENT:
            if qty[i] > 0.0:
                book[t] = np.int64(i)
            elif t in book:
                del book[t]
        elif k == DEPTH_CLEAR_EVENT:
            doomed = []
            for level in book:
                if (side[i] > 0 and level >= t) or (side[i] < 0 and level <= t):
                    doomed.append(level)
            for level in doomed:
                del book[level]
    return _levels(bids, True), _levels(asks, False)


@engine_jit
def _levels(book, descending):
    ticks = np.empty(len(book), dtype=np.int64)
    j = 0
    for level in book:
        ticks[j] = level
        j += 1
    ordered = np.sort(ticks)
    n = len(ordered)
    rows = np.empty(n, dtype=np.int64)
    for j in range(n):
        rows[j] = book[ordered[n - 1 - j] if descending else ordered[j]]
    return rows


@engine_jit
def clean_cut(events, next_min_local):
    """The largest ``p`` such that feeding ``events[:p]`` apart from what follows cannot change the
    Processing Order: every row before ``p`` is earlier than every row after it in exchange time (strictly)
    and in local time (strictly), where "after" is ``events[p:]`` and a next chunk whose smallest local
    timestamp is ``next_min_local``. Then :func:`split_exch_local` of the two sides, concatenated, equals
    its result on the whole. 0 when no such cut exists."""
    n = len(events)
    prefix_max = np.empty(n, dtype=np.int64)
    running = np.iinfo(np.int64).min
    for i in range(n):
        if events[i]["local_ts"] > running:
            running = events[i]["local_ts"]
        prefix_max[i] = running
    suffix_min = next_min_local
    for p in range(n, 0, -1):
        if p < n:
            if events[p]["local_ts"] < suffix_min:
                suffix_min = events[p]["local_ts"]
            if events[p - 1]["exch_ts"] >= events[p]["exch_ts"]:
                continue
        if prefix_max[p - 1] < suffix_min:
            return p
    return 0


@engine_jit
def book_px_range(events, lo, hi):
    """(min, max) of book prices (depth, clear, snapshot, bbo rows; L3 add and modify rows) in ``events``,
    folded into [lo, hi]."""
    for i in range(len(events)):
        k = events[i]["ev"] & np.uint64(0xFF)
        if (
            k == DEPTH_EVENT
            or k == DEPTH_CLEAR_EVENT
            or k == DEPTH_SNAPSHOT_EVENT
            or k == DEPTH_BBO_EVENT
            or k == ADD_ORDER_EVENT
            or k == MODIFY_ORDER_EVENT
        ):
            if k == DEPTH_CLEAR_EVENT and events[i]["ev"] & (BUY_EVENT | SELL_EVENT) == 0:
                continue  # an L3 clear of both sides: its price means nothing
            px = events[i]["px"]
            if px < lo:
                lo = px
            if px > hi:
                hi = px
    return lo, hi


@engine_jit
def resting_orders(kind, side, price, qty, order_id, tick_size):
    """Replay order-by-order rows (canonical kinds, Processing Order) and return the orders resting at
    the end, in queue priority: ``rows[i]`` is the row holding order ``i``'s current side, price and
    quantity, sorted by the time it took its place in the queue.

    Queue places follow hftbacktest's L3 FIFO model: an ADD takes the back of its level; a MODIFY keeps
    the order's place when the price is the same and the quantity does not grow, else sends it to the
    back; a CANCEL leaving quantity (a partial cancel) keeps it; a CLEAR removes a side (0: both).
    """
    state = {np.uint64(0): np.int64(0)}
    place = {np.uint64(0): np.int64(0)}
    del state[np.uint64(0)]
    del place[np.uint64(0)]
    for i in range(len(kind)):
        k = kind[i]
        oid = order_id[i]
        if k == ADD_ORDER_EVENT:
            state[oid] = np.int64(i)
            place[oid] = np.int64(i)
        elif k == CANCEL_ORDER_EVENT:
            if oid in state:
                if qty[i] > 0.0:
                    state[oid] = np.int64(i)
                else:
                    del state[oid]
                    del place[oid]
        elif k == MODIFY_ORDER_EVENT:
            if oid in state:
                was = state[oid]
                same = np.rint(price[was] / tick_size) == np.rint(price[i] / tick_size)
                if not same or qty[i] > qty[was]:
                    place[oid] = np.int64(i)
                state[oid] = np.int64(i)
        elif k == DEPTH_CLEAR_EVENT:
            doomed = []
            for o in state:
                if side[i] == 0 or side[state[o]] == side[i]:
                    doomed.append(o)
            for o in doomed:
                del state[o]
                del place[o]
    n = len(state)
    rows = np.empty(n, dtype=np.int64)
    prio = np.empty(n, dtype=np.int64)
    j = 0
    for o in state:
        rows[j] = state[o]
        prio[j] = place[o]
        j += 1
    return rows[np.argsort(prio, kind="mergesort")]


@engine_jit
def crossed_messages(exch_ts, local_ts, kind, side, price, qty, tick_size):
    """Replay book rows (in Processing Order) and count the messages after which the book is crossed or
    locked (best bid >= best ask), judged once a message is whole (rows sharing exchange and local time),
    from the first snapshot row on (before it the book is not known). Returns (count, index of the last
    row of the first such message, or -1). Levels keyed by integer tick; bests kept in lazy heaps."""
    bids = {np.int64(0): 0.0}
    asks = {np.int64(0): 0.0}
    del bids[np.int64(0)]
    del asks[np.int64(0)]
    bid_heap = [np.int64(0)]  # negated ticks: a max-heap
    ask_heap = [np.int64(0)]
    bid_heap.pop()
    ask_heap.pop()
    started = False
    count = 0
    first = -1
    n = len(kind)
    for i in range(n):
        k = kind[i]
        if k == DEPTH_SNAPSHOT_EVENT:
            started = True
        t = np.int64(np.rint(price[i] / tick_size))
        is_bid = side[i] > 0
        if k == DEPTH_EVENT or k == DEPTH_SNAPSHOT_EVENT:
            if is_bid:
                if qty[i] > 0.0:
                    bids[t] = qty[i]
                    heapq.heappush(bid_heap, -t)
                elif t in bids:
                    del bids[t]
            else:
                if qty[i] > 0.0:
                    asks[t] = qty[i]
                    heapq.heappush(ask_heap, t)
                elif t in asks:
                    del asks[t]
        elif k == DEPTH_CLEAR_EVENT:
            book = bids if is_bid else asks
            doomed = []
            for level in book:
                if (is_bid and level >= t) or ((not is_bid) and level <= t):
                    doomed.append(level)
            for level in doomed:
                del book[level]
        if not started or (i + 1 < n and exch_ts[i + 1] == exch_ts[i] and local_ts[i + 1] == local_ts[i]):
            continue
        while len(bid_heap) > 0 and -bid_heap[0] not in bids:
            heapq.heappop(bid_heap)
        while len(ask_heap) > 0 and ask_heap[0] not in asks:
            heapq.heappop(ask_heap)
        if len(bid_heap) > 0 and len(ask_heap) > 0 and -bid_heap[0] >= ask_heap[0]:
            count += 1
            if first < 0:
                first = i
    return count, first
