"""End-to-end Risk scenarios on the real loop: bad strategy output, the kill switch, failures close the venue."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hftlab.checks import check
from hftlab.errors import ConfigError, StrategyError
from hftlab.feed import DatasetRef
from hftlab.run.schema import run_config
from hftlab.runtime import ExecutionConfig, RiskConfig, RuntimeConfig, load_strategy, run_backtest
from hftlab.runtime import records as R
from hftlab.storage import Catalog
from hftlab.venue import QueueConfig, SimulatedVenue, VenueConfig
from tests.conftest import PROJECT_ROOT
from tests.runtime.scripted_strategy import BAD

HERE = PROJECT_ROOT / "tests" / "runtime"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """A short synthetic market (about 40k events)."""
    from hftlab.ingest.synthetic import SynthParams, generate

    catalog = Catalog(tmp_path_factory.mktemp("canonical"))
    catalog.promote(generate(SynthParams(seed=21, days=0.02, events_per_second=20.0)), "syn")
    return DatasetRef("syn").load(catalog)


@pytest.fixture(scope="module")
def scripted():
    return load_strategy("scripted_strategy", HERE)


def run(fed, strategy, params, risk=None, runtime=None):
    return run_backtest(fed, strategy, params, venue=VenueConfig(), risk=risk or RiskConfig(),
                        runtime=runtime or RuntimeConfig())  # fmt: skip


@pytest.mark.parametrize("bad", sorted(BAD))
def test_broken_strategy_output_stops_the_run_naming_file_rule_time_and_row(fed, scripted, bad):
    """Each output rule (and out-of-bounds writes) stops the run with the strategy file, the rule, the event
    time of the evaluation that broke it and the row; nothing runs on to "done"."""
    params = scripted.params({"mode": 1, "fail_after": 40, "bad": bad})
    with pytest.raises(StrategyError) as caught:
        run(fed, scripted, params)
    err = caught.value
    expected_ts = fed.start_ns + 40 * RuntimeConfig().interval_ns  # the 40th evaluation point
    assert err.rule == BAD[bad]
    assert err.event_time_ns == expected_ts
    message = str(err)
    assert (
        "scripted_strategy.py" in message and f"[{BAD[bad]}]" in message and f"at event time {expected_ts}" in message
    )
    if BAD[bad] == "raised":
        assert "IndexError" in message
    elif BAD[bad] == "too_many_orders":
        assert err.row is None and "evaluate returned 65" in message
    else:
        assert err.row == 2 and "out[2]" in message


def test_well_formed_output_runs(fed, scripted):
    """The scripted strategy's well-formed mode runs to the end (the errors above are caused by the break)."""
    out = run(fed, scripted, scripted.params({"mode": 1, "fail_after": 10**9}))
    assert len(out.tables["fills"]) > 0 and len(out.tables["risk"]) == 0


def test_kill_switch_cancels_everything_and_nothing_follows(fed):
    """When equity falls below the loss limit, every live order gets a cancel, quoting stops for good, and
    with flatten_on_kill one market order closes the position."""
    grid = load_strategy("grid", PROJECT_ROOT / "strategies")
    params = grid.params(
        {"grid_num": 3, "grid_interval": 0.1, "half_spread": 0.1, "order_qty": 0.01, "max_position": 0.05}
    )
    free = run(fed, grid, params)
    equity = free.tables["state"]["equity"]
    drawdown = float((np.maximum.accumulate(equity) - equity).max())
    assert drawdown > 0.0, "scenario needs a drawdown to trigger on"
    out = run(fed, grid, params, risk=RiskConfig(max_drawdown=drawdown / 2, flatten_on_kill=True))
    assert out.account["killed"]
    orders = out.tables["orders"]
    kill = orders[(orders["event"] == R.CANCEL_SENT) & (orders["rule"] == R.RULE_KILL_SWITCH)]
    dispatch = out.tables["dispatch"]
    flatten = dispatch[dispatch["action"] == R.ACTION_FLATTEN]
    kill_ts = int(flatten["local_ts"][0]) if len(flatten) else int(kill["local_ts"][0])
    # every order live at the kill gets a cancel at that moment
    sent_before = set(orders["order_id"][(orders["event"] == R.SENT) & (orders["local_ts"] < kill_ts)].tolist())
    ended_before = set(
        orders["order_id"][
            np.isin(orders["event"], [R.FILLED, R.CANCELLED, R.EXPIRED, R.VENUE_REJECTED])
            & (orders["local_ts"] <= kill_ts)
        ].tolist()
    )
    cancelled_at_kill = set(kill["order_id"].tolist())
    assert sent_before - ended_before <= cancelled_at_kill | set(
        orders["order_id"][(orders["event"] == R.CANCEL_SENT) & (orders["local_ts"] < kill_ts)].tolist()
    )
    assert np.all(kill["local_ts"] == kill_ts)
    after = dispatch[dispatch["local_ts"] > kill_ts]
    assert 0 == np.sum(after["action"] == R.ACTION_NEW)
    assert 0 == np.sum(dispatch[(dispatch["local_ts"] == kill_ts)]["action"] == R.ACTION_NEW)
    assert 1 == len(flatten)
    position_at_kill = out.tables["fills"]["position"][out.tables["fills"]["local_ts"] <= kill_ts][-1]
    assert abs(position_at_kill) == pytest.approx(flatten["qty"][0])
    assert -np.sign(position_at_kill) == flatten["side"][0]


