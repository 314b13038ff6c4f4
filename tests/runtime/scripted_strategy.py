"""A test strategy whose behaviour is chosen by its parameters (one compile serves every test).

mode 0: one bid and one ask one grid step outside the touch; mode 1: additionally wants orders with a
NaN price, a negative price and an off-tick price; mode 2: raises inside the compiled code at the
``fail_after``-th evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftlab.errors import ConfigError

SCRATCH_SIZE = 1


class Params(NamedTuple):
    mode: int = 0
    qty: float = 0.01
    step: float = 0.1
    fail_after: int = 3


def validate(p: Params) -> None:
    if p.mode not in (0, 1, 2):
        raise ConfigError(f"strategy.params.mode: must be 0, 1 or 2, got {p.mode}")
    if not p.qty > 0:
        raise ConfigError(f"strategy.params.qty: must be > 0, got {p.qty}")


@njit(cache=True)
def evaluate(view, params, scratch, out):
    scratch[0] += 1.0
    if params.mode == 2 and scratch[0] >= params.fail_after:
        raise ValueError("scripted strategy failure")
    if not np.isfinite(view.mid):
        return 0
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = 1.0, view.best_bid - params.step, params.qty, 1.0
    out[1, 0], out[1, 1], out[1, 2], out[1, 3] = -1.0, view.best_ask + params.step, params.qty, 1.0
    if params.mode != 1:
        return 2
    out[2, 0], out[2, 1], out[2, 2], out[2, 3] = 1.0, np.nan, params.qty, 1.0
    out[3, 0], out[3, 1], out[3, 2], out[3, 3] = 1.0, -view.best_bid, params.qty, 1.0
    out[4, 0], out[4, 1], out[4, 2], out[4, 3] = -1.0, view.best_ask + view.tick_size * 0.5, params.qty, 1.0
    return 5
