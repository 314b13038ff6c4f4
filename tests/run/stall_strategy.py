"""Test strategy (copied into test projects as ``strategies/stall.py``): quotes nothing; with
``forever`` > 0 its first evaluation never returns, as a strategy with an endless loop would."""

from __future__ import annotations

from typing import NamedTuple

from numba import njit

SCRATCH_SIZE = 1


class Params(NamedTuple):
    forever: int = 0


def validate(p: Params) -> None:
    """Any value will do."""


@njit(cache=True)
def evaluate(view, params, scratch, out):
    while params.forever > 0:
        scratch[0] += 1.0
    return 0
