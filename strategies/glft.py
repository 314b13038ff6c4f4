"""GLFT market maker: Guéant–Lehalle–Fernandez-Tapia's closed-form quotes (hftbacktest's GLFT tutorial).

Units: distances, ``k``, ``sigma`` and the quotes are in **ticks**; time in **seconds**. Inventory is
``q = position / order_qty`` (in orders, the model's Δ = 1), and ξ = γ (the original GLFT model):

    c1 = ln(1 + γ/k) / γ
    c2 = sqrt(γ / (2·A·k) · (1 + γ/k)^(k/γ + 1))
    half_spread = c1 + c2·σ/2,   skew = c2·σ
    bid = mid - (half_spread + skew·q),   ask = mid + (half_spread - skew·q)

where order arrivals at distance δ ticks from the mid come at rate λ(δ) = A·exp(-k·δ) per second and
σ is the mid's volatility in ticks per sqrt(second). The bid is floored and the ask ceiled onto the
tick grid (away from the mid; a value within ``EPS`` tick of a grid point counts as on it), and with
``cap_to_book`` the bid is kept at most ``best_ask - tick`` and the ask at least ``best_bid + tick``
(a post-only quote that would cross is rejected by the venue). A side is quoted only if filling it
keeps ``|position| <= max_position``. One post-only (GTX) order of ``order_qty`` per side.

Fitting (``fit_intensity`` / ``fit_sigma``): the window runs from the first evaluation (time t0) to
the first evaluation at or after ``t0 + warmup_ns`` (time t1); nothing is quoted before t1. Over it:

- every market trade with t0 < ts <= t1 (each counted once: the scratch keeps the newest trade time
  seen) is measured from the mid of the evaluation before it arrived, as its distance d in ticks
  towards its aggressor side (``px - mid`` for buys, ``mid - px`` for sells, ``|px - mid|`` when the
  side is unknown). Trades on the wrong side of that mid are skipped. It is counted in histogram bucket
  ``floor(d / bucket_ticks)`` (the last bucket holds everything beyond).
- at t1, λ(δ_i) at each bucket's lower edge δ_i = i·bucket_ticks is the number of trades that reached
  at least δ_i (the histogram's tail sum from bucket i: a quote at δ_i is hit by every such trade),
  divided by T = t1 - t0 seconds; ``ln λ(δ_i) = ln A - k·δ_i`` is fitted by least squares over the
  buckets with a non-zero tail.
- σ² = Σ (Δmid in ticks)² / Σ Δt (seconds) over consecutive evaluations with a two-sided book.

The fit is done once. If it is impossible (fewer than two non-empty tail buckets, k <= 0, no two
evaluations with a mid), ``scratch[STATE]`` is ``FAILED`` and the strategy never quotes.
Trades are read from ``view.trade_*``: the runtime's ``trade_buffer`` must hold a step's trades.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from _quotes import post_quotes
from hftlab.errors import ConfigError

EPS = 1e-9  #: ticks: float noise tolerance when rounding onto the grid or bucketing distances
MAX_BUCKETS = 64

# --- scratch slots (float64; read them after a run or in tests) ---------------------------------
STATE = 0  #: NEW (0) before the first evaluation, WARMING, READY or FAILED
START_HI, START_LO = 1, 2  #: t0 (ns), split in two exact 32-bit halves
SEEN_HI, SEEN_LO = 3, 4  #: newest market trade time counted (ns), split likewise
PREV_MID = 5  #: mid (ticks) of the last evaluation with a two-sided book; NaN before one
PREV_HI, PREV_LO = 6, 7  #: its time (ns)
SUM_DMID2 = 8  #: Σ (Δmid in ticks)² during warm-up
SUM_DT = 9  #: Σ Δt (seconds) of those mid changes
N_COUNTED = 10  #: trades counted in the histogram
A_SLOT = 11  #: A in effect (given or fitted): arrivals per second at distance 0
K_SLOT = 12  #: k in effect (per tick)
SIGMA_SLOT = 13  #: σ in effect (ticks per sqrt(second))
FIT_SECONDS = 14  #: T of the fit window
HIST = 16  #: histogram: scratch[HIST + i] = trades in bucket i
SCRATCH_SIZE = HIST + MAX_BUCKETS

NEW, WARMING, READY, FAILED = 0.0, 1.0, 2.0, -1.0


class Params(NamedTuple):
    gamma: float = 0.05  #: risk aversion (ξ = γ), per tick per order_qty
    A: float = 1.0  #: arrival intensity at the mid, per second (ignored when fit_intensity)
    k: float = 0.5  #: arrival decay, per tick (ignored when fit_intensity)
    sigma: float = 1.0  #: mid volatility, ticks per sqrt(second) (ignored when fit_sigma)
    order_qty: float = 0.01
    max_position: float = 1.0
    cap_to_book: bool = True  #: keep quotes from crossing the book
    fit_intensity: bool = False  #: fit A and k on the warm-up window
    fit_sigma: bool = False  #: estimate σ on the warm-up window
    warmup_ns: int = 0  #: event time of the warm-up window (> 0 when fitting)
    n_buckets: int = 20  #: histogram buckets of trade distances
    bucket_ticks: float = 1.0  #: width of a bucket, ticks


def _finite(p: Params, key: str, low: float, strict: bool) -> None:
    value = getattr(p, key)
    ok = np.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise ConfigError(
            f"strategy.params.{key}: must be a finite number {'>' if strict else '>='} {low:g}, got {value}"
        )


def validate(p: Params) -> None:
    """Invariants, named by key."""
    for key in ("gamma", "order_qty", "max_position", "bucket_ticks"):
        _finite(p, key, 0.0, strict=True)
    if not p.fit_intensity:
        for key in ("A", "k"):
            _finite(p, key, 0.0, strict=True)
    if not p.fit_sigma:
        _finite(p, "sigma", 0.0, strict=False)
    fitting = p.fit_intensity or p.fit_sigma
    if p.warmup_ns < 0 or (fitting and p.warmup_ns == 0):
        need = "> 0 when fit_intensity or fit_sigma is true" if fitting else ">= 0"
        raise ConfigError(f"strategy.params.warmup_ns: must be {need}, got {p.warmup_ns}")
    if not 2 <= p.n_buckets <= MAX_BUCKETS:
        raise ConfigError(f"strategy.params.n_buckets: must be between 2 and {MAX_BUCKETS}, got {p.n_buckets}")


@njit(cache=True)
def _put_ts(scratch, slot, ts):
    scratch[slot] = float(ts >> 32)
    scratch[slot + 1] = float(ts & 0xFFFFFFFF)


@njit(cache=True)
def _get_ts(scratch, slot):
    return (np.int64(scratch[slot]) << 32) + np.int64(scratch[slot + 1])


@njit(cache=True)
def _observe(view, params, scratch):
    """Warm-up bookkeeping of one evaluation: new trades into the histogram, the mid change."""
    seen = _get_ts(scratch, SEEN_HI)
    n = view.n_trades
    first = n
    while first > 0 and view.trade_ts[first - 1] > seen:
        first -= 1
    prev_mid = scratch[PREV_MID]
    if first < n:
        _put_ts(scratch, SEEN_HI, view.trade_ts[n - 1])
        if np.isfinite(prev_mid):
            last = params.n_buckets - 1
            for j in range(first, n):
                d = view.trade_px[j] / view.tick_size - prev_mid
                if view.trade_side[j] < 0.0:
                    d = -d
                elif view.trade_side[j] == 0.0:
                    d = abs(d)
                x = d / params.bucket_ticks + EPS
                if x < 0.0:
                    continue
                b = min(np.int64(np.floor(x)), last)
                scratch[HIST + b] += 1.0
                scratch[N_COUNTED] += 1.0
    if np.isfinite(view.mid):
        mid = 0.5 * (np.rint(view.best_bid / view.tick_size) + np.rint(view.best_ask / view.tick_size))
        if np.isfinite(prev_mid):
            scratch[SUM_DMID2] += (mid - prev_mid) ** 2
            scratch[SUM_DT] += (view.ts - _get_ts(scratch, PREV_HI)) / 1e9
        scratch[PREV_MID] = mid
        _put_ts(scratch, PREV_HI, view.ts)


@njit(cache=True)
def _fit(params, scratch, seconds):
    """Fit A, k (tail counts per second vs bucket edge) and σ into their slots; False if impossible."""
    scratch[FIT_SECONDS] = seconds
    if params.fit_intensity:
        nb = params.n_buckets
        x = np.empty(nb)
        y = np.empty(nb)
        m = 0
        tail = 0.0
        for i in range(nb - 1, -1, -1):
            tail += scratch[HIST + i]
            if tail > 0.0:
                x[m] = i * params.bucket_ticks
                y[m] = np.log(tail / seconds)
                m += 1
        if m < 2:
            return False
        x = x[:m]
        y = y[:m]
        dx = x - x.mean()
        slope = np.sum(dx * (y - y.mean())) / np.sum(dx * dx)
        intercept = y.mean() - slope * x.mean()
        if not (np.isfinite(slope) and slope < 0.0 and np.isfinite(intercept)):
            return False
        scratch[A_SLOT] = np.exp(intercept)
        scratch[K_SLOT] = -slope
    if params.fit_sigma:
        if not scratch[SUM_DT] > 0.0:
            return False
        scratch[SIGMA_SLOT] = np.sqrt(scratch[SUM_DMID2] / scratch[SUM_DT])
    return True


@njit(cache=True)
def evaluate(view, params, scratch, out):
    if scratch[STATE] == NEW:
        _put_ts(scratch, START_HI, view.ts)
        _put_ts(scratch, SEEN_HI, view.ts)
        scratch[PREV_MID] = np.nan
        scratch[A_SLOT] = params.A
        scratch[K_SLOT] = params.k
        scratch[SIGMA_SLOT] = params.sigma
        scratch[STATE] = WARMING if (params.fit_intensity or params.fit_sigma) else READY
    if scratch[STATE] == WARMING:
        _observe(view, params, scratch)
        elapsed = view.ts - _get_ts(scratch, START_HI)
        if elapsed < params.warmup_ns:
            return 0
        scratch[STATE] = READY if _fit(params, scratch, elapsed / 1e9) else FAILED
    if scratch[STATE] != READY or not np.isfinite(view.mid):
        return 0

    gamma = params.gamma
    a = scratch[A_SLOT]
    k = scratch[K_SLOT]
    sigma = scratch[SIGMA_SLOT]
    c1 = math.log1p(gamma / k) / gamma
    c2 = math.sqrt(gamma / (2.0 * a * k) * (1.0 + gamma / k) ** (k / gamma + 1.0))
    half_spread = c1 + 0.5 * c2 * sigma
    skew = c2 * sigma
    q = view.position / params.order_qty

    tick = view.tick_size
    bid_tick = np.rint(view.best_bid / tick)
    ask_tick = np.rint(view.best_ask / tick)
    mid = 0.5 * (bid_tick + ask_tick)
    bid = np.floor(mid - (half_spread + skew * q) + EPS)
    ask = np.ceil(mid + (half_spread - skew * q) - EPS)
    if params.cap_to_book:
        bid = min(bid, ask_tick - 1.0)
        ask = max(ask, bid_tick + 1.0)

    return post_quotes(out, bid, ask, tick, params.order_qty, view.position, params.max_position)
