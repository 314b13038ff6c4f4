"""Importer for Tardis.dev CSV files: ``incremental_book_L2``, ``trades`` and ``quotes``.

Tardis timestamps are integer microseconds since the epoch: ``timestamp`` is the exchange's,
``local_timestamp`` the time Tardis received the message. Both become nanoseconds. The unit of each
column is ``ts_unit`` when given (``--ts-unit``), else detected per file from the magnitudes (the unit
that puts the column's median in 2000..2100), else microseconds; the files of one import must agree
(``ts-unit-mismatch``). It is recorded in ``lineage['timestamp_units']``.

Files (plain ``.csv`` or compressed, e.g. ``.csv.gz``; pyarrow picks the codec from the extension):

- ``incremental_book_L2`` (``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``):
  rows with ``is_snapshot=false`` go to feed ``depth`` as :attr:`Kind.DEPTH`. A block of consecutive
  ``is_snapshot=true`` rows is one full snapshot and goes to feed ``snapshot``: first one
  :attr:`Kind.CLEAR` row per side present in the block (bid before ask; price = the furthest price of
  that side in the block, i.e. the lowest bid / highest ask; quantity 0; timestamps of the block's
  first row; line of the row holding that furthest price, so that a price error names the line that
  shows the price), then the block's rows as :attr:`Kind.SNAPSHOT` in file order.
  ``side`` is ``bid``/``ask`` (``buy``/``sell`` are accepted as synonyms, like hftbacktest does).
- ``trades`` (``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``): feed ``trades``,
  :attr:`Kind.TRADE`; side ``buy`` -> :attr:`Side.BID`, ``sell`` -> :attr:`Side.ASK`,
  ``unknown`` -> :attr:`Side.NONE`.
- ``quotes`` (``exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount``):
  feed ``bbo``, one :attr:`Kind.BBO` row for the bid then one for the ask per line; a side whose price
  or amount is empty is skipped.

Errors (:class:`~hftlab.errors.DataError`, naming the file and the CSV line, header = line 1):
``empty-input`` (no input file given, or the files hold no rows), ``unreadable-input`` (missing file,
not text, corrupt or truncated compressed stream), ``wrong-type`` (a missing column, or a value that does
not parse as its column's type, or an empty required value), ``malformed-row`` (a line with the wrong
number of fields, or a blank line), ``symbol-mismatch`` (``symbol`` column differs from the symbol given),
``invalid-side`` (a side value the file kind does not define), ``timestamp-out-of-range`` (a
timestamp too large for int64 nanoseconds in its unit) and ``ts-unit-mismatch`` (files of one import
whose timestamps read in different units).
Everything else (negative quantities, off-tick prices, timestamps going backwards, ...) is checked by
:mod:`hftlab.storage.validate` when the result is promoted, with the same file and line.

Differences from hftbacktest's own converter (``hftbacktest.data.utils.tardis.convert``/``convert_fuse``):

- Feeds stay separate (``snapshot``, ``depth``, ``trades``, ``bbo``) instead of one merged event
  array; ordering across feeds is Canonical Storage's Processing Order.
- No local-timestamp correction here: hftbacktest always applies ``correct_local_timestamp``; with
  hftlab it is the caller's explicit choice (:func:`hftlab.ingest.common.finish_import`), one
  correction for the files of one import, as hftbacktest computes one over its input files, recorded
  in the lineage.
- The CLEAR/SNAPSHOT rows of a snapshot block are emitted where the block starts, and a block that
  ends the file is emitted too (hftbacktest emits a block only when the next incremental row arrives,
  so a file ending in a snapshot, like a snapshot-only file, loses it). The CLEAR price is the
  furthest price of the side in the block (hftbacktest takes the side's last row, the same for
  Tardis's best-to-worst ordered snapshots). Rows within a block keep file order (hftbacktest
  regroups them: all bids, then all asks).
- No ``snapshot_mode`` ('ignore' / 'ignore_sod'): every snapshot is kept.
- Unknown side values are errors (hftbacktest maps an unknown book side to ask, an unknown trade
  side to no side); ``unknown`` trade side is :attr:`Side.NONE` as in hftbacktest.
- Quotes (hftbacktest's ``book_ticker``) become plain ``bbo`` rows; hftbacktest only fuses them into
  the depth with ``convert_fuse``. Quotes emit bid then ask (hftbacktest: ask then bid).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa

from hftlab.errors import DataError
from hftlab.ingest import registry
from hftlab.ingest.common import converter_lineage, unit_entry
from hftlab.ingest.csv_reader import FIRST_DATA_LINE, _codes, _floats, _read, _timestamps
from hftlab.storage.schema import FeedFrame, IngestResult, Instrument, Kind, Side

CONVERTER_VERSION = 2  # 2: timestamps in s/ms/us/ns (detected or forced), not only us


_DICT = pa.dictionary(pa.int32(), pa.string())
_INT = pa.int64()
_FLOAT = pa.float64()

#: Columns read from each file kind and their Arrow types (dictionary = string, cheap to read).
BOOK_COLUMNS: dict[str, pa.DataType] = {
    "symbol": _DICT,
    "timestamp": _INT,
    "local_timestamp": _INT,
    "is_snapshot": _DICT,
    "side": _DICT,
    "price": _FLOAT,
    "amount": _FLOAT,
}
TRADE_COLUMNS: dict[str, pa.DataType] = {
    "symbol": _DICT,
    "timestamp": _INT,
    "local_timestamp": _INT,
    "side": _DICT,
    "price": _FLOAT,
    "amount": _FLOAT,
}
QUOTE_COLUMNS: dict[str, pa.DataType] = {
    "symbol": _DICT,
    "timestamp": _INT,
    "local_timestamp": _INT,
    "ask_amount": _FLOAT,
    "ask_price": _FLOAT,
    "bid_price": _FLOAT,
    "bid_amount": _FLOAT,
}

BOOK_SIDES = {"bid": Side.BID, "buy": Side.BID, "ask": Side.ASK, "sell": Side.ASK}
TRADE_SIDES = {"buy": Side.BID, "sell": Side.ASK, "unknown": Side.NONE}
SNAPSHOT_FLAGS = {"true": 1, "false": 0}


def convert(
    *,
    book: Path | None = None,
    trades: Path | None = None,
    quotes: Path | None = None,
    instrument: Instrument,
    ts_unit: str = "auto",
) -> IngestResult:
    """Convert Tardis.dev CSV files of one instrument into canonical feeds (see the module docstring);
    ``ts_unit``: the unit of every timestamp column, or ``auto``."""
    given = {"book": book, "trades": trades, "quotes": quotes}
    inputs = [Path(p) for p in given.values() if p is not None]
    if not inputs:
        raise DataError("empty-input", "<no input>", None, "give at least one of book, trades or quotes")
    frames: list[FeedFrame] = []
    units = _Units(ts_unit)
    if book is not None:
        frames += _convert_book(Path(book), instrument.symbol, units)
    if trades is not None:
        frames.append(_convert_trades(Path(trades), instrument.symbol, units))
    if quotes is not None:
        frames.append(_convert_quotes(Path(quotes), instrument.symbol, units))
    if sum(len(f) for f in frames) == 0:
        sources = ", ".join(str(p) for p in inputs)
        raise DataError("empty-input", sources, None, "the input files hold no rows")
    lineage = converter_lineage(
        "tardis",
        CONVERTER_VERSION,
        inputs,
        files={role: Path(p).name for role, p in given.items() if p is not None},
    )
    lineage["timestamp_units"] = units.lineage()
    return IngestResult(instrument=instrument, feeds=[f for f in frames if len(f)], lineage=lineage)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--book", help="incremental_book_L2 CSV")
    parser.add_argument("--trades", help="trades CSV")
    parser.add_argument("--quotes", help="quotes CSV (best bid/offer)")


def _convert_args(args: argparse.Namespace) -> IngestResult:
    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    return convert(
        book=path(args.book),
        trades=path(args.trades),
        quotes=path(args.quotes),
        instrument=registry.instrument(args),
        ts_unit=getattr(args, "ts_unit", "auto"),
    )


IMPORTER = registry.register(
    registry.Importer(
        name="tardis",
        help="Tardis.dev CSV: incremental_book_L2, trades, quotes",
        venue="tardis",
        add_arguments=_add_arguments,
        convert=_convert_args,
    )
)


class _Units:
    """The unit of each timestamp column over the files of one import (they must agree)."""

    def __init__(self, ts_unit: str) -> None:
        self.ts_unit = ts_unit
        self.seen: dict[str, tuple[str, str, Path]] = {}

    def read(self, path: Path, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Exchange and local timestamps of one file in ns (see :func:`_timestamps`)."""
        exch_ts, local_ts, units = _timestamps(path, table, self.ts_unit)
        for column, (unit, how) in units.items():
            first = self.seen.setdefault(column, (unit, how, path))
            if first[0] != unit:
                raise DataError(
                    "ts-unit-mismatch",
                    str(path),
                    None,
                    f"{column} reads as {unit} ({how}) here but as {first[0]} ({first[1]}) in {first[2]}; "
                    "give --ts-unit, or import the files separately",
                )
            if how == "detected":
                self.seen[column] = (unit, how, first[2])
        return exch_ts, local_ts

    def lineage(self) -> dict[str, dict[str, str]]:
        """``{column: {"unit", "how"}}``; ``how`` is detected if any file's magnitudes showed the unit."""
        return {column: unit_entry(unit, how) for column, (unit, how, _) in self.seen.items()}


