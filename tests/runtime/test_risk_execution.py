"""Risk, Execution Control and the strategy output contract, each rule triggered on hand-made inputs with its
record checked (the compiled functions called directly)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftlab.runtime import records as R
from hftlab.runtime.config import ExecutionConfig, RiskConfig
from hftlab.runtime.contract import OUTPUT_ERROR_DTYPE, check_output
from hftlab.runtime.execution import plan_actions
from hftlab.runtime.lifecycle import add_live, new_orders
from hftlab.runtime.risk import check_wanted, kill_check
from hftlab.runtime.runner import _loop_state
from hftlab.runtime.state import Contract, new_account
from hftlab.venue.config import VenueConfig

NOW = 1_000_000_000_000
TICK, LOT = 0.5, 0.1
CONTRACT = Contract(tick_size=TICK, lot_size=LOT, contract_size=1.0, inverse=False, fee_model=0, maker_fee=0.0,
                    taker_fee=0.0, lot_num=1.0, lot_den=10.0)  # fmt: skip


def limits(risk: RiskConfig):
    return _loop_state(VenueConfig(tick_size=TICK, lot_size=LOT), risk, ExecutionConfig(), _runtime()).limits


def rules_of(execution: ExecutionConfig):
    return _loop_state(VenueConfig(tick_size=TICK, lot_size=LOT), RiskConfig(), execution, _runtime()).rules


def _runtime():
    from hftlab.runtime.config import RuntimeConfig

    return RuntimeConfig(max_orders=8)


def account(position: float = 0.0) -> np.ndarray:
    acct = new_account()
    acct["position"] = position
    return acct


def set_wanted(orders, rows) -> int:
    for i, (side, price, qty) in enumerate(rows):
        orders.wanted[i] = (side, price, qty, 0.0)
    return len(rows)


def check(risk: RiskConfig, rows, *, position: float = 0.0, mid: float = 100.0):
    """Run Risk on wanted rows; return (accepted mask, risk table rows)."""
    acct = account(position)
    orders = new_orders(8, math.inf)
    n = set_wanted(orders, rows)
    rec = R.allocate_records(64)
    check_wanted(acct[0], CONTRACT, limits(risk), orders, n, mid, NOW, rec)
    tables = R.valid_rows(rec)
    accepted = orders.accepted[:n]
    assert tables["risk"]["rule"].tolist() == orders.rules[:n][~accepted].tolist()
    return accepted.tolist(), tables["risk"]


OUTPUT_CASES = [
    ("invalid price NaN", (1.0, math.nan, 1.0, 0.0), R.RULE_INVALID_PRICE),
    ("non-positive price", (1.0, 0.0, 1.0, 0.0), R.RULE_INVALID_PRICE),
    ("infinite price", (1.0, math.inf, 1.0, 0.0), R.RULE_INVALID_PRICE),
    ("off tick", (1.0, 99.7, 1.0, 0.0), R.RULE_OFF_TICK),
    ("zero qty", (1.0, 99.5, 0.0, 0.0), R.RULE_INVALID_QTY),
    ("off lot", (1.0, 99.5, 0.15, 0.0), R.RULE_OFF_LOT),
    ("bad side", (2.0, 99.5, 1.0, 0.0), R.RULE_INVALID_SIDE),
    ("bad tif", (1.0, 99.5, 1.0, 4.0), R.RULE_INVALID_TIF),
]


@pytest.mark.parametrize(("name", "row", "rule"), OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_each_output_rule_names_the_row(name, row, rule):
    """The first row breaking the output contract is reported with its rule, index and values."""
    wanted = np.zeros((4, 4))
    wanted[0] = (1.0, 99.5, 0.1, 1.0)
    wanted[1] = row
    error = np.zeros(1, OUTPUT_ERROR_DTYPE)
    assert not check_output(2, wanted, TICK, LOT, NOW, error)
    e = error[0]
    assert (rule, 1, NOW, 2) == (e["rule"], e["row"], e["ts"], e["count"])
    assert np.array_equal(np.array([e["side"], e["price"], e["qty"], e["tif"]]), np.array(row), equal_nan=True)
    assert check_output(1, wanted, TICK, LOT, NOW, error)  # the well-formed first row alone passes


def test_output_count_outside_the_rows_is_refused():
    wanted = np.zeros((4, 4))
    error = np.zeros(1, OUTPUT_ERROR_DTYPE)
    for n in (-1, 5):
        assert not check_output(n, wanted, TICK, LOT, NOW, error)
        assert (R.RULE_TOO_MANY_ORDERS, n, 4) == (error[0]["rule"], error[0]["count"], error[0]["capacity"])
    assert check_output(0, wanted, TICK, LOT, NOW, error)


RISK_CASES = [
    ("max order qty", RiskConfig(max_order_qty=0.5), (1.0, 99.5, 0.6), R.RULE_MAX_ORDER_QTY),
    ("max notional", RiskConfig(max_notional=50.0), (1.0, 99.5, 0.6), R.RULE_MAX_NOTIONAL),
    ("price band", RiskConfig(price_band=0.01), (1.0, 98.5, 0.1), R.RULE_PRICE_BAND),
    ("max position", RiskConfig(max_position=1.0), (1.0, 99.5, 1.1), R.RULE_MAX_POSITION),
]


@pytest.mark.parametrize(("name", "risk", "row", "rule"), RISK_CASES, ids=[c[0] for c in RISK_CASES])
def test_each_risk_rule_rejects_and_records(name, risk, row, rule):
    """The order breaking a rule is refused, and the rejection row names the rule with the order's values."""
    accepted, table = check(risk, [(1.0, 99.5, 0.1), row])
    assert [True, False] == accepted
    assert 1 == len(table)
    assert rule == table["rule"][0]
    assert row[1] == table["price"][0] or math.isnan(row[1])
    assert row[2] == table["qty"][0]
    assert NOW == table["local_ts"][0]


