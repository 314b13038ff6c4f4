"""The deterministic synthetic market generator: the product's embedded default dataset.

``generate(SynthParams(...))`` simulates a multi-level L2 order book and returns canonical rows
(feeds ``snapshot``, ``depth`` and ``trades``) with lineage, ready for ``Catalog.promote``. The same
parameters give byte-identical arrays in any process (numba's own seeded Mersenne Twister, no
fastmath, no parallelism, no wall clock). ``simulate(params)`` returns the same result plus debug
output that is not stored: the volatility regime path (:class:`RegimePath`) and the event count.

The model, in integer ticks and integer lots:

- **Start.** At ``start`` (UTC midnight) feed ``snapshot`` holds a ``CLEAR`` row per side (price = the
  deepest level of that side) and ``SNAPSHOT`` rows for ``levels`` bid and ``levels`` ask levels. The
  best bid is ``initial_price`` rounded to the tick grid, the best ask one tick above it; deeper levels
  are one tick apart, plus one more tick with probability ``book_sparsity`` (repeatedly). Level
  quantities are lognormal around ``level_lots_median``.
- **Regimes.** A two-state (calm / volatile) continuous-time Markov chain with mean sojourn times
  ``calm_mean_s`` and ``volatile_mean_s``; the first state is drawn from its stationary distribution.
  The volatile state multiplies the event rate by ``volatile_rate_mult``, the market order probability
  by ``volatile_trade_mult`` and the market order size by ``volatile_size_mult``.
- **Arrivals.** Market events arrive as a Poisson process of intensity ``events_per_second`` times the
  regime's rate factor (exponential inter-arrival times, integer ns, at least 1 ns).
- **Events.** When the spread is wider than one tick, with probability ``improve_p`` a new best level
  appears one tick inside the spread on a random side (that side's deepest level is dropped first, so a
  side never holds more than ``levels`` levels). Otherwise, with probability ``trade_p`` (times the
  regime factor) a market order of lognormal size (median ``trade_lots_median``) arrives; its side
  repeats the previous market order's side with probability ``sign_persistence`` and is a fair coin
  otherwise. It consumes the best opposite level and, if larger, the next levels: one ``TRADE`` row per
  level touched (``side`` = initiator) and a ``DEPTH`` row per level (quantity 0 when emptied). An
  emptied best level moves the best price away (the spread widens) and a new level is appended at the
  far end of the side (its ``DEPTH`` row follows) so each side keeps ``levels`` levels. A market order
  never empties a side: it is truncated to leave one lot at the last level. Otherwise the event is a
  limit order add or cancel at a level chosen with geometric preference for the top
  (``near_level_p``): one ``DEPTH`` row with the level's new quantity. Cancels are more likely on queues
  above ``level_lots_median`` (probability ``q / (q + level_lots_median)``), which keeps queues around
  that size; a cancel larger than the queue removes the level (quantity 0) and appends a new far level.
  So the mid is a random walk with volatility clustering; the book is never crossed.
- **Timestamps.** All rows of one event share its exchange timestamp (strictly increasing from event to
  event) and its local timestamp: the running maximum of exchange time plus a feed latency of
  ``latency_base_ns`` plus an exponential jitter of mean ``latency_jitter_ns`` (one in-order
  connection, so local time never goes backwards and ``local_ts - exch_ts >= latency_base_ns`` or more).

Prices are written as ``ticks * tick_size`` rounded to the decimal places of ``tick_size`` (so 0.1 ticks
print as ``50000.1``), quantities likewise for ``lot_size``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from hftlab.errors import ConfigError
from hftlab.ingest.common import converter_lineage
from hftlab.ingest.synthetic_kernels import KernelParams, _simulate
from hftlab.storage.schema import FeedFrame, IngestResult, Instrument, Kind, check_name

#: Version of the generator's model; part of the lineage. Bump it whenever output for the same params changes.
GENERATOR_VERSION = 1

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


@dataclass(frozen=True)
class SynthParams:
    """Every value that shapes a synthetic dataset. All sizes are in lots, all latencies in ns."""

    seed: int = 0
    #: UTC date (YYYY-MM-DD); the data starts at its midnight.
    start: str = "2024-01-01"
    #: Length of the dataset in days (fractions allowed).
    days: float = 1.0
    #: Mean rate of market events in the calm regime (the volatile regime multiplies it).
    events_per_second: float = 20.0
    symbol: str = "SYNUSDT"
    venue: str = "synthetic"
    tick_size: float = 0.1
    lot_size: float = 0.001
    initial_price: float = 50000.0
    #: Book levels kept per side.
    levels: int = 20
    #: Probability that the gap between two adjacent new levels is one more tick (applied repeatedly).
    book_sparsity: float = 0.2
    #: Median resting quantity of a level; cancels pull queues back towards it.
    level_lots_median: float = 150.0
    #: Median size of a limit order add or cancel, and of a new inside-spread level.
    limit_lots_median: float = 20.0
    #: Median market order size in the calm regime.
    trade_lots_median: float = 15.0
    #: Sigma of the log of every size drawn (lognormal).
    size_sigma: float = 1.0
    #: Geometric parameter of the level a limit event touches (1.0: always the best level).
    near_level_p: float = 0.35
    #: Probability that a calm-regime event (not an inside-spread improvement) is a market order.
    trade_p: float = 0.08
    #: Probability that an event improves a spread wider than one tick by one tick.
    improve_p: float = 0.3
    #: Probability that a market order has the same side as the previous one (else a fair coin).
    sign_persistence: float = 0.5
    #: Mean duration of a calm regime, seconds.
    calm_mean_s: float = 900.0
    #: Mean duration of a volatile regime, seconds.
    volatile_mean_s: float = 180.0
    #: Event rate multiplier of the volatile regime.
    volatile_rate_mult: float = 3.0
    #: Market order probability multiplier of the volatile regime.
    volatile_trade_mult: float = 2.5
    #: Market order size multiplier of the volatile regime.
    volatile_size_mult: float = 3.0
    #: Fixed part of the feed latency (local_ts - exch_ts), ns; hftbacktest needs it positive.
    latency_base_ns: int = 1_000_000
    #: Mean of the exponential jitter added to the feed latency, ns.
    latency_jitter_ns: int = 300_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"synthetic param {f.name} must be an integer, got {value!r}")
            if f.type == "float" and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            ):
                raise ConfigError(f"synthetic param {f.name} must be a finite number, got {value!r}")
            if f.type == "float":
                object.__setattr__(self, f.name, float(value))  # days=2 and days=2.0: one lineage
        if not 0 <= self.seed < 2**32:
            self._bad("seed", "must be in [0, 2**32)")
        try:
            day = dt.date.fromisoformat(self.start) if isinstance(self.start, str) else None
        except ValueError:
            day = None
        if day is None or len(self.start) != 10 or not dt.date(1970, 1, 2) <= day <= dt.date(2200, 1, 1):
            self._bad("start", "must be a UTC date YYYY-MM-DD between 1970-01-02 and 2200-01-01")
        self._range("days", 0, 3650, lo_open=True)
        self._range("events_per_second", 0, 1e9, lo_open=True)
        check_name("synthetic param symbol", self.symbol)
        check_name("synthetic param venue", self.venue)
        self._range("tick_size", 0, math.inf, lo_open=True)
        self._range("lot_size", 0, math.inf, lo_open=True)
        self._range("levels", 2, 1000)
        if not self.initial_price / self.tick_size >= 4 * self.levels:
            self._bad("initial_price", "must be at least 4 * levels ticks (the bid side needs room above 0)")
        if not self.initial_price / self.tick_size < 2**52:
            self._bad("initial_price", "must be below 2**52 ticks")
        self._range("book_sparsity", 0, 0.95)
        for name in ("level_lots_median", "limit_lots_median", "trade_lots_median"):
            self._range(name, 1, 1e9)
        self._range("size_sigma", 0, 3)
        self._range("near_level_p", 0, 1, lo_open=True)
        self._range("trade_p", 0, 1, lo_open=True, hi_open=True)
        self._range("improve_p", 0, 1, lo_open=True)
        self._range("sign_persistence", 0, 1, hi_open=True)
        self._range("calm_mean_s", 0, 1e7, lo_open=True)
        self._range("volatile_mean_s", 0, 1e7, lo_open=True)
        self._range("volatile_rate_mult", 1, 1000)
        self._range("volatile_trade_mult", 1, 1000)
        if not self.trade_p * self.volatile_trade_mult < 1:
            self._bad("volatile_trade_mult", "times trade_p must be < 1 (it is a probability)")
        self._range("volatile_size_mult", 1, 1000)
        self._range("latency_base_ns", 1, 10**12)
        self._range("latency_jitter_ns", 0, 10**12)

    def _bad(self, name: str, constraint: str) -> None:
        raise ConfigError(f"synthetic param {name} {constraint}, got {getattr(self, name)!r}")

    def _range(self, name: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> None:
        value = getattr(self, name)
        ok_lo = value > lo if lo_open else value >= lo
        ok_hi = value < hi if hi_open else value <= hi
        if not (ok_lo and ok_hi):
            self._bad(name, f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")

    @property
    def start_ns(self) -> int:
        """The first timestamp: midnight UTC of ``start``, ns since the epoch."""
        return int(np.datetime64(self.start, "D").astype(np.int64)) * NS_PER_DAY

    @property
    def end_ns(self) -> int:
        """Events happen strictly before this timestamp."""
        return self.start_ns + round(self.days * NS_PER_DAY)


_ARG_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One optional ``--<param>`` per :class:`SynthParams` field, for ``hftlab data synth``."""
    for f in fields(SynthParams):
        kind = _ARG_TYPES.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None, help=f"default: {f.default}"
        )


