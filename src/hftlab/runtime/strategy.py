"""The strategy contract, and finding strategies by name in ``strategies/``.

A strategy is a Python file ``strategies/<name>.py`` that defines:

- ``Params``: a ``typing.NamedTuple`` of its typed parameters with defaults (numba reads it by field name);
- ``validate(params) -> None``: its invariants, raising :class:`~hftlab.errors.ConfigError` naming the
  key (``strategy.params.<field>``) and the constraint;
- ``SCRATCH_SIZE``: length of its persistent float64 scratch state (zeroed at the start of a run);
- ``evaluate(view, params, scratch, out) -> int``: an ``@njit(cache=True)`` function that reads the
  :data:`View` and writes the orders it wants working into ``out`` rows ``(side ±1, price, qty,
  time in force)`` and returns how many. The runtime, not the strategy, reconciles them with working
  orders through Risk and Execution Control.

Strategies are loaded by name only (validated: no path separators, no ``..``), never by an import
path taken from configuration.
"""

from __future__ import annotations

import importlib.util
import sys
import typing
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hftlab.errors import ConfigError
from hftlab.storage.schema import check_name

#: Time in force codes (hftbacktest's): good till cancel, post-only, fill or kill, immediate or cancel.
GTC, GTX, FOK, IOC = 0, 1, 2, 3

#: What a strategy sees at an evaluation point. Arrays are views of the runtime's buffers: read only.
View = namedtuple(
    "View",
    [
        "ts",  # int64: local (event) time of this evaluation, ns
        "best_bid",  # float: NaN when that side is empty
        "best_ask",
        "mid",  # float: NaN unless both sides exist
        "tick_size",
        "lot_size",
        "bid_px",  # float64[L]: top bid levels, best first, NaN-padded
        "bid_qty",
        "ask_px",
        "ask_qty",
        "n_bid",  # int: valid entries of bid_px / bid_qty
        "n_ask",
        "trade_ts",  # int64[T]: recent market trades, oldest first
        "trade_px",
        "trade_qty",
        "trade_side",  # float64[T]: +1 buyer-initiated, -1 seller-initiated, 0 unknown
        "n_trades",
        "position",  # own state, derived from our fills
        "cash",
        "equity",
        "fees",
        "order_side",  # float64[M]: our live orders (oldest first)
        "order_price",
        "order_leaves",
        "n_orders",
    ],
)

DEFAULT_DIR = Path("strategies")


@dataclass(frozen=True)
class Strategy:
    """A loaded strategy: its module, file, and contract members."""

    name: str
    path: Path
    module: ModuleType

    @property
    def Params(self) -> Any:
        return self.module.Params

    @property
    def scratch_size(self) -> int:
        return int(self.module.SCRATCH_SIZE)

    @property
    def evaluate(self) -> Any:
        return self.module.evaluate

    def params(self, values: dict[str, Any] | None = None) -> Any:
        """Typed parameters from a mapping; unknown keys, wrong types and broken invariants fail here."""
        values = dict(values or {})
        fields = self.Params._fields
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(
                f"strategy.params.{unknown[0]}: unknown parameter of strategy '{self.name}' (known: {list(fields)})"
            )
        typed = {}
        for name, expected in typing.get_type_hints(self.Params).items():
            if name not in values:
                continue
            value = values[name]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise ConfigError(f"strategy.params.{name}: expected {expected.__name__}, got {value!r}")
            typed[name] = value
        params = self.Params(**typed)
        self.module.validate(params)
        return params


def load_strategy(name: str, directory: Path | str | None = None) -> Strategy:
    """Load ``<directory>/<name>.py`` (default ``strategies/`` under the working directory)."""
    try:
        check_name("strategy name", name)
    except ValueError as exc:
        raise ConfigError(f"strategy.name: {exc}") from None
    if not name.isidentifier():
        raise ConfigError(f"strategy.name: {name!r} must be a Python identifier (a file strategies/<name>.py)")
    folder = Path(directory) if directory is not None else DEFAULT_DIR
    path = folder / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")) if folder.is_dir() else []
        raise ConfigError(f"strategy.name: unknown strategy {name!r}: no file {path} (known: {known})")
    module_name = f"hftlab_strategy_{name}"
    module = sys.modules.get(module_name)
    if module is None or Path(getattr(module, "__file__", "")).resolve() != path.resolve():
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"strategy.name: cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # numba's cache unpickles Params types by module name
        spec.loader.exec_module(module)
    for member in ("Params", "validate", "SCRATCH_SIZE", "evaluate"):
        if not hasattr(module, member):
            raise ConfigError(f"strategy '{name}' ({path}) does not define {member} (see hftlab.runtime.strategy)")
    return Strategy(name=name, path=path, module=module)


def make_view(
    *,
    ts: int = 0,
    bids: list[tuple[float, float]] | None = None,
    asks: list[tuple[float, float]] | None = None,
    tick_size: float = 0.1,
    lot_size: float = 0.001,
    levels: int = 5,
    trades: list[tuple[int, float, float, float]] | None = None,
    trade_buffer: int = 256,
    position: float = 0.0,
    cash: float = 0.0,
    equity: float = 0.0,
    fees: float = 0.0,
    orders: list[tuple[float, float, float]] | None = None,
) -> Any:
    """A :data:`View` built from plain values: for strategy unit tests on crafted books.

    ``bids``/``asks``: (price, qty) best first; ``trades``: (ts, price, qty, side) oldest first;
    ``orders``: our live orders as (side, price, leaves).
    """
    import numpy as np

    def side(levels_in: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, int]:
        px = np.full(levels, np.nan)
        qty = np.full(levels, np.nan)
        for i, (p, q) in enumerate(levels_in[:levels]):
            px[i], qty[i] = p, q
        return px, qty, min(len(levels_in), levels)

    bid_px, bid_qty, n_bid = side(bids or [])
    ask_px, ask_qty, n_ask = side(asks or [])
    best_bid = bid_px[0] if n_bid else np.nan
    best_ask = ask_px[0] if n_ask else np.nan
    trade_ts = np.zeros(trade_buffer, dtype=np.int64)
    tr = np.zeros((3, trade_buffer))
    for i, (t, p, q, s) in enumerate((trades or [])[-trade_buffer:]):
        trade_ts[i], tr[0, i], tr[1, i], tr[2, i] = t, p, q, s
    live = orders or []
    ov = np.zeros((3, max(len(live), 1)))
    for i, (s, p, q) in enumerate(live):
        ov[:, i] = (s, p, q)
    return View(
        np.int64(ts), best_bid, best_ask, (best_bid + best_ask) / 2.0, tick_size, lot_size, bid_px, bid_qty, ask_px,
        ask_qty, np.int64(n_bid), np.int64(n_ask), trade_ts, tr[0], tr[1], tr[2], np.int64(min(len(trades or []), trade_buffer)),
        position, cash, equity, fees, ov[0], ov[1], ov[2], np.int64(len(live)),
    )  # fmt: skip
