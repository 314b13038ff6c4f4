"""Configuration of the Core Runtime, Risk and Execution Control (also Hydra structured-config schemas).

Frozen dataclasses: a run's configuration is built and checked once (:func:`hftlab.checks.check`, with
the rules stated on each field) and never changes afterwards. Limits use ``inf`` for "no limit" so a
permissive setting is explicit in every run definition.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from hftlab.checks import ranged

INF = math.inf


class Evaluation(enum.StrEnum):
    """When the strategy is evaluated."""

    interval = "interval"  #: every ``interval_ns`` of event time
    every_feed = "every_feed"  #: at every feed event and order response


@dataclass(frozen=True)
class RuntimeConfig:
    """When the strategy is evaluated and what it sees."""

    evaluation: Evaluation = Evaluation.interval
    interval_ns: int = ranged(100_000_000, gt=0)
    #: Timeout of one wait in ``every_feed`` mode (evaluates at least this often).
    timeout_ns: int = ranged(1_000_000_000, gt=0)
    book_levels: int = ranged(5, gt=0)  #: top levels per side in the strategy's view
    book_scan_ticks: int = ranged(200, gt=0)  #: ticks scanned from the best price to find them
    trade_buffer: int = ranged(256, gt=0)  #: recent trades kept in the view
    max_orders: int = ranged(64, gt=0)  #: most orders a strategy may want at once
    record_interval_ns: int = ranged(1_000_000_000, gt=0)  #: state series sampling (event time)
    initial_capacity: int = ranged(65_536, gt=0)  #: rows per record table before growing
    #: Run the whole Core Runtime and the strategy as plain Python (``NUMBA_DISABLE_JIT=1``, in a child
    #: process) so a debugger can step through the strategy (``breakpoint()`` in ``evaluate`` works). Same
    #: records as the compiled run, about 100× slower: use a short window. Part of the run definition.
    debug: bool = False


@dataclass(frozen=True)
class RiskConfig:
    """Pre-trade limits every wanted order passes, and the kill switch."""

    max_position: float = ranged(INF, gt=0, allow_inf=True)
    max_order_qty: float = ranged(INF, gt=0, allow_inf=True)
    max_notional: float = ranged(INF, gt=0, allow_inf=True)  #: price × qty × contract size of one order
    price_band: float = ranged(INF, gt=0, allow_inf=True)  #: largest |price - mid| / mid
    max_open_orders: float = ranged(INF, gt=0, allow_inf=True)
    max_drawdown: float = ranged(INF, ge=0, allow_inf=True)  #: kill when equity falls this far below its peak
    max_loss: float = ranged(INF, ge=0, allow_inf=True)  #: kill when equity falls this far below its start
    flatten_on_kill: bool = False  #: send a market order closing the position when killed


@dataclass(frozen=True)
class ExecutionConfig:
    """How wanted orders become venue requests."""

    #: new + cancel requests in any 1 s of event time
    max_actions_per_second: float = ranged(INF, gt=0, allow_inf=True)
    min_rest_ns: int = ranged(0, ge=0)  #: an order is not cancelled/replaced before resting this long
    post_only: bool = False  #: send every new order as post-only (GTX)
