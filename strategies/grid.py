"""Grid market maker (hftbacktest's tutorial grid): ``grid_num`` quotes per side, ``grid_interval`` apart.

The best bid quote is ``min(reservation - half_spread, best_bid)`` floored to the grid, the best ask
``max(reservation + half_spread, best_ask)`` ceiled to it, with ``reservation = mid - skew × position``.
A side is quoted only while the position is inside ``±max_position``. Orders are post-only (GTX).
This is the strategy of the parity test against a plain hftbacktest loop (``hftlab.venue.reference``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftlab.errors import ConfigError

GTX = 1.0
SCRATCH_SIZE = 0


class Params(NamedTuple):
    grid_num: int = 10
    grid_interval: float = 0.1  #: price distance between quotes (a multiple of the tick)
    half_spread: float = 0.1  #: price distance of the best quotes from the reservation price
    skew: float = 0.0  #: reservation price shift per unit of position
    order_qty: float = 0.01
    max_position: float = 1.0


def validate(p: Params) -> None:
    """Invariants, named by key."""
    if p.grid_num < 1:
        raise ConfigError(f"strategy.params.grid_num: must be >= 1, got {p.grid_num}")
    for key in ("grid_interval", "order_qty", "max_position"):
        value = getattr(p, key)
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"strategy.params.{key}: must be a finite number > 0, got {value}")
    for key in ("half_spread", "skew"):
        value = getattr(p, key)
        if not (np.isfinite(value) and value >= 0):
            raise ConfigError(f"strategy.params.{key}: must be a finite number >= 0, got {value}")


@njit(cache=True)
def evaluate(view, params, scratch, out):
    if not np.isfinite(view.mid):
        return 0
    reservation = view.mid - params.skew * view.position
    bid = min(reservation - params.half_spread, view.best_bid)
    ask = max(reservation + params.half_spread, view.best_ask)
    # 1e-9: 100.1 / 0.1 is 1000.9999999999999; without it the best quote would sit one grid step too deep
    bid = np.floor(bid / params.grid_interval + 1e-9) * params.grid_interval
    ask = np.ceil(ask / params.grid_interval - 1e-9) * params.grid_interval
    n = 0
    if view.position < params.max_position and np.isfinite(bid):
        for _ in range(params.grid_num):
            if n == out.shape[0]:
                break
            out[n, 0] = 1.0
            out[n, 1] = bid
            out[n, 2] = params.order_qty
            out[n, 3] = GTX
            n += 1
            bid -= params.grid_interval
    if view.position > -params.max_position and np.isfinite(ask):
        for _ in range(params.grid_num):
            if n == out.shape[0]:
                break
            out[n, 0] = -1.0
            out[n, 1] = ask
            out[n, 2] = params.order_qty
            out[n, 3] = GTX
            n += 1
            ask += params.grid_interval
    return n
