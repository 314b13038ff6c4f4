"""The numba kernels of the synthetic market generator (:mod:`hftlab.ingest.synthetic`).

:func:`_simulate` is the compiled core: it runs the model described in :mod:`hftlab.ingest.synthetic`
and writes the rows into caller-provided buffers. The kernels are compiled with ``cache=True``, so the
compiled code is reused across processes (numba keys the cache by this module's file).
"""

# numba compiles the legacy ``np.random`` functions against its own seeded generator, not Generator objects.
# ruff: noqa: NPY002
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hftlab.jit import engine_jit

#: Largest quantity of one level or order, in lots (keeps the lognormal tail far from int64 overflow).
MAX_LOTS = 1_000_000_000_000
#: Per book side (0 = bids, 1 = asks): the tick step towards deeper levels, and the row's Side value.
_DEEPER = (-1, 1)
_BOOK_SIDE = (1, -1)


class KernelParams(NamedTuple):
    """The scalar inputs of :func:`_simulate`, derived from :class:`~hftlab.ingest.synthetic.SynthParams`.

    Times are in ns, prices in ticks; ``*_log`` fields are natural logs (of median lots, or of the volatile
    regime's size multiplier).
    """

    start_ns: int
    end_ns: int
    p0: int  #: initial best bid, ticks (the best ask is one tick above)
    levels: int
    sparsity: float
    level_log: float
    limit_log: float
    trade_log: float
    sigma: float
    rate: float  #: market events per second in the calm regime
    near_p: float
    trade_p: float
    improve_p: float
    persistence: float
    calm_mean_ns: float
    vol_mean_ns: float
    vol_rate: float
    vol_trade: float
    vol_size_log: float
    lat_base: int
    lat_jitter: int
    conv: tuple[float, float, float, float]  #: (tick_num, tick_den, lot_num, lot_den)


# --- the compiled core --------------------------------------------------------------------------------
# Output buffers are tuples of columns: a feed's (exch_ts, local_ts, side, price, qty), the snapshot's
# (kind, side, price, qty), the regimes' (start_ts, volatile). ``conv`` = (tick_num, tick_den, lot_num,
# lot_den) turns integer ticks and lots into prices and quantities. The book is (ticks, lots, level counts):
# ticks and lots are (2, levels + 1) arrays, side 0 = bids (best first, descending), 1 = asks.


@engine_jit
def _lots(log_median: float, sigma: float) -> int:
    """A lognormal size in whole lots, at least 1."""
    x = math.exp(log_median + sigma * np.random.standard_normal())
    if x > MAX_LOTS:
        return MAX_LOTS
    n = int(x + 0.5)
    return n if n >= 1 else 1


@engine_jit
def _gap(sparsity: float) -> int:
    """Ticks between a level and the next deeper one: 1, plus 1 with probability ``sparsity``, repeatedly."""
    g = 1
    while np.random.random() < sparsity:
        g += 1
    return g


@engine_jit
def _latency(base: int, jitter: int) -> int:
    if jitter > 0:
        return base + int(np.random.exponential(float(jitter)) + 0.5)
    return base


@engine_jit
def _emit(buf, n, t, lt, side, ticks, lots, conv):
    """Write one row at ``n`` if there is room; always return ``n + 1`` (rows needed are counted)."""
    if n < buf[0].shape[0]:
        buf[0][n] = t
        buf[1][n] = lt
        buf[2][n] = side
        buf[3][n] = ticks * conv[0] / conv[1]
        buf[4][n] = lots * conv[2] / conv[3]
    return n + 1


@engine_jit
def _remove(tk, qt, cnt, s, k):
    """Remove level ``k`` of side ``s``; deeper levels move up."""
    for i in range(k, cnt[s] - 1):
        tk[s, i] = tk[s, i + 1]
        qt[s, i] = qt[s, i + 1]
    cnt[s] -= 1


