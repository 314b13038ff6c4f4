"""strategies/grid.py: quote prices on crafted books, inventory skew, position limits, parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftlab.errors import ConfigError
from hftlab.runtime.strategy import load_strategy, make_view
from tests.conftest import PROJECT_ROOT

GRID = load_strategy("grid", PROJECT_ROOT / "strategies")
TICK = 0.1


def quotes(params, view, rows: int = 64) -> list[tuple[float, float, float, float]]:
    """The orders ``evaluate`` wants, as (side, price, qty, tif) tuples."""
    out = np.zeros((rows, 4))
    n = GRID.evaluate(view, params, np.zeros(GRID.scratch_size), out)
    return [tuple(row) for row in out[:n].tolist()]


def book(position: float = 0.0, bid: float = 100.0, ask: float = 100.1):
    return make_view(bids=[(bid, 1.0)], asks=[(ask, 1.0)], tick_size=TICK, position=position)


def test_grid_quotes_at_expected_prices():
    """The grid starts at the floored/ceiled reservation ± half_spread and steps grid_interval outward."""
    params = GRID.params({"grid_num": 3, "grid_interval": 0.1, "half_spread": 0.2, "order_qty": 0.01})
    # mid = (100.0 + 100.1) / 2 = 100.05; reservation = mid (flat)
    # bid: floor(min(100.05 - 0.2, 100.0) / 0.1) = floor(998.5) = 998 -> 99.8, then 99.7, 99.6
    # ask: ceil(max(100.05 + 0.2, 100.1) / 0.1) = ceil(1002.5) = 1003 -> 100.3, then 100.4, 100.5
    actual = quotes(params, book())
    assert [1.0, 1.0, 1.0, -1.0, -1.0, -1.0] == [row[0] for row in actual]
    assert [99.8, 99.7, 99.6, 100.3, 100.4, 100.5] == pytest.approx([row[1] for row in actual], abs=1e-12)
    assert [(0.01, 1.0)] * 6 == [(row[2], row[3]) for row in actual]


def test_grid_best_quotes_never_inside_the_book():
    """The best bid quote is at most the best bid and the best ask quote at least the best ask."""
    params = GRID.params({"grid_num": 1, "half_spread": 0.05})
    # mid = (100.0 + 100.4) / 2 = 100.2; bid: floor(min(100.15, 100.0) / 0.1) = 1000 -> 100.0
    # ask: ceil(max(100.25, 100.4) / 0.1) = ceil(1004.0) = 1004 -> 100.4
    assert [100.0, 100.4] == pytest.approx([row[1] for row in quotes(params, book(ask=100.4))], abs=1e-12)


def test_grid_inventory_skew_moves_quotes_down_when_long_and_up_when_short():
    """reservation = mid - skew * position: a long position lowers both quotes, a short one raises them."""
    params = GRID.params({"grid_num": 1, "half_spread": 0.2, "skew": 0.2})
    # long 0.5: reservation = 100.05 - 0.1 = 99.95; bid floor(997.5) = 997 -> 99.7; ask ceil(1001.5) = 1002 -> 100.2
    assert [99.7, 100.2] == pytest.approx([row[1] for row in quotes(params, book(position=0.5))], abs=1e-12)
    # short 0.5: reservation = 100.15; bid floor(999.5) = 999 -> 99.9; ask ceil(1003.5) = 1004 -> 100.4
    assert [99.9, 100.4] == pytest.approx([row[1] for row in quotes(params, book(position=-0.5))], abs=1e-12)


def test_grid_max_position_suppresses_the_side_that_adds_to_it():
    """At +max_position no bids are wanted, at -max_position no asks."""
    params = GRID.params({"grid_num": 2, "max_position": 1.0})
    assert [-1.0, -1.0] == [row[0] for row in quotes(params, book(position=1.0))]
    assert [1.0, 1.0] == [row[0] for row in quotes(params, book(position=-1.0))]
    assert [1.0, 1.0, -1.0, -1.0] == [row[0] for row in quotes(params, book(position=0.99))]


def test_grid_no_quotes_on_a_one_sided_book():
    """Without a mid (one side empty) the grid wants nothing."""
    params = GRID.params({})
    assert [] == quotes(params, make_view(bids=[(100.0, 1.0)], tick_size=TICK))
    assert [] == quotes(params, make_view(asks=[(100.1, 1.0)], tick_size=TICK))
    assert [] == quotes(params, make_view(tick_size=TICK))


def test_grid_stops_at_the_output_capacity():
    """evaluate never writes past ``out`` and returns how many rows it wrote."""
    params = GRID.params({"grid_num": 10})
    assert 4 == len(quotes(params, book(), rows=4))


def test_grid_keeps_a_best_bid_that_is_on_the_grid():
    """A best bid already on the grid is quoted at that price, not one grid step lower."""
    params = GRID.params({"grid_num": 1, "half_spread": 0.05})
    # mid = (100.1 + 100.2) / 2 = 100.15; bid = floor(min(100.1, 100.1) / 0.1) * 0.1 should be 100.1
    actual = quotes(params, book(bid=100.1, ask=100.2))
    assert 100.1 == pytest.approx(actual[0][1], abs=1e-12)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"grid_num": 0}, "grid_num"),
        ({"grid_interval": 0.0}, "grid_interval"),
        ({"grid_interval": math.nan}, "grid_interval"),
        ({"order_qty": -0.01}, "order_qty"),
        ({"max_position": math.inf}, "max_position"),
        ({"half_spread": -0.1}, "half_spread"),
        ({"skew": math.nan}, "skew"),
    ],
)
def test_grid_rejects_broken_invariants(values, key):
    """Each invariant fails with a ConfigError naming strategy.params.<key>."""
    with pytest.raises(ConfigError, match=rf"^strategy\.params\.{key}: must be"):
        GRID.params(values)


def test_grid_rejects_unknown_keys_and_wrong_types():
    """A typo or a wrongly typed value fails with the key's name."""
    with pytest.raises(ConfigError, match=r"^strategy\.params\.gird_num: unknown parameter"):
        GRID.params({"gird_num": 3})
    with pytest.raises(ConfigError, match=r"^strategy\.params\.grid_num: expected int"):
        GRID.params({"grid_num": 2.5})
    with pytest.raises(ConfigError, match=r"^strategy\.params\.skew: expected float"):
        GRID.params({"skew": "0.1"})