def test_exception_inside_a_run_still_closes_the_venue(fed, scripted, monkeypatch):
    """A strategy raising inside the compiled loop stops the run naming it, and hftbacktest is closed exactly once."""
    closes = []
    original = SimulatedVenue.close

    def spy(self):
        closes.append(self._closed)
        original(self)

    monkeypatch.setattr(SimulatedVenue, "close", spy)
    with pytest.raises(StrategyError, match=r"\[raised\] at event time \d+ ns: ValueError: scripted strategy failure"):
        run(fed, scripted, scripted.params({"mode": 2, "fail_after": 5}))
    assert [False] == closes


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"mode": 7}, "strategy.params.mode"),
        ({"qty": -1.0}, "strategy.params.qty"),
        ({"qty": "a lot"}, "strategy.params.qty"),
        ({"colour": 1}, "strategy.params.colour"),
    ],
)
def test_invalid_strategy_params_fail_before_the_run_naming_the_key(scripted, values, key):
    """Unknown keys, wrong types and broken invariants of strategy parameters name the key."""
    with pytest.raises(ConfigError, match=key):
        scripted.params(values)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (RiskConfig(max_position=-1.0), "risk.max_position"),
        (RiskConfig(max_order_qty=float("nan")), "risk.max_order_qty"),
        (ExecutionConfig(min_rest_ns=-5), "execution.min_rest_ns"),
        (RuntimeConfig(evaluation="sometimes"), "runtime.evaluation"),
        (RuntimeConfig(interval_ns=0), "runtime.interval_ns"),
    ],
)
def test_invalid_runtime_configs_fail_before_the_run_naming_the_key(config, key):
    """Out-of-range Risk, Execution Control and runtime values are refused, naming the key, by the check of
    the section and by the run boundary (``run_config``, before any venue is built; ``run_backtest`` uses
    its configs as given)."""
    section = key.split(".")[0]
    with pytest.raises(ConfigError, match=key):
        check(config, section)
    composed = {"strategy": {"name": "scripted_strategy"}, section: dataclasses.asdict(config)}
    with pytest.raises(ConfigError, match=key):
        run_config(composed, HERE)


def test_venue_config_errors_name_the_key(fed, scripted):
    """Unknown model names in the venue config are refused with the key (the config's check; the run
    boundary ``run_config`` too; and a config built in Python and never checked is refused by the venue,
    not taken for another model)."""
    unchecked = VenueConfig(queue=QueueConfig(model="fifo"))
    with pytest.raises(ConfigError, match="venue.queue.model"):
        check(unchecked, "venue")
    composed = {"strategy": {"name": "scripted_strategy"}, "venue": {"queue": {"model": "fifo"}}}
    with pytest.raises(ConfigError, match="venue.queue.model"):
        run_config(composed, HERE)
    with pytest.raises(ConfigError, match=r"venue.queue.model: 'fifo' is not one of risk_averse, power_prob"):
        run_backtest(fed, scripted, scripted.params({}), venue=unchecked)


def test_unknown_strategy_name_and_path_like_names_are_refused():
    """A strategy is found by name in strategies/ only: unknown names and paths are refused."""
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        load_strategy("nope", PROJECT_ROOT / "strategies")
    for name in ("../grid", "grid/x", ".grid", "os.path"):
        with pytest.raises(ConfigError, match="strategy.name"):
            load_strategy(name, PROJECT_ROOT / "strategies")
