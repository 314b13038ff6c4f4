"""LOBSTER importer (NASDAQ TotalView-ITCH, reconstructed by lobsterdata.com): a message file and its
orderbook file -> ``orders``, ``trades`` and ``hidden`` feeds (Canonical Storage derives ``snapshot`` and
``depth`` from the orders when it promotes them).

**Files.** ``message.csv`` (time, type, order id, size, price, direction; no header) and the orderbook file
beside it (``orderbook.csv``, or LOBSTER's ``<TICKER>_<date>_..._orderbook_<N>.csv`` for
``..._message_<N>.csv``): ``N`` levels of ask price, ask size, bid price, bid size after each message.
Prices are USD × 10,000; an empty level has the dummy price 9999999999 (ask) or -9999999999 (bid) and
size 0.

**Time.** LOBSTER's time is seconds after midnight in the exchange's time zone (``--timezone``, NASDAQ:
``America/New_York``) on the trading date (``--date``, not in the files; LOBSTER names it in the file
name, which is read when the date is not given). Each wall-clock time is converted to UTC with that
zone's offset *at that time*, so a session on a daylight-saving switch day is right (the ambiguous hour
of a switch back takes the first offset). Nanoseconds are exact to the file's 9 decimals. LOBSTER has no
receive time: local time = exchange time + ``--feed-latency`` (default 0), recorded in the lineage.

**Messages** (``type``):

1. submission -> ``ADD``; 2 partial cancel and 3 deletion -> ``CANCEL`` stating what remains
   (a deletion removes the order);
4. execution of a visible order -> ``FILL`` (side: ``direction``, which is the *resting* order's side) and
   the ``CANCEL`` stating what remains, plus a ``trades`` row whose side is the aggressor's, the
   opposite of ``direction``;
5. execution of a hidden order -> a ``hidden`` feed trade (aggressor side as above); it changes no
   displayed quantity. A price off the penny grid (sub-penny) is refused (``sub-penny-price``) unless
   ``--sub-penny hidden`` keeps it as a hidden trade at its exact price;
6. cross trade (auction) -> a ``trades`` row of unknown side;
7. trading halt (price -1), quotation resume (0), trading resume (1) -> no row; recorded in the lineage
   (``trading_status``) and reported when the import ends.

**What the messages do not show.** A level-N file holds only the messages that touch the first N
levels, so orders that rest deeper (or that were entered before the file starts) are unknown until a
message names them, and their cancels while deeper are missing. After every message, the book is made
to equal the orderbook file's N levels. Missing quantity is first given to the orders that later
messages name at that level without a submission (they rest there already: placed now, ahead of any
order that joins later, so a fill of theirs does not fill orders queued behind them), the rest becomes
*unseen* orders (ids from :data:`hftlab.ingest.lobster_book.UNSEEN_ID_BASE`). Quantity the file no longer shows is cancelled:
unseen orders first, then known orders no later message names, then orders placed ahead of their
naming (placed again later), latest first. An order named before it could be placed is taken out of
its level's unseen quantity and added at the back just before that message. Every such row counts in
``lineage['reconciliation']``; the top N levels after every message then equal LOBSTER's.

Errors (:class:`~hftlab.errors.DataError` naming the file and line): ``unreadable-input``,
``malformed-row``, ``timestamp-out-of-range`` (a time that is not 0 .. 172,800 s after midnight),
``integer-out-of-range`` (a type, id, size, price or direction that is not an integer of at most
2**53), ``unknown-message-type``, ``sub-penny-price``, ``row-count-mismatch`` (message and
orderbook files of different lengths), ``duplicate-add``, ``negative-remaining-quantity``,
``book-mismatch`` (the orderbook file shows less at a level than orders that later messages name hold).
"""

from __future__ import annotations

import argparse
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from hftlab.errors import ConfigError, DataError
from hftlab.ingest.common import converter_lineage, duration_type, raw_input, unit_entry
from hftlab.ingest.lobster_book import PRICE_SCALE, Book, Messages, Row
from hftlab.ingest.registry import Importer, files_naming_their_instrument, register
from hftlab.storage.schema import FeedFrame, IngestResult, Instrument, Kind