@engine_jit
def _initial_book(m):
    """The starting book: ``m.levels`` levels per side, best bid ``m.p0``, best ask one tick above."""
    L = m.levels
    tk = np.zeros((2, L + 1), dtype=np.int64)
    qt = np.zeros((2, L + 1), dtype=np.int64)
    cnt = np.zeros(2, dtype=np.int64)
    tk[0, 0] = m.p0
    tk[1, 0] = m.p0 + 1
    for s in range(2):
        for k in range(L):
            if k > 0:
                p = tk[s, k - 1] + _DEEPER[s] * _gap(m.sparsity)
                if p < 1:
                    break
                tk[s, k] = p
            qt[s, k] = _lots(m.level_log, m.sigma)
            cnt[s] = k + 1
    return tk, qt, cnt


@engine_jit
def _write_snapshot(snap, book, conv):
    """Write the snapshot: a CLEAR per side up to its deepest level, then every level; return its rows."""
    tk, qt, cnt = book
    ns = 0
    for s in range(2):
        snap[0][ns] = 3  # Kind.CLEAR
        snap[1][ns] = _BOOK_SIDE[s]
        snap[2][ns] = tk[s, cnt[s] - 1] * conv[0] / conv[1]
        snap[3][ns] = 0.0
        ns += 1
    for s in range(2):
        for k in range(cnt[s]):
            snap[0][ns] = 4  # Kind.SNAPSHOT
            snap[1][ns] = _BOOK_SIDE[s]
            snap[2][ns] = tk[s, k] * conv[0] / conv[1]
            snap[3][ns] = qt[s, k] * conv[2] / conv[3]
            ns += 1
    return ns


@engine_jit
def _enter_regime(m, regimes, nr, t, vol):
    """Record regime entry ``nr`` (if there is room) and draw when it ends: (``nr + 1``, next switch)."""
    if nr < regimes[0].shape[0]:
        regimes[0][nr] = t
        regimes[1][nr] = vol
    return nr + 1, t + 1 + int(np.random.exponential(m.vol_mean_ns if vol else m.calm_mean_ns))


@engine_jit(forceinline=True)
def _improve(m, book, depth, nd, t, lt):
    """A new best level one tick inside the spread; the side's deepest level drops first if it is full."""
    tk, qt, cnt = book
    s = 0 if np.random.random() < 0.5 else 1
    if cnt[s] >= m.levels:
        nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], tk[s, cnt[s] - 1], 0, m.conv)
        cnt[s] -= 1
    for i in range(cnt[s], 0, -1):
        tk[s, i] = tk[s, i - 1]
        qt[s, i] = qt[s, i - 1]
    tk[s, 0] = tk[s, 1] - _DEEPER[s]
    qt[s, 0] = _lots(m.limit_log, m.sigma)
    cnt[s] += 1
    return _emit(depth, nd, t, lt, _BOOK_SIDE[s], tk[s, 0], qt[s, 0], m.conv)


@engine_jit(forceinline=True)
def _market_order(m, book, depth, trades, nd, ntr, t, lt, vol, last_sign):
    """A market order consuming the best opposite levels outwards; return (nd, ntr, its sign)."""
    tk, qt, cnt = book
    if np.random.random() < m.persistence:
        sign = last_sign
    else:
        sign = 1 if np.random.random() < 0.5 else -1
    s = 1 if sign == 1 else 0  # a buy hits the asks
    remaining = _lots(m.trade_log + (m.vol_size_log if vol else 0.0), m.sigma)
    while remaining > 0:
        q = qt[s, 0]
        p = tk[s, 0]
        if remaining >= q and cnt[s] > 1:
            ntr = _emit(trades, ntr, t, lt, sign, p, q, m.conv)
            nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], p, 0, m.conv)
            _remove(tk, qt, cnt, s, 0)
            remaining -= q
        else:
            fill = remaining if remaining < q else q - 1  # never empty the last level
            if fill > 0:
                qt[s, 0] = q - fill
                ntr = _emit(trades, ntr, t, lt, sign, p, fill, m.conv)
                nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], p, q - fill, m.conv)
            remaining = 0
    return nd, ntr, sign


