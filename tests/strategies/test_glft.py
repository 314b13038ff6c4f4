"""strategies/glft.py: closed-form quotes on crafted books, skew, limits, parameter checks, warm-up fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftlab.errors import ConfigError
from hftlab.runtime.strategy import load_strategy, make_view
from tests.conftest import PROJECT_ROOT

GLFT = load_strategy("glft", PROJECT_ROOT / "strategies")
M = GLFT.module
TICK = 0.1
T0 = 1_700_000_000_000_000_000  # an epoch in ns: beyond float64's exact integers, as real data is
MS = 1_000_000
GIVEN = {"gamma": 0.1, "A": 2.0, "k": 0.4, "sigma": 3.0, "order_qty": 0.01, "max_position": 1.0}


def glft_ticks(mid_tick: float, gamma: float, a: float, k: float, sigma: float, q: float) -> tuple[float, float]:
    """Unrounded (bid, ask) in ticks from the GLFT closed form with ξ = γ and Δ = 1."""
    c1 = math.log1p(gamma / k) / gamma
    c2 = math.sqrt(gamma / (2 * a * k) * (1 + gamma / k) ** (k / gamma + 1))
    half_spread = c1 + c2 * sigma / 2
    skew = c2 * sigma
    return mid_tick - (half_spread + skew * q), mid_tick + (half_spread - skew * q)


def evaluate(params, view, scratch=None) -> list[tuple[float, float, float, float]]:
    """The orders ``evaluate`` wants, as (side, price, qty, tif) tuples."""
    out = np.zeros((64, 4))
    scratch = np.zeros(GLFT.scratch_size) if scratch is None else scratch
    n = GLFT.evaluate(view, params, scratch, out)
    return [tuple(row) for row in out[:n].tolist()]


def book(ts: int = T0, position: float = 0.0, bid: float = 100.0, ask: float = 100.1, trades=None):
    return make_view(ts=ts, bids=[(bid, 1.0)], asks=[(ask, 1.0)], tick_size=TICK, position=position, trades=trades)


def test_glft_quotes_at_the_closed_form_prices():
    """Flat inventory: bid = floor(mid - half_spread), ask = ceil(mid + half_spread), post-only, order_qty."""
    params = GLFT.params(GIVEN)
    # c1 = ln(1 + 0.1/0.4) / 0.1 = 2.231436; c2 = sqrt(0.1 / (2·2·0.4) · 1.25^(0.4/0.1 + 1)) = 0.436732
    # half_spread = c1 + c2·3/2 = 2.886534 ticks; mid = (1000 + 1001) / 2 = 1000.5 ticks
    c1 = math.log1p(0.1 / 0.4) / 0.1
    c2 = math.sqrt(0.1 / (2 * 2.0 * 0.4) * 1.25 ** (0.4 / 0.1 + 1))
    half_spread = c1 + c2 * 3.0 / 2
    assert 2.886533553425 == pytest.approx(half_spread, abs=1e-12)
    bid_tick = math.floor(1000.5 - half_spread)  # floor(997.613) = 997
    ask_tick = math.ceil(1000.5 + half_spread)  # ceil(1003.387) = 1004
    assert (997, 1004) == (bid_tick, ask_tick)
    expected = [(1.0, bid_tick * TICK, 0.01, 1.0), (-1.0, ask_tick * TICK, 0.01, 1.0)]
    assert expected == evaluate(params, book())


@pytest.mark.parametrize(
    ("position", "bid_tick", "ask_tick"),
    [
        (0.02, 994, 1001),  # q = 2: bid floor(994.993), ask ceil(1000.766)
        (-0.02, 1000, 1007),  # q = -2: bid floor(1000.234), ask ceil(1006.007)
    ],
)
def test_glft_inventory_skew(position, bid_tick, ask_tick):
    """q = position / order_qty shifts both quotes by skew·q: down when long, up when short."""
    params = GLFT.params(GIVEN)
    bid, ask = glft_ticks(1000.5, 0.1, 2.0, 0.4, 3.0, position / 0.01)
    assert (bid_tick, ask_tick) == (math.floor(bid), math.ceil(ask))
    flat_bid, flat_ask = evaluate(params, book())
    actual = evaluate(params, book(position=position))
    assert [(1.0, bid_tick * TICK, 0.01, 1.0), (-1.0, ask_tick * TICK, 0.01, 1.0)] == actual
    direction = -1.0 if position > 0 else 1.0
    assert (direction, direction) == (np.sign(actual[0][1] - flat_bid[1]), np.sign(actual[1][1] - flat_ask[1]))


def test_glft_caps_quotes_so_they_do_not_cross_the_book():
    """With cap_to_book the bid stays <= best_ask - tick and the ask >= best_bid + tick; without it they cross."""
    capped = GLFT.params(GIVEN)
    uncapped = GLFT.params({**GIVEN, "cap_to_book": False})
    # long q = 10: ask = ceil(1000.5 + 2.886534 - 1.310196·10) = ceil(990.285) = 991 < best bid 1000
    bid, ask = glft_ticks(1000.5, 0.1, 2.0, 0.4, 3.0, 10)
    assert (984, 991) == (math.floor(bid), math.ceil(ask))
    assert [(1.0, 984 * TICK, 0.01, 1.0), (-1.0, 991 * TICK, 0.01, 1.0)] == evaluate(uncapped, book(position=0.1))
    assert [(1.0, 984 * TICK, 0.01, 1.0), (-1.0, 1001 * TICK, 0.01, 1.0)] == evaluate(capped, book(position=0.1))
    # short q = -10: bid = floor(1000.5 - 2.886534 + 13.101961) = floor(1010.715) = 1010 > best ask 1001
    bid, ask = glft_ticks(1000.5, 0.1, 2.0, 0.4, 3.0, -10)
    assert (1010, 1017) == (math.floor(bid), math.ceil(ask))
    assert [(1.0, 1000 * TICK, 0.01, 1.0), (-1.0, 1017 * TICK, 0.01, 1.0)] == evaluate(capped, book(position=-0.1))


def test_glft_max_position_suppresses_the_side_that_would_exceed_it():
    """A side is quoted only if its fill keeps |position| <= max_position."""
    params = GLFT.params({**GIVEN, "max_position": 0.3, "order_qty": 0.1})
    assert [-1.0] == [row[0] for row in evaluate(params, book(position=0.3))]
    assert [-1.0] == [row[0] for row in evaluate(params, book(position=0.25))]
    assert [1.0] == [row[0] for row in evaluate(params, book(position=-0.3))]
    assert [-1.0] == [row[0] for row in evaluate(params, book(position=0.6))]  # beyond: only the reducing side
    # 0.1 + 0.1 + 0.1 = 0.30000000000000004 in float: a 0.1 bid at position 0.2 still fits under 0.3
    assert [1.0, -1.0] == [row[0] for row in evaluate(params, book(position=0.1 + 0.1))]


def test_glft_no_quotes_on_a_one_sided_book():
    """Without a mid (one side empty) nothing is quoted."""
    params = GLFT.params(GIVEN)
    assert [] == evaluate(params, make_view(ts=T0, bids=[(100.0, 1.0)], tick_size=TICK))
    assert [] == evaluate(params, make_view(ts=T0, asks=[(100.1, 1.0)], tick_size=TICK))
    assert [] == evaluate(params, make_view(ts=T0, tick_size=TICK))


def test_glft_given_parameters_are_in_effect_from_the_first_evaluation():
    """Without fitting there is no warm-up, and the scratch slots hold the given A, k and σ."""
    scratch = np.zeros(GLFT.scratch_size)
    assert 2 == len(evaluate(GLFT.params(GIVEN), book(), scratch))
    assert (M.READY, 2.0, 0.4, 3.0) == (scratch[M.STATE], scratch[M.A_SLOT], scratch[M.K_SLOT], scratch[M.SIGMA_SLOT])


def cumulative(trades, now):
    """The view's trade buffer at ``now``: every trade so far, oldest first (the strategy dedups)."""
    return [t for t in trades if t[0] <= now]


