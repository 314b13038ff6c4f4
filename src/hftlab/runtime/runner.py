"""Run one backtest: fed events + venue + strategy + Risk + Execution Control -> execution records.

The Python side of the Core Runtime: it validates every configuration before anything runs, builds the
Simulated Venue (closed exactly once, also on errors), allocates the loop's state arrays, calls the
compiled loop (growing record tables when it asks), and returns columnar records.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hftlab.errors import HftlabError
from hftlab.feed import FeedData
from hftlab.runtime import core as C
from hftlab.runtime.adapter import DONE, NEED_ROOM, PROGRESS, run_loop
from hftlab.runtime.config import ExecutionConfig, RiskConfig, RuntimeConfig
from hftlab.runtime.records import FILL_DTYPE, RecordBuffers
from hftlab.runtime.strategy import Strategy
from hftlab.venue.config import VenueConfig
from hftlab.venue.simulated import SimulatedVenue

_FEE_MODELS = {"value": 0.0, "qty": 1.0, "flat": 2.0}
PROGRESS_SECONDS = 0.5
#: hftbacktest 2.4.4's BacktestError codes.
_BACKTEST_ERRORS = {
    10: "OrderIdExist",
    11: "OrderRequestInProcess",
    12: "OrderNotFound",
    13: "InvalidOrderRequest",
    14: "InvalidOrderStatus",
    15: "EndOfData",
    16: "DataError",
}
_ERROR_HINTS = {
    14: (
        "; hftbacktest 2.4.4's partial-fill exchange fails this way when orders are replaced often "
        "(a plain hftbacktest loop fails the same way): use venue.exchange=no_partial_fill for such strategies"
    ),
}


class VenueError(HftlabError):
    """hftbacktest returned an error code from the loop."""


@dataclass
class RunOutput:
    """What one backtest produced: records (deterministic) and measurements (not)."""

    tables: dict[str, np.ndarray]
    account: dict[str, float]
    venue: VenueConfig  #: resolved (instrument values filled in)
    events: int
    telemetry: dict[str, Any] = field(default_factory=dict)


def run_backtest(
    fed: FeedData,
    strategy: Strategy,
    params: Any,
    venue: VenueConfig,
    risk: RiskConfig,
    execution: ExecutionConfig,
    runtime: RuntimeConfig,
    progress: Callable[[int], None] | None = None,
) -> RunOutput:
    """Execute the Core Runtime over ``fed`` and return its execution records.

    ``progress(event_time_ns)`` is called about every ``PROGRESS_SECONDS`` of wall time while the loop
    runs (the loop returns every N steps; N adapts so the returns stay rare and cheap).
    """
    runtime.validate()
    risk.validate()
    execution.validate()
    strategy.module.validate(params)
    sim = SimulatedVenue(fed, venue)
    cfg = sim.config
    acct = np.zeros(C.ACCOUNT_SIZE, dtype=np.float64)
    acct[C.TICK] = cfg.tick_size
    acct[C.LOT] = cfg.lot_size
    acct[C.CONTRACT_SIZE] = cfg.contract_size
    acct[C.INVERSE] = 1.0 if cfg.contract_type == "inverse" else 0.0
    acct[C.FEE_MODEL] = _FEE_MODELS[cfg.fees.model]
    acct[C.MAKER_FEE] = cfg.fees.maker
    acct[C.TAKER_FEE] = cfg.fees.taker
    acct[C.RECORD_INTERVAL] = float(runtime.record_interval_ns)
    acct[C.NEXT_ORDER_ID] = 1.0
    acct[C.MID] = math.nan
    max_orders = runtime.max_orders
    max_live = 4 * max_orders
    rate = execution.max_actions_per_second
    live = np.zeros(max_live, dtype=C.LIVE_DTYPE)
    action_times = np.full(0 if math.isinf(rate) else max(int(rate), 0), -1, dtype=np.int64)
    wanted = np.zeros((max_orders, 4), dtype=np.float64)
    plan = np.zeros((max_live + max_orders, 6), dtype=np.float64)
    step_fills = np.zeros(max_live, dtype=FILL_DTYPE)
    book = np.full((4, runtime.book_levels), np.nan)
    trade_ts = np.zeros(runtime.trade_buffer, dtype=np.int64)
    trades = np.zeros((3, runtime.trade_buffer), dtype=np.float64)
    trade_count = np.zeros(1, dtype=np.int64)
    order_view = np.zeros((3, max_live), dtype=np.float64)
    scratch = np.zeros(strategy.scratch_size, dtype=np.float64)
    ended = np.zeros(max_live, dtype=np.int8)
    ended_ts = np.zeros(max_live, dtype=np.int64)
    accepted = np.zeros(max_orders, dtype=np.bool_)
    rules = np.zeros(max_orders, dtype=np.int8)
    order_idx = np.zeros(2 * max_orders, dtype=np.int64)
    buffers = RecordBuffers.allocate(runtime.initial_capacity)
    room_needed = 4 * max_live + 3 * max_orders + 8
    while buffers.room() <= room_needed:
        buffers = RecordBuffers.allocate(2 * len(buffers.orders))
    mode = 0 if runtime.evaluation == "interval" else 1
    risk_arr = risk.as_array()
    exec_arr = execution.as_array()
    t0 = time.perf_counter()
    calls = 0
    steps = 0 if progress is None else 20_000
    last = t0
    with sim as hbt:
        while True:
            calls += 1
            status = run_loop(
                hbt, strategy.evaluate, params, scratch, acct, risk_arr, exec_arr, live, action_times, wanted, plan,
                step_fills, book, trade_ts, trades, trade_count, order_view, mode, runtime.interval_ns,
                runtime.timeout_ns, runtime.book_scan_ticks, buffers.orders, buffers.fills, buffers.dispatch,
                buffers.risk, buffers.throttles, buffers.state, buffers.counts, room_needed, steps, ended, ended_ts,
                accepted, rules, order_idx,
            )  # fmt: skip
            if status == DONE:
                break
            if status == PROGRESS and progress is not None:
                now = time.perf_counter()
                # keep returns near PROGRESS_SECONDS apart: few enough to cost nothing measurable
                steps = max(
                    100,
                    min(
                        10_000_000,
                        int(
                            steps
                            * (
                                2.0
                                if now - last < PROGRESS_SECONDS / 2
                                else 0.5
                                if now - last > 2 * PROGRESS_SECONDS
                                else 1.0
                            )
                        ),
                    ),
                )
                last = now
                progress(int(hbt.current_timestamp))
                continue
            if status == NEED_ROOM:
                buffers = buffers.grown()
                continue
            name = _BACKTEST_ERRORS.get(status, "unknown")
            hint = _ERROR_HINTS.get(status, "")
            raise VenueError(
                f"hftbacktest returned error code {status} ({name}) at event time {hbt.current_timestamp}{hint}"
            )
    wall = time.perf_counter() - t0
    account = {
        "position": float(acct[C.POSITION]),
        "cash": float(acct[C.CASH]),
        "fees": float(acct[C.FEES]),
        "equity": float(acct[C.EQUITY]),
        "mid": float(acct[C.MID]),
        "killed": bool(acct[C.KILLED] > 0.0),
    }
    return RunOutput(
        tables=buffers.tables(),
        account=account,
        venue=cfg,
        events=len(fed.events),
        telemetry={"loop_seconds": wall, "loop_calls": calls},
    )
