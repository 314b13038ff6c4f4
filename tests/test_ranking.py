"""Best by a metric: the one rule behind sweep summaries, walk-forward folds and reports."""

from __future__ import annotations

import math

import pytest

from hftlab.analysis.report import _choose
from hftlab.errors import ConfigError
from hftlab.ranking import Goal, best_index, goal, rankable, ranked
from hftlab.sweep.summary import best_runs


def test_goal_parses_direction_and_refuses_an_empty_name():
    assert Goal("net_pnl", False) == goal("net_pnl")
    assert Goal("max_drawdown", True) == goal("-max_drawdown")
    assert "min" == goal("-x").word and "max" == goal("x").word
    # a bare name takes the metric's own direction: `--metric max_drawdown` means the smallest drawdown
    assert Goal("max_drawdown", True) == goal("max_drawdown") and Goal("max_drawdown", False) == goal("+max_drawdown")
    assert Goal("net_pnl", False) == goal("+net_pnl") and Goal("fees", True) == goal("fees")
    with pytest.raises(ConfigError, match=r"--metric '-': give a metric name"):
        goal("-", "--metric")


def test_best_index_ties_go_first_and_only_finite_numbers_rank():
    assert 2 == best_index([None, 1.0, 3.0, 3.0], lower=False)
    assert 1 == best_index([None, 1.0, 3.0, 1.0], lower=True)
    assert 3 == best_index([math.nan, True, math.inf, -2, "5"], lower=False)  # only -2 ranks
    assert best_index([None, math.nan, -math.inf, False], lower=True) is None
    assert best_index([], lower=False) is None
    assert [None, None, 2.0, None] == [rankable(x) for x in (True, math.nan, 2, "2")]


def test_every_chooser_uses_the_rule():
    """The sweep summary and the report pick the same run for a lower-is-better metric (the report used
    to look the spec up as a metric name, '-max_drawdown', and fall back to the first run)."""
    rows = [
        {"run_id": "a", "max_drawdown": 3.0, "param.x": 1},
        {"run_id": "b", "max_drawdown": 1.0, "param.x": 2},
        {"run_id": "c", "max_drawdown": math.nan, "param.x": 3},
    ]
    summary = best_runs(rows, ["-max_drawdown"])
    assert {"run_id": "b", "value": 1.0, "goal": "min", "params": {"x": 2}} == summary["max_drawdown"]
    assert [1, 0] == _choose(rows, goal("-max_drawdown"))  # b first; c has no finite value
    assert [] == _choose(rows, goal("sharpe"))  # no run has it: none is the best
    assert [0] == _choose(rows[2:], goal("max_drawdown"))  # an only run is shown anyway
    assert [1, 0] == _choose(rows, goal("max_drawdown"))  # the bare name: lowest drawdown first


def test_ranked_orders_the_rankable_values_best_first_keeping_ties_in_order():
    values = [2.0, None, 5, math.nan, 2, True, -1.0]
    assert [2, 0, 4, 6] == ranked(values, lower=False)
    assert [6, 0, 4, 2] == ranked(values, lower=True)
