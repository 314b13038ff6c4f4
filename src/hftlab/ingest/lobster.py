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
*unseen* orders (ids from :data:`UNSEEN_ID_BASE`). Quantity the file no longer shows is cancelled:
unseen orders first, then known orders no later message names, then orders placed ahead of their
naming (placed again later), latest first. An order named before it could be placed is taken out of
its level's unseen quantity and added at the back just before that message. Every such row counts in
``lineage['reconciliation']``; the top N levels after every message then equal LOBSTER's.

Errors (:class:`~hftlab.errors.DataError` naming the file and line): ``unreadable-input``,
``malformed-row``, ``unknown-message-type``, ``sub-penny-price``, ``row-count-mismatch`` (message and
orderbook files of different lengths), ``duplicate-add``, ``negative-remaining-quantity``,
``book-mismatch`` (the orderbook file shows less at a level than orders that later messages name hold).
"""

from __future__ import annotations

import argparse
import bisect
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from hftlab.errors import ConfigError, DataError
from hftlab.ingest.common import converter_lineage, duration_type, raw_input, unit_entry
from hftlab.ingest.registry import Importer, expand_paths, register
from hftlab.storage.schema import FeedFrame, IngestResult, Instrument, Kind

CONVERTER_VERSION = 1
PRICE_SCALE = 10_000
DUMMY_PRICE = 9_999_999_999
#: Order ids of unseen liquidity (above every NASDAQ order reference number).
UNSEEN_ID_BASE = 1 << 62
SUB_PENNY_CHOICES = ("refuse", "hidden")
_NAME = re.compile(r"(?P<ticker>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_message_(?P<levels>\d+)\.csv$")
_Row = tuple[int, int, int, int, float, float, int, int]


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


class _Book:
    """Orders, their levels' FIFO queues and level quantities; emits canonical rows for every change."""

    def __init__(self, source: str, rows: list[_Row]) -> None:
        self.source = source
        self.rows = rows
        self.orders: dict[int, list[int]] = {}  # id -> [side, price, qty]
        self.queues: dict[tuple[int, int], dict[int, None]] = {}
        self.qty: dict[tuple[int, int], int] = {}
        self.prices: dict[int, list[int]] = {1: [], -1: []}  # ascending, levels with quantity
        self.next_unseen = UNSEEN_ID_BASE
        self.stamp = (0, 0, 0)  # exch, local, line
        #: order id -> quantity its later messages remove (kept up to date as messages are applied)
        self.need: dict[int, int] = {}
        #: (side, price) -> [(index of the first message naming it, id, quantity)] of orders a message names
        #: before any submits them, not yet in the book, in naming order
        self.pending: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        self.first_named: dict[int, int] = {}
        #: orders placed in the book before the message that first names them
        self.early: set[int] = set()
        self.stats = {
            "unseen_added": 0,
            "unseen_qty": 0,
            "cancelled_by_book": 0,
            "cancelled_qty": 0,
            "placed_before_named": 0,
            "named_unseen": 0,
        }

    def _emit(self, kind: int, side: int, price: int, qty: int, oid: int) -> None:
        exch, local, line = self.stamp
        self.rows.append((exch, local, kind, side, price / PRICE_SCALE, float(qty), oid, line))

    def _level(self, side: int, price: int, delta: int) -> None:
        key = (side, price)
        before = self.qty.get(key, 0)
        after = before + delta
        if after:
            self.qty[key] = after
            if not before:
                bisect.insort(self.prices[side], price)
        else:
            self.qty.pop(key, None)
            ticks = self.prices[side]
            del ticks[bisect.bisect_left(ticks, price)]

    def add(self, oid: int, side: int, price: int, qty: int) -> None:
        if oid in self.orders:
            raise DataError(
                "duplicate-add", self.source, f"line {self.stamp[2]}", f"order {oid} is already in the book"
            )
        self.orders[oid] = [side, price, qty]
        self.queues.setdefault((side, price), {})[oid] = None
        self._level(side, price, qty)
        self._emit(Kind.ADD, side, price, qty, oid)

    def reduce(self, oid: int, by: int, delete: bool = False) -> None:
        side, price, qty = self.orders[oid]
        left = 0 if delete else qty - by
        if left < 0:
            raise DataError(
                "negative-remaining-quantity",
                self.source,
                f"line {self.stamp[2]}",
                f"order {oid} has {qty} left; the message removes {by}",
            )
        self._level(side, price, left - qty)
        if left:
            self.orders[oid][2] = left
        else:
            del self.orders[oid]
            del self.queues[(side, price)][oid]
        self._emit(Kind.CANCEL, side, price, left, oid)

    def set_level(self, side: int, price: int, target: int) -> None:
        """Make the level hold ``target``. Missing quantity: first the orders that later messages name at
        this level (they rest here already: placed now, ahead of anything that joins later), the rest as
        an unseen order. Extra quantity: cancelled, unseen orders first, then known orders no later
        message names, then orders placed ahead of their naming (they wait to be placed again), then the
        others down to what their later messages remove - latest first."""
        have = self.qty.get((side, price), 0)
        if have < target:
            missing = target - have
            waiting = self.pending.get((side, price), [])
            now = self.stamp[2] - 1
            while waiting and missing > 0:
                first, oid, qty = waiting[0]
                if first <= now or oid in self.orders:  # named already (or placed): nothing to wait for
                    waiting.pop(0)
                    continue
                if qty > missing:
                    break
                waiting.pop(0)
                self.early.add(oid)
                self.stats["placed_before_named"] += 1
                self.add(oid, side, price, qty)
                missing -= qty
            if missing > 0:
                oid = self.next_unseen
                self.next_unseen += 1
                self.stats["unseen_added"] += 1
                self.stats["unseen_qty"] += missing
                self.add(oid, side, price, missing)
            return
        excess = have - target
        queue = list(reversed(self.queues.get((side, price), {})))
        order = [o for o in queue if o >= UNSEEN_ID_BASE]
        order += [o for o in queue if o < UNSEEN_ID_BASE and not self.need.get(o)]
        order += [o for o in queue if o in self.early]
        order += [o for o in queue if o < UNSEEN_ID_BASE and self.need.get(o) and o not in self.early]
        for oid in order:
            if excess <= 0:
                break
            early = oid in self.early
            take = min(excess, self.orders[oid][2] - (0 if early else self.need.get(oid, 0)))
            if take <= 0:
                continue
            if early:  # all of it: it will be placed again, or named at the back of its level
                take = self.orders[oid][2]
                self.early.discard(oid)
                bisect.insort(self.pending.setdefault((side, price), []), (self.first_named[oid], oid, take))
                self.stats["placed_before_named"] -= 1
            elif oid < UNSEEN_ID_BASE:
                self.stats["cancelled_by_book"] += 1
                self.stats["cancelled_qty"] += take
            self.reduce(oid, take)
            excess -= take
        if excess < 0:  # an early order larger than the excess left: the difference is unseen
            self.set_level(side, price, target)

    def name_unseen(self, oid: int, side: int, price: int, qty: int) -> None:
        """An order a message names that the book does not hold: taken out of its level's unseen quantity
        and added at the back of the level (where it stood is unknown)."""
        self.stats["named_unseen"] += 1
        pool = sum(self.orders[o][2] for o in self.queues.get((side, price), {}) if o >= UNSEEN_ID_BASE)
        if pool:
            self.set_level(side, price, self.qty.get((side, price), 0) - min(pool, qty))
        self.add(oid, side, price, qty)

    def match(self, levels: np.ndarray, n_levels: int) -> None:
        """Make the first ``n_levels`` of each side equal one orderbook row (ask px, ask qty, bid px, bid qty)."""
        for side, col in ((-1, 0), (1, 2)):
            px = levels[col::4]
            sz = levels[col + 1 :: 4]
            real = (np.abs(px) != DUMMY_PRICE) & (sz > 0)
            want = dict(zip(px[real].tolist(), sz[real].tolist(), strict=True))
            ticks = self.prices[side]
            if len(want) == n_levels:  # the file shows n levels: ours within them must agree
                edge = max(want) if side == -1 else min(want)
                shown = (
                    ticks[: bisect.bisect_right(ticks, edge)]
                    if side == -1
                    else ticks[bisect.bisect_left(ticks, edge) :]
                )
            else:  # fewer: the side holds exactly these
                shown = list(ticks)
            for price in shown:
                if price not in want:
                    self.set_level(side, price, 0)
            for price, qty in want.items():
                if self.qty.get((side, price), 0) != qty:
                    self.set_level(side, price, qty)
            for price in [*shown, *want]:
                have = self.qty.get((side, price), 0)
                if have != want.get(price, 0):
                    raise DataError(
                        "book-mismatch",
                        self.source,
                        f"line {self.stamp[2]}",
                        f"after this message the orderbook file shows {want.get(price, 0)} at "
                        f"{price / PRICE_SCALE} on the {'bid' if side == 1 else 'ask'} side, but orders that later "
                        f"messages name hold {have} there: the message and orderbook files disagree",
                    )


