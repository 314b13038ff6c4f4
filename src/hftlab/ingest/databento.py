"""Databento MBO (market by order, L3) importer: ``.dbn`` / ``.dbn.zst`` files -> ``orders`` and ``trades``
feeds (Canonical Storage derives the ``snapshot`` and ``depth`` feeds from the orders when it promotes them).

The file is decoded offline: zstd by pyarrow's codec, the metadata by the ``databento-dbn`` package, the
56-byte MBO records as one numpy structured array (``databento_dbn.MBOMsg`` field layout). No network,
no API key. One file holds one instrument (else ``--symbol`` picks one of its symbols).

**Actions** (Databento's ``action``), each a row in its record's order:

- ``A`` add -> ``ADD``; ``M`` modify -> ``MODIFY`` (new price and size);
- ``C`` cancel of ``size`` -> ``CANCEL`` stating what the order keeps (a partial cancel keeps its place);
- ``F`` fill of a resting order -> ``FILL`` (side: the resting order's); the book changes with the ``C``
  that follows, as in Databento's CME data;
- ``T`` trade -> a ``trades`` row (side: the aggressor's, ``N`` unknown);
- ``R`` clear book -> ``CLEAR`` of both sides; ``N`` (no action) records are skipped and counted.

A block of snapshot records (flag ``F_SNAPSHOT``, e.g. the start-of-day book of CME files) that no ``R``
precedes starts with an inserted ``CLEAR`` (the snapshot is the whole book), and so does a file that does
not begin with ``R``: each import starts from the book its own records build (a file that starts mid-
session without a snapshot then fails on the first cancel of an order it never added, rather than grow
a dataset on top of another import's orders). Counted in the lineage (``inserted_clears``).

**Time.** Local time is ``ts_recv`` (Databento's capture time); exchange time is ``ts_event``. Snapshot
records carry the original order entry time as ``ts_event`` (hours before), so, as hftbacktest's
converter does, their exchange time (and that of ``R`` records) is their ``ts_recv`` - but never later
than the exchange time of a live record after them, so that exchange time never goes backwards in the
feed (counted as ``snapshot_ts_clamped``). Records flagged ``F_BAD_TS_RECV`` outside a snapshot are
counted in the lineage.

**Instrument.** Venue: the file's dataset (``GLBX.MDP3``); symbol: the raw symbol its metadata maps the
instrument id to. MBO files carry no tick size or multiplier: ``--tick-size`` and ``--contract-size``
set them; without ``--tick-size`` the tick is the greatest common divisor of the file's prices (recorded
as inferred in the lineage), without ``--contract-size`` it is 1 (also recorded). Lot size: 1 unless given.

Errors (:class:`~hftlab.errors.DataError`, naming the file and ``record N``, 1-based after the metadata):
``unreadable-input`` (not DBN, truncated), ``unsupported-record`` (a record that is not MBO),
``unknown-action``, ``symbol-mismatch``, and the L3 rules of :mod:`hftlab.storage.l3`.
"""

from __future__ import annotations

import argparse
import math
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from hftlab.errors import ConfigError, DataError
from hftlab.ingest.common import converter_lineage, unit_entry
from hftlab.ingest.registry import Importer, add_file_argument, files_naming_their_instrument, register
from hftlab.storage.l3 import OrderBook, RuleBreak, raise_at
from hftlab.storage.schema import FeedFrame, IngestResult, Instrument, Kind, Side

CONVERTER_VERSION = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: ``databento_dbn.MBOMsg`` as stored (56 bytes, little endian).
MBO_DTYPE = np.dtype(
    [
        ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
        ("ts_event", "<u8"), ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"),
        ("channel_id", "u1"), ("action", "S1"), ("side", "S1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"),
        ("sequence", "<u4"),
    ]
)  # fmt: skip
#: The same with the gateway send time DBN appends when the file was written with ``ts_out``.
MBO_TS_OUT_DTYPE = np.dtype([*MBO_DTYPE.descr, ("ts_out", "<u8")])
RTYPE_MBO = 0xA0
F_SNAPSHOT = 1 << 5
F_BAD_TS_RECV = 1 << 3
PRICE_SCALE = 1_000_000_000
SIDES = {b"B": int(Side.BID), b"A": int(Side.ASK), b"N": int(Side.NONE)}
ACTIONS = (b"A", b"C", b"M", b"F", b"T", b"R", b"N")


