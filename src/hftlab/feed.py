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
   resulting levels are returned as ``initial_snapshot`` rows (DEPTH_SNAPSHOT, best level first).

Same reference + same stored dataset => byte-identical arrays, in any process.
"""

from __future__ import annotations

import mmap
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftlab import feed_kernels as K
from hftlab import hftbacktest_types as HB
from hftlab.errors import ConfigError, StorageError
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage.catalog import Catalog, Dataset, check_manifest
from hftlab.storage.manifest import Partition, file_sha256
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS
from hftlab.times import iso, to_ns

_BOOK_FEEDS = ("snapshot", "depth")
_READ_COLUMNS = ["exch_ts", "local_ts", "kind", "side", "price", "qty", "seq"]
#: Row groups decoded ahead of the merge.
_PREFETCH = 2


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
    """The fed Event stream of one dataset reference."""

    dataset: Dataset
    events: np.ndarray  #: event_dtype, contiguous, Processing Order
    initial_snapshot: np.ndarray  #: event_dtype; empty when the window starts at the dataset start
    start_ns: int
    end_ns: int
    feeds: tuple[str, ...] = field(default=DEFAULT_FEEDS)


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


def _batches(table: pa.Table, lo: int | None, hi: int | None) -> list[dict[str, np.ndarray]]:
    """Zero-copy numpy columns per record batch, restricted to exchange time [lo, hi) if bounds are given."""
    out = []
    for batch in table.to_batches():
        cols = {name: batch.column(name).to_numpy() for name in _READ_COLUMNS}
        if lo is not None or hi is not None:
            exch = cols["exch_ts"]
            a = 0 if lo is None else int(np.searchsorted(exch, lo, side="left"))
            b = len(exch) if hi is None else int(np.searchsorted(exch, hi, side="left"))
            cols = {k: v[a:b] for k, v in cols.items()}
        if len(cols["seq"]):
            out.append(cols)
    return out


def _select(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> list[Partition]:
    return [
        p
        for p in dataset.manifest.partitions
        if p.feed in feeds and (lo is None or p.exch_ts_max >= lo) and (hi is None or p.exch_ts_min < hi)
    ]


def _read_row_group(path: Path, index: int) -> pa.Table:
    return pq.ParquetFile(path, memory_map=True).read_row_group(index, columns=_READ_COLUMNS)


def _iter_chunks(
    dataset: Dataset, parts: list[Partition], lo: int | None, hi: int | None
) -> Iterator[dict[str, np.ndarray]]:
    """Column chunks (one per row group and batch) of ``parts`` within [lo, hi), in manifest order.

    Files are hashed and row groups decoded ahead in worker threads, a few row groups at a time (so
    decoded memory is reused, not grown); no row of a file is yielded before that file's hash matched
    the manifest, and the order of yielded chunks never depends on thread timing.
    """
    paths = [dataset.path / p.path for p in parts]
    with ThreadPoolExecutor(max_workers=3) as pool:
        digests = [pool.submit(_file_digest, path) for path in paths]
        tasks = [
            (i, rg)
            for i, path in enumerate(paths)
            for rg in range(pq.ParquetFile(path, memory_map=True).num_row_groups if path.is_file() else 0)
        ]
        ahead: deque[Future[pa.Table]] = deque()
        for i, rg in tasks[:_PREFETCH]:
            ahead.append(pool.submit(_read_row_group, paths[i], rg))
        checked = -1
        for k, (i, _) in enumerate(tasks):
            table = ahead.popleft().result()
            if k + _PREFETCH < len(tasks):
                j, rg = tasks[k + _PREFETCH]
                ahead.append(pool.submit(_read_row_group, paths[j], rg))
            if i != checked:
                _check_digest(paths[i], parts[i], digests[i].result())
                checked = i
            part = parts[i]
            cut_lo = lo if lo is not None and part.exch_ts_min < lo else None
            cut_hi = hi if hi is not None and part.exch_ts_max >= hi else None
            yield from _batches(table, cut_lo, cut_hi)
        for i, path in enumerate(paths):  # a missing file has no row groups: still refuse it
            if i != checked:
                _check_digest(path, parts[i], digests[i].result())


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
        K.scatter_rows(out, c["seq"] - first, c["exch_ts"], c["local_ts"], c["kind"], c["side"], c["price"], c["qty"])
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
        K.scatter_rows(out, pos, c["exch_ts"], c["local_ts"], c["kind"], c["side"], c["price"], c["qty"])
        offset += m
    return out


def _initial_snapshot(dataset: Dataset, start: int) -> np.ndarray:
    chunks = _read_window(dataset, _BOOK_FEEDS, None, start)
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    order = np.argsort(np.concatenate([c["seq"] for c in chunks]), kind="stable")
    col = {
        k: np.concatenate([c[k] for c in chunks])[order]
        for k in ("exch_ts", "local_ts", "kind", "side", "price", "qty")
    }
    bid_rows, ask_rows = K.replay_book(
        col["kind"], col["side"], col["price"], col["qty"], dataset.manifest.instrument.tick_size
    )
    rows = np.concatenate([bid_rows, ask_rows])
    snap = np.zeros(len(rows), dtype=EVENT_DTYPE)
    side_flag = np.where(col["side"][rows] > 0, HB.BUY_EVENT, HB.SELL_EVENT)
    snap["ev"] = np.uint64(HB.DEPTH_SNAPSHOT_EVENT) | HB.EXCH_EVENT | HB.LOCAL_EVENT | side_flag
    snap["exch_ts"] = col["exch_ts"][-1]
    snap["local_ts"] = col["local_ts"][-1]
    snap["px"] = col["price"][rows]
    snap["qty"] = col["qty"][rows]
    return snap


def load_events(dataset: Dataset, window: Window = Window()) -> FeedData:
    """Feed a resolved dataset: the Event stream of ``window`` in Processing Order (see the module docstring)."""
    check_manifest(dataset)
    start, end = window.start, window.end
    events = _stream_dense(dataset, window.feeds, start, end)
    if events is None:
        events = _merge(_read_window(dataset, window.feeds, start, end))
    if len(events) and not K.local_order_is_monotone(events):
        events = K.split_exch_local(events, np.argsort(events["local_ts"], kind="stable"))
    begins_mid_stream = start is not None and start > dataset.manifest.start_ns
    snapshot = (
        _initial_snapshot(dataset, start) if begins_mid_stream and start is not None else np.empty(0, EVENT_DTYPE)
    )
    return FeedData(
        dataset=dataset,
        events=np.ascontiguousarray(events),
        initial_snapshot=snapshot,
        start_ns=start if start is not None else dataset.manifest.start_ns,
        end_ns=end if end is not None else dataset.manifest.end_ns + 1,
        feeds=tuple(window.feeds),
    )