def params_from_args(args: argparse.Namespace) -> SynthParams:
    """The parameters :func:`add_arguments` parsed; a parameter not given keeps its default."""
    names = {f.name for f in fields(SynthParams)}
    return SynthParams(**{k: v for k, v in vars(args).items() if k in names and v is not None})


@dataclass(frozen=True)
class RegimePath:
    """The volatility regime over time (a debug output): ``volatile[i]`` holds from ``start_ts[i]``."""

    start_ts: np.ndarray  #: int64 ns, increasing; the first is the dataset start
    volatile: np.ndarray  #: bool

    def at(self, ts: np.ndarray) -> np.ndarray:
        """Whether the volatile regime held at each timestamp of ``ts`` (bool array)."""
        idx = np.searchsorted(self.start_ts, np.asarray(ts, dtype=np.int64), side="right") - 1
        return np.asarray(self.volatile[np.clip(idx, 0, None)], dtype=bool)


# --- the Python side ----------------------------------------------------------------------------------


def _decimal(step: float) -> tuple[float, float]:
    """(numerator, denominator) with step == numerator / denominator and integer numerator, if decimal.

    ``ticks * numerator / denominator`` is then the double nearest to the exact decimal price.
    """
    for places in range(13):
        scaled = step * 10**places
        if abs(scaled - round(scaled)) <= 1e-9 * max(1.0, scaled) and round(scaled) < 2**53:
            return float(round(scaled)), float(10**places)
    return step, 1.0


