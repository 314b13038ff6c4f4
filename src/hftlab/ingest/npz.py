"""Importer for hftbacktest event arrays: ``.npz`` (member ``data``) or ``.npy`` of ``event_dtype``.

Each row's kind is ``ev & 0xff`` and maps to a feed: 1 DEPTH -> ``depth``, 2 TRADE -> ``trades``,
3 CLEAR and 4 SNAPSHOT -> ``snapshot``, 5 BBO -> ``bbo`` (the canonical :class:`Kind` codes equal
hftbacktest's). Side: ``BUY_EVENT`` -> :attr:`Side.BID`, ``SELL_EVENT`` -> :attr:`Side.ASK`, neither
-> :attr:`Side.NONE` (valid for trades only; validation refuses it on book rows).

hftbacktest's ``correct_event_order`` splits an event whose exchange order and local order disagree
into an ``EXCH_EVENT``-only row and a ``LOCAL_EVENT``-only copy. So if any row carries either flag,
exactly the rows with ``EXCH_EVENT`` set are kept (every original event has it once); if no row has
either flag, every row is kept. Rows keep file order within their feed.

Timestamps: hftbacktest 2 writes nanoseconds, hftbacktest 1 wrote microseconds. The unit of each column is
``ts_unit`` when given (``--ts-unit``), else detected from the magnitudes (the unit that puts the
column's median in 2000..2100, :func:`hftlab.ingest.common.detect_unit`), else nanoseconds; recorded in
``lineage['timestamp_units']``. The local timestamps are taken as stored: an hftbacktest converter has
usually already corrected them (``correct_local_timestamp``), which the lineage of the source cannot
tell; :func:`hftlab.ingest.common.finish_import` applies any further correction and checks plausibility.

Errors (:class:`~hftlab.errors.DataError`, naming the file and, for rows, "row N" 1-based):
``unreadable-input`` (missing file, not a numpy file, corrupt archive), ``wrong-type`` (no ``data``
member, not a 1-D array of hftbacktest's event fields), ``unsupported-kind`` (L3 kinds 10-13, custom
codes, ...), ``invalid-side`` (both BUY and SELL flags set), ``empty-input`` (no rows to import),
``timestamp-out-of-range`` (a timestamp that does not fit int64 nanoseconds in its unit).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hftlab.errors import DataError
from hftlab.ingest.common import TS_UNITS, converter_lineage, detect_unit, first_overflow, unit_entry
from hftlab.ingest.registry import file_importer, register
from hftlab.storage.schema import FEEDS, FeedFrame, IngestResult, Instrument, Kind, Side

CONVERTER_VERSION = 2  # 2: timestamps in s/ms/us/ns (detected or forced), not only ns

# hftbacktest.types flags, copied so that the importer does not import hftbacktest (and numba).
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28
KIND_MASK = 0xFF

#: Fields an event array must have, with their numpy type (hftbacktest's ``event_dtype``; extra
#: fields such as ``order_id``/``ival``/``fval`` are ignored).
FIELDS: dict[str, np.dtype] = {
    "ev": np.dtype(np.uint64),
    "exch_ts": np.dtype(np.int64),
    "local_ts": np.dtype(np.int64),
    "px": np.dtype(np.float64),
    "qty": np.dtype(np.float64),
}

#: hftbacktest kind -> canonical feed.
KIND_FEEDS: dict[int, str] = {
    Kind.DEPTH: "depth",
    Kind.TRADE: "trades",
    Kind.CLEAR: "snapshot",
    Kind.SNAPSHOT: "snapshot",
    Kind.BBO: "bbo",
}


def load_events(path: Path) -> np.ndarray:
    """The event array of an ``.npz`` (member ``data``) or ``.npy`` file, checked for its fields."""
    source = str(path)
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)
    try:
        # Our own handle: np.load leaks the one it opens when a .npz archive turns out corrupt.
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    if "data" not in loaded.files:
                        raise DataError(
                            "wrong-type",
                            source,
                            None,
                            f"the .npz archive has no member 'data' (members: {loaded.files})",
                        )
                    arr = loaded["data"]
            else:
                arr = loaded
    except unreadable as exc:
        raise DataError(
            "unreadable-input", source, None, f"not a readable .npy/.npz file: {type(exc).__name__}: {exc}"
        ) from None
    fields: Mapping[str, Any] = arr.dtype.fields or {}
    wrong = [name for name, dtype in FIELDS.items() if name not in fields or fields[name][0].newbyteorder("=") != dtype]
    if wrong or arr.ndim != 1:
        expected = ", ".join(f"{k} {v}" for k, v in FIELDS.items())
        raise DataError(
            "wrong-type",
            source,
            None,
            f"expected a 1-D array of hftbacktest event_dtype (fields {expected}), "
            f"got shape {arr.shape} dtype {arr.dtype}",
        )
    return arr


def timestamps_ns(
    arr: np.ndarray, keep: np.ndarray, source: str, ts_unit: str
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]]]:
    """``exch_ts`` and ``local_ts`` in ns, and ``lineage['timestamp_units']``: each column in ``ts_unit``
    if not ``auto``, else detected on the kept rows, else ns. Overflow: ``timestamp-out-of-range``."""
    columns: dict[str, np.ndarray] = {}
    units: dict[str, dict[str, str]] = {}
    for column in ("exch_ts", "local_ts"):
        raw = np.asarray(arr[column], dtype=np.int64)
        unit, how = (ts_unit, "forced") if ts_unit != "auto" else detect_unit(raw[keep], "ns")
        bad = first_overflow(np.where(keep, raw, 0), unit)
        if bad is not None:
            raise DataError(
                "timestamp-out-of-range",
                source,
                f"row {bad + 1}",
                f"{column} {raw[bad]} read as {unit} ({how}) does not fit int64 nanoseconds (see --ts-unit)",
            )
        columns[column] = raw * TS_UNITS[unit]
        units[column] = unit_entry(unit, how)
    return columns, units


def convert(path: Path, instrument: Instrument, ts_unit: str = "auto") -> IngestResult:
    """Convert an hftbacktest event file into canonical feeds (see the module docstring); ``ts_unit``:
    the unit of both timestamp columns, or ``auto``."""
    path = Path(path)
    source = str(path)
    arr = load_events(path)
    ev = arr["ev"].astype(np.uint64)
    kind = (ev & np.uint64(KIND_MASK)).astype(np.int64)
    unsupported = np.flatnonzero(~np.isin(kind, np.array(sorted(KIND_FEEDS))))
    if unsupported.size:
        i = int(unsupported[0])
        raise DataError(
            "unsupported-kind",
            source,
            f"row {i + 1}",
            f"event kind {kind[i]} (ev={int(ev[i]):#x}) has no canonical feed; supported kinds: "
            f"{sorted(int(k) for k in KIND_FEEDS)} ({unsupported.size} rows)"
            + (
                "; order-by-order events: import the vendor's file (hftlab data import databento / lobster), whose "
                "cancels state what remains (hftbacktest's L3 arrays drop partial cancels)"
                if 10 <= kind[i] <= 13
                else ""
            ),
        )
    buy = (ev & np.uint64(BUY_EVENT)) != 0
    sell = (ev & np.uint64(SELL_EVENT)) != 0
    both = np.flatnonzero(buy & sell)
    if both.size:
        i = int(both[0])
        raise DataError("invalid-side", source, f"row {i + 1}", f"ev={int(ev[i]):#x} has both BUY and SELL flags")
    exch = (ev & np.uint64(EXCH_EVENT)) != 0
    local = (ev & np.uint64(LOCAL_EVENT)) != 0
    flagged = bool(np.any(exch | local))
    keep = exch if flagged else np.ones(len(arr), dtype=bool)
    if not keep.any():
        raise DataError("empty-input", source, None, "the file holds no events (with the EXCH_EVENT flag)")

    ts, units = timestamps_ns(arr, keep, source, ts_unit)
    side = np.where(buy, np.int8(Side.BID), np.where(sell, np.int8(Side.ASK), np.int8(Side.NONE)))
    row = np.arange(1, len(arr) + 1, dtype=np.int64)
    feed_of_kind = np.full(256, -1, dtype=np.int64)
    for k, feed in KIND_FEEDS.items():
        feed_of_kind[k] = FEEDS.index(feed)
    feed_index = feed_of_kind[kind]
    frames = []
    for i, feed in enumerate(FEEDS):
        mask = keep & (feed_index == i)
        if not mask.any():
            continue
        frames.append(
            FeedFrame.from_columns(
                feed,
                source,
                exch_ts=ts["exch_ts"][mask],
                local_ts=ts["local_ts"][mask],
                kind=kind[mask],
                side=side[mask],
                price=arr["px"][mask],
                qty=arr["qty"][mask],
                line=row[mask],
            )
        )
    lineage = converter_lineage(
        "hftbacktest-npz",
        CONVERTER_VERSION,
        [path],
        rows_in_file=len(arr),
        rows_dropped=int(len(arr) - keep.sum()),
    )
    lineage["timestamp_units"] = units
    return IngestResult(instrument=instrument, feeds=frames, lineage=lineage)


IMPORTER = register(file_importer("npz", "hftbacktest .npz/.npy event file", "hftbacktest", convert))
