"""Run one backtest: fed events + venue + strategy + Risk + Execution Control -> execution records.

The Python side of the Core Runtime. It turns the (already checked) configurations into the loop's named
records (:class:`~hftlab.runtime.loop.Loop`), compiles (or loads from the cache) the strategy and the loop for this run's types, opens the Simulated Venue (closed exactly
once, also on errors), calls the compiled loop until the data ends (growing the record tables when it
asks, reporting progress when it returns to say so) and returns columnar records.

The loop takes the strategy as a first-class function (``numba.types.FunctionType``), never as a
dispatcher: that keeps the loop's compiled code independent of which strategy runs, so numba's cache
serves it to every later process and a strategy edit recompiles the strategy only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numba
import numpy as np
from numba.core import event as numba_event

from hftlab import faults
from hftlab.errors import StrategyError, VenueError
from hftlab.feed import FeedData
from hftlab.hftbacktest_types import BACKTEST_ERRORS
from hftlab.jit import PYTHON_MODE, record_array
from hftlab.runtime import records as R
from hftlab.runtime.config import ExecutionConfig, RiskConfig, RuntimeConfig
from hftlab.runtime.contract import OUTPUT_ERROR_DTYPE
from hftlab.runtime.execution import ExecutionRules
from hftlab.runtime.lifecycle import new_orders, rows_per_step
from hftlab.runtime.loop import DONE, NEED_ROOM, OUTPUT_ERROR, PROGRESS, Loop, LoopSettings, run_loop
from hftlab.runtime.record_files import ROW_GROUP, RecordWriter, load_converters
from hftlab.runtime.risk import RiskLimits
from hftlab.runtime.state import FEE_MODELS, Contract, new_account, new_market, on_lot_value
from hftlab.runtime.strategy import Strategy, compiled_evaluate, evaluate_signature
from hftlab.venue import abi
from hftlab.venue.config import VenueConfig
from hftlab.venue.simulated import SimulatedVenue
from hftlab.watchdog import beat

PROGRESS_SECONDS = 0.5
_ERROR_HINTS = {
    14: (
        "; hftbacktest 2.4.4's partial-fill exchange fails this way when orders are replaced often "
        "(a plain hftbacktest loop fails the same way): use venue.exchange=no_partial_fill for such strategies"
    ),
}


class Progress(Protocol):
    """What ``run_backtest`` reports progress to (:class:`hftlab.runtime.progress.RunProgress`)."""

    def start(self) -> None: ...  # the loop starts now (compilation is over): rates count from here

    def __call__(self, now_ns: int) -> None: ...


@dataclass
class RunOutput:
    """What one backtest produced: records (deterministic) and measurements (not)."""

    tables: Mapping[str, Any]  #: name -> rows (in memory), or -> a :class:`StoredTable` (``records_dir``)
    account: dict[str, float]
    venue: VenueConfig  #: resolved (instrument values filled in)
    events: int
    telemetry: dict[str, Any] = field(default_factory=dict)

    @property
    def contract_size(self) -> float:
        return float(self.venue.contract_size)

    @property
    def inverse(self) -> bool:
        return bool(self.venue.contract_type == "inverse")


def contract_of(venue: VenueConfig) -> Contract:
    """The instrument and fee terms of a resolved venue config, as the loop reads them."""
    lot = Fraction(Decimal(repr(float(venue.lot_size))))
    return Contract(
        tick_size=float(venue.tick_size),
        lot_size=float(venue.lot_size),
        contract_size=float(venue.contract_size),
        inverse=venue.contract_type == "inverse",
        fee_model=FEE_MODELS[venue.fees.model],
        maker_fee=float(venue.fees.maker),
        taker_fee=float(venue.fees.taker),
        lot_num=float(lot.numerator),
        lot_den=float(lot.denominator),
    )


def _loop_state(venue: VenueConfig, risk: RiskConfig, execution: ExecutionConfig, runtime: RuntimeConfig) -> Loop:
    orders = new_orders(runtime.max_orders, execution.max_actions_per_second)
    return Loop(
        account=new_account(),
        contract=contract_of(venue),
        limits=RiskLimits(
            float(risk.max_position),
            float(risk.max_order_qty),
            float(risk.max_notional),
            float(risk.price_band),
            float(risk.max_open_orders),
            float(risk.max_drawdown),
            float(risk.max_loss),
            bool(risk.flatten_on_kill),
        ),
        rules=ExecutionRules(
            float(execution.max_actions_per_second), int(execution.min_rest_ns), bool(execution.post_only)
        ),
        settings=LoopSettings(
            every_feed=runtime.evaluation == "every_feed",
            interval_ns=int(runtime.interval_ns),
            timeout_ns=int(runtime.timeout_ns),
            book_scan_ticks=int(runtime.book_scan_ticks),
            record_interval_ns=int(runtime.record_interval_ns),
            rows_per_step=rows_per_step(orders),
        ),
        market=new_market(runtime.book_levels, runtime.trade_buffer),
        orders=orders,
        error=record_array(1, OUTPUT_ERROR_DTYPE),
    )


def _compile_loop(args: tuple[Any, ...], params_dtype: np.dtype) -> None:
    """Make ``run_loop`` callable with these argument types, the strategy typed as a first-class function.

    ``compile`` loads the overload from numba's cache when it is there. Compilation stays disabled
    afterwards, so a call converts the strategy's dispatcher to the first-class function type instead of
    specializing the loop on that dispatcher (which would recompile per strategy and per process).
    """
    if PYTHON_MODE:
        return
    types = [numba.typeof(a) for a in args]
    types[1] = numba.types.FunctionType(evaluate_signature(params_dtype))
    run_loop.disable_compile(False)
    try:
        run_loop.compile(tuple(types))
    finally:
        run_loop.disable_compile()


def compile_seconds(buffer: list[tuple[float, Any]]) -> float:
    """Seconds spent in top-level numba compilations (nested compiles are inside their callers)."""
    total = 0.0
    depth = 0
    start = 0.0
    for ts, ev in buffer:
        if ev.is_start:
            if depth == 0:
                start = ts
            depth += 1
        elif ev.is_end:
            depth -= 1
            if depth == 0:
                total += ts - start
    return total


def run_backtest(
    fed: FeedData,
    strategy: Strategy,
    params: Any,
    *,
    venue: VenueConfig | None = None,
    risk: RiskConfig = RiskConfig(),
    execution: ExecutionConfig = ExecutionConfig(),
    runtime: RuntimeConfig = RuntimeConfig(),
    progress: Progress | None = None,
    records_dir: Path | None = None,
    spill_rows: int = ROW_GROUP,
) -> RunOutput:
    """Execute the Core Runtime over ``fed`` and return its execution records.

    ``venue`` defaults to :class:`VenueConfig`'s defaults; instrument fields left at 0/"" are taken from
    the fed dataset's instrument. The configs are used as given: :func:`hftlab.run.schema.run_config`
    checks a whole run once (``hftlab.checks.check(section, "risk")`` checks one section built in Python);
    ``params`` come from ``strategy.params(...)``, which checks them.

    ``progress.start()`` is called once compilation is over, then ``progress(event_time_ns)`` about every
    ``PROGRESS_SECONDS`` of wall time (the loop returns every N steps; N adapts so the returns stay rare
    and cheap). Raises :class:`~hftlab.errors.StrategyError` when the strategy's output breaks its contract
    or the strategy raises, :class:`~hftlab.errors.VenueError` when hftbacktest returns an error.

    With ``records_dir``, the record tables are written there as Parquet files while the loop runs (a
    table reaching ``spill_rows`` rows is written out, not grown, in Parquet row groups of ``spill_rows``
    rows: memory stays bounded however long the window) and ``tables`` reads them back a column at a time;
    without it they stay in memory.
    """
    sim, lp, params_rec, scratch, rec = _prepared(fed, strategy, params, venue, risk, execution, runtime)
    t_compile = time.perf_counter()
    with numba_event.install_recorder("numba:compile") as compiles:
        evaluate = compiled_evaluate(strategy, params_rec.dtype)
    steps = 0 if progress is None else 20_000
    with sim as bt:
        args = (bt, evaluate, params_rec, scratch, lp, rec, steps)
        with numba_event.install_recorder("numba:compile") as loop_compiles:
            _compile_loop(args, params_rec.dtype)
        compiling = compile_seconds(compiles.buffer) + compile_seconds(loop_compiles.buffer)
        t0 = time.perf_counter()
        if progress is not None:
            progress.start()
        writer = RecordWriter(records_dir, spill_rows) if records_dir is not None else None
        try:
            rec, calls = _drive(bt, strategy, evaluate, params_rec, scratch, lp, rec, progress, writer, spill_rows)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        wall = time.perf_counter() - t0
        venue_position = abi.position(bt)
    return RunOutput(
        tables=R.valid_rows(rec) if writer is None else writer.finish(R.valid_rows(rec)),
        account=_account(lp, venue_position),
        venue=sim.config,
        events=fed.rows,
        telemetry={"loop_seconds": wall, "loop_calls": calls, "compile_seconds": compiling,
                   "start_seconds": t0 - t_compile},
    )  # fmt: skip


def _prepared(
    fed: FeedData, strategy: Strategy, params: Any, venue: VenueConfig | None, risk: RiskConfig,
    execution: ExecutionConfig, runtime: RuntimeConfig,
) -> tuple[SimulatedVenue, Loop, np.ndarray, np.ndarray, Any]:  # fmt: skip
    """The venue (not opened yet), loop state, strategy parameters and scratch, and records of a run."""
    sim = SimulatedVenue(fed, venue or VenueConfig())
    lp = _loop_state(sim.config, risk, execution, runtime)
    params_rec = strategy.params_record(params)
    scratch = np.zeros(strategy.scratch_size, dtype=np.float64)
    rec = R.allocate_records(runtime.initial_capacity)
    while R.room(rec) <= lp.settings.rows_per_step:
        rec = R.allocate_records(2 * len(rec.orders))
    return sim, lp, params_rec, scratch, rec


def warm(
    fed: FeedData, strategy: Strategy, params: Any, venue: VenueConfig, risk: RiskConfig,
    execution: ExecutionConfig, runtime: RuntimeConfig,
) -> None:  # fmt: skip
    """Load (or compile) the strategy and the loop for a run of these configs into this process, without
    running it: a process that forks runs (the watchdog's parent) does it once, its children inherit the
    machine code. ``fed`` needs only the run's dataset and feeds: a stand-in stream of a few events will do."""
    load_converters()
    sim, lp, params_rec, scratch, rec = _prepared(fed, strategy, params, venue, risk, execution, runtime)
    evaluate = compiled_evaluate(strategy, params_rec.dtype)
    with sim as bt:
        _compile_loop((bt, evaluate, params_rec, scratch, lp, rec, 20_000), params_rec.dtype)


def _drive(
    bt: Any, strategy: Strategy, evaluate: Any, params_rec: np.ndarray, scratch: np.ndarray, lp: Loop, rec: Any,
    progress: Progress | None, writer: RecordWriter | None = None, spill_rows: int = ROW_GROUP,
) -> tuple[Any, int]:  # fmt: skip
    """Call the loop until the data ends: grow the records, report progress, raise what it stopped on.
    Returns the records and the number of calls."""
    calls = 0
    steps = 0 if progress is None else 20_000
    last = time.perf_counter()
    while True:
        calls += 1
        try:
            status = run_loop(bt, evaluate, params_rec, scratch, lp, rec, steps)
        except Exception as exc:
            if not lp.error[0]["in_strategy"]:
                raise
            detail = f"{type(exc).__name__}: {exc}"
            raise StrategyError(strategy.path, "raised", abi.current_timestamp(bt), None, detail) from exc
        beat()
        if status == DONE:
            return rec, calls
        if status == PROGRESS and progress is not None:
            faults.point("run.loop")
            now = time.perf_counter()
            # keep returns near PROGRESS_SECONDS apart: few enough to cost nothing measurable
            factor = 2.0 if now - last < PROGRESS_SECONDS / 2 else 0.5 if now - last > 2 * PROGRESS_SECONDS else 1.0
            steps = max(100, min(10_000_000, int(steps * factor)))
            last = now
            progress(int(abi.current_timestamp(bt)))
        elif status == NEED_ROOM:
            rec = R.grown(rec, lp.settings.rows_per_step, writer, spill_rows)
        elif status == OUTPUT_ERROR:
            raise _output_error(strategy, lp.error[0])
        elif status != PROGRESS:
            name = BACKTEST_ERRORS.get(status, "unknown")
            hint = _ERROR_HINTS.get(status, "")
            now_ns = abi.current_timestamp(bt)
            raise VenueError(f"hftbacktest returned error code {status} ({name}) at event time {now_ns}{hint}")


def _account(lp: Loop, venue_position: float) -> dict[str, Any]:
    """The final account (derived from the fills) and hftbacktest's own position, for comparison."""
    acct = lp.account[0]
    values: dict[str, Any] = {name: float(acct[name]) for name in ("position", "cash", "fees", "equity", "mid")}
    values["position"] = on_lot_value(lp.contract, values["position"])  # as stored: on the lot grid
    return {**values, "killed": bool(acct["killed"]), "venue_position": float(venue_position)}


def _output_error(strategy: Strategy, error: np.ndarray) -> StrategyError:
    e = {name: error[name].item() for name in OUTPUT_ERROR_DTYPE.names or ()}
    rule = R.RULES.get(e["rule"], f"rule {e['rule']}")
    if e["rule"] == R.RULE_TOO_MANY_ORDERS:
        return StrategyError(
            strategy.path, rule, e["ts"], None,
            f"evaluate returned {e['count']}; it must be between 0 and the {e['capacity']} rows of out",
        )  # fmt: skip
    return StrategyError(
        strategy.path, rule, e["ts"], e["row"],
        f"out[{e['row']}] = (side {e['side']!r}, price {e['price']!r}, qty {e['qty']!r}, tif {e['tif']!r})",
    )  # fmt: skip
