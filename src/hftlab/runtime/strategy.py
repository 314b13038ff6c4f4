"""Strategies: finding them by name in ``strategies/``, their typed parameters, and compiling them.

A strategy is a Python file ``strategies/<name>.py`` that defines:

- ``Params``: a ``typing.NamedTuple`` of its parameters (``int``, ``float`` or ``bool``) with defaults;
- ``validate(params) -> None``: its invariants, raising :class:`~hftlab.errors.ConfigError` naming the
  key (``strategy.params.<field>``) and the constraint;
- ``SCRATCH_SIZE``: length of its persistent float64 scratch state (zeroed at the start of a run);
- ``evaluate(view, params, scratch, out) -> int``: reads the :data:`~hftlab.runtime.contract.View` and
  writes the orders it wants working into ``out`` rows ``(side ±1, price, qty, time in force)``,
  returning how many (the output contract: :mod:`hftlab.runtime.contract`). A plain function or
  ``@njit``: the runtime compiles it itself, with bounds checks, for one fixed signature, and caches it
  under a key of the strategy's file and the local modules it imports (an edit of either recompiles the
  strategy, and only the strategy). ``params`` arrives as a record with the ``Params`` field names.

Code shared by strategies lives in helper modules of the same folder, named with a leading underscore
(``strategies/_quotes.py``: not a strategy, not registered), and is imported by plain name
(``from _quotes import post_quotes``). The loader executes each helper afresh from the strategy's own
folder for each strategy that imports it, so its ``@njit`` functions cache under that strategy's key.

The runtime, not the strategy, reconciles wanted orders with working ones through Risk and Execution
Control. Strategies are loaded by name only (validated: no path separators, no ``..``), never by an
import path taken from configuration.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import sys
import traceback
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from hftlab.errors import ConfigError, InvalidNameError
from hftlab.jit import PYTHON_MODE, numba_cache_dir, record_array, strategy_cache_dir
from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.contract import View
from hftlab.storage.manifest import file_sha256
from hftlab.storage.schema import check_name

#: Parameter types a strategy may declare, and their record field types.
PARAM_FIELD_TYPES = {int: "i8", float: "f8", bool: "?"}

DEFAULT_DIR = Path("strategies")


def _imported_files(path: Path, folder: Path) -> list[Path]:
    """The modules of ``folder`` that ``path`` itself imports (``import x`` / ``from x import y``)."""
    files: list[Path] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            candidate = folder / f"{name.split('.')[0]}.py"
            if candidate.is_file() and candidate not in files:
                files.append(candidate)
    return files


def local_modules(path: Path, folder: Path) -> list[Path]:
    """Every module of ``folder`` that ``path`` imports (transitively), each after the local modules it imports."""
    seen = {path.resolve()}
    order: list[Path] = []

    def visit(module: Path) -> None:
        for candidate in _imported_files(module, folder):
            if candidate.resolve() not in seen:
                seen.add(candidate.resolve())
                visit(candidate)
                order.append(candidate)

    visit(path)
    return order


def local_imports(path: Path, folder: Path) -> dict[str, str]:
    """sha256 of every module in ``folder`` that ``path`` imports (transitively), by relative file name."""
    return {p.name: file_sha256(p) for p in sorted(local_modules(path, folder), key=lambda p: p.name)}


def source_key(path: Path) -> str:
    """sha256 of a strategy file and of every local module it imports: what its compiled code depends on."""
    parts = [f"{path.name}:{file_sha256(path)}", *(f"{k}:{v}" for k, v in local_imports(path, path.parent).items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Strategy:
    """A loaded strategy: its module, file, source key and contract members."""

    name: str
    path: Path
    module: ModuleType
    source_key: str = ""  #: see :func:`source_key`

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

    def params_dtype(self) -> np.dtype:
        """The record layout ``evaluate`` receives its parameters in (one field per ``Params`` field)."""
        fields = []
        for name, kind in typing.get_type_hints(self.Params).items():
            if kind not in PARAM_FIELD_TYPES:
                raise ConfigError(
                    f"strategy '{self.name}' ({self.path}): parameter {name} is {kind}; "
                    f"parameters must be int, float or bool"
                )
            fields.append((name, PARAM_FIELD_TYPES[kind]))
        return np.dtype(fields)

    def params_record(self, params: Any) -> np.ndarray:
        """``params`` (a ``Params``) as the one-row record array the compiled loop passes on."""
        rows = record_array(1, self.params_dtype())
        for name, value in params._asdict().items():
            rows[name] = value
        return rows


_MODULES: dict[tuple[str, str], ModuleType] = {}


def load_strategy(name: str, directory: Path | str | None = None) -> Strategy:
    """Load ``<directory>/<name>.py`` (default ``strategies/`` under the working directory).

    The module is loaded again whenever its source or a local module it imports changed, so a run
    never executes other code than the source its run definition hashes.
    """
    try:
        check_name("strategy name", name)
    except InvalidNameError as exc:
        raise ConfigError(f"strategy.name: {exc}") from None
    if not name.isidentifier():
        raise ConfigError(f"strategy.name: {name!r} must be a Python identifier (a file strategies/<name>.py)")
    folder = Path(directory) if directory is not None else DEFAULT_DIR
    path = folder / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")) if folder.is_dir() else []
        raise ConfigError(f"strategy.name: unknown strategy {name!r}: no file {path} (known: {known})")
    try:
        key = source_key(path)
        module = _MODULES.get((str(path.resolve()), key))
        if module is None:
            module = _exec_module(name, path, key)
            _MODULES[(str(path.resolve()), key)] = module
    except Exception as exc:  # the strategy's own code (or a local module it imports) does not load
        raise ConfigError(_load_failure(exc, path.parent), key="strategy.name", rule="strategy-does-not-load") from exc
    for member in ("Params", "validate", "SCRATCH_SIZE", "evaluate"):
        if not hasattr(module, member):
            raise ConfigError(f"strategy '{name}' ({path}) does not define {member} (see hftlab.runtime.strategy)")
    return Strategy(name=name, path=path, module=module, source_key=key)


def _load_failure(exc: BaseException, folder: Path) -> str:
    """Where in the strategy folder's files loading failed and why: ``file:line: Error: message``."""
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}"
    mine = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().parent == folder.resolve()]
    where = f"{mine[-1].filename}:{mine[-1].lineno}: " if mine else ""
    return f"{where}{type(exc).__name__}: {exc}"


