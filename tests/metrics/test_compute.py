"""Metrics on hand-made fills and state series, each value computed by hand in the test."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from hftlab.metrics import compute as M
from hftlab.runtime import records as R

S = 1_000_000_000


def fills(rows):
    """rows: (local_ts, side, price, qty, fee, maker, order_id)"""
    out = np.zeros(len(rows), R.FILL_DTYPE)
    for i, (ts, side, price, qty, fee, maker, oid) in enumerate(rows):
        out[i]["local_ts"], out[i]["exch_ts"], out[i]["side"], out[i]["price"] = ts, ts, side, price
        out[i]["qty"], out[i]["fee"], out[i]["maker"], out[i]["order_id"] = qty, fee, maker, oid
    return out


def state(rows):
    """rows: (local_ts, position, equity, mid)"""
    out = np.zeros(len(rows), R.STATE_DTYPE)
    for i, (ts, pos, eq, mid) in enumerate(rows):
        out[i]["local_ts"], out[i]["position"], out[i]["equity"], out[i]["mid"] = ts, pos, eq, mid
    return out


def test_pnl_and_fees():
    """Net PnL is final equity; gross adds back fees; fees and rebates split by sign."""
    assert 12.5 == M.net_pnl(12.5)
    assert 10.0 == M.gross_pnl(12.5, -2.5)
    assert {"fees_paid": 3.0, "rebates": 1.5} == M.fees_and_rebates(np.array([1.0, -0.5, 2.0, -1.0]))


def test_max_drawdown():
    """Peak 10 then trough 4 -> 6 (a later peak 12 with trough 9 is smaller)."""
    assert 6.0 == M.max_drawdown(np.array([0.0, 10.0, 7.0, 4.0, 12.0, 9.0]))
    assert 0.0 == M.max_drawdown(np.array([1.0, 2.0, 3.0]))
    assert 0.0 == M.max_drawdown(np.array([]))


def test_sample_equity_takes_last_value_at_or_before_each_point():
    """Samples at t0, t0+10: the last state row at or before each point."""
    ts = np.array([0, 3, 9, 12, 20], dtype=np.int64)
    eq = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert [1.0, 3.0, 5.0] == M.sample_equity(ts, eq, 10).tolist()


def test_sharpe_and_sortino_by_hand():
    """returns 1, -1, 2: mean 2/3, sample sd sqrt(7/3), downside sqrt(1/3)."""
    r = np.array([1.0, -1.0, 2.0])
    assert pytest.approx((2 / 3) / math.sqrt(7 / 3), rel=1e-15) == M.sharpe(r)
    assert pytest.approx((2 / 3) / math.sqrt(1 / 3), rel=1e-15) == M.sortino(r)
    assert M.sharpe(np.array([1.0])) is None
    assert M.sharpe(np.array([1.0, 1.0])) is None
    assert M.sortino(np.array([1.0, 2.0])) is None


def test_fill_ratio_order_to_trade_and_maker_share():
    """3 orders sent, 2 filled (one twice) -> 2/3; 6 messages over 3 fills -> 2; maker qty 3 of 4."""
    events = np.array([R.SENT, R.SENT, R.SENT, R.FILLED, R.PARTIALLY_FILLED], dtype=np.int8)
    ids = np.array([1, 2, 3, 1, 3], dtype=np.uint64)
    assert 2 / 3 == M.fill_ratio(events, ids, np.array([1, 3, 3], dtype=np.uint64))
    actions = np.array([R.ACTION_NEW] * 4 + [R.ACTION_CANCEL] * 2 + [R.ACTION_FLATTEN], dtype=np.int8)
    assert 2.0 == M.order_to_trade(actions, 3)
    assert M.order_to_trade(actions, 0) is None
    assert 0.75 == M.maker_share(np.array([1.0, 2.0, 1.0]), np.array([True, True, False]))


def test_inventory():
    """Mean and max of |position|: positions 1, -3, 2 -> 2 and 3."""
    assert {"inventory_mean_abs": 2.0, "inventory_max_abs": 3.0} == M.inventory(np.array([1.0, -3.0, 2.0]))


def step_mids(ts: np.ndarray, mid: np.ndarray) -> M.MidAt:
    """A hand-made :data:`~hftlab.metrics.compute.MidAt`: the mid as of the last change at or before each
    time; NaN after the last time (the data's end)."""

    def mid_at(times: np.ndarray) -> np.ndarray:
        out = mid[np.searchsorted(ts, times, side="right") - 1].astype(np.float64)
        out[times > ts[-1]] = np.nan
        return out

    return mid_at


def test_markouts_by_hand():
    """Buy at 100 with mid 101 one second later: +1 (100 bps); sell at 100 with mid 101: -1."""
    mid_at = step_mids(np.array([0, S, 2 * S], dtype=np.int64), np.array([100.0, 101.0, 99.0]))
    out = M.markouts(np.array([0, 0]), np.array([1.0, -1.0]), np.array([100.0, 100.0]), [S, 2 * S, 5 * S], mid_at)
    assert 0.0 == out["markout_1s"]  # (+1 + -1) / 2
    assert 0.0 == out["markout_1s_bps"] and 2 == out["markout_1s_n"]
    assert pytest.approx(100.0, rel=1e-12) == out["markout_1s_bps_se"]  # std(+100, -100 bps) / sqrt(2)
    assert 0.0 == out["markout_2s"]  # buy: -1, sell: +1
    assert out["markout_5s"] is None and 0 == out["markout_5s_n"]  # horizon past the data
    one = M.markouts(np.array([0]), np.array([1.0]), np.array([100.0]), [S], mid_at)
    assert 1.0 == one["markout_1s"] and 100.0 == one["markout_1s_bps"]


def test_markouts_ask_every_horizon_in_one_sorted_call():
    """mid_at is called once, with the sorted unique times of every fill and horizon."""
    calls = []

    def mid_at(times: np.ndarray) -> np.ndarray:
        calls.append(times.tolist())
        return np.full(len(times), 100.0)

    M.markouts(np.array([5, 0, 5]), np.ones(3), np.full(3, 100.0), [S, 2 * S], mid_at)
    assert [[S, S + 5, 2 * S, 2 * S + 5]] == calls


def test_compute_metrics_assembles_by_hand():
    """A two-fill run: every assembled number computed by hand."""
    f = fills([(S, 1, 100.0, 2.0, -0.01, True, 1), (3 * S, -1, 101.0, 2.0, 0.05, False, 2)])
    f["position"] = [2.0, 0.0]  # after each fill
    st = state([(0, 0.0, 0.0, 100.0), (S, 2.0, 0.01, 100.0), (2 * S, 2.0, 2.01, 101.0), (3 * S, 0.0, 1.96, 101.0)])
    orders = np.zeros(2, R.ORDER_DTYPE)
    orders["event"], orders["order_id"] = R.SENT, [1, 2]
    dispatch = np.zeros(3, R.DISPATCH_DTYPE)
    dispatch["action"] = [R.ACTION_NEW, R.ACTION_NEW, R.ACTION_CANCEL]
    tables = {"fills": f, "state": st, "orders": orders, "dispatch": dispatch,
              "risk": np.zeros(0, R.CHECK_DTYPE), "throttles": np.zeros(1, R.CHECK_DTYPE)}  # fmt: skip
    account = {"equity": 1.96, "fees": 0.04, "position": 0.0, "killed": False, "mid": 101.0}
    records = SimpleNamespace(tables=tables, account=account, contract_size=1.0, inverse=False)
    config = M.MetricsConfig(capital=100.0, sample_interval_ns=S, markout_horizons_ns=[S])
    m = M.compute_metrics(records, config, mid_at=step_mids(st["local_ts"], st["mid"]))
    assert 1.96 == m["net_pnl"] and 2.0 == m["gross_pnl"] and "quote" == m["money_unit"]
    assert 0.05 == m["fees_paid"] and 0.01 == m["rebates"]
    assert 0.0196 == m["return"]
    assert pytest.approx(0.05) == m["max_drawdown"]  # 2.01 -> 1.96
    assert pytest.approx(1.96 / 0.05) == m["return_over_max_drawdown"]
    assert 2 == m["trades"] and 4.0 == m["volume"] and 402.0 == m["traded_value"] and 4.02 == m["turnover"]
    assert 1.0 == m["fill_ratio"] and 1.5 == m["order_to_trade"] and 0.5 == m["maker_share"]
    assert 1.0 == m["inventory_mean_abs"] and 2.0 == m["inventory_max_abs"]
    r = np.array([0.01, 2.0, -0.05]) / 100.0
    assert pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12) == m["sharpe"]
    assert "sharpe_annualized" not in m and (3, True) == (m["returns_n"], m["returns_too_few"])  # not by default
    yearly = M.compute_metrics(records, M.MetricsConfig(capital=100.0, sample_interval_ns=S, annualize_days=365.0),
                               mid_at=step_mids(st["local_ts"], st["mid"]))  # fmt: skip
    assert pytest.approx(m["sharpe"] * math.sqrt(365 * 86_400), rel=1e-12) == yearly["sharpe_annualized"]
    assert 365.0 == yearly["annualize_days"]
    assert S == m["sample_interval_ns"]
    assert 1.0 == m["markout_1s"]  # buy at 100, mid 101 at 2 s; the sell at 3 s has no mid at 4 s
    # both fills at the mid: no spread captured; the 2 bought at 100 are worth 101 when sold
    assert (0.0, 2.0) == (m["spread_capture"], m["inventory_pnl"])
    assert m["spread_capture"] + m["inventory_pnl"] - m["fees"] == m["net_pnl"]
    assert 2.0 * 2 / 3 == m["inventory_time_weighted_abs"]  # position 2 from 1 s to 3 s of the 3 s run
    assert 1 == m["throttled"] and 0 == m["risk_rejections"]


def test_traded_value_is_in_the_settlement_currency():
    """Linear: price x qty x contract size (quote). Inverse: qty x contract size / price (base, e.g. BTC):
    2 contracts of 10 USD at 100 and at 101 trade 20/100 + 20/101 BTC, not 4,020."""
    price, qty = np.array([100.0, 101.0]), np.array([2.0, 2.0])
    assert 4020.0 == M.traded_value(price, qty, 10.0, inverse=False)
    assert pytest.approx(20 / 100 + 20 / 101, rel=1e-15) == M.traded_value(price, qty, 10.0, inverse=True)