CONVERTER_VERSION = 1
SUB_PENNY_CHOICES = ("refuse", "hidden")
_NAME = re.compile(r"(?P<ticker>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_message_(?P<levels>\d+)\.csv$")


def orderbook_path(message: Path) -> Path:
    """The orderbook file beside a message file (``message`` -> ``orderbook`` in its name)."""
    if "message" not in message.name:
        raise ConfigError(f"{message}: a LOBSTER message file has 'message' in its name (its orderbook: 'orderbook')")
    return message.with_name(message.name.replace("message", "orderbook"))


def read_csv(path: Path, columns: int | None, what: str) -> np.ndarray:
    """A headerless numeric CSV as a float64 (messages) or int64 (orderbook) 2-D array."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    source = str(path)
    try:
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
    except FileNotFoundError:
        raise DataError("unreadable-input", source, None, f"the {what} file does not exist") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError("malformed-row", source, None, f"the {what} file does not parse as CSV: {exc}") from None
    if columns is not None and table.num_columns != columns:
        raise DataError("malformed-row", source, "line 1", f"{table.num_columns} columns, a {what} file has {columns}")
    if table.num_columns % 4 and columns is None:
        raise DataError("malformed-row", source, "line 1", f"{table.num_columns} columns, not 4 per level")
    out = []
    for k, col in enumerate(table.columns):
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)) or col.null_count:
            raise DataError("malformed-row", source, None, f"column {k + 1} is not numeric throughout ({col.type})")
        out.append(col.to_numpy())
    return np.column_stack(out)


def utc_ns(seconds: np.ndarray, day: date, zone: ZoneInfo) -> np.ndarray:
    """Seconds after midnight of ``day`` in ``zone`` (wall clock) -> UTC ns, with the offset at each time."""
    ns = np.rint(seconds * 1e9).astype(np.int64)
    hours = ns // (3600 * 10**9)
    midnight = datetime(day.year, day.month, day.day)
    out = np.empty_like(ns)
    for h in np.unique(hours).tolist():
        wall = (midnight + timedelta(hours=h)).replace(tzinfo=zone, fold=0)
        offset = wall.utcoffset()
        assert offset is not None
        base = int((midnight - datetime(1970, 1, 1)).total_seconds()) * 10**9 - int(offset.total_seconds()) * 10**9
        sel = hours == h
        out[sel] = base + ns[sel]
    return out


def convert(path: Path, args: argparse.Namespace) -> IngestResult:
    """One LOBSTER message file (and its orderbook file) -> canonical rows (see the module docstring)."""
    source = str(path)
    book_file = orderbook_path(path)
    day, symbol, zone = _day_symbol_zone(path, args)
    msg = _in_range(source, read_csv(path, 6, "message"), first_int_column=1)
    ob = _in_range(str(book_file), read_csv(book_file, None, "orderbook"), first_int_column=0).astype(np.int64)
    if len(msg) != len(ob):
        raise DataError(
            "row-count-mismatch", source, None, f"{len(msg)} messages but {len(ob)} rows in {book_file.name}"
        )
    exch = utc_ns(msg[:, 0], day, zone)
    m = Messages(exch, exch + np.int64(args.feed_latency), *(msg[:, c].astype(np.int64) for c in range(1, 6)))
    _check_messages(source, m, args.sub_penny == "hidden")
    instrument = Instrument(
        venue=args.venue or "NASDAQ",
        symbol=symbol,
        tick_size=args.tick_size if args.tick_size is not None else 0.01,
        lot_size=args.lot_size if args.lot_size is not None else 1.0,
        contract_type=args.contract_type,
        contract_size=args.contract_size if args.contract_size is not None else 1.0,
    )
    n_levels = ob.shape[1] // 4
    orders, trades, hidden, status, stats = _replay(source, m, ob, n_levels, instrument.tick_size)
    feeds = [
        FeedFrame.from_rows("orders", source, orders),
        FeedFrame.from_rows("trades", source, trades),
        FeedFrame.from_rows("hidden", source, hidden),
    ]
    lineage = converter_lineage(
        "lobster",
        CONVERTER_VERSION,
        [path],
        date=day.isoformat(),
        timezone=args.timezone,
        feed_latency_ns=int(args.feed_latency),
        levels=n_levels,
        sub_penny=args.sub_penny,
    )
    lineage["raw_inputs"].append(raw_input(book_file))
    lineage["message_counts"] = {str(t): int(np.sum(m.kind == t)) for t in range(1, 8)}
    lineage["reconciliation"] = stats
    lineage["trading_status"] = status
    lineage["timestamp_units"] = {"exch_ts": unit_entry("ns", "format"), "local_ts": unit_entry("ns", "format")}
    lineage["notes"] = _notes(stats, status, n_levels, book_file.name)
    return IngestResult(instrument=instrument, feeds=feeds, lineage=lineage)


#: Largest integer a LOBSTER column may hold: float64 (how mixed columns are read) holds it exactly.
MAX_EXACT_INT = 2**53


def _in_range(source: str, table: np.ndarray, first_int_column: int) -> np.ndarray:
    """``table`` if its time column (0, before ``first_int_column``) is 0 .. 2 days of seconds and every
    other column holds integers of at most :data:`MAX_EXACT_INT`; else the first offending line is refused
    (a value cast to int64 beyond that range wraps around silently)."""
    for k in range(table.shape[1]):
        col = table[:, k]
        if k < first_int_column:
            bad = ~((col >= 0) & (col < 2 * 86_400))
            rule, what = "timestamp-out-of-range", "a time of 0 .. 172800 seconds after midnight"
        elif col.dtype.kind == "f":
            bad = ~((np.abs(col) <= MAX_EXACT_INT) & (col == np.rint(col)))
            rule, what = "integer-out-of-range", f"an integer of at most {MAX_EXACT_INT}"
        else:
            continue  # read as int64 by pyarrow: exact
        hits = np.flatnonzero(bad)
        if hits.size:
            i = int(hits[0])
            value = col[i].item()
            if rule == "integer-out-of-range" and abs(value) <= MAX_EXACT_INT:
                rule = "wrong-type"  # a fraction where an integer belongs
            raise DataError(rule, source, f"line {i + 1}", f"column {k + 1} is {value!r}, not {what}")
    return table


def _day_symbol_zone(path: Path, args: argparse.Namespace) -> tuple[date, str, ZoneInfo]:
    """The trading date, symbol (arguments, else LOBSTER's file name) and time zone of a message file."""
    named = _NAME.search(path.name)
    day_text = args.date or (named.group("date") if named else None)
    symbol = args.symbol or (named.group("ticker") if named else None)
    if day_text is None or symbol is None:
        raise ConfigError(
            f"{path}: give --date YYYY-MM-DD and --symbol (LOBSTER file names carry them: "
            "<TICKER>_<YYYY-MM-DD>_<start>_<end>_message_<N>.csv; this one does not)"
        )
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ConfigError(f"--date {day_text!r} is not a date YYYY-MM-DD") from None
    try:
        zone = ZoneInfo(args.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(f"--timezone {args.timezone!r} is not an IANA time zone (e.g. America/New_York)") from None
    return day, symbol, zone


def _check_messages(source: str, m: Messages, hidden_ok: bool) -> None:
    """Refuse unknown message types and prices off the penny grid (``--sub-penny hidden``: hidden only)."""
    bad = np.flatnonzero(~np.isin(m.kind, [1, 2, 3, 4, 5, 6, 7]))
    if bad.size:
        i = int(bad[0])
        raise DataError("unknown-message-type", source, f"line {i + 1}", f"type {m.kind[i]} (LOBSTER: 1-7)")
    sub_penny = np.flatnonzero((m.price % (PRICE_SCALE // 100) != 0) & (m.kind != 7))
    for i in sub_penny.tolist():
        if m.kind[i] != 5 or not hidden_ok:
            how = (
                "--sub-penny hidden keeps hidden executions at such prices"
                if m.kind[i] == 5
                else "only hidden executions may be priced off the grid"
            )
            raise DataError(
                "sub-penny-price",
                source,
                f"line {i + 1}",
                f"price {m.price[i] / PRICE_SCALE} is off the $0.01 grid in a type {m.kind[i]} message "
                f"({sub_penny.size} such messages); {how}",
            )


_Trade = tuple[int, int, int, int, float, float, int]


def _replay(
    source: str, m: Messages, ob: np.ndarray, n_levels: int, tick_size: float
) -> tuple[list[Row], list[_Trade], list[_Trade], list[dict[str, Any]], dict[str, int]]:
    """The messages applied to the book, matched to the orderbook file after each: (orders rows, trades
    rows, hidden rows, trading status messages, reconciliation counts)."""
    orders: list[Row] = []
    trades: list[_Trade] = []
    hidden: list[_Trade] = []
    status: list[dict[str, Any]] = []
    book = Book(source, orders)
    book.plan(m)
    book.stamp = (int(m.exch[0]), int(m.local[0]), 1)
    orders.append((int(m.exch[0]), int(m.local[0]), Kind.CLEAR, 0, tick_size, 0.0, 0, 1))
    for i in range(len(m.kind)):
        k, o, q, p, d = int(m.kind[i]), int(m.oid[i]), int(m.size[i]), int(m.price[i]), int(m.direction[i])
        book.stamp = (int(m.exch[i]), int(m.local[i]), i + 1)
        stamp = (int(m.exch[i]), int(m.local[i]))
        if k in (2, 3, 4):
            if o not in book.orders:
                book.name_unseen(o, d, p, book.first_total.get((o, i), q))
            book.early.discard(o)
            book.need[o] -= q
        if k == 1:
            book.add(o, d, p, q)
        elif k in (2, 3):
            book.reduce(o, q, delete=k == 3)
        elif k == 4:
            book.execute(o, d, p, q)
            trades.append((*stamp, Kind.TRADE, -d, p / PRICE_SCALE, float(q), i + 1))
        elif k == 5:
            hidden.append((*stamp, Kind.TRADE, -d, p / PRICE_SCALE, float(q), i + 1))
        elif k == 6:
            trades.append((*stamp, Kind.TRADE, 0, p / PRICE_SCALE, float(q), i + 1))
        else:
            label = {-1: "halt", 0: "quote", 1: "trade"}.get(p, p)
            status.append({"line": i + 1, "exch_ts": int(m.exch[i]), "status": label})
        book.match(ob[i], n_levels)
    return orders, trades, hidden, status, book.stats


def _notes(stats: dict[str, int], status: list[dict[str, Any]], n_levels: int, book_name: str) -> list[str]:
    """What the import prints: the reconciliation counts and the trading status messages."""
    notes = [
        f"{stats['placed_before_named'] + stats['named_unseen']} orders named by a message before any submission "
        f"({stats['placed_before_named']} placed where the orderbook file first shows their level, "
        f"{stats['named_unseen']} at the back of their level), {stats['unseen_added']} unseen-liquidity orders "
        f"({stats['unseen_qty']} shares) and {stats['cancelled_by_book']} cancels ({stats['cancelled_qty']} shares) "
        f"the messages do not show: the top {n_levels} level(s) equal {book_name} after every message"
    ]
    if status:
        notes.append(
            f"{len(status)} trading status message(s) (type 7): " + ", ".join(str(s["status"]) for s in status)
        )
    return notes


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="message_file",
        help="LOBSTER message files (each with its orderbook file beside it), or quoted glob patterns",
    )  # fmt: skip
    parser.add_argument("--date", help="trading date YYYY-MM-DD (default: from a LOBSTER file name)")
    parser.add_argument("--timezone", default="America/New_York", help="exchange time zone (default: America/New_York)")
    parser.add_argument(
        "--feed-latency",
        type=duration_type,
        default=0,
        metavar="DURATION",
        help="local time = exchange time + this (LOBSTER has no receive time), e.g. 200us; recorded (default: 0)",
    )
    parser.add_argument(
        "--sub-penny",
        choices=SUB_PENNY_CHOICES,
        default="refuse",
        help="hidden executions priced off the $0.01 grid: refuse the file (default) or keep them as hidden trades",
    )


IMPORTER = register(
    Importer(
        name="lobster",
        help="LOBSTER (NASDAQ L3) message + orderbook CSV files",
        venue="NASDAQ",
        add_arguments=_add_arguments,
        convert=files_naming_their_instrument(convert),
        instrument_from_file=True,
    )
)