def read_dbn(path: Path) -> tuple[Any, np.ndarray]:
    """(metadata, MBO records) of a ``.dbn`` or ``.dbn.zst`` file."""
    import databento_dbn as dbn
    import pyarrow as pa

    source = str(path)
    try:
        raw = path.read_bytes()
        if raw[:4] == ZSTD_MAGIC:
            raw = pa.CompressedInputStream(pa.BufferReader(raw), "zstd").read()
    except (OSError, pa.ArrowException) as exc:
        raise DataError("unreadable-input", source, None, f"cannot read or decompress: {exc}") from None
    if raw[:3] != b"DBN" or len(raw) < 8:
        raise DataError("unreadable-input", source, None, "not a DBN file (no 'DBN' header)")
    end = 8 + int.from_bytes(raw[4:8], "little")
    decoder = dbn.DBNDecoder()
    try:
        decoder.write(bytes(raw[:end]))
        metadata = decoder.decode()[0]
    except (ValueError, IndexError, dbn.DBNError) as exc:
        raise DataError("unreadable-input", source, None, f"DBN metadata does not decode: {exc}") from None
    body = memoryview(raw)[end:]
    dtype = MBO_TS_OUT_DTYPE if getattr(metadata, "ts_out", False) else MBO_DTYPE
    size = dtype.itemsize
    whole = len(body) // size
    records = np.frombuffer(body[: whole * size], dtype=dtype)
    if len(body) % size or np.any((records["rtype"] != RTYPE_MBO) | (records["length"] != size // 4)):
        _first_bad_record(source, body, size, metadata)
    return metadata, records


def _first_bad_record(source: str, body: memoryview, size: int, metadata: Any) -> None:
    """Walk the records by their length bytes; raise for the first that is not an MBO record of ``size``
    bytes (``unsupported-record``) or that the file ends inside (``unreadable-input``)."""
    offset, n = 0, 0
    while offset < len(body):
        n += 1
        length = body[offset] * 4
        if length == 0 or offset + length > len(body):
            raise DataError("unreadable-input", source, f"record {n}", "the file ends inside a record (truncated)")
        rtype = body[offset + 1]
        if rtype != RTYPE_MBO or length != size:
            raise DataError(
                "unsupported-record",
                source,
                f"record {n}",
                f"a record of rtype {rtype:#x} and {length} bytes is not an MBO record of {size} bytes (file schema "
                f"{getattr(metadata, 'schema', '?')}): only MBO files are imported",
            )
        offset += length


def _symbols(metadata: Any) -> dict[int, str]:
    """instrument id -> raw symbol, from the metadata's symbol mappings."""
    out: dict[int, str] = {}
    for mapping in metadata.mappings.items() if isinstance(metadata.mappings, dict) else []:
        raw, intervals = mapping
        for interval in intervals:
            try:
                out[int(interval["symbol"])] = raw
            except (TypeError, ValueError, KeyError):
                continue
    return out


def _pick_instrument(source: str, records: np.ndarray, metadata: Any, symbol: str | None) -> tuple[int, str]:
    names = _symbols(metadata)
    ids = sorted(int(i) for i in np.unique(records["instrument_id"]))
    if symbol is not None:
        matching = [i for i in ids if names.get(i, str(i)) == symbol]
        if not matching:
            found = ", ".join(names.get(i, str(i)) for i in ids)
            raise DataError("symbol-mismatch", source, None, f"no records of symbol {symbol!r}; the file holds {found}")
        return matching[0], symbol
    if len(ids) != 1:
        found = ", ".join(names.get(i, str(i)) for i in ids)
        raise ConfigError(f"{source}: the file holds {len(ids)} instruments ({found}): choose one with --symbol")
    return ids[0], names.get(ids[0], str(ids[0]))


def _tick(prices: np.ndarray) -> float:
    """The greatest common divisor of the prices (fixed-point 1e-9), as a float."""
    values = np.unique(np.abs(prices[prices != 0]))
    if not values.size:
        return 1.0
    g = reduce(math.gcd, (int(v) for v in values[:100_000]), 0)
    return g / PRICE_SCALE


def convert(path: Path, args: argparse.Namespace) -> IngestResult:
    """One DBN MBO file -> canonical rows (see the module docstring)."""
    import databento_dbn as dbn

    source = str(path)
    metadata, records = read_dbn(path)
    if not len(records):
        raise DataError("empty-input", source, None, "the file holds no records")
    iid, symbol = _pick_instrument(source, records, metadata, args.symbol)
    keep = np.flatnonzero(records["instrument_id"] == iid)
    recs = records[keep]
    unknown = np.flatnonzero(~np.isin(recs["action"], np.array(ACTIONS, dtype="S1")))
    if unknown.size:
        i = int(unknown[0])
        raise DataError("unknown-action", source, f"record {int(keep[i]) + 1}", f"action {recs['action'][i]!r}")
    _check_timestamps(source, recs, keep)
    booked = recs["price"][np.isin(recs["action"], np.array([b"A", b"M", b"C", b"F", b"T"], dtype="S1"))]
    tick = args.tick_size if args.tick_size is not None else _tick(booked)
    instrument = Instrument(
        venue=args.venue or str(metadata.dataset),
        symbol=symbol,
        tick_size=tick,
        lot_size=args.lot_size if args.lot_size is not None else 1.0,
        contract_type=args.contract_type,
        contract_size=args.contract_size if args.contract_size is not None else 1.0,
    )
    orders, trades, counts = _translate(source, recs, keep + 1, instrument)
    lineage = converter_lineage(
        "databento-mbo",
        CONVERTER_VERSION,
        [path],
        dataset=str(metadata.dataset),
        instrument_id=iid,
        dbn_version=int(getattr(metadata, "version", 0)),
        databento_dbn=getattr(dbn, "__version__", None) or _dist_version(),
    )
    lineage["record_counts"] = counts
    lineage["instrument_from"] = {
        "tick_size": "argument" if args.tick_size is not None else "inferred: greatest common divisor of the prices",
        "contract_size": "argument" if args.contract_size is not None else "assumed 1 (MBO files do not carry it)",
    }
    lineage["timestamp_units"] = {"exch_ts": unit_entry("ns", "format"), "local_ts": unit_entry("ns", "format")}
    notes = [f"records: {', '.join(f'{a} {n}' for a, n in counts.items() if n)}"]
    if args.tick_size is None:
        notes.append(f"tick size {tick:g} inferred from the prices (the file does not carry it; --tick-size sets it)")
    if args.contract_size is None:
        notes.append("contract size 1 assumed (the file does not carry it; --contract-size sets it, e.g. 50 for ES)")
    if counts["inserted_clears"]:
        notes.append(
            f"{counts['inserted_clears']} book clear(s) inserted before snapshot records that no R record precedes"
        )
    lineage["notes"] = notes
    return IngestResult(instrument=instrument, feeds=[orders, trades], lineage=lineage)


def _check_timestamps(source: str, recs: np.ndarray, keep: np.ndarray) -> None:
    """Refuse (``timestamp-out-of-range``) a ``ts_recv``, or a ``ts_event`` that is used (not that of a
    snapshot or ``R`` record), beyond int64 ns: DBN stores uint64, and its undefined time is 2**64 - 1."""
    book_image = ((recs["flags"] & F_SNAPSHOT) != 0) | (recs["action"] == b"R")
    for column, used in (("ts_recv", np.ones(len(recs), dtype=bool)), ("ts_event", ~book_image)):
        bad = np.flatnonzero(used & (recs[column] > np.uint64(np.iinfo(np.int64).max)))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                "timestamp-out-of-range",
                source,
                f"record {int(keep[i]) + 1}",
                f"{column} {int(recs[column][i])} does not fit int64 nanoseconds (2**64 - 1 is DBN's undefined time)",
            )


def _dist_version() -> str:
    from importlib.metadata import version

    return version("databento-dbn")


def _values(column: np.ndarray) -> list[Any]:
    """A column as Python values (the loop below is faster on them than on numpy scalars)."""
    values: list[Any] = column.tolist()
    return values


def _translate(
    source: str, recs: np.ndarray, record_no: np.ndarray, instrument: Instrument
) -> tuple[FeedFrame, FeedFrame, dict[str, int]]:
    """Databento actions -> ``orders`` and ``trades`` frames (the source's cancel sizes become what remains)."""
    book = OrderBook(instrument.tick_size, instrument.lot_size)
    action, sides, size, oid, flags, ts_event, ts_recv = (
        _values(recs[name]) for name in ("action", "side", "size", "order_id", "flags", "ts_event", "ts_recv")
    )
    side = [SIDES.get(s, 9) for s in sides]
    # Snapshot and clear records are timed at their receive time, but never after the exchange time of a
    # live record that follows (which would make the feed's exchange time go backwards).
    book_image = ((recs["flags"] & F_SNAPSHOT) != 0) | (recs["action"] == b"R")
    live_event = np.where(book_image, np.iinfo(np.int64).max, recs["ts_event"].astype(np.int64))
    later_live = _values(np.minimum.accumulate(live_event[::-1])[::-1])
    price = _values(recs["price"] / PRICE_SCALE)
    o_rows: list[tuple[int, int, int, int, float, float, int, int]] = []
    t_rows: list[tuple[int, int, int, int, float, float, int]] = []
    counts = {a.decode(): 0 for a in ACTIONS}
    counts.update(inserted_clears=0, bad_ts_recv=0, snapshot_ts_clamped=0)
    in_snapshot = False
    for i in range(len(action)):
        a = action[i]
        counts[a.decode()] += 1
        snap = bool(flags[i] & F_SNAPSHOT)
        local = ts_recv[i]
        exch = ts_event[i]
        if snap or a == b"R":
            exch = min(local, later_live[i])
            counts["snapshot_ts_clamped"] += exch < local
        if flags[i] & F_BAD_TS_RECV and not snap:
            counts["bad_ts_recv"] += 1
        line = int(record_no[i])
        try:
            # a snapshot block, or the file's first book record
            starts_image = (snap and not in_snapshot) or (not o_rows and a in (b"A", b"C", b"M", b"F"))
            if starts_image and a != b"R" and not (o_rows and o_rows[-1][2] == Kind.CLEAR):
                o_rows.append((exch, local, Kind.CLEAR, 0, instrument.tick_size, 0.0, 0, line))
                book.clear(0)
                counts["inserted_clears"] += 1
            in_snapshot = snap
            s = side[i]
            if a == b"A":
                book.add(oid[i], s, price[i], size[i])
                o_rows.append((exch, local, Kind.ADD, s, price[i], size[i], oid[i], line))
            elif a == b"C":
                left = book.remaining_after(oid[i], size[i], "cancel")
                order = book.cancel(oid[i], left)
                o_rows.append((exch, local, Kind.CANCEL, order.side, order.price, left, oid[i], line))
            elif a == b"M":
                order = book.get(oid[i], "modify")
                book.modify(oid[i], price[i], size[i])
                o_rows.append((exch, local, Kind.MODIFY, order.side, price[i], size[i], oid[i], line))
            elif a == b"F":
                order = book.fill(oid[i], price[i], size[i])
                o_rows.append((exch, local, Kind.FILL, order.side, price[i], size[i], oid[i], line))
            elif a == b"T":
                t_rows.append((exch, local, Kind.TRADE, s if s != 9 else 0, price[i], size[i], line))
            elif a == b"R":
                book.clear(0)
                o_rows.append((exch, local, Kind.CLEAR, 0, instrument.tick_size, 0.0, 0, line))
        except RuleBreak as exc:
            raise raise_at(exc, source, f"record {line}") from None
    # order ids are uint64: built from rows, ids of 2**63 or more would turn into floats
    names = ("exch_ts", "local_ts", "kind", "side", "price", "qty", "order_id", "line")
    columns = list(zip(*o_rows, strict=True)) if o_rows else [()] * len(names)
    typed = {
        n: np.asarray(c, dtype=np.uint64 if n == "order_id" else None) for n, c in zip(names, columns, strict=True)
    }
    orders = FeedFrame.from_columns("orders", source, **typed)
    trades = FeedFrame.from_rows("trades", source, t_rows)
    orders.unit = trades.unit = "record"
    return orders, trades, counts


IMPORTER = register(
    Importer(
        name="databento",
        help="Databento MBO (L3 market by order) .dbn / .dbn.zst files",
        venue="",
        add_arguments=add_file_argument,
        convert=files_naming_their_instrument(convert),
        instrument_from_file=True,
    )
)
