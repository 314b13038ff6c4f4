"""Reading stored rows for the Historical Input Feeder: the partitions of a window, each file hash-checked
(and its manifest ranges checked against the file) before its rows are used, decoded a few row groups ahead
in threads, and merged into Processing Order by their stored ranks (``seq``) without a sort.

:mod:`hftlab.feed` builds the fed Event stream from what this module reads.
"""

from __future__ import annotations

import itertools
import mmap
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftlab import faults
from hftlab import feed_kernels as K
from hftlab.errors import StorageError
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage.catalog import Dataset, check_ranges, check_regular
from hftlab.storage.manifest import Partition, file_sha256
from hftlab.times import NS_PER_DAY
from hftlab.watchdog import beat

_READ_COLUMNS = ["exch_ts", "local_ts", "kind", "side", "price", "qty", "order_id", "seq"]
#: Row groups decoded ahead of the merge.
_PREFETCH = 2


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
        if "order_id" not in cols:  # every feed but an L3 one: fed with order id 0
            cols["order_id"] = np.zeros(len(cols["seq"]), dtype=np.uint64)
        if lo is not None or hi is not None:
            exch = cols["exch_ts"]
            a = 0 if lo is None else int(np.searchsorted(exch, lo, side="left"))
            b = len(exch) if hi is None else int(np.searchsorted(exch, hi, side="left"))
            cols = {k: v[a:b] for k, v in cols.items()}
        if len(cols["seq"]):
            out.append(cols)
    return out


def _check_rows(path: Path, part: Partition, cols: dict[str, np.ndarray]) -> None:
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


def select(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> list[Partition]:
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
    for path in paths:  # before any byte is read: a link could lead anywhere
        check_regular(dataset.path, path)
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
                faults.point("feed.read")
            part = parts[i]
            cut_lo = lo if lo is not None and part.exch_ts_min < lo else None
            cut_hi = hi if hi is not None and part.exch_ts_max >= hi else None
            beat()
            for cols in _batches(table, cut_lo, cut_hi):
                _check_rows(paths[i], part, cols)
                yield cols
        for i, path in enumerate(paths):  # a missing file (or one without rows in range): still check it
            if path not in done:
                _check_digest(path, parts[i], digests[i].result())
                done.add(path)


def read_window(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> list[dict[str, np.ndarray]]:
    """Rows of the selected feeds in [lo, hi), as column chunks; every file is hash-checked before use."""
    return list(_iter_chunks(dataset, select(dataset, feeds, lo, hi), lo, hi))


def stream_dense(dataset: Dataset, feeds: Iterable[str], lo: int | None, hi: int | None) -> np.ndarray | None:
    """The merge without holding all decoded rows: when the selected partitions lie wholly inside the
    window and their seq ranges tile one interval, every row's place is ``seq - first seq``, known
    before reading. Returns None when that does not hold (the general path then applies)."""
    parts = select(dataset, feeds, lo, hi)
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


def merge(chunks: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
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
    parts = select(dataset, feeds, lo, hi)
    days: dict[int, list[Partition]] = {}
    for part in parts:
        days.setdefault(part.exch_ts_min // NS_PER_DAY, []).append(part)
    verified: set[Path] = set()
    for day in sorted(days):
        first, last = day * NS_PER_DAY, (day + 1) * NS_PER_DAY
        a, b = max(first, lo) if lo is not None else first, min(last, hi) if hi is not None else last
        bounds = _time_ranges(dataset, days[day], a, b, budget, verified)
        for t0, t1 in itertools.pairwise(bounds):
            merged = merge(list(_iter_chunks(dataset, days[day], t0, t1, verified)))
            if len(merged):
                yield merged