def convert(path: Path, args: argparse.Namespace) -> IngestResult:
    """One LOBSTER message file (and its orderbook file) -> canonical rows (see the module docstring)."""
    source = str(path)
    book_file = orderbook_path(path)
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
    msg = read_csv(path, 6, "message")
    ob = read_csv(book_file, None, "orderbook").astype(np.int64)
    if len(msg) != len(ob):
        raise DataError(
            "row-count-mismatch", source, None, f"{len(msg)} messages but {len(ob)} rows in {book_file.name}"
        )
    n_levels = ob.shape[1] // 4
    exch = utc_ns(msg[:, 0], day, zone)
    local = exch + np.int64(args.feed_latency)
    kind = msg[:, 1].astype(np.int64)
    oid = msg[:, 2].astype(np.int64)
    size = msg[:, 3].astype(np.int64)
    price = msg[:, 4].astype(np.int64)
    direction = msg[:, 5].astype(np.int64)
    bad = np.flatnonzero(~np.isin(kind, [1, 2, 3, 4, 5, 6, 7]))
    if bad.size:
        i = int(bad[0])
        raise DataError("unknown-message-type", source, f"line {i + 1}", f"type {kind[i]} (LOBSTER: 1-7)")
    sub_penny = np.flatnonzero((price % (PRICE_SCALE // 100) != 0) & (kind != 7))
    hidden_ok = args.sub_penny == "hidden"
    for i in sub_penny.tolist():
        if kind[i] != 5 or not hidden_ok:
            how = (
                "--sub-penny hidden keeps hidden executions at such prices"
                if kind[i] == 5
                else "only hidden executions may be priced off the grid"
            )
            raise DataError(
                "sub-penny-price",
                source,
                f"line {i + 1}",
                f"price {price[i] / PRICE_SCALE} is off the $0.01 grid in a type {kind[i]} message ({sub_penny.size} "
                f"such messages); {how}",
            )
    instrument = Instrument(
        venue=args.venue or "NASDAQ",
        symbol=symbol,
        tick_size=args.tick_size if args.tick_size is not None else 0.01,
        lot_size=args.lot_size if args.lot_size is not None else 1.0,
        contract_type=args.contract_type,
        contract_size=args.contract_size if args.contract_size is not None else 1.0,
    )
    first_use = _consumption(kind, oid, size)
    orders: list[_Row] = []
    trades: list[tuple[int, int, int, int, float, float, int]] = []
    hidden: list[tuple[int, int, int, int, float, float, int]] = []
    status: list[dict[str, Any]] = []
    book = _Book(source, orders)
    book.stamp = (int(exch[0]), int(local[0]), 1)
    for k, o, q in zip(kind.tolist(), oid.tolist(), size.tolist(), strict=True):
        if k in (2, 3, 4):
            book.need[o] = book.need.get(o, 0) + q
    for (o, i), total in sorted(first_use.items(), key=lambda item: item[0][1]):
        book.pending.setdefault((int(direction[i]), int(price[i])), []).append((i, o, total))
        book.first_named[o] = i
    orders.append((int(exch[0]), int(local[0]), Kind.CLEAR, 0, instrument.tick_size, 0.0, 0, 1))
    for i in range(len(msg)):
        k, o, q, p, d = int(kind[i]), int(oid[i]), int(size[i]), int(price[i]), int(direction[i])
        book.stamp = (int(exch[i]), int(local[i]), i + 1)
        stamp = (int(exch[i]), int(local[i]))
        if k in (2, 3, 4) and o not in book.orders:
            book.name_unseen(o, d, p, first_use.get((o, i), q))
        book.early.discard(o)
        if k in (2, 3, 4):
            book.need[o] -= q
        if k == 1:
            book.add(o, d, p, q)
        elif k in (2, 3):
            book.reduce(o, q, delete=k == 3)
        elif k == 4:
            book._emit(Kind.FILL, d, p, q, o)
            book.reduce(o, q)
            trades.append((*stamp, Kind.TRADE, -d, p / PRICE_SCALE, float(q), i + 1))
        elif k == 5:
            hidden.append((*stamp, Kind.TRADE, -d, p / PRICE_SCALE, float(q), i + 1))
        elif k == 6:
            trades.append((*stamp, Kind.TRADE, 0, p / PRICE_SCALE, float(q), i + 1))
        else:
            status.append(
                {"line": i + 1, "exch_ts": int(exch[i]), "status": {-1: "halt", 0: "quote", 1: "trade"}.get(p, p)}
            )
        book.match(ob[i], n_levels)
    o_frame = FeedFrame.from_rows("orders", source, orders)
    feeds = [o_frame, FeedFrame.from_rows("trades", source, trades), FeedFrame.from_rows("hidden", source, hidden)]
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
    lineage["message_counts"] = {str(t): int(np.sum(kind == t)) for t in range(1, 8)}
    lineage["reconciliation"] = book.stats
    lineage["trading_status"] = status
    lineage["timestamp_units"] = {"exch_ts": unit_entry("ns", "format"), "local_ts": unit_entry("ns", "format")}
    st = book.stats
    notes = [
        f"{st['placed_before_named'] + st['named_unseen']} orders named by a message before any submission "
        f"({st['placed_before_named']} placed where the orderbook file first shows their level, "
        f"{st['named_unseen']} at the back of their level), {st['unseen_added']} unseen-liquidity orders "
        f"({st['unseen_qty']} shares) and {st['cancelled_by_book']} cancels ({st['cancelled_qty']} shares) the "
        f"messages do not show: the top {n_levels} level(s) equal {book_file.name} after every message"
    ]
    if status:
        notes.append(
            f"{len(status)} trading status message(s) (type 7): " + ", ".join(str(s["status"]) for s in status)
        )
    lineage["notes"] = notes
    return IngestResult(instrument=instrument, feeds=feeds, lineage=lineage)


def _consumption(kind: np.ndarray, oid: np.ndarray, size: np.ndarray) -> dict[tuple[int, int], int]:
    """For each order whose first message is not its submission: (id, that message's index) -> the
    quantity its messages remove over the file (its size when first named)."""
    seen: set[int] = set()
    first: dict[int, int] = {}
    total: dict[int, int] = {}
    for i, (k, o, q) in enumerate(zip(kind.tolist(), oid.tolist(), size.tolist(), strict=True)):
        if k == 1:
            seen.add(o)
        elif k in (2, 3, 4) and o not in seen:
            if o not in first:
                first[o] = i
            total[o] = total.get(o, 0) + q
            if k == 3:
                seen.add(o)  # deleted: a later message of this id is a new order
    return {(o, i): total[o] for o, i in first.items()}


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


def _convert(args: argparse.Namespace) -> list[IngestResult]:
    results = [convert(path, args) for path in expand_paths(args.files)]
    args.venue, args.symbol = results[0].instrument.venue, results[0].instrument.symbol
    return results


IMPORTER = register(
    Importer(
        name="lobster",
        help="LOBSTER (NASDAQ L3) message + orderbook CSV files",
        venue="NASDAQ",
        add_arguments=_add_arguments,
        convert=_convert,
        instrument_from_file=True,
    )
)