def test_risk_records_value_and_limit():
    """Rejections carry the value that broke the rule and the configured limit."""
    _, table = check(RiskConfig(price_band=0.01), [(1.0, 98.5, 0.1)], mid=100.0)
    assert pytest.approx(0.015) == table["value"][0]
    assert 0.01 == table["limit"][0]
    _, table = check(RiskConfig(max_position=1.0), [(-1.0, 100.5, 0.4)], position=-0.7)
    assert R.RULE_MAX_POSITION == table["rule"][0]
    assert pytest.approx(1.1) == table["value"][0] and 1.0 == table["limit"][0]


def test_position_limit_counts_all_wanted_same_side_orders():
    """Position + every accepted same-side wanted order must stay within max_position."""
    accepted, table = check(
        RiskConfig(max_position=1.0), [(1.0, 99.5, 0.4), (1.0, 99.0, 0.4), (1.0, 98.5, 0.4), (-1.0, 100.5, 0.4)],
        position=0.2,
    )  # fmt: skip
    assert [True, True, False, True] == accepted
    assert [R.RULE_MAX_POSITION] == table["rule"].tolist()


def test_max_open_orders():
    """Only max_open_orders wanted orders pass; the rest are recorded."""
    accepted, table = check(RiskConfig(max_open_orders=2), [(1.0, 99.5, 0.1), (1.0, 99.0, 0.1), (-1.0, 100.5, 0.1)])
    assert [True, True, False] == accepted
    assert [R.RULE_MAX_OPEN_ORDERS] == table["rule"].tolist()
    assert 3.0 == table["value"][0] and 2.0 == table["limit"][0]


def test_price_band_without_mid_is_refused():
    """With a price band configured and no two-sided book, orders cannot be checked: refused (no_mid)."""
    accepted, table = check(RiskConfig(price_band=0.01), [(1.0, 99.5, 0.1)], mid=math.nan)
    assert [False] == accepted and [R.RULE_NO_MID] == table["rule"].tolist()


def test_kill_switch_on_drawdown_and_loss():
    """The kill switch fires once when equity falls max_drawdown below its peak or max_loss below zero."""
    acct = account()
    risk = limits(RiskConfig(max_drawdown=5.0, max_loss=100.0))
    acct["peak_equity"], acct["equity"] = 10.0, 6.0
    assert not kill_check(acct[0], risk)
    acct["equity"] = 4.9
    assert kill_check(acct[0], risk)
    assert acct["killed"][0]
    assert not kill_check(acct[0], risk)  # fires once
    acct = account()
    acct["equity"] = -100.5
    assert kill_check(acct[0], limits(RiskConfig(max_loss=100.0)))
    accepted, _ = check(RiskConfig(), [(1.0, 99.5, 0.1)])
    assert [True] == accepted


def live_table(*orders: tuple[int, int, float, float, int], action_times: int = 0):
    """Live orders (order_id, side, price, qty, sent_ts), in buffers for up to 8 wanted orders."""
    acct = account()
    book = new_orders(8, float(action_times) if action_times else math.inf)
    for oid, side, price, qty, sent in orders:
        add_live(book, acct[0], CONTRACT, np.uint64(oid), np.int8(side), price, qty, np.uint8(0), sent)
    return book, acct


def plan(book, acct, rows, execution: ExecutionConfig, now=NOW):
    """Execution Control's plan: (action, index, side, price, qty, tif) rows, and the throttles table."""
    n = set_wanted(book, rows)
    book.accepted[:] = True
    rec = R.allocate_records(64)
    k = plan_actions(book, int(acct["n_live"][0]), n, rules_of(execution), now, TICK, rec)
    p = book.plan[:k]
    actions = [(p["action"][i], p["index"][i], p["side"][i], p["price"][i], p["qty"][i], p["tif"][i]) for i in range(k)]
    return actions, R.valid_rows(rec)["throttles"]


