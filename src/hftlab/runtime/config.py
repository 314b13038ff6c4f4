"""Configuration of the Core Runtime, Risk and Execution Control (also Hydra structured-config schemas).

Limits use ``inf`` for "no limit" so a permissive setting is explicit in every run definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hftlab.errors import ConfigError

INF = math.inf
EVALUATION_MODES = ("interval", "every_feed")


def _positive(key: str, value: object, *, allow_zero: bool = False, allow_inf: bool = True) -> None:
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    ok = not math.isnan(number) and (allow_inf or not math.isinf(number))
    if not ok or (number < 0 if allow_zero else number <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key}: must be a number {bound}{'' if allow_inf else ' and finite'}, got {value!r}")


@dataclass
class RuntimeConfig:
    """When the strategy is evaluated and what it sees."""

    #: ``interval``: every ``interval_ns`` of event time; ``every_feed``: at every feed event and order response.
    evaluation: str = "interval"
    interval_ns: int = 100_000_000
    #: Timeout of one wait in ``every_feed`` mode (evaluates at least this often).
    timeout_ns: int = 1_000_000_000
    book_levels: int = 5  #: top levels per side in the strategy's view
    book_scan_ticks: int = 200  #: ticks scanned from the best price to find them
    trade_buffer: int = 256  #: recent trades kept in the view
    max_orders: int = 64  #: most orders a strategy may want at once
    record_interval_ns: int = 1_000_000_000  #: state series sampling (event time)
    initial_capacity: int = 65_536  #: rows per record table before growing
    #: Run the whole Core Runtime and the strategy as plain Python (``NUMBA_DISABLE_JIT=1``, in a child
    #: process) so a debugger can step through the strategy (``breakpoint()`` in ``evaluate`` works). Same
    #: records as the compiled run, about 100× slower: use a short window. Part of the run definition.
    debug: bool = False

    def validate(self, prefix: str = "runtime") -> None:
        if self.evaluation not in EVALUATION_MODES:
            raise ConfigError(f"{prefix}.evaluation: {self.evaluation!r} is not one of {list(EVALUATION_MODES)}")
        for name in ("interval_ns", "timeout_ns", "book_levels", "book_scan_ticks", "trade_buffer", "max_orders"):
            _positive(f"{prefix}.{name}", getattr(self, name), allow_inf=False)
        _positive(f"{prefix}.record_interval_ns", self.record_interval_ns, allow_inf=False)
        _positive(f"{prefix}.initial_capacity", self.initial_capacity, allow_inf=False)
        if not isinstance(self.debug, bool):
            raise ConfigError(f"{prefix}.debug: must be true or false, got {self.debug!r}")


@dataclass
class RiskConfig:
    """Pre-trade limits every wanted order passes, and the kill switch."""

    max_position: float = INF
    max_order_qty: float = INF
    max_notional: float = INF  #: price × qty × contract size of one order
    price_band: float = INF  #: largest |price - mid| / mid
    max_open_orders: float = INF
    max_drawdown: float = INF  #: kill when equity falls this far below its peak
    max_loss: float = INF  #: kill when equity falls this far below its start
    flatten_on_kill: bool = False  #: send a market order closing the position when killed

    def validate(self, prefix: str = "risk") -> None:
        for name in ("max_position", "max_order_qty", "max_notional", "price_band", "max_open_orders"):
            _positive(f"{prefix}.{name}", getattr(self, name))
        for name in ("max_drawdown", "max_loss"):
            _positive(f"{prefix}.{name}", getattr(self, name), allow_zero=True)
        if not isinstance(self.flatten_on_kill, bool):
            raise ConfigError(f"{prefix}.flatten_on_kill: must be true or false, got {self.flatten_on_kill!r}")


@dataclass
class ExecutionConfig:
    """How wanted orders become venue requests."""

    max_actions_per_second: float = INF  #: new + cancel requests in any 1 s of event time
    min_rest_ns: int = 0  #: an order is not cancelled/replaced before resting this long
    post_only: bool = False  #: send every new order as post-only (GTX)

    def validate(self, prefix: str = "execution") -> None:
        _positive(f"{prefix}.max_actions_per_second", self.max_actions_per_second)
        _positive(f"{prefix}.min_rest_ns", self.min_rest_ns, allow_zero=True, allow_inf=False)
        if not isinstance(self.post_only, bool):
            raise ConfigError(f"{prefix}.post_only: must be true or false, got {self.post_only!r}")
