"""Historical Input Feeder: a dataset reference -> the Event stream in Processing Order.

The output is one contiguous array of hftbacktest's ``event_dtype`` (what the Simulated Venue reads),
plus an initial book snapshot when the window starts after the dataset's start. How it is built:

1. The dataset version is resolved in Canonical Storage; its manifest must hash to that version, and
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
import re
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
from hftlab.errors import StorageError
from hftlab.storage.catalog import Catalog, Dataset, check_manifest
from hftlab.storage.manifest import Partition, file_sha256
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS
from hftlab.venue import constants as HB

#: hftbacktest's event record (64 bytes, aligned); defined here so reading data needs no hftbacktest import.
EVENT_DTYPE = np.dtype(
    {
        "names": ["ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval"],
        "formats": ["<u8", "<i8", "<i8", "<f8", "<f8", "<u8", "<i8", "<f8"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
        "aligned": True,
    }
)
_BOOK_FEEDS = ("snapshot", "depth")
_READ_COLUMNS = ["exch_ts", "local_ts", "kind", "side", "price", "qty", "seq"]
#: Row groups decoded ahead of the merge.
_PREFETCH = 2


def to_ns(value: int | str | None) -> int | None:
    """A timestamp as integer ns since the epoch: an int is taken as ns, a string as ISO-8601 UTC."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d{5,}", text):  # integer ns given as text (config values are strings); "2024" is a year
        return int(text)
    try:
        return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))
    except ValueError:
        raise ValueError(f"time {value!r} is neither integer nanoseconds nor an ISO-8601 UTC time") from None


@dataclass(frozen=True)
class DatasetRef:
    """What to feed: a dataset (id, optional version), which feeds, and an exchange-time window."""

    id: str
    version: str | None = None
    feeds: tuple[str, ...] = DEFAULT_FEEDS
    start: int | str | None = None  #: inclusive; ns or ISO-8601 UTC; None = dataset start
    end: int | str | None = None  #: exclusive; None = dataset end
    symbol: str | None = None  #: if given, must equal the dataset's instrument symbol
    venue: str | None = None  #: if given, must equal the dataset's instrument venue

    def __post_init__(self) -> None:
        unknown = [f for f in self.feeds if f not in FEEDS]
        if unknown or not self.feeds:
            raise ValueError(f"dataset feeds {list(self.feeds)}: unknown {unknown}; known feeds: {list(FEEDS)}")


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


def load_events(ref: DatasetRef, catalog: Catalog | None = None) -> FeedData:
    """Feed a dataset reference: the Event stream in Processing Order (see the module docstring)."""
    catalog = catalog or Catalog()
    dataset = catalog.resolve(ref.id, ref.version)
    check_manifest(dataset)
    inst = dataset.manifest.instrument
    for key, want, have in (("symbol", ref.symbol, inst.symbol), ("venue", ref.venue, inst.venue)):
        if want is not None and want != have:
            raise StorageError(f"dataset '{ref.id}' {dataset.version} holds {key} {have!r}, not {want!r}")
    start, end = to_ns(ref.start), to_ns(ref.end)
    if start is not None and end is not None and end <= start:
        raise ValueError(f"dataset window end {ref.end!r} is not after start {ref.start!r}")
    events = _stream_dense(dataset, ref.feeds, start, end)
    if events is None:
        events = _merge(_read_window(dataset, ref.feeds, start, end))
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
        feeds=tuple(ref.feeds),
    )