def test_reconcile_keeps_matching_cancels_stale_and_sends_new_in_priority_order():
    """Matching orders stay; others are cancelled first (id order); new bids high->low, then asks low->high."""
    live, acct = live_table((1, 1, 99.5, 0.1, 0), (2, 1, 99.0, 0.1, 0), (3, -1, 101.0, 0.1, 0))
    actions, throttles = plan(
        live, acct, [(1.0, 99.5, 0.1), (-1.0, 100.5, 0.1), (1.0, 98.0, 0.1), (1.0, 98.5, 0.1), (-1.0, 100.0, 0.1)],
        ExecutionConfig(),
    )  # fmt: skip
    assert [
        (R.ACTION_CANCEL, 1, 1, 99.0),
        (R.ACTION_CANCEL, 2, -1, 101.0),
        (R.ACTION_NEW, 3, 1, 98.5),
        (R.ACTION_NEW, 2, 1, 98.0),
        (R.ACTION_NEW, 4, -1, 100.0),
        (R.ACTION_NEW, 1, -1, 100.5),
    ] == [(int(a[0]), int(a[1]), int(a[2]), a[3]) for a in actions]
    assert 0 == len(throttles)


def test_quantity_change_replaces_after_cancel():
    """A wanted quantity different from the live one cancels it; the new order waits (duplicate level)."""
    live, acct = live_table((1, 1, 99.5, 0.1, 0))
    actions, throttles = plan(live, acct, [(1.0, 99.5, 0.2)], ExecutionConfig())
    assert [(R.ACTION_CANCEL, 0)] == [(int(a[0]), int(a[1])) for a in actions]
    assert [R.RULE_DUPLICATE] == throttles["rule"].tolist()
    assert 99.5 == throttles["price"][0] and 0.2 == throttles["qty"][0]


def test_min_rest_time_throttles_cancel():
    """An order younger than min_rest_ns is not cancelled; the throttle records its age and the limit."""
    live, acct = live_table((7, 1, 99.5, 0.1, NOW - 300), (8, 1, 99.0, 0.1, NOW - 2_000))
    actions, throttles = plan(live, acct, [], ExecutionConfig(min_rest_ns=1_000))
    assert [(R.ACTION_CANCEL, 1)] == [(int(a[0]), int(a[1])) for a in actions]
    assert [R.RULE_MIN_REST] == throttles["rule"].tolist()
    assert 7 == throttles["order_id"][0] and 300.0 == throttles["value"][0] and 1_000.0 == throttles["limit"][0]


def test_action_rate_limit_over_a_sliding_second():
    """At most max_actions_per_second requests in any 1 s of event time; the excess is recorded."""
    live, acct = live_table(action_times=2)
    rows = [(1.0, 99.5, 0.1), (1.0, 99.0, 0.1), (1.0, 98.5, 0.1)]
    actions, throttles = plan(live, acct, rows, ExecutionConfig(max_actions_per_second=2))
    assert 2 == len(actions)
    assert [R.RULE_RATE] == throttles["rule"].tolist() and 98.5 == throttles["price"][0]
    # 0.5 s later the window is still full; 1 s after the first actions it has room again (same ring).
    actions, _ = plan(live, acct, rows[2:], ExecutionConfig(max_actions_per_second=2), now=NOW + 500_000_000)
    assert 0 == len(actions)
    actions, _ = plan(live, acct, rows[2:], ExecutionConfig(max_actions_per_second=2), now=NOW + 1_000_000_000)
    assert 1 == len(actions)


def test_no_duplicate_orders_at_a_level():
    """No new order at a side and price where one is live (even pending cancel) or already planned."""
    live, acct = live_table((1, 1, 99.5, 0.1, 0))
    live.live["cancel_pending"][0] = True
    actions, throttles = plan(live, acct, [(1.0, 99.5, 0.1)], ExecutionConfig())
    assert 0 == len(actions)
    assert [R.RULE_DUPLICATE] == throttles["rule"].tolist()
    live, acct = live_table()
    actions, throttles = plan(live, acct, [(1.0, 99.5, 0.1), (1.0, 99.5, 0.3)], ExecutionConfig())
    assert [(R.ACTION_NEW, 99.5, 0.1)] == [(int(a[0]), a[3], a[4]) for a in actions]
    assert [R.RULE_DUPLICATE] == throttles["rule"].tolist() and 0.3 == throttles["qty"][0]


def test_post_only_forces_gtx():
    """With post_only, every new order goes out with time in force GTX (1) whatever the strategy asked."""
    live, acct = live_table()
    actions, _ = plan(live, acct, [(1.0, 99.5, 0.1)], ExecutionConfig(post_only=True))
    assert 1.0 == actions[0][5]
    actions, _ = plan(live, acct, [(1.0, 99.5, 0.1)], ExecutionConfig(post_only=False))
    assert 0.0 == actions[0][5]
