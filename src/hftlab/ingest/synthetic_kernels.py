"""The numba kernels of the synthetic market generator (:mod:`hftlab.ingest.synthetic`).

:func:`_simulate` is the compiled core: it runs the model described in :mod:`hftlab.ingest.synthetic`
and writes the rows into caller-provided buffers. The kernels are compiled with ``cache=True``, so the
compiled code is reused across processes (numba keys the cache by this module's file).
"""

# numba compiles the legacy ``np.random`` functions against its own seeded generator, not Generator objects.
# ruff: noqa: NPY002
from __future__ import annotations

import math

import numpy as np

from hftlab.jit import engine_jit

#: Largest quantity of one level or order, in lots (keeps the lognormal tail far from int64 overflow).
MAX_LOTS = 1_000_000_000_000


# --- the compiled core --------------------------------------------------------------------------------
# Output buffers are tuples of columns: a feed's (exch_ts, local_ts, side, price, qty), the snapshot's
# (kind, side, price, qty), the regimes' (start_ts, volatile). ``conv`` = (tick_num, tick_den, lot_num,
# lot_den) turns integer ticks and lots into prices and quantities.


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
def _simulate(seed, span, p0, levels, book, sizes, flow, regime, latency, conv, snap, depth, trades, regimes):
    """Simulate the book; fill the output buffers as far as they reach and return the rows needed.

    ``span`` = (start_ns, end_ns); ``book`` = (sparsity, level_log_median); ``sizes`` = (limit_log_median,
    trade_log_median, sigma); ``flow`` = (events/s, near_level_p, trade_p, improve_p, sign_persistence);
    ``regime`` = (calm_mean_ns, volatile_mean_ns, rate_mult, trade_mult, log size_mult); ``latency`` =
    (base_ns, jitter_ns). Returns (snapshot rows, snapshot local_ts, depth rows, trade rows, regime
    entries, events). Writes stop at each buffer's end but counting goes on, so the caller can size
    exactly and run again.
    """
    np.random.seed(seed)
    start_ns, end_ns = span
    sparsity, level_log = book
    limit_log, trade_log, sigma = sizes
    rate, near_p, trade_p, improve_p, persistence = flow
    calm_mean_ns, vol_mean_ns, vol_rate, vol_trade, vol_size_log = regime
    lat_base, lat_jitter = latency
    level_target = math.exp(level_log)
    L = levels
    tk = np.zeros((2, L + 1), dtype=np.int64)  # ticks; side 0 = bids (best first, descending), 1 = asks
    qt = np.zeros((2, L + 1), dtype=np.int64)  # lots
    cnt = np.zeros(2, dtype=np.int64)
    deeper = (-1, 1)
    book_side = (1, -1)  # Side.BID, Side.ASK
    tk[0, 0] = p0
    tk[1, 0] = p0 + 1
    for s in range(2):
        for k in range(L):
            if k > 0:
                p = tk[s, k - 1] + deeper[s] * _gap(sparsity)
                if p < 1:
                    break
                tk[s, k] = p
            qt[s, k] = _lots(level_log, sigma)
            cnt[s] = k + 1

    # initial snapshot: CLEAR per side up to its deepest level, then every level
    snap_lt = start_ns + _latency(lat_base, lat_jitter)
    ns = 0
    for s in range(2):
        snap[0][ns] = 3
        snap[1][ns] = book_side[s]
        snap[2][ns] = tk[s, cnt[s] - 1] * conv[0] / conv[1]
        snap[3][ns] = 0.0
        ns += 1
    for s in range(2):
        for k in range(cnt[s]):
            snap[0][ns] = 4
            snap[1][ns] = book_side[s]
            snap[2][ns] = tk[s, k] * conv[0] / conv[1]
            snap[3][ns] = qt[s, k] * conv[2] / conv[3]
            ns += 1

    # regime: stationary start, exponential sojourns
    vol = 1 if np.random.random() * (calm_mean_ns + vol_mean_ns) < vol_mean_ns else 0
    nr = 0
    if nr < regimes[0].shape[0]:
        regimes[0][nr] = start_ns
        regimes[1][nr] = vol
    nr += 1
    next_switch = start_ns + 1 + int(np.random.exponential(vol_mean_ns if vol else calm_mean_ns))

    t = start_ns
    local_last = snap_lt
    nd = 0
    ntr = 0
    events = 0
    last_sign = 1
    while True:
        mean_dt = 1e9 / (rate * (vol_rate if vol else 1.0))
        step = int(np.random.exponential(mean_dt) + 0.5)
        if step < 1:
            step = 1
        if t + step >= next_switch and next_switch < end_ns:
            # the regime changes first; by memorylessness the next arrival is drawn afresh
            t = next_switch
            vol = 1 - vol
            if nr < regimes[0].shape[0]:
                regimes[0][nr] = t
                regimes[1][nr] = vol
            nr += 1
            next_switch = t + 1 + int(np.random.exponential(vol_mean_ns if vol else calm_mean_ns))
            continue
        t += step
        if t >= end_ns:
            break
        events += 1
        lt = t + _latency(lat_base, lat_jitter)
        if lt < local_last:
            lt = local_last
        local_last = lt

        if tk[1, 0] - tk[0, 0] > 1 and np.random.random() < improve_p:
            # a new best level one tick inside the spread; drop this side's deepest level first
            s = 0 if np.random.random() < 0.5 else 1
            if cnt[s] >= L:
                nd = _emit(depth, nd, t, lt, book_side[s], tk[s, cnt[s] - 1], 0, conv)
                cnt[s] -= 1
            for i in range(cnt[s], 0, -1):
                tk[s, i] = tk[s, i - 1]
                qt[s, i] = qt[s, i - 1]
            tk[s, 0] = tk[s, 1] - deeper[s]
            qt[s, 0] = _lots(limit_log, sigma)
            cnt[s] += 1
            nd = _emit(depth, nd, t, lt, book_side[s], tk[s, 0], qt[s, 0], conv)
            continue

        if np.random.random() < (trade_p * vol_trade if vol else trade_p):
            # market order: consume from the best opposite level outwards
            if np.random.random() < persistence:
                sign = last_sign
            else:
                sign = 1 if np.random.random() < 0.5 else -1
            last_sign = sign
            s = 1 if sign == 1 else 0  # a buy hits the asks
            remaining = _lots(trade_log + (vol_size_log if vol else 0.0), sigma)
            while remaining > 0:
                q = qt[s, 0]
                p = tk[s, 0]
                if remaining >= q and cnt[s] > 1:
                    ntr = _emit(trades, ntr, t, lt, sign, p, q, conv)
                    nd = _emit(depth, nd, t, lt, book_side[s], p, 0, conv)
                    _remove(tk, qt, cnt, s, 0)
                    remaining -= q
                else:
                    fill = remaining if remaining < q else q - 1  # never empty the last level
                    if fill > 0:
                        qt[s, 0] = q - fill
                        ntr = _emit(trades, ntr, t, lt, sign, p, fill, conv)
                        nd = _emit(depth, nd, t, lt, book_side[s], p, q - fill, conv)
                    remaining = 0
        else:
            # limit order add or cancel at a level near the top
            s = 0 if np.random.random() < 0.5 else 1
            k = 0
            while k < cnt[s] - 1 and np.random.random() >= near_p:
                k += 1
            q = qt[s, k]
            size = _lots(limit_log, sigma)
            if np.random.random() * (q + level_target) < q:
                if size < q:
                    qt[s, k] = q - size
                    nd = _emit(depth, nd, t, lt, book_side[s], tk[s, k], q - size, conv)
                elif cnt[s] > 1:
                    nd = _emit(depth, nd, t, lt, book_side[s], tk[s, k], 0, conv)
                    _remove(tk, qt, cnt, s, k)
                elif q > 1:
                    qt[s, k] = 1
                    nd = _emit(depth, nd, t, lt, book_side[s], tk[s, k], 1, conv)
            else:
                qt[s, k] = min(q + size, MAX_LOTS)
                nd = _emit(depth, nd, t, lt, book_side[s], tk[s, k], qt[s, k], conv)

        # refill the far end so each side keeps `levels` levels (bids stay above 0)
        for s in range(2):
            while cnt[s] < L:
                p = tk[s, cnt[s] - 1] + deeper[s] * _gap(sparsity)
                if p < 1:
                    break
                tk[s, cnt[s]] = p
                qt[s, cnt[s]] = _lots(level_log, sigma)
                nd = _emit(depth, nd, t, lt, book_side[s], p, qt[s, cnt[s]], conv)
                cnt[s] += 1
    return ns, snap_lt, nd, ntr, nr, events