def test_glft_fits_intensity_on_the_warm_up_window():
    """Trades at known distances are bucketed once each; A and k are the least-squares fit of the tail rates."""
    params = GLFT.params({**GIVEN, "A": 0.0, "k": 0.0, "fit_intensity": True, "warmup_ns": 1000 * MS, "n_buckets": 8})
    # (price, aggressor side, count): distance in ticks from the mid 1000.5 -> bucket floor(d / 1 tick)
    kinds = [
        (100.1, 1.0, 6),  # buy 1001 - 1000.5 = 0.5 -> bucket 0
        (100.0, -1.0, 4),  # sell 1000.5 - 1000 = 0.5 -> bucket 0
        (100.2, 1.0, 3),  # 1.5 -> bucket 1
        (99.9, -1.0, 3),  # 1.5 -> bucket 1
        (100.3, 0.0, 2),  # side unknown: |1003 - 1000.5| = 2.5 -> bucket 2
        (99.8, 0.0, 1),  # side unknown: |998 - 1000.5| = 2.5 -> bucket 2
        (100.4, 1.0, 2),  # 3.5 -> bucket 3
        (100.6, 1.0, 1),  # 5.5 -> bucket 5
        (105.0, 1.0, 1),  # 49.5 -> clamped into the last bucket, 7
        (99.9, 1.0, 2),  # a buy 1.5 ticks below the mid: wrong side, skipped
    ]
    expected_hist = [10.0, 6.0, 3.0, 2.0, 0.0, 1.0, 0.0, 1.0]
    flat = [(px, side) for px, side, count in kinds for _ in range(count)]
    # trade i at t0 + (i+1)·40 ms: 25 trades up to t0 + 1000 ms, every 5th exactly at an evaluation time
    trades = [(T0 - 1, 100.1, 1.0, 1.0), (T0, 100.1, 1.0, 1.0)]  # before/at the first evaluation: not counted
    trades += [(T0 + (i + 1) * 40 * MS, px, 1.0, side) for i, (px, side) in enumerate(flat)]
    scratch = np.zeros(GLFT.scratch_size)
    warm_up = [
        evaluate(params, book(T0 + s * 100 * MS, trades=cumulative(trades, T0 + s * 100 * MS)), scratch)
        for s in range(10)
    ]
    assert [[]] * 10 == warm_up
    assert M.WARMING == scratch[M.STATE]
    at_fit = evaluate(params, book(T0 + 1000 * MS, trades=cumulative(trades, T0 + 1000 * MS)), scratch)

    assert M.READY == scratch[M.STATE]
    assert expected_hist == scratch[M.HIST : M.HIST + 8].tolist()
    assert 23.0 == scratch[M.N_COUNTED]
    assert 1.0 == scratch[M.FIT_SECONDS]
    tails = np.cumsum(expected_hist[::-1])[::-1]  # trades reaching at least each bucket edge
    assert [23.0, 13.0, 7.0, 4.0, 2.0, 2.0, 1.0, 1.0] == tails.tolist()
    slope, intercept = np.polyfit(np.arange(8) * 1.0, np.log(tails / 1.0), 1)
    assert (math.exp(intercept), -slope) == pytest.approx((scratch[M.A_SLOT], scratch[M.K_SLOT]), rel=1e-9)
    bid, ask = glft_ticks(1000.5, 0.1, scratch[M.A_SLOT], scratch[M.K_SLOT], 3.0, 0.0)
    assert [(1.0, math.floor(bid) * TICK, 0.01, 1.0), (-1.0, math.ceil(ask) * TICK, 0.01, 1.0)] == at_fit