# -- one file kind each -------------------------------------------------------------------------------


def _convert_book(path: Path, symbol: str, units: _Units) -> list[FeedFrame]:
    t = _read(path, BOOK_COLUMNS, symbol)
    n = t.num_rows
    line = np.arange(FIRST_DATA_LINE, n + FIRST_DATA_LINE, dtype=np.int64)
    exch_ts, local_ts = units.read(path, t)
    price = _floats(path, t, "price")
    qty = _floats(path, t, "amount")
    side = _codes(path, t, "side", BOOK_SIDES, np.int8)
    snap = _codes(path, t, "is_snapshot", SNAPSHOT_FLAGS, np.int8).astype(bool)

    depth = FeedFrame.from_columns(
        "depth",
        str(path),
        exch_ts=exch_ts[~snap],
        local_ts=local_ts[~snap],
        kind=np.full(int(n - snap.sum()), Kind.DEPTH),
        side=side[~snap],
        price=price[~snap],
        qty=qty[~snap],
        line=line[~snap],
    )

    # Snapshot blocks: runs of consecutive is_snapshot rows. ``rows`` indexes the snapshot rows.
    rows = np.flatnonzero(snap)
    starts = np.zeros(n, dtype=bool)
    starts[0:1] = snap[0:1]
    starts[1:] = snap[1:] & ~snap[:-1]
    block = np.cumsum(starts)[rows] - 1  # block id of each snapshot row
    first = np.flatnonzero(starts[rows])  # position (in ``rows``) of each block's first row
    nblocks = len(first)
    s_side = side[rows]
    s_price = price[rows]
    has_bid, low_bid, low_at = _furthest(block, first, s_side, s_price, Side.BID)
    has_ask, high_ask, high_at = _furthest(block, first, s_side, s_price, Side.ASK)
    nclear = has_bid.astype(np.int64) + has_ask
    after = np.cumsum(nclear)  # CLEAR rows emitted up to and including each block
    before = after - nclear
    total = len(rows) + int(after[-1] if nblocks else 0)

    out_exch = np.empty(total, dtype=np.int64)
    out_local = np.empty(total, dtype=np.int64)
    out_kind = np.empty(total, dtype=np.uint8)
    out_side = np.empty(total, dtype=np.int8)
    out_price = np.empty(total, dtype=np.float64)
    out_qty = np.empty(total, dtype=np.float64)
    out_line = np.empty(total, dtype=np.int64)

    pos = np.arange(len(rows)) + after[block]
    out_exch[pos], out_local[pos], out_line[pos] = exch_ts[rows], local_ts[rows], line[rows]
    out_kind[pos], out_side[pos], out_price[pos], out_qty[pos] = Kind.SNAPSHOT, s_side, s_price, qty[rows]
    for present, offset, clear_side, clear_price, clear_at in (
        (has_bid, 0, Side.BID, low_bid, low_at),
        (has_ask, has_bid.astype(np.int64), Side.ASK, high_ask, high_at),
    ):
        blocks = np.flatnonzero(present)
        cpos = (first + before + offset)[blocks]
        head = rows[first[blocks]]  # timestamps: the block's first row
        out_exch[cpos], out_local[cpos] = exch_ts[head], local_ts[head]
        out_line[cpos] = line[rows[clear_at[blocks]]]  # line: the row whose price the CLEAR takes
        out_kind[cpos], out_side[cpos], out_price[cpos], out_qty[cpos] = (
            Kind.CLEAR,
            clear_side,
            clear_price[blocks],
            0.0,
        )
    snapshot = FeedFrame.from_columns(
        "snapshot",
        str(path),
        exch_ts=out_exch,
        local_ts=out_local,
        kind=out_kind,
        side=out_side,
        price=out_price,
        qty=out_qty,
        line=out_line,
    )
    return [snapshot, depth]