@engine_jit(forceinline=True)
def _limit_order(m, book, depth, nd, t, lt, level_target):
    """A limit order add or cancel at a level near the top (``level_target``: median level lots); return ``nd``."""
    tk, qt, cnt = book
    s = 0 if np.random.random() < 0.5 else 1
    k = 0
    while k < cnt[s] - 1 and np.random.random() >= m.near_p:
        k += 1
    q = qt[s, k]
    size = _lots(m.limit_log, m.sigma)
    if np.random.random() * (q + level_target) < q:
        if size < q:
            qt[s, k] = q - size
            nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], tk[s, k], q - size, m.conv)
        elif cnt[s] > 1:
            nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], tk[s, k], 0, m.conv)
            _remove(tk, qt, cnt, s, k)
        elif q > 1:
            qt[s, k] = 1
            nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], tk[s, k], 1, m.conv)
    else:
        qt[s, k] = min(q + size, MAX_LOTS)
        nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], tk[s, k], qt[s, k], m.conv)
    return nd


@engine_jit(forceinline=True)
def _refill(m, book, depth, nd, t, lt):
    """Add levels at the far end so each side keeps ``m.levels`` levels (bids stay above 0); return ``nd``."""
    tk, qt, cnt = book
    for s in range(2):
        while cnt[s] < m.levels:
            p = tk[s, cnt[s] - 1] + _DEEPER[s] * _gap(m.sparsity)
            if p < 1:
                break
            tk[s, cnt[s]] = p
            qt[s, cnt[s]] = _lots(m.level_log, m.sigma)
            nd = _emit(depth, nd, t, lt, _BOOK_SIDE[s], p, qt[s, cnt[s]], m.conv)
            cnt[s] += 1
    return nd


@engine_jit
def _simulate(seed, m, snap, depth, trades, regimes):
    """Simulate the book; fill the output buffers as far as they reach and return the rows needed.

    ``m`` is a :class:`KernelParams`. Returns (snapshot rows, snapshot local_ts, depth rows, trade rows,
    regime entries, events). Writes stop at each buffer's end but counting goes on, so the caller can
    size exactly and run again.
    """
    np.random.seed(seed)
    level_target = math.exp(m.level_log)
    book = _initial_book(m)
    tk = book[0]
    snap_lt = m.start_ns + _latency(m.lat_base, m.lat_jitter)
    ns = _write_snapshot(snap, book, m.conv)
    # regime: stationary start, exponential sojourns
    vol = 1 if np.random.random() * (m.calm_mean_ns + m.vol_mean_ns) < m.vol_mean_ns else 0
    nr, next_switch = _enter_regime(m, regimes, 0, m.start_ns, vol)

    t = m.start_ns
    local_last = snap_lt
    nd = 0
    ntr = 0
    events = 0
    last_sign = 1
    while True:
        mean_dt = 1e9 / (m.rate * (m.vol_rate if vol else 1.0))
        step = int(np.random.exponential(mean_dt) + 0.5)
        if step < 1:
            step = 1
        if t + step >= next_switch and next_switch < m.end_ns:
            # the regime changes first; by memorylessness the next arrival is drawn afresh
            t = next_switch
            vol = 1 - vol
            nr, next_switch = _enter_regime(m, regimes, nr, t, vol)
            continue
        t += step
        if t >= m.end_ns:
            break
        events += 1
        lt = t + _latency(m.lat_base, m.lat_jitter)
        if lt < local_last:
            lt = local_last
        local_last = lt

        if tk[1, 0] - tk[0, 0] > 1 and np.random.random() < m.improve_p:
            nd = _improve(m, book, depth, nd, t, lt)
            continue
        if np.random.random() < (m.trade_p * m.vol_trade if vol else m.trade_p):
            nd, ntr, last_sign = _market_order(m, book, depth, trades, nd, ntr, t, lt, vol, last_sign)
        else:
            nd = _limit_order(m, book, depth, nd, t, lt, level_target)
        nd = _refill(m, book, depth, nd, t, lt)
    return ns, snap_lt, nd, ntr, nr, events