def test_glft_measures_trades_from_the_mid_before_they_arrived():
    """A trade's distance is taken from the previous evaluation's mid, not from the book it moved."""
    params = GLFT.params({**GIVEN, "fit_intensity": True, "warmup_ns": 200 * MS, "bucket_ticks": 2.0})
    trades = [
        (T0 + 50 * MS, 100.3, 1.0, 1.0),  # buy, previous mid 1000.5: 2.5 ticks -> bucket floor(2.5 / 2) = 1
        (T0 + 150 * MS, 100.2, 1.0, -1.0),  # sell, previous mid 1002.5: 0.5 ticks -> bucket 0
        (T0 + 160 * MS, 100.0, 1.0, 1.0),  # buy 2.5 ticks below the previous mid: skipped
    ]
    scratch = np.zeros(GLFT.scratch_size)
    assert [] == evaluate(params, book(T0, bid=100.0, ask=100.1), scratch)
    assert [] == evaluate(params, book(T0 + 100 * MS, bid=100.2, ask=100.3, trades=trades[:1]), scratch)
    # measured from this book's mid (1002.5) instead, the first trade would be 0.5 ticks away: bucket 0
    assert 2 == len(evaluate(params, book(T0 + 200 * MS, bid=100.2, ask=100.3, trades=trades), scratch))
    assert [1.0, 1.0, 0.0] == scratch[M.HIST : M.HIST + 3].tolist()
    # tails: 2 trades reach 0 ticks, 1 reaches 2 ticks, over T = 0.2 s: ln λ = ln(10), ln(5)
    slope, intercept = np.polyfit([0.0, 2.0], np.log([2 / 0.2, 1 / 0.2]), 1)
    assert (10.0, math.log(2) / 2) == pytest.approx((math.exp(intercept), -slope), rel=1e-12)
    assert (10.0, math.log(2) / 2) == pytest.approx((scratch[M.A_SLOT], scratch[M.K_SLOT]), rel=1e-12)


