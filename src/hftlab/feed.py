"""Historical Input Feeder: a resolved dataset and a window -> the Event stream in Processing Order.

The output is one contiguous array of hftbacktest's ``event_dtype`` (what the Simulated Venue reads),
plus an initial book snapshot when the window starts after the dataset's start. How it is built:

1. The dataset version (resolved in Canonical Storage) must have a manifest hashing to that version, and
   every file read is checked against the manifest's sha256 before its rows are used (reading and merging:
   :mod:`hftlab.feed_read`).
2. The selected feeds' partitions overlapping the window ``[start, end)`` (exchange time) are read.
   Every stored row carries ``seq``, its rank in the dataset's Processing Order, so feeds are merged by
   placing each row at its rank: no sort, no dependence on file or thread order.
3. Rows are flagged EXCH|LOCAL. Where local order disagrees with exchange order (a REST snapshot
   stamped earlier than the stream around it, say), the rows concerned are split into an EXCH-only
   and a LOCAL-only copy, as hftbacktest expects.
4. If ``start`` is after the dataset's first row, the book rows before ``start`` are replayed and the
   resulting levels are returned as ``initial_snapshot`` rows (DEPTH_SNAPSHOT, best level first); for
   order-by-order feeds the stream begins instead with the orders resting at ``start`` (a CLEAR, then an
   ADD per order in queue priority, see :func:`resting_orders`).

Same reference + same stored dataset => byte-identical arrays, in any process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hftlab import feed_kernels as K
from hftlab import feed_read as R
from hftlab import hftbacktest_types as HB
from hftlab.errors import ConfigError, FeedError, StorageError
from hftlab.feed_warnings import StreamWarnings
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage.catalog import Catalog, Dataset, check_manifest
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS, L3_FEEDS
from hftlab.times import iso, to_ns

_BOOK_FEEDS = ("snapshot", "depth")
#: Rows of one piece of the fed stream (64 bytes each: 128 MiB), unless a UTC day ends first.
CHUNK_ROWS = 2_000_000


@dataclass(frozen=True)
class Window:
    """What to feed of a dataset: which feeds, and the exchange-time window ``[start, end)`` in ns
    (None: the dataset's own first/last row)."""

    feeds: tuple[str, ...] = DEFAULT_FEEDS
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        unknown = [f for f in self.feeds if f not in FEEDS]
        if unknown or not self.feeds:
            raise ConfigError(f"dataset.feeds: {list(self.feeds)}: unknown {unknown}; known feeds: {list(FEEDS)}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"dataset window: end {iso(self.end)} is not after start {iso(self.start)}")


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by name: id, optional version (default: the newest), feeds, an exchange-time window,
    and optionally the symbol and venue it must hold. :meth:`resolve` finds it in Canonical Storage."""

    id: str
    version: str | None = None
    feeds: tuple[str, ...] = DEFAULT_FEEDS
    start: int | str | None = None  #: inclusive; ns or ISO-8601 UTC; None = dataset start
    end: int | str | None = None  #: exclusive; None = dataset end
    symbol: str | None = None  #: if given, must equal the dataset's instrument symbol
    venue: str | None = None  #: if given, must equal the dataset's instrument venue

    @property
    def window(self) -> Window:
        return Window(tuple(self.feeds), to_ns(self.start, "dataset.start"), to_ns(self.end, "dataset.end"))

    def resolve(self, catalog: Catalog | None = None) -> Dataset:
        """The stored dataset version this reference names (its manifest checked)."""
        dataset = (catalog or Catalog()).resolve(self.id, self.version)
        inst = dataset.manifest.instrument
        for key, want, have in (("symbol", self.symbol, inst.symbol), ("venue", self.venue, inst.venue)):
            if want is not None and want != have:
                raise StorageError(f"dataset '{self.id}' {dataset.version} holds {key} {have!r}, not {want!r}")
        return dataset

    def load(self, catalog: Catalog | None = None) -> FeedData:
        """``load_events(self.resolve(catalog), self.window)`` (the window checked before the catalog is read)."""
        window = self.window
        return load_events(self.resolve(catalog), window)


@dataclass
class FeedData:
    """The fed Event stream of one dataset reference: in memory (``events``), or as ``.npy`` pieces in
    the event cache (``files``, read by hftbacktest one after another; ``events`` is then empty)."""

    dataset: Dataset
    events: np.ndarray  #: event_dtype, contiguous, Processing Order (empty when ``files`` hold the stream)
    initial_snapshot: np.ndarray  #: event_dtype; empty when the window starts at the dataset start
    start_ns: int
    end_ns: int
    feeds: tuple[str, ...] = field(default=DEFAULT_FEEDS)
    files: tuple[Path, ...] = ()  #: the stream as cached pieces, in order (see :mod:`hftlab.event_cache`)
    rows: int = -1  #: rows of the stream (-1: ``len(events)``)
    book_px: tuple[float, float] | None = None  #: lowest and highest book price fed (None: compute)
    cache_hit: bool | None = None  #: None: not fed through the event cache
    warnings: tuple[str, ...] = ()  #: what a run over this stream must report (:mod:`hftlab.feed_warnings`)
    #: Held while this object lives: the event cache's shared lock on ``files`` (never trimmed under a reader).
    lease: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rows < 0:
            self.rows = len(self.events)

    def pieces(self) -> Iterator[np.ndarray]:
        """The stream piece by piece (cached pieces memory-mapped), for one pass over it."""
        if self.files:
            for path in self.files:
                yield np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            yield self.events


def _finish(piece: np.ndarray) -> np.ndarray:
    """Split rows whose exchange and local order disagree (see the module docstring, step 3)."""
    if len(piece) and not K.local_order_is_monotone(piece):
        return K.split_exch_local(piece, np.argsort(piece["local_ts"], kind="stable"))
    return piece


def resting_orders(
    dataset: Dataset, feeds: Iterable[str], start: int | None, budget: int = CHUNK_ROWS
) -> np.ndarray | None:
    """For a window of order-by-order feeds that starts after the dataset does: the orders resting at
    ``start`` as a CLEAR of both sides and one ADD per order in queue priority, stamped ``start`` (exchange
    and local time), which the stream then begins with (step 4 for L3: hftbacktest's initial snapshot is
    L2 only). None for any other window. The rows before ``start`` are replayed a day (or ``budget`` rows)
    at a time, the resting orders of each part carried into the next as ADD rows."""
    l3 = sorted(L3_FEEDS & set(feeds))
    if not l3 or not begins_mid_stream(dataset, start):
        return None
    assert start is not None
    tick = dataset.manifest.instrument.tick_size
    carry = np.empty(0, EVENT_DTYPE)
    for merged in R.merged_chunks(dataset, l3, None, start, budget):
        rows = np.concatenate([carry, merged])
        kind = (rows["ev"] & np.uint64(HB.KIND_MASK)).astype(np.int64)
        side = np.where((rows["ev"] & HB.BUY_EVENT) != 0, 1, np.where((rows["ev"] & HB.SELL_EVENT) != 0, -1, 0))
        index = K.resting_orders(kind, side.astype(np.int8), rows["px"], rows["qty"], rows["order_id"], tick)
        carry = rows[index]
        carry["ev"] = (
            (carry["ev"] & (HB.BUY_EVENT | HB.SELL_EVENT))
            | np.uint64(HB.ADD_ORDER_EVENT)
            | HB.EXCH_EVENT
            | HB.LOCAL_EVENT
        )
    out = np.zeros(len(carry) + 1, dtype=EVENT_DTYPE)
    out[0]["ev"] = np.uint64(HB.DEPTH_CLEAR_EVENT) | HB.EXCH_EVENT | HB.LOCAL_EVENT
    out[1:] = carry
    out["exch_ts"] = start
    out["local_ts"] = start
    return out


def stream_events(dataset: Dataset, window: Window = Window(), budget: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """The Event stream of ``window`` in pieces of about ``budget`` rows (never more than a UTC day), whose
    concatenation is byte for byte ``load_events(dataset, window).events``; at most two pieces' rows are
    held at once.

    Pieces are cut where no row before the cut is later than a row after it in exchange or local time,
    so splitting rows whose local order disagrees with exchange order (step 3) gives the same result
    piece by piece as on the whole. When local-time disorder spans more than one piece (never seen in
    market data: it would take a latency inversion longer than a piece), a :class:`FeedError` says so
    rather than feed a different order.
    """
    check_manifest(dataset)
    pending: np.ndarray | None = resting_orders(dataset, window.feeds, window.start, budget)
    fed_until = np.iinfo(np.int64).min  # largest local time already fed
    for merged in R.merged_chunks(dataset, window.feeds, window.start, window.end, budget):
        if pending is None:
            pending = merged
            continue
        cut = K.clean_cut(pending, int(merged["local_ts"].min()))
        piece = pending[:cut]
        pending = merged if cut == len(pending) else np.concatenate([pending[cut:], merged])
        if len(piece):
            fed_until = _check_after(piece, fed_until)
            yield _finish(piece)
    if pending is not None:
        _check_after(pending, fed_until)
        yield _finish(pending)


def _check_after(piece: np.ndarray, fed_until: int) -> int:
    first = int(piece["local_ts"].min())
    if first <= fed_until:
        raise FeedError(
            f"local time {iso(first)} comes before local time {iso(fed_until)} fed in an earlier piece: the "
            "local-time disorder spans more than one piece of the stream; raise the piece row budget "
            "(HFTLAB_FEED_CHUNK_ROWS)"
        )
    return int(piece["local_ts"].max())


def _initial_snapshot(dataset: Dataset, start: int, budget: int = CHUNK_ROWS) -> np.ndarray:
    """The book at ``start``: book rows before it replayed a day (or ``budget`` rows) at a time, the levels
    of each part carried into the next as rows, so memory does not grow with the history replayed."""
    levels: np.ndarray | None = None
    last: np.ndarray | None = None
    tick = dataset.manifest.instrument.tick_size
    for merged in R.merged_chunks(dataset, _BOOK_FEEDS, None, start, budget):
        rows = merged if levels is None else np.concatenate([levels, merged])
        side = np.where((rows["ev"] & HB.BUY_EVENT) != 0, 1, -1).astype(np.int8)
        kind = (rows["ev"] & np.uint64(HB.KIND_MASK)).astype(np.int64)
        bid_rows, ask_rows = K.replay_book(kind, side, rows["px"], rows["qty"], tick)
        levels = rows[np.concatenate([bid_rows, ask_rows])]
        last = merged[-1]
    if levels is None or last is None:
        return np.empty(0, dtype=EVENT_DTYPE)
    snap = np.zeros(len(levels), dtype=EVENT_DTYPE)
    side_flag = np.where((levels["ev"] & HB.BUY_EVENT) != 0, HB.BUY_EVENT, HB.SELL_EVENT)
    snap["ev"] = np.uint64(HB.DEPTH_SNAPSHOT_EVENT) | HB.EXCH_EVENT | HB.LOCAL_EVENT | side_flag
    snap["exch_ts"] = last["exch_ts"]
    snap["local_ts"] = last["local_ts"]
    snap["px"] = levels["px"]
    snap["qty"] = levels["qty"]
    return snap


def begins_mid_stream(dataset: Dataset, start: int | None) -> bool:
    """True when ``start`` is after the dataset's first row (an initial snapshot is then replayed)."""
    return start is not None and start > dataset.manifest.start_ns


def initial_snapshot(
    dataset: Dataset, start: int | None, budget: int = CHUNK_ROWS, feeds: Iterable[str] = DEFAULT_FEEDS
) -> np.ndarray:
    """The book at ``start`` as DEPTH_SNAPSHOT rows (best level first), empty when the window starts at the
    dataset's start (step 4 of the module docstring) or feeds order-by-order rows (their stream begins
    with the resting orders instead, :func:`resting_orders`)."""
    if start is None or not begins_mid_stream(dataset, start) or L3_FEEDS & set(feeds):
        return np.empty(0, EVENT_DTYPE)
    return _initial_snapshot(dataset, start, budget)


def load_events(dataset: Dataset, window: Window = Window()) -> FeedData:
    """Feed a resolved dataset: the Event stream of ``window`` in Processing Order as one array (see the
    module docstring). :mod:`hftlab.event_cache` feeds the same stream in pieces, in bounded memory."""
    check_manifest(dataset)
    start, end = window.start, window.end
    events = R.stream_dense(dataset, window.feeds, start, end)
    if events is None:
        events = R.merge(R.read_window(dataset, window.feeds, start, end))
    resting = resting_orders(dataset, window.feeds, start)
    if resting is not None:
        events = np.concatenate([resting, events])
    events = _finish(events)
    snapshot = initial_snapshot(dataset, start, feeds=window.feeds)
    watch = StreamWarnings(snapshot)
    watch.see(events)
    return FeedData(
        dataset=dataset,
        events=np.ascontiguousarray(events),
        initial_snapshot=snapshot,
        start_ns=start if start is not None else dataset.manifest.start_ns,
        end_ns=end if end is not None else dataset.manifest.end_ns + 1,
        feeds=tuple(window.feeds),
        warnings=tuple(watch.warnings(start, end, dataset)),
    )
