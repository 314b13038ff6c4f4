"""Importer for Tardis.dev CSV files: ``incremental_book_L2``, ``trades`` and ``quotes``.

Tardis timestamps are integer microseconds since the epoch: ``timestamp`` is the exchange's,
``local_timestamp`` the time Tardis received the message. Both become nanoseconds (x 1000).

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
``invalid-side`` (a side value the file kind does not define) and ``timestamp-out-of-range`` (a
microsecond timestamp too large for int64 nanoseconds, e.g. a file already in nanoseconds).
Everything else (negative quantities, off-tick prices, timestamps going backwards, ...) is checked by
:mod:`hftlab.storage.validate` when the result is promoted, with the same file and line.

Differences from hftbacktest's own converter (``hftbacktest.data.utils.tardis.convert``/``convert_fuse``):

- Feeds stay separate (``snapshot``, ``depth``, ``trades``, ``bbo``) instead of one merged event
  array; ordering across feeds is Canonical Storage's Processing Order.
- No local-timestamp correction here: hftbacktest always applies ``correct_local_timestamp``; with
  hftlab it is the caller's explicit choice (:func:`hftlab.ingest.common.apply_local_ts_correction`),
  recorded in the lineage.
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

import csv
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from hftlab.errors import DataError
from hftlab.ingest.common import converter_lineage
from hftlab.storage.schema import ContractType, FeedFrame, IngestResult, Instrument, Kind, Side

CONVERTER_VERSION = 1

#: Header line is line 1; data row ``i`` (0-based) is line ``i + FIRST_DATA_LINE``.
FIRST_DATA_LINE = 2
#: Largest microsecond timestamp that still fits int64 nanoseconds.
MAX_US = np.iinfo(np.int64).max // 1000
#: Longest header accepted before the file is judged not to be CSV text.
MAX_HEADER_BYTES = 1 << 20

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
    symbol: str,
    tick_size: float,
    lot_size: float,
    venue: str,
    contract_type: ContractType = "linear",
    contract_size: float = 1.0,
) -> IngestResult:
    """Convert Tardis.dev CSV files of one instrument into canonical feeds (see the module docstring)."""
    instrument = Instrument(
        venue=venue,
        symbol=symbol,
        tick_size=tick_size,
        lot_size=lot_size,
        contract_type=contract_type,
        contract_size=contract_size,
    )
    given = {"book": book, "trades": trades, "quotes": quotes}
    inputs = [Path(p) for p in given.values() if p is not None]
    if not inputs:
        raise DataError("empty-input", "<no input>", None, "give at least one of book, trades or quotes")
    frames: list[FeedFrame] = []
    if book is not None:
        frames += _convert_book(Path(book), symbol)
    if trades is not None:
        frames.append(_convert_trades(Path(trades), symbol))
    if quotes is not None:
        frames.append(_convert_quotes(Path(quotes), symbol))
    if sum(len(f) for f in frames) == 0:
        sources = ", ".join(str(p) for p in inputs)
        raise DataError("empty-input", sources, None, "the input files hold no rows")
    lineage = converter_lineage(
        "tardis",
        CONVERTER_VERSION,
        inputs,
        files={role: Path(p).name for role, p in given.items() if p is not None},
    )
    return IngestResult(instrument=instrument, feeds=[f for f in frames if len(f)], lineage=lineage)


# -- one file kind each -------------------------------------------------------------------------------


def _convert_book(path: Path, symbol: str) -> list[FeedFrame]:
    t = _read(path, BOOK_COLUMNS, symbol)
    n = t.num_rows
    line = np.arange(FIRST_DATA_LINE, n + FIRST_DATA_LINE, dtype=np.int64)
    exch_ts, local_ts = _timestamps(path, t)
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


def _convert_trades(path: Path, symbol: str) -> FeedFrame:
    t = _read(path, TRADE_COLUMNS, symbol)
    exch_ts, local_ts = _timestamps(path, t)
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


def _convert_quotes(path: Path, symbol: str) -> FeedFrame:
    t = _read(path, QUOTE_COLUMNS, symbol)
    n = t.num_rows
    exch_ts, local_ts = _timestamps(path, t)
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


# -- reading ------------------------------------------------------------------------------------------


def _unreadable(path: Path, exc: BaseException) -> DataError:
    return DataError("unreadable-input", str(path), None, f"cannot read the file as CSV text: {exc}")


def _header(path: Path) -> list[str]:
    """The column names of the header line (decompressing if the extension says so)."""
    try:
        with pa.input_stream(str(path)) as stream:
            head = b""
            while b"\n" not in head and len(head) < MAX_HEADER_BYTES:
                chunk = stream.read(1 << 16)
                if not chunk:
                    break
                head += chunk
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\n" not in head and len(head) >= MAX_HEADER_BYTES:
        raise _unreadable(path, ValueError(f"no line break in the first {MAX_HEADER_BYTES} bytes"))
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _unreadable(path, exc) from None
    if "\0" in text:
        raise _unreadable(path, ValueError("binary data (NUL bytes) in the header line"))
    if not text.strip():
        raise DataError("wrong-type", str(path), "line 1", "the file has no header line")
    return next(csv.reader([text]))


def _read(path: Path, columns: dict[str, pa.DataType], symbol: str) -> pa.Table:
    """Read the needed columns with their types; raise a DataError naming the line on any failure."""
    header = _header(path)
    missing = [name for name in columns if name not in header]
    if missing:
        raise DataError(
            "wrong-type",
            str(path),
            "line 1",
            f"missing column(s) {', '.join(repr(m) for m in missing)}; the header has {header}",
        )
    try:
        table = _read_csv(path, columns)
    except pa.ArrowInvalid as exc:
        raise _parse_failure(path, columns, header, exc) from None
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    _check_symbol(path, table, symbol)
    return table


def _read_csv(path: Path, columns: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        str(path),
        # Blank lines are not skipped, so data row i is exactly CSV line i + 2.
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=columns,
            include_columns=list(columns),
            null_values=[""],
            strings_can_be_null=False,
        ),
    )


def _parse_failure(path: Path, columns: dict[str, pa.DataType], header: list[str], exc: pa.ArrowInvalid) -> DataError:
    """The error naming the first bad line, after pyarrow refused the file (its message names none)."""
    if "parse error" in str(exc):
        line, fields = _first_malformed_line(path, len(header))
        return DataError(
            "malformed-row",
            str(path),
            f"line {line}" if line else None,
            f"expected {len(header)} comma-separated fields (as in the header), got {fields}"
            if line
            else f"the CSV could not be parsed: {exc}",
        )
    # A conversion error: re-read the typed columns as strings and find the first value that does
    # not parse (empty values are nulls, handled by the callers).
    typed = {name: t for name, t in columns.items() if not pa.types.is_dictionary(t)}
    try:
        strings = _read_csv(path, dict.fromkeys(typed, pa.string()))
    except (OSError, pa.ArrowException) as exc2:
        return _unreadable(path, exc2)
    bad: list[tuple[int, str, str, pa.DataType]] = []
    for name, target in typed.items():
        values = strings.column(name).combine_chunks()
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        i = _first_failing_cast(values, target)
        if i is not None:
            bad.append((i, name, values[i].as_py(), target))
    if not bad:
        return DataError("wrong-type", str(path), None, f"a value does not parse: {exc}")
    i, name, value, target = min(bad, key=lambda b: b[0])
    return DataError(
        "wrong-type",
        str(path),
        f"line {i + FIRST_DATA_LINE}",
        f"column '{name}': {value!r} is not a valid {_type_name(target)}",
    )


def _type_name(t: pa.DataType) -> str:
    return "integer" if pa.types.is_integer(t) else "number"


def _first_failing_cast(values: pa.Array, target: pa.DataType) -> int | None:
    """Index of the first value that does not cast to ``target`` (bisection over slices)."""

    def ok(lo: int, hi: int) -> bool:
        try:
            pc.cast(values.slice(lo, hi - lo), target)
        except pa.ArrowInvalid:
            return False
        return True

    lo, hi = 0, len(values)
    if ok(lo, hi):
        return None
    while hi - lo > 1:  # invariant: [lo, hi) holds a failure
        mid = (lo + hi) // 2
        if ok(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


def _first_malformed_line(path: Path, nfields: int) -> tuple[int | None, int]:
    """(line, field count) of the first line whose field count differs from the header's."""
    try:
        with pa.input_stream(str(path)) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text)
            for record in reader:
                if len(record) != nfields:
                    return reader.line_num, len(record)
    except (OSError, pa.ArrowException, csv.Error):
        pass
    return None, 0