def test_glft_estimates_sigma_from_mid_changes():
    """σ² = Σ(Δmid in ticks)² / Σ Δt over consecutive two-sided books in the warm-up window."""
    params = GLFT.params({**GIVEN, "sigma": 0.0, "fit_sigma": True, "warmup_ns": 1000 * MS})
    steps = [
        (0, 100.0, 100.1),  # mid 1000.5
        (100, 100.1, 100.2),  # mid 1001.5: Δ 1.0 over 0.1 s
        (250, 99.9, 100.1),  # mid 1000.0: Δ -1.5 over 0.15 s
        (300, 99.9, math.nan),  # one-sided: no mid, skipped
        (600, 100.1, 100.3),  # mid 1002.0: Δ 2.0 over 0.35 s (since 250 ms)
    ]
    scratch = np.zeros(GLFT.scratch_size)
    for ms, bid, ask in steps:
        asks = [] if math.isnan(ask) else [(ask, 1.0)]
        view = make_view(ts=T0 + ms * MS, bids=[(bid, 1.0)], asks=asks, tick_size=TICK)
        assert [] == evaluate(params, view, scratch)
    at_fit = evaluate(params, book(T0 + 1000 * MS, bid=100.2, ask=100.3), scratch)  # mid 1002.5: Δ 0.5 over 0.4 s
    sigma = math.sqrt((1.0**2 + 1.5**2 + 2.0**2 + 0.5**2) / (0.1 + 0.15 + 0.35 + 0.4))  # sqrt(7.5 / 1.0)
    assert sigma == pytest.approx(scratch[M.SIGMA_SLOT], rel=1e-12)
    assert (M.READY, 2.0, 0.4) == (scratch[M.STATE], scratch[M.A_SLOT], scratch[M.K_SLOT])
    bid, ask = glft_ticks(1002.5, 0.1, 2.0, 0.4, scratch[M.SIGMA_SLOT], 0.0)
    assert [(1.0, math.floor(bid) * TICK, 0.01, 1.0), (-1.0, math.ceil(ask) * TICK, 0.01, 1.0)] == at_fit


@pytest.mark.parametrize(
    "trades",
    [
        [],  # nothing to fit
        [(T0 + 10 * MS, 100.1, 1.0, 1.0), (T0 + 20 * MS, 100.0, 1.0, -1.0)],  # a single non-empty bucket
    ],
)
def test_glft_failed_fit_never_quotes(trades):
    """When the intensity cannot be fitted the state is FAILED and nothing is quoted, then or later."""
    params = GLFT.params({**GIVEN, "fit_intensity": True, "warmup_ns": 100 * MS})
    scratch = np.zeros(GLFT.scratch_size)
    assert [] == evaluate(params, book(T0), scratch)
    assert [] == evaluate(params, book(T0 + 100 * MS, trades=trades), scratch)
    assert [] == evaluate(params, book(T0 + 200 * MS, trades=trades), scratch)
    assert M.FAILED == scratch[M.STATE]


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": math.nan}, "gamma"),
        ({"A": 0.0}, "A"),
        ({"k": -0.5}, "k"),
        ({"k": math.inf}, "k"),
        ({"sigma": -1.0}, "sigma"),
        ({"order_qty": 0.0}, "order_qty"),
        ({"max_position": -1.0}, "max_position"),
        ({"bucket_ticks": 0.0}, "bucket_ticks"),
        ({"fit_intensity": True}, "warmup_ns"),
        ({"fit_sigma": True, "warmup_ns": 0}, "warmup_ns"),
        ({"warmup_ns": -1}, "warmup_ns"),
        ({"n_buckets": 1}, "n_buckets"),
        ({"n_buckets": 65}, "n_buckets"),
    ],
)
def test_glft_rejects_broken_invariants(values, key):
    """Each invariant fails with a ConfigError naming strategy.params.<key>."""
    with pytest.raises(ConfigError, match=rf"^strategy\.params\.{key}: must be"):
        GLFT.params(values)


def test_glft_fitted_parameters_need_no_given_values():
    """A and k (or σ) are not checked when they are fitted."""
    GLFT.params({"A": 0.0, "k": 0.0, "fit_intensity": True, "warmup_ns": 1})
    GLFT.params({"sigma": math.nan, "fit_sigma": True, "warmup_ns": 1})


def test_glft_rejects_unknown_keys_and_wrong_types():
    """A typo or a wrongly typed value fails with the key's name."""
    with pytest.raises(ConfigError, match=r"^strategy\.params\.kappa: unknown parameter"):
        GLFT.params({"kappa": 0.5})
    with pytest.raises(ConfigError, match=r"^strategy\.params\.warmup_ns: expected int"):
        GLFT.params({"warmup_ns": 1.5})
    with pytest.raises(ConfigError, match=r"^strategy\.params\.fit_intensity: expected bool"):
        GLFT.params({"fit_intensity": 1})
