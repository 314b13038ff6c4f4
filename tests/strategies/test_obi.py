"""strategies/obi.py: imbalance, fair price, quotes on crafted books, smoothing, limits, parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftlab.errors import ConfigError
from hftlab.runtime.strategy import load_strategy, make_view
from tests.conftest import PROJECT_ROOT

OBI = load_strategy("obi", PROJECT_ROOT / "strategies")
M = OBI.module
TICK = 0.1
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
DEEP_BIDS = [(100.0, 3.0), (99.9, 1.0), (99.8, 10.0)]
DEEP_ASKS = [(100.2, 1.0), (100.3, 1.0), (100.4, 50.0)]


def evaluate(params, view, scratch=None) -> list[tuple[float, float, float, float]]:
    """The orders ``evaluate`` wants, as (side, price, qty, tif) tuples."""
    out = np.zeros((64, 4))
    scratch = np.zeros(OBI.scratch_size) if scratch is None else scratch
    n = OBI.evaluate(view, params, scratch, out)
    return [tuple(row) for row in out[:n].tolist()]


def book(bids, asks, ts: int = T0, position: float = 0.0):
    return make_view(ts=ts, bids=bids, asks=asks, tick_size=TICK, position=position)


def two_sided(bid_tick: int, ask_tick: int, qty: float = 0.01) -> list[tuple[float, float, float, float]]:
    return [(1.0, bid_tick * TICK, qty, 1.0), (-1.0, ask_tick * TICK, qty, 1.0)]


@pytest.mark.parametrize(
    ("depth_levels", "imbalance", "bid_tick", "ask_tick"),
    [
        # (3 + 1 - 1 - 1) / 6 = 1/3; fair = 1001 + 1/3 · 1 tick; bid floor(999.833) = 999, ask ceil(1002.833) = 1003
        (2, (4.0 - 2.0) / 6.0, 999, 1003),
        # (14 - 52) / 66 = -0.5758; fair = 1000.424; bid floor(998.924) = 998, ask ceil(1001.924) = 1002
        (3, (14.0 - 52.0) / 66.0, 998, 1002),
        # more levels than the book has: the three there are summed
        (10, (14.0 - 52.0) / 66.0, 998, 1002),
    ],
)
def test_obi_quotes_around_the_imbalance_fair_price(depth_levels, imbalance, bid_tick, ask_tick):
    """fair = mid + alpha·imbalance·market half spread; quotes at fair ∓ half_spread floored/ceiled to ticks."""
    params = OBI.params({"depth_levels": depth_levels, "alpha_scale": 1.0, "half_spread": 0.15})
    scratch = np.zeros(OBI.scratch_size)
    assert two_sided(bid_tick, ask_tick) == evaluate(params, book(DEEP_BIDS, DEEP_ASKS), scratch)
    mid, market_half_spread = (1000 + 1002) / 2, (1002 - 1000) / 2  # ticks
    fair = mid + 1.0 * imbalance * market_half_spread
    assert (math.floor(fair - 1.5), math.ceil(fair + 1.5)) == (bid_tick, ask_tick)
    assert (imbalance, imbalance) == pytest.approx((scratch[M.IMBALANCE], scratch[M.SIGNAL]), abs=1e-15)
    assert fair * TICK == pytest.approx(scratch[M.FAIR], abs=1e-12)


def test_obi_fair_price_with_one_level_is_the_microprice():
    """depth_levels = 1, alpha_scale = 1: fair = (bid·ask_qty + ask·bid_qty) / (bid_qty + ask_qty)."""
    params = OBI.params({"depth_levels": 1, "alpha_scale": 1.0})
    scratch = np.zeros(OBI.scratch_size)
    evaluate(params, book(DEEP_BIDS, DEEP_ASKS), scratch)
    assert (100.0 * 1.0 + 100.2 * 3.0) / 4.0 == pytest.approx(scratch[M.FAIR], abs=1e-12)  # 100.15


def test_obi_quote_landing_on_a_tick_stays_there():
    """A balanced book and a half spread of exactly 2 ticks: quotes at fair ∓ 2 ticks, not a tick further."""
    params = OBI.params({"half_spread": 0.2})
    # imbalance 0, fair = mid = 1001 ticks; bid 1001 - 2 = 999, ask 1001 + 2 = 1003
    assert two_sided(999, 1003) == evaluate(params, book([(100.0, 1.0)], [(100.2, 1.0)]))


@pytest.mark.parametrize(
    ("position", "bid_tick", "ask_tick"),
    [
        (0.0, 998, 1004),  # fair 1001, half spread 2.5 ticks: floor(998.5), ceil(1003.5)
        (0.5, 997, 1003),  # reservation = 1001 - 0.2·0.5/0.1 = 1000: floor(997.5), ceil(1002.5)
        (-0.5, 999, 1005),  # reservation = 1002: floor(999.5), ceil(1004.5)
    ],
)
def test_obi_inventory_skew(position, bid_tick, ask_tick):
    """skew·position moves both quotes: down when long, up when short."""
    params = OBI.params({"half_spread": 0.25, "skew": 0.2})
    assert two_sided(bid_tick, ask_tick) == evaluate(params, book([(100.0, 1.0)], [(100.2, 1.0)], position=position))


def test_obi_quotes_never_cross_the_book():
    """A fair price beyond the best ask puts the bid at best_ask - tick (post-only), the ask where computed."""
    params = OBI.params({"depth_levels": 1, "alpha_scale": 10.0, "half_spread": 0.15})
    # imbalance (9 - 1) / 10 = 0.8; fair = 1001 + 10·0.8·1 = 1009; bid floor(1007.5) = 1007 -> capped at 1002 - 1
    # ask ceil(1010.5) = 1011
    assert two_sided(1001, 1011) == evaluate(params, book([(100.0, 9.0)], [(100.2, 1.0)]))
    # and the other way: a long position skewed below the best bid keeps the ask at best_bid + tick
    params = OBI.params({"half_spread": 0.15, "skew": 1.0, "max_position": 10.0})
    # reservation = 1001 - 1.0·1.0/0.1 = 991; bid floor(989.5) = 989, ask ceil(992.5) = 993 -> raised to 1001
    assert two_sided(989, 1001) == evaluate(params, book([(100.0, 1.0)], [(100.2, 1.0)], position=1.0))


def test_obi_ewma_smooths_the_imbalance_in_event_time():
    """signal += (1 - 2^(-Δt/halflife))·(imbalance - signal); one-sided books neither quote nor update it."""
    params = OBI.params({"ewma_halflife_ns": SECOND, "half_spread": 0.15})
    scratch = np.zeros(OBI.scratch_size)
    buyers = ([(100.0, 3.0)], [(100.2, 1.0)])  # imbalance +0.5
    sellers = ([(100.0, 1.0)], [(100.2, 3.0)])  # imbalance -0.5
    evaluate(params, book(*buyers, ts=T0), scratch)
    assert 0.5 == scratch[M.SIGNAL]  # the first imbalance starts the average
    evaluate(params, book(*sellers, ts=T0 + SECOND), scratch)
    assert 0.5 + (1 - 2**-1) * (-0.5 - 0.5) == pytest.approx(scratch[M.SIGNAL], abs=1e-15)  # 0.0
    assert [] == evaluate(params, book([(100.0, 1.0)], [], ts=T0 + 2 * SECOND), scratch)
    actual = evaluate(params, book(*buyers, ts=T0 + 3 * SECOND), scratch)
    signal = 0.0 + (1 - 2**-2) * (0.5 - 0.0)  # Δt = 2 s since the last update: 0.375
    assert signal == pytest.approx(scratch[M.SIGNAL], abs=1e-15)
    assert 0.5 == scratch[M.IMBALANCE]
    # fair = 1001 + 0.375 · 1 = 1001.375; bid floor(999.875) = 999, ask ceil(1002.875) = 1003
    assert two_sided(999, 1003) == actual


def test_obi_max_position_suppresses_the_side_that_would_exceed_it():
    """A side is quoted only if its fill keeps |position| <= max_position."""
    params = OBI.params({"max_position": 0.3, "order_qty": 0.1})
    balanced = ([(100.0, 1.0)], [(100.2, 1.0)])
    assert [-1.0] == [row[0] for row in evaluate(params, book(*balanced, position=0.3))]
    assert [1.0] == [row[0] for row in evaluate(params, book(*balanced, position=-0.25))]
    assert [1.0, -1.0] == [row[0] for row in evaluate(params, book(*balanced, position=0.1 + 0.1))]


def test_obi_no_quotes_on_a_one_sided_book():
    """Without a mid (one side empty) nothing is quoted."""
    params = OBI.params({})
    assert [] == evaluate(params, book([(100.0, 1.0)], []))
    assert [] == evaluate(params, book([], [(100.2, 1.0)]))
    assert [] == evaluate(params, book([], []))


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"depth_levels": 0}, "depth_levels"),
        ({"alpha_scale": math.nan}, "alpha_scale"),
        ({"ewma_halflife_ns": -1}, "ewma_halflife_ns"),
        ({"half_spread": 0.0}, "half_spread"),
        ({"skew": -0.1}, "skew"),
        ({"order_qty": math.inf}, "order_qty"),
        ({"max_position": 0.0}, "max_position"),
    ],
)
def test_obi_rejects_broken_invariants(values, key):
    """Each invariant fails with a ConfigError naming strategy.params.<key>."""
    with pytest.raises(ConfigError, match=rf"^strategy\.params\.{key}: must be"):
        OBI.params(values)


def test_obi_rejects_unknown_keys_and_wrong_types():
    """A typo or a wrongly typed value fails with the key's name."""
    with pytest.raises(ConfigError, match=r"^strategy\.params\.depth: unknown parameter"):
        OBI.params({"depth": 3})
    with pytest.raises(ConfigError, match=r"^strategy\.params\.depth_levels: expected int"):
        OBI.params({"depth_levels": True})
    with pytest.raises(ConfigError, match=r"^strategy\.params\.alpha_scale: expected float"):
        OBI.params({"alpha_scale": None})