def _exec_module(name: str, path: Path, key: str) -> ModuleType:
    module_name = f"hftlab_strategy_{name}"
    # numba functions the strategy file and its local modules define (their @njit helpers) cache under its key
    with numba_cache_dir(strategy_cache_dir(key)), _local_modules_loaded(path, module_name):
        return _exec_file(module_name, path)


def _exec_file(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"strategy.name: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _local_modules_loaded(path: Path, owner: str) -> Iterator[None]:
    """Execute the local modules the strategy ``path`` imports afresh from its folder, each as
    ``<owner>.<name>``, and let ``import <name>`` find them while the block runs.

    Their plain names are not a fixed import path (strategies of two folders may each have a ``_quotes``),
    so they are lent only while the strategy loads, then given back to whatever held them. The qualified
    modules stay in ``sys.modules``: numba imports a module by its name when it loads cached code.
    A cycle of imports between local modules is not supported.
    """
    files = local_modules(path, path.parent)
    saved = {f.stem: sys.modules.pop(f.stem) for f in files if f.stem in sys.modules}
    try:
        for file in files:
            sys.modules[file.stem] = _exec_file(f"{owner}.{file.stem}", file)
        yield
    finally:
        for file in files:
            sys.modules.pop(file.stem, None)
        sys.modules.update(saved)


_COMPILED: dict[tuple[str, str], Any] = {}


def compiled_evaluate(strategy: Strategy, params_dtype: np.dtype) -> Any:
    """``evaluate`` compiled for the loop's one signature (bounds-checked, cached under the strategy's key).

    In Python mode (the debug mode) it is the plain Python function.
    """
    function = getattr(strategy.evaluate, "py_func", strategy.evaluate)
    if PYTHON_MODE:
        return function
    memo = (strategy.source_key, params_dtype.descr.__repr__())
    if memo not in _COMPILED:
        import numba

        with numba_cache_dir(strategy_cache_dir(strategy.source_key)):
            _COMPILED[memo] = numba.njit(evaluate_signature(params_dtype), cache=True, boundscheck=True)(function)
    return _COMPILED[memo]


def evaluate_signature(params_dtype: np.dtype) -> Any:
    """numba signature of ``evaluate``: (View, params record, scratch float64[::1], out float64[:, ::1]) -> int64."""
    import numba
    from numba import types

    view_type = numba.typeof(make_view())
    record = numba.from_dtype(params_dtype)
    return types.int64(view_type, record, types.float64[::1], types.float64[:, ::1])


def make_view(
    *,
    ts: int = 0,
    bids: list[tuple[float, float]] | None = None,
    asks: list[tuple[float, float]] | None = None,
    tick_size: float = 0.1,
    lot_size: float = 0.001,
    trades: list[tuple[int, float, float, float]] | None = None,
    runtime: RuntimeConfig = RuntimeConfig(),
    position: float = 0.0,
    cash: float = 0.0,
    equity: float = 0.0,
    fees: float = 0.0,
    orders: list[tuple[float, float, float]] | None = None,
) -> Any:
    """A :data:`View` built from plain values: for strategy unit tests on crafted books.

    ``bids``/``asks``: (price, qty) best first; ``trades``: (ts, price, qty, side) oldest first;
    ``orders``: our live orders as (side, price, leaves). ``runtime``: the settings of the run to mimic; its
    ``book_levels`` and ``trade_buffer`` size the book and trade arrays (the newest trades are kept).
    """
    levels, trade_buffer = runtime.book_levels, runtime.trade_buffer

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