#: Rows per event, with head room, used to preallocate (defaults measured: 1.19 depth, 0.17 trade rows).
_DEPTH_PER_EVENT = 1.5
_TRADES_PER_EVENT = 0.25


@dataclass(frozen=True)
class Simulation:
    """A generated dataset with what drove it (debug output, not stored)."""

    result: IngestResult
    #: The volatility regime path.
    regimes: RegimePath
    #: Market events simulated (an event writes one or more rows; a truncated market order may write none).
    events: int


def _feed_buffers(n: int) -> tuple[np.ndarray, ...]:
    """Empty columns (exch_ts, local_ts, side, price, qty) for ``n`` rows of a feed."""
    return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int8), np.empty(n), np.empty(n))


def _trim(columns: tuple[np.ndarray, ...], n: int) -> tuple[np.ndarray, ...]:
    """The first ``n`` rows of each column, shrinking it in place to give the head room back."""
    for col in columns:
        col.resize(n, refcheck=False)
    return columns


def simulate(params: SynthParams) -> Simulation:
    """Like :func:`generate`, plus the regime path and event count (for analysis and tests)."""
    p = params
    calm_s, vol_s = p.calm_mean_s, p.volatile_mean_s
    seconds = p.days * 86_400
    mean_factor = (calm_s + vol_s * p.volatile_rate_mult) / (calm_s + vol_s)
    expected_events = seconds * p.events_per_second * mean_factor
    caps = [
        int(expected_events * _DEPTH_PER_EVENT) + 4096,
        int(expected_events * _TRADES_PER_EVENT) + 1024,
        int(2 * seconds / (calm_s + vol_s)) + 64,
    ]
    n_snap = 2 + 2 * p.levels
    model = KernelParams(
        start_ns=p.start_ns,
        end_ns=p.end_ns,
        p0=round(p.initial_price / p.tick_size),
        levels=p.levels,
        sparsity=float(p.book_sparsity),
        level_log=math.log(p.level_lots_median),
        limit_log=math.log(p.limit_lots_median),
        trade_log=math.log(p.trade_lots_median),
        sigma=float(p.size_sigma),
        rate=float(p.events_per_second),
        near_p=float(p.near_level_p),
        trade_p=float(p.trade_p),
        improve_p=float(p.improve_p),
        persistence=float(p.sign_persistence),
        calm_mean_ns=float(calm_s * NS_PER_SECOND),
        vol_mean_ns=float(vol_s * NS_PER_SECOND),
        vol_rate=float(p.volatile_rate_mult),
        vol_trade=float(p.volatile_trade_mult),
        vol_size_log=math.log(p.volatile_size_mult),
        lat_base=p.latency_base_ns,
        lat_jitter=p.latency_jitter_ns,
        conv=_decimal(p.tick_size) + _decimal(p.lot_size),
    )
    while True:
        snap = (np.zeros(n_snap, np.uint8), np.zeros(n_snap, np.int8), np.zeros(n_snap), np.zeros(n_snap))
        depth, trades = _feed_buffers(caps[0]), _feed_buffers(caps[1])
        regimes = (np.empty(caps[2], np.int64), np.empty(caps[2], np.int8))
        ns, snap_lt, nd, ntr, nr, events = _simulate(p.seed, model, snap, depth, trades, regimes)
        needed = [nd, ntr, nr]
        if all(n <= cap for n, cap in zip(needed, caps, strict=True)):
            break
        # the run is deterministic: size the buffers exactly and run it again
        caps = [max(n, cap) for n, cap in zip(needed, caps, strict=True)]

    source = f"synthetic(seed={p.seed})"
    s_kind, s_side, s_price, s_qty = (c[:ns] for c in snap)
    frames = [
        FeedFrame.from_columns(
            "snapshot",
            source,
            exch_ts=np.full(ns, p.start_ns, np.int64),
            local_ts=np.full(ns, snap_lt, np.int64),
            kind=s_kind,
            side=s_side,
            price=s_price,
            qty=s_qty,
        )
    ]
    for feed, cols, n, kind in (("depth", depth, nd, Kind.DEPTH), ("trades", trades, ntr, Kind.TRADE)):
        ex, lo, sd, px, qt = _trim(cols, n)
        kinds = np.full(n, kind, np.uint8)
        frames.append(
            FeedFrame.from_columns(feed, source, exch_ts=ex, local_ts=lo, kind=kinds, side=sd, price=px, qty=qt)
        )
    r_ts, r_vol = _trim(regimes, nr)
    result = IngestResult(
        instrument=Instrument(venue=p.venue, symbol=p.symbol, tick_size=p.tick_size, lot_size=p.lot_size),
        feeds=frames,
        lineage=converter_lineage("synthetic", GENERATOR_VERSION, [], **lineage_params(p)),
    )
    return Simulation(result, RegimePath(start_ts=r_ts, volatile=r_vol.astype(bool)), int(events))


def lineage_params(params: SynthParams) -> dict[str, Any]:
    """Every parameter of a run, as recorded in the lineage (seed included)."""
    return asdict(params)


def generate(params: SynthParams) -> IngestResult:
    """Simulate a synthetic market: feeds ``snapshot``, ``depth`` and ``trades``, with lineage."""
    return simulate(params).result
