"""Order-book-imbalance market maker: quotes around a fair price shifted by the book's imbalance.

    imbalance = (Σ bid qty - Σ ask qty) / (Σ bid qty + Σ ask qty)   over the top ``depth_levels`` levels
    fair = mid + alpha_scale · signal · (best_ask - best_bid) / 2     (the market's half spread, in price)
    bid = fair - skew·position - half_spread,   ask = fair - skew·position + half_spread

``signal`` is the imbalance, or with ``ewma_halflife_ns > 0`` its exponentially weighted average in
event time: ``signal += (1 - 2^(-Δt / halflife)) · (imbalance - signal)``, started at the first
imbalance. With ``depth_levels = 1`` and ``alpha_scale = 1`` the fair price is the microprice.
Levels beyond those in the view (runtime ``book_levels``) are not there to sum.

The bid is floored and the ask ceiled onto the tick grid (away from the fair price; a value within
``EPS`` tick of a grid point counts as on it), then kept from crossing the book: bid at most
``best_ask - tick``, ask at least ``best_bid + tick``. ``half_spread`` and ``skew`` are in price. A side is
quoted only if filling it keeps ``|position| <= max_position``. One post-only (GTX) order per side.
Nothing is quoted (and the signal is not updated) unless both sides of the book exist.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from _quotes import post_quotes
from hftlab.errors import ConfigError

EPS = 1e-9  #: ticks: float noise tolerance when rounding onto the grid

# --- scratch slots (float64) --------------------------------------------------------------------
STARTED = 0  #: 1.0 once a signal exists
SIGNAL = 1  #: the (smoothed) imbalance in effect
LAST_HI, LAST_LO = 2, 3  #: time (ns) of the last signal update, split in two exact 32-bit halves
IMBALANCE = 4  #: the last raw imbalance
FAIR = 5  #: the last fair price
SCRATCH_SIZE = 6


class Params(NamedTuple):
    depth_levels: int = 5  #: book levels per side summed into the imbalance
    alpha_scale: float = 1.0  #: fair price shift per unit imbalance, in market half spreads
    ewma_halflife_ns: int = 0  #: half-life of the imbalance's EWMA in event time; 0 = no smoothing
    half_spread: float = 0.1  #: price distance of the quotes from the (skewed) fair price
    skew: float = 0.0  #: price shift of both quotes per unit of position (down when long)
    order_qty: float = 0.01
    max_position: float = 1.0


def validate(p: Params) -> None:
    """Invariants, named by key."""
    if p.depth_levels < 1:
        raise ConfigError(f"strategy.params.depth_levels: must be >= 1, got {p.depth_levels}")
    if p.ewma_halflife_ns < 0:
        raise ConfigError(
            f"strategy.params.ewma_halflife_ns: must be >= 0 (0 = no smoothing), got {p.ewma_halflife_ns}"
        )
    if not np.isfinite(p.alpha_scale):
        raise ConfigError(f"strategy.params.alpha_scale: must be a finite number, got {p.alpha_scale}")
    for key in ("half_spread", "order_qty", "max_position"):
        value = getattr(p, key)
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"strategy.params.{key}: must be a finite number > 0, got {value}")
    if not (np.isfinite(p.skew) and p.skew >= 0):
        raise ConfigError(f"strategy.params.skew: must be a finite number >= 0, got {p.skew}")


@njit(cache=True)
def evaluate(view, params, scratch, out):
    if not np.isfinite(view.mid):
        return 0
    bid_sum = 0.0
    for i in range(min(params.depth_levels, view.n_bid)):
        bid_sum += view.bid_qty[i]
    ask_sum = 0.0
    for i in range(min(params.depth_levels, view.n_ask)):
        ask_sum += view.ask_qty[i]
    total = bid_sum + ask_sum
    imbalance = (bid_sum - ask_sum) / total if total > 0.0 else 0.0
    scratch[IMBALANCE] = imbalance

    signal = imbalance
    if params.ewma_halflife_ns > 0 and scratch[STARTED] > 0.0:
        last = (np.int64(scratch[LAST_HI]) << 32) + np.int64(scratch[LAST_LO])
        weight = -math.expm1(-math.log(2.0) * (view.ts - last) / params.ewma_halflife_ns)
        signal = scratch[SIGNAL] + weight * (imbalance - scratch[SIGNAL])
    scratch[SIGNAL] = signal
    scratch[STARTED] = 1.0
    scratch[LAST_HI] = float(view.ts >> 32)
    scratch[LAST_LO] = float(view.ts & 0xFFFFFFFF)

    tick = view.tick_size
    bid_tick = np.rint(view.best_bid / tick)
    ask_tick = np.rint(view.best_ask / tick)
    fair = 0.5 * (bid_tick + ask_tick) + params.alpha_scale * signal * 0.5 * (ask_tick - bid_tick)
    scratch[FAIR] = fair * tick
    reservation = fair - params.skew * view.position / tick
    bid = min(np.floor(reservation - params.half_spread / tick + EPS), ask_tick - 1.0)
    ask = max(np.ceil(reservation + params.half_spread / tick - EPS), bid_tick + 1.0)

    return post_quotes(out, bid, ask, tick, params.order_qty, view.position, params.max_position)