def _check_symbol(path: Path, table: pa.Table, symbol: str) -> None:
    col = table.column("symbol")
    if all(chunk.dictionary.to_pylist() in ([symbol], []) for chunk in col.chunks):
        return
    values = col.cast(pa.string()).combine_chunks()
    i = int(np.flatnonzero(pc.not_equal(values, symbol).to_numpy(zero_copy_only=False))[0])
    row = table.slice(i, 1).to_pylist()[0]
    if all(v is None or v == "" for v in row.values()):
        # pyarrow keeps blank lines as rows of empty fields (empty lines are not skipped, see _read_csv).
        raise DataError("malformed-row", str(path), f"line {i + FIRST_DATA_LINE}", "blank line")
    raise DataError(
        "symbol-mismatch",
        str(path),
        f"line {i + FIRST_DATA_LINE}",
        f"symbol {values[i].as_py()!r} differs from the instrument's symbol {symbol!r}",
    )


# -- column conversion --------------------------------------------------------------------------------


def _first_null_line(col: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0]) + FIRST_DATA_LINE


def _floats(path: Path, table: pa.Table, name: str, *, required: bool = True) -> np.ndarray:
    """A float column as numpy (empty values: NaN if not required, else an error naming the line)."""
    col = table.column(name)
    if required and col.null_count:
        raise DataError("wrong-type", str(path), f"line {_first_null_line(col)}", f"column '{name}' is empty")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _timestamps(path: Path, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Exchange and local timestamps in nanoseconds."""
    out = []
    for name in ("timestamp", "local_timestamp"):
        col = table.column(name)
        if col.null_count:
            raise DataError("wrong-type", str(path), f"line {_first_null_line(col)}", f"column '{name}' is empty")
        us = np.asarray(col.to_numpy(), dtype=np.int64)
        big = np.flatnonzero(np.abs(us) > MAX_US)
        if big.size:
            i = int(big[0])
            raise DataError(
                "timestamp-out-of-range",
                str(path),
                f"line {i + FIRST_DATA_LINE}",
                f"column '{name}': {us[i]} does not fit int64 nanoseconds when read as microseconds "
                "(Tardis timestamps are microseconds; is the file already in another unit?)",
            )
        out.append(us * 1000)
    return out[0], out[1]


def _codes(path: Path, table: pa.Table, name: str, mapping: Mapping[str, int], dtype: type[np.generic]) -> np.ndarray:
    """Map a dictionary-encoded string column through ``mapping``; an unknown value is an error."""
    parts: list[np.ndarray] = []
    offset = 0
    rule = "invalid-side" if name == "side" else "wrong-type"
    for chunk in table.column(name).chunks:
        words = chunk.dictionary.to_pylist()
        unknown = [w not in mapping for w in words]
        lut = np.array([mapping.get(w, 0) for w in words], dtype=dtype)
        idx = chunk.indices.to_numpy(zero_copy_only=False)
        if any(unknown):
            hits = np.flatnonzero(np.asarray(unknown)[idx])
            i = int(hits[0])
            raise DataError(
                rule,
                str(path),
                f"line {offset + i + FIRST_DATA_LINE}",
                f"column '{name}': {words[idx[i]]!r} is not one of {sorted(mapping)}",
            )
        parts.append(lut[idx])
        offset += len(chunk)
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
