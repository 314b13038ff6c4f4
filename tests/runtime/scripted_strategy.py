"""A test strategy whose behaviour is chosen by its parameters (one compile serves every test).

mode 0: one bid and one ask one grid step outside the touch; mode 1: the same, and at the
``fail_after``-th evaluation a third row that breaks output rule ``bad`` (see ``BAD``); mode 2: raises
inside the compiled code at the ``fail_after``-th evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftlab.errors import ConfigError

SCRATCH_SIZE = 1
#: What mode 1 breaks, by ``bad``: the output rule (hftlab.runtime.records.RULES name) it triggers.
BAD = {
    1: "too_many_orders",
    2: "invalid_side",
    3: "invalid_price",  # NaN
    4: "invalid_price",  # negative
    5: "off_tick",
    6: "invalid_qty",
    7: "off_lot",
    8: "invalid_tif",
    9: "raised",  # a write one row past the end of out (bounds-checked)
    10: "raised",  # a write past the end of scratch
}


class Params(NamedTuple):
    mode: int = 0
    qty: float = 0.01
    step: float = 0.1
    fail_after: int = 3
    bad: int = 1


def validate(p: Params) -> None:
    if p.mode not in (0, 1, 2):
        raise ConfigError(f"strategy.params.mode: must be 0, 1 or 2, got {p.mode}")
    if not p.qty > 0:
        raise ConfigError(f"strategy.params.qty: must be > 0, got {p.qty}")


@njit(cache=True)
def evaluate(view, params, scratch, out):
    scratch[0] += 1.0
    failing = scratch[0] >= params.fail_after
    if params.mode == 2 and failing:
        raise ValueError("scripted strategy failure")
    if not np.isfinite(view.mid):
        return 0
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = 1.0, view.best_bid - params.step, params.qty, 1.0
    out[1, 0], out[1, 1], out[1, 2], out[1, 3] = -1.0, view.best_ask + params.step, params.qty, 1.0
    if params.mode != 1 or not failing:
        return 2
    out[2, 0], out[2, 1], out[2, 2], out[2, 3] = 1.0, view.best_bid - 2 * params.step, params.qty, 0.0
    b = params.bad
    if b == 1:
        return out.shape[0] + 1
    if b == 2:
        out[2, 0] = 2.0
    elif b == 3:
        out[2, 1] = np.nan
    elif b == 4:
        out[2, 1] = -view.best_bid
    elif b == 5:
        out[2, 1] += 0.5 * view.tick_size
    elif b == 6:
        out[2, 2] = -params.qty
    elif b == 7:
        out[2, 2] = 0.5 * view.lot_size
    elif b == 8:
        out[2, 3] = 7.0
    elif b == 9:
        out[out.shape[0], 0] = 1.0
    elif b == 10:
        scratch[5] = 1.0
    return 3
