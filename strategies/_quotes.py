"""Quote emission shared by the market makers: a bid/ask decision (in ticks) as the strategy's output rows.

Not a strategy: the leading underscore keeps it out of the registered strategies. A strategy imports it by
its plain name (``from _quotes import post_quotes``); the loader serves it from the strategy's own folder
and hashes it into the strategy's source key, so an edit here recompiles every strategy using it.
"""

from __future__ import annotations

from numba import njit

GTX = 1.0  #: hftbacktest time in force: post-only


@njit(cache=True)
def post_quotes(out, bid, ask, tick_size, order_qty, position, max_position):
    """Write one post-only (GTX) order of ``order_qty`` per side into ``out``: a bid at ``bid`` ticks, then an
    ask at ``ask`` ticks; returns how many rows were written.

    A side is quoted only if filling it keeps ``|position| <= max_position`` (to 1e-9 of ``order_qty``),
    its price is at least one tick, and ``out`` has a row left.
    """
    slack = 1e-9 * order_qty
    n = 0
    if position + order_qty <= max_position + slack and bid >= 1.0 and n < out.shape[0]:
        out[n, 0] = 1.0
        out[n, 1] = bid * tick_size
        out[n, 2] = order_qty
        out[n, 3] = GTX
        n += 1
    if position - order_qty >= -max_position - slack and ask >= 1.0 and n < out.shape[0]:
        out[n, 0] = -1.0
        out[n, 1] = ask * tick_size
        out[n, 2] = order_qty
        out[n, 3] = GTX
        n += 1
    return n
