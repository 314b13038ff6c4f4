"""Historical Input Feeder: a resolved dataset and a window -> the Event stream in Processing Order.

The output is one contiguous array of hftbacktest's ``event_dtype`` (what the Simulated Venue reads),
plus an initial book snapshot when the window starts after the dataset's start. How it is built:

1. The dataset version (resolved in Canonical Storage) must have a manifest hashing to that version, and
   every file read is checked against the manifest's sha256 before its rows are used.
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

import itertools
import mmap
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftlab import feed_kernels as K
from hftlab import hftbacktest_types as HB
from hftlab.errors import ConfigError, FeedError, StorageError
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage.catalog import Catalog, Dataset, check_manifest, check_ranges
from hftlab.storage.manifest import Partition, file_sha256
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS, L3_FEEDS
from hftlab.times import NS_PER_DAY, iso, to_ns

_BOOK_FEEDS = ("snapshot", "depth")
_READ_COLUMNS = ["exch_ts", "local_ts", "kind", "side", "price", "qty", "order_id", "seq"]
#: Stored rows without an ``order_id`` column (every feed but an L3 one) are fed with order id 0.
_NO_ORDER_ID = "order_id"
#: Row groups decoded ahead of the merge.
_PREFETCH = 2
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
    warnings: tuple[str, ...] = ()  #: what a run over this stream must report (see :class:`BookStart`)
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


class BookStart:
    """Watches a fed stream for a window that starts without a book: no initial snapshot, and depth
    updates before the first snapshot row (the book is then built from increments only and mid, spread
    and fills are wrong until the first snapshot)."""

    def __init__(self, snapshot: np.ndarray | None) -> None:
        self.has_snapshot = snapshot is not None and len(snapshot) > 0
        self.first_depth: int | None = None
        self.first_snapshot: int | None = None

    def see(self, events: np.ndarray) -> None:
        if self.has_snapshot or self.first_snapshot is not None:
            return
        kind = events["ev"] & HB.KIND_MASK
        snaps = np.flatnonzero(kind == HB.DEPTH_SNAPSHOT_EVENT)
        depth = np.flatnonzero(kind == HB.DEPTH_EVENT)
        if self.first_depth is None and len(depth):
            self.first_depth = int(events["exch_ts"][depth[0]])
        if len(snaps):
            self.first_snapshot = int(events["exch_ts"][snaps[0]])

    def warnings(self, start_ns: int) -> list[str]:
        if self.has_snapshot or self.first_depth is None:
            return []
        if self.first_snapshot is None:
            return [
                f"the window starting {iso(start_ns)} has no book snapshot before it nor in it: the book is "
                "built from incremental updates only, so mid, spread and fills may be wrong throughout"
            ]
        if self.first_snapshot <= self.first_depth:
            return []
        late = (self.first_snapshot - start_ns) / 1e9
        return [
            f"the window starting {iso(start_ns)} has no book snapshot before it: the book is built from "
            f"incremental updates only until the first snapshot at {iso(self.first_snapshot)} ({late:.3f} s "
            "later); mid, spread and fills before then may be wrong"
        ]


def _file_digest(path: Path) -> tuple[str, int]:
    try:
        return file_sha256(path), path.stat().st_size
    except FileNotFoundError:
        raise StorageError(f"{path}: partition file is missing; the dataset is incomplete") from None


def _check_digest(path: Path, part: Partition, digest: tuple[str, int]) -> None:
    found, size = digest
    if size != part.file_bytes or found != part.file_sha256:
        raise StorageError(
            f"{path}: sha256 {found} ({size} bytes) does not match the manifest "
            f"({part.file_sha256}, {part.file_bytes} bytes): refusing to feed a modified dataset"
        )
    check_ranges(path, part)


def _batches(table: pa.Table, lo: int | None, hi: int | None) -> list[dict[str, np.ndarray]]:
    """Zero-copy numpy columns per record batch, restricted to exchange time [lo, hi) if bounds are given."""
    out = []
    for batch in table.to_batches():
        cols = {name: batch.column(name).to_numpy() for name in _READ_COLUMNS if name in batch.schema.names}
        if _NO_ORDER_ID not in cols:
            cols[_NO_ORDER_ID] = np.zeros(len(cols["seq"]), dtype=np.uint64)
        if lo is not None or hi is not None:
            exch = cols["exch_ts"]
            a = 0 if lo is None else int(np.searchsorted(exch, lo, side="left"))
            b = len(exch) if hi is None else int(np.searchsorted(exch, hi, side="left"))
            cols = {k: v[a:b] for k, v in cols.items()}
        if len(cols["seq"]):
            out.append(cols)
    return out


def _check_ranges(path: Path, part: Partition, cols: dict[str, np.ndarray]) -> None:
    """Refuse rows outside the ranges the manifest gives their file: ranks (which place rows in the fed
    array) and exchange times (which select files). A manifest edited after promotion would otherwise feed
    another stream under the same version, or place rows outside the array."""
    seq, exch = cols["seq"], cols["exch_ts"]
    for name, values, low, high in (
        ("seq", seq, part.seq_min, part.seq_max),
        ("exch_ts", exch, part.exch_ts_min, part.exch_ts_max),
    ):
        if len(values) and (int(values.min()) < low or int(values.max()) > high):
            raise StorageError(
                f"{path}: rows hold {name} {int(values.min())}..{int(values.max())}, the manifest says "
                f"{low}..{high}: the manifest does not describe this file (edited?); refusing to feed it"
            )


def _select(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> list[Partition]:
    return [
        p
        for p in dataset.manifest.partitions
        if p.feed in feeds and (lo is None or p.exch_ts_max >= lo) and (hi is None or p.exch_ts_min < hi)
    ]


def _read_row_group(path: Path, index: int) -> pa.Table:
    file = pq.ParquetFile(path, memory_map=True)
    return file.read_row_group(index, columns=[c for c in _READ_COLUMNS if c in file.schema_arrow.names])


def _row_groups(path: Path, lo: int | None, hi: int | None) -> list[int]:
    """Row groups of ``path`` that may hold exchange times in [lo, hi) (by the file's statistics)."""
    if not path.is_file():
        return []
    meta = pq.ParquetFile(path, memory_map=True).metadata
    col = meta.schema.names.index("exch_ts")
    out = []
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(col).statistics
        if (
            stats is not None
            and stats.has_min_max
            and ((lo is not None and stats.max < lo) or (hi is not None and stats.min >= hi))
        ):
            continue
        out.append(rg)
    return out


def _iter_chunks(
    dataset: Dataset, parts: list[Partition], lo: int | None, hi: int | None, verified: set[Path] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Column chunks (one per row group and batch) of ``parts`` within [lo, hi), in manifest order.

    Files are hashed and row groups decoded ahead in worker threads, a few row groups at a time (so
    decoded memory is reused, not grown); no row of a file is yielded before that file's hash matched
    the manifest, and the order of yielded chunks never depends on thread timing. Files in ``verified``
    were checked earlier in the same feed and are not hashed again; files checked here are added to it.
    """
    paths = [dataset.path / p.path for p in parts]
    done = verified if verified is not None else set()
    with ThreadPoolExecutor(max_workers=3) as pool:
        digests = {i: pool.submit(_file_digest, path) for i, path in enumerate(paths) if path not in done}
        tasks = [(i, rg) for i, path in enumerate(paths) for rg in _row_groups(path, lo, hi)]
        ahead: deque[Future[pa.Table]] = deque()
        for i, rg in tasks[:_PREFETCH]:
            ahead.append(pool.submit(_read_row_group, paths[i], rg))
        for k, (i, _) in enumerate(tasks):
            table = ahead.popleft().result()
            if k + _PREFETCH < len(tasks):
                j, rg = tasks[k + _PREFETCH]
                ahead.append(pool.submit(_read_row_group, paths[j], rg))
            if paths[i] not in done:
                _check_digest(paths[i], parts[i], digests[i].result())
                done.add(paths[i])
            part = parts[i]
            cut_lo = lo if lo is not None and part.exch_ts_min < lo else None
            cut_hi = hi if hi is not None and part.exch_ts_max >= hi else None
            for cols in _batches(table, cut_lo, cut_hi):
                _check_ranges(paths[i], part, cols)
                yield cols
        for i, path in enumerate(paths):  # a missing file (or one without rows in range): still check it
            if path not in done:
                _check_digest(path, parts[i], digests[i].result())
                done.add(path)


def _read_window(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> list[dict[str, np.ndarray]]:
    """Rows of the selected feeds in [lo, hi), as column chunks; every file is hash-checked before use."""
    return list(_iter_chunks(dataset, _select(dataset, feeds, lo, hi), lo, hi))


def _stream_dense(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> np.ndarray | None:
    """The merge without holding all decoded rows: when the selected partitions lie wholly inside the
    window and their seq ranges tile one interval, every row's place is ``seq - first seq``, known
    before reading. Returns None when that does not hold (the general path then applies)."""
    parts = _select(dataset, feeds, lo, hi)
    inside = all((lo is None or p.exch_ts_min >= lo) and (hi is None or p.exch_ts_max < hi) for p in parts)
    if not parts or not inside:
        return None
    n = sum(p.rows for p in parts)
    first = min(p.seq_min for p in parts)
    if max(p.seq_max for p in parts) - first + 1 != n:
        return None
    # First touch of fresh pages is the largest single cost on small VMs: the array is allocated with its
    # pages populated, in a thread, while the first row groups are hashed and decoded.
    holder: list[np.ndarray] = []
    allocate = threading.Thread(target=lambda: holder.append(populated_events(n)))
    allocate.start()
    chunks = _iter_chunks(dataset, parts, lo, hi)
    try:
        pending = next(chunks, None)
    finally:
        allocate.join()
    out = holder[0]
    while pending is not None:
        c = pending
        K.scatter_rows(
            out,
            c["seq"] - first,
            c["exch_ts"],
            c["local_ts"],
            c["kind"],
            c["side"],
            c["price"],
            c["qty"],
            c["order_id"],
        )
        pending = next(chunks, None)
    return out


def populated_events(n: int) -> np.ndarray:
    """An uninitialized event array whose pages are already in memory.

    Faulting in fresh pages one by one dominated feeding on small VMs: 640 MiB took 0.26-0.59 s by
    touching (and 0.15-1.24 s with numpy's transparent-huge-page advice, which can stall on memory
    compaction), 0.20-0.26 s as one ``mmap(MAP_POPULATE)``. Where MAP_POPULATE does not exist, a plain
    ``np.empty`` is returned. The array keeps its mapping alive; it is unmapped with the array.
    """
    flags = getattr(mmap, "MAP_POPULATE", None)
    if flags is None or n == 0:
        return np.empty(n, dtype=EVENT_DTYPE)
    mapping = mmap.mmap(-1, n * EVENT_DTYPE.itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
    return np.frombuffer(mapping, dtype=EVENT_DTYPE)


def _merge(chunks: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """Place every row at its Processing Order rank among the selected rows (gaps allowed)."""
    n = sum(len(c["seq"]) for c in chunks)
    out = populated_events(n)
    if n == 0:
        return out
    lo = min(int(c["seq"][0]) for c in chunks)
    hi = max(int(c["seq"][-1]) for c in chunks)
    rank = None if hi - lo + 1 == n else K.rank_positions(np.concatenate([c["seq"] for c in chunks]), lo, hi)
    offset = 0
    for c in chunks:
        m = len(c["seq"])
        pos = c["seq"] - lo if rank is None else rank[offset : offset + m]
        K.scatter_rows(out, pos, c["exch_ts"], c["local_ts"], c["kind"], c["side"], c["price"], c["qty"], c["order_id"])
        offset += m
    return out


def _time_ranges(
    dataset: Dataset, parts: list[Partition], lo: int, hi: int, budget: int, verified: set[Path]
) -> list[int]:
    """Bounds cutting exchange time [lo, hi) of one UTC day into ranges of at most about ``budget`` rows
    (rows sharing one exchange timestamp are never cut apart)."""
    if sum(p.rows for p in parts) <= budget:
        return [lo, hi]
    stamps = [c["exch_ts"] for c in _iter_chunks(dataset, parts, lo, hi, verified)]
    exch = np.sort(np.concatenate(stamps)) if stamps else np.empty(0, np.int64)
    cuts = [int(t) for t in np.unique(exch[budget::budget]) if lo < t < hi]
    return [lo, *cuts, hi]


def merged_chunks(
    dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None, budget: int
) -> Iterator[np.ndarray]:
    """Rows of ``feeds`` in exchange time [lo, hi) as event arrays in Processing Order, flagged EXCH|LOCAL
    (before any exchange/local split): one per UTC day, or per part of a day of at most about ``budget``
    rows. Each file is hash-checked once, before its rows are used."""
    parts = _select(dataset, feeds, lo, hi)
    days: dict[int, list[Partition]] = {}
    for part in parts:
        days.setdefault(part.exch_ts_min // NS_PER_DAY, []).append(part)
    verified: set[Path] = set()
    for day in sorted(days):
        first, last = day * NS_PER_DAY, (day + 1) * NS_PER_DAY
        a, b = max(first, lo) if lo is not None else first, min(last, hi) if hi is not None else last
        bounds = _time_ranges(dataset, days[day], a, b, budget, verified)
        for t0, t1 in itertools.pairwise(bounds):
            merged = _merge(list(_iter_chunks(dataset, days[day], t0, t1, verified)))
            if len(merged):
                yield merged


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
    for merged in merged_chunks(dataset, l3, None, start, budget):
        rows = np.concatenate([carry, merged])
        kind = (rows["ev"] & np.uint64(HB.KIND_MASK)).astype(np.int64)
        side = np.where((rows["ev"] & HB.BUY_EVENT) != 0, 1, np.where((rows["ev"] & HB.SELL_EVENT) != 0, -1, 0))
        index, _ = K.resting_orders(kind, side.astype(np.int8), rows["px"], rows["qty"], rows["order_id"], tick)
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
    for merged in merged_chunks(dataset, window.feeds, window.start, window.end, budget):
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
    for merged in merged_chunks(dataset, _BOOK_FEEDS, None, start, budget):
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
    events = _stream_dense(dataset, window.feeds, start, end)
    if events is None:
        events = _merge(_read_window(dataset, window.feeds, start, end))
    resting = resting_orders(dataset, window.feeds, start)
    if resting is not None:
        events = np.concatenate([resting, events])
    events = _finish(events)
    snapshot = initial_snapshot(dataset, start, feeds=window.feeds)
    book = BookStart(snapshot)
    book.see(events)
    return FeedData(
        dataset=dataset,
        events=np.ascontiguousarray(events),
        initial_snapshot=snapshot,
        start_ns=start if start is not None else dataset.manifest.start_ns,
        end_ns=end if end is not None else dataset.manifest.end_ns + 1,
        feeds=tuple(window.feeds),
        warnings=tuple(book.warnings(start if start is not None else dataset.manifest.start_ns)),
    )