def _furthest(
    block: np.ndarray, first: np.ndarray, side: np.ndarray, price: np.ndarray, which: Side
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per snapshot block: whether side ``which`` is present, its furthest price, and that row's position.

    Furthest = lowest bid / highest ask; NaN prices are ignored here (validation names their rows).
    """
    nblocks = len(first)
    if nblocks == 0:
        return np.zeros(0, dtype=bool), np.zeros(0), np.zeros(0, dtype=np.int64)
    mine = side == which
    bid = which == Side.BID
    key = np.where(mine, price, np.inf if bid else -np.inf)
    best = (np.fmin if bid else np.fmax).reduceat(key, first)
    index = np.arange(len(side))
    none = len(side)
    any_row = np.minimum.reduceat(np.where(mine, index, none), first)
    at = np.minimum.reduceat(np.where(mine & (key == best[block]), index, none), first)
    at = np.where(at == none, any_row, at)
    return any_row < none, best, at


def _convert_trades(path: Path, symbol: str, units: _Units) -> FeedFrame:
    t = _read(path, TRADE_COLUMNS, symbol)
    exch_ts, local_ts = units.read(path, t)
    return FeedFrame.from_columns(
        "trades",
        str(path),
        exch_ts=exch_ts,
        local_ts=local_ts,
        kind=np.full(t.num_rows, Kind.TRADE),
        side=_codes(path, t, "side", TRADE_SIDES, np.int8),
        price=_floats(path, t, "price"),
        qty=_floats(path, t, "amount"),
        line=np.arange(FIRST_DATA_LINE, t.num_rows + FIRST_DATA_LINE, dtype=np.int64),
    )


def _convert_quotes(path: Path, symbol: str, units: _Units) -> FeedFrame:
    t = _read(path, QUOTE_COLUMNS, symbol)
    n = t.num_rows
    exch_ts, local_ts = units.read(path, t)
    line = np.arange(FIRST_DATA_LINE, n + FIRST_DATA_LINE, dtype=np.int64)
    sides = ("ask_amount", "ask_price", "bid_price", "bid_amount")
    cols = {name: _floats(path, t, name, required=False) for name in sides}
    # One (bid, ask) pair of rows per line, flattened in that order; a missing side is dropped.
    price = np.stack([cols["bid_price"], cols["ask_price"]], axis=1).ravel()
    qty = np.stack([cols["bid_amount"], cols["ask_amount"]], axis=1).ravel()
    keep = ~(np.isnan(price) | np.isnan(qty))
    return FeedFrame.from_columns(
        "bbo",
        str(path),
        exch_ts=np.repeat(exch_ts, 2)[keep],
        local_ts=np.repeat(local_ts, 2)[keep],
        kind=np.full(int(keep.sum()), Kind.BBO),
        side=np.tile(np.array([Side.BID, Side.ASK], dtype=np.int8), n)[keep],
        price=price[keep],
        qty=qty[keep],
        line=np.repeat(line, 2)[keep],
    )
