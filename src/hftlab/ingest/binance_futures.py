"""Importer for Binance USDⓈ-M Futures market data recorded by a websocket collector.

Input: a gzipped text file, one message per line, ``<local_ts> <json>``:

- ``local_ts`` is the collector's receive time, an integer since the Unix epoch (the characters before
  the first space), in nanoseconds (hftbacktest's collector), microseconds (hftbacktest's examples and
  older collectors), milliseconds or seconds. The unit is ``ts_unit`` when given (``--ts-unit``), else
  detected from the magnitudes: the unit that brings the local timestamps within a factor 10 of the
  exchange timestamps (median over rows, see :func:`hftlab.ingest.common.detect_unit`), else
  nanoseconds. It is recorded in ``lineage['timestamp_units']``;
- ``json`` is a combined-stream message ``{"stream": ..., "data": {"e": <event>, ...}}``, a REST
  depth snapshot (a bare object with ``lastUpdateId``, ``E``, ``T``, ``bids``, ``asks``), or a
  collector error line (a bare object with ``code`` and ``msg``).

The semantics mirror hftbacktest's own converter (``hftbacktest.data.utils.binancefutures.convert``
with ``combined_stream=True``), producing canonical feeds instead of hftbacktest event arrays:

- The exchange timestamp of every row is the message's transaction time ``T`` (milliseconds) times
  1,000,000; the event time ``E`` is not used.
- ``depthUpdate`` -> feed ``depth``: one DEPTH row per ``[price, qty]`` of ``b`` (BID), then of ``a``
  (ASK), in message order. Quantity 0 removes the level, as on the venue.
- REST snapshot -> feed ``snapshot``: if there are bids, one CLEAR BID row whose price is the LAST
  bid's price (qty 0), then one SNAPSHOT BID row per bid; then the same for the asks.
- ``trade`` -> feed ``trades``, only when ``X`` is ``"MARKET"`` (insurance-fund and ADL trades are
  skipped and counted): side ASK (seller-initiated) when ``m`` (buyer is maker) is true, else BID.
- ``bookTicker`` -> feed ``bbo``: a BBO BID row (``b``, ``B``) then a BBO ASK row (``a``, ``A``).
- Every other event (``markPriceUpdate``, ...) is ignored and counted in the lineage, as are
  non-MARKET trades (under ``"trade X=<value>"``). Collector error lines are skipped and counted.

Unlike hftbacktest's converter this importer corrects neither local timestamps nor event order:
rows keep the file's order within each feed, and the local-timestamp correction is a separate,
recorded pipeline step (:func:`hftlab.ingest.common.finish_import`, which also checks that timestamps
and feed latencies are plausible). hftbacktest's converter reads the first 19 characters of a line as
nanoseconds (a microsecond timestamp has 16). Nothing here checks tick size, monotonic timestamps or
latency signs; Canonical Storage validates those on promotion.

Errors are :class:`~hftlab.errors.DataError` naming the file and ``line N`` (1-based):
``unreadable-input`` (missing file, not gzip, truncated or corrupt gzip), ``malformed-record`` (no
space, a timestamp that is not a non-negative integer, invalid JSON, JSON that is not an object),
``timestamp-out-of-range`` (a local timestamp or a ``T`` that does not fit int64 nanoseconds in its
unit), ``wrong-type`` (a missing key or a value of the wrong type, naming the key: a price or quantity
that is a boolean, which Python would read as 1 or 0, or beyond the float range), ``symbol-mismatch``
(a message's ``s`` differs from ``instrument.symbol``).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hftlab.errors import DataError
from hftlab.ingest.common import INT64_MAX, TS_UNITS, converter_lineage, detect_unit, first_overflow, unit_entry
from hftlab.ingest.registry import file_importer, register
from hftlab.storage.schema import FEEDS, FeedFrame, IngestResult, Instrument, Kind, Side

#: Version of this converter's semantics; recorded in the lineage. Bump it when the output changes.
CONVERTER_VERSION = 2  # 2: local timestamps in s/ms/us/ns (detected or forced), not only ns
CONVERTER_NAME = "binance-futures"

MS_TO_NS = 1_000_000
#: Largest ``T`` (ms) whose nanoseconds fit int64.
MAX_T_MS = INT64_MAX // MS_TO_NS
#: What a price or quantity must be (Binance sends decimal strings; JSON numbers are accepted too).
NUMBER = 'a number (a decimal string such as "61800.30"; not a boolean, within the float range)'
# Plain ints on the hot path (IntEnum members are slower to build lists and arrays from).
BID, ASK = int(Side.BID), int(Side.ASK)
DEPTH, TRADE, CLEAR, SNAPSHOT, BBO = (
    int(Kind.DEPTH),
    int(Kind.TRADE),
    int(Kind.CLEAR),
    int(Kind.SNAPSHOT),
    int(Kind.BBO),
)


class _Rows:
    """Columns of one feed under construction.

    Rows are stored as *segments*: a run of ``n`` rows sharing exchange/local timestamps, line, kind
    and side (one side of a depth update, say), plus a price and a quantity per row. The shared
    columns are expanded with :func:`numpy.repeat` at the end, which keeps the per-row work small.
    """

    __slots__ = ("exch", "kind", "line", "local", "n", "price", "qty", "side")

    def __init__(self) -> None:
        self.exch: list[int] = []
        self.local: list[int] = []
        self.line: list[int] = []
        self.kind: list[int] = []
        self.side: list[int] = []
        self.n: list[int] = []
        self.price: list[float] = []
        self.qty: list[float] = []

    def segment(self, exch: int, local: int, line: int, kind: int, side: int, n: int) -> None:
        self.exch.append(exch)
        self.local.append(local)
        self.line.append(line)
        self.kind.append(kind)
        self.side.append(side)
        self.n.append(n)

    def frame(self, feed: str, source: str, local_scale: int) -> FeedFrame:
        """The feed's rows, local timestamps multiplied by ``local_scale`` (checked not to overflow)."""
        n = np.asarray(self.n, dtype=np.int64)

        def expand(values: list[int]) -> np.ndarray:
            return np.repeat(np.asarray(values, dtype=np.int64), n)

        return FeedFrame.from_columns(
            feed,
            source,
            exch_ts=expand(self.exch),
            local_ts=expand(self.local) * local_scale,
            kind=expand(self.kind),
            side=expand(self.side),
            price=np.asarray(self.price, dtype=np.float64),
            qty=np.asarray(self.qty, dtype=np.float64),
            line=expand(self.line),
        )


def _read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw line)`` of a gzipped text file; unreadable input -> ``unreadable-input``."""
    lineno = 0
    opened = False
    try:
        with gzip.open(path, "rb") as f:
            opened = True
            for raw in f:
                lineno += 1
                yield lineno, raw
    except (EOFError, OSError, zlib.error) as exc:
        if not opened:  # missing file, a directory, no permission
            raise DataError("unreadable-input", str(path), None, f"cannot open the file: {exc}") from exc
        # gzip raises EOFError (truncated stream), gzip.BadGzipFile (an OSError: not gzip, bad header
        # or CRC) or zlib.error (corrupt deflate data). The lines before this one were complete.
        raise DataError(
            "unreadable-input",
            str(path),
            f"line {lineno + 1}",
            "the gzip input breaks off or is corrupt while reading this line "
            f"({lineno} complete lines before it): {type(exc).__name__}: {exc}",
        ) from exc


class _Converter:
    """State of one file's conversion: the feeds under construction and the counts of skipped lines.

    Every check raises a :class:`~hftlab.errors.DataError` naming ``source`` and the line.
    """

    __slots__ = ("bbo", "depth", "error_lines", "feeds", "ignored", "snapshot", "source", "symbol", "trades")

    def __init__(self, source: str, symbol: str) -> None:
        self.source = source
        self.symbol = symbol
        self.feeds = {name: _Rows() for name in FEEDS}
        self.snapshot = self.feeds["snapshot"]
        self.depth = self.feeds["depth"]
        self.bbo = self.feeds["bbo"]
        self.trades = self.feeds["trades"]
        self.ignored: dict[str, int] = {}
        self.error_lines = 0

    # -- checks -------------------------------------------------------------------------------------

    def fail(self, rule: str, lineno: int, detail: str) -> DataError:
        return DataError(rule, self.source, f"line {lineno}", detail)

    def wrong_type(self, lineno: int, obj: dict[str, Any], key: str, what: str, context: str) -> DataError:
        if key not in obj:
            return self.fail("wrong-type", lineno, f"{context}: missing key '{key}'")
        return self.fail("wrong-type", lineno, f"{context}: key '{key}' must be {what}, got {obj[key]!r:.80}")

    def timestamp(self, lineno: int, obj: dict[str, Any], context: str) -> int:
        """``T`` (ms) in ns; one that int64 ns cannot hold is ``timestamp-out-of-range``."""
        t = obj.get("T")
        if type(t) is not int:  # a bool is not an int here
            raise self.wrong_type(lineno, obj, "T", "an integer (milliseconds)", context)
        if not -MAX_T_MS <= t <= MAX_T_MS:
            raise self.fail(
                "timestamp-out-of-range",
                lineno,
                f"{context}: key 'T' = {t!r:.40} ms does not fit int64 nanoseconds (at most {MAX_T_MS} ms)",
            )
        return t * MS_TO_NS

    def number(self, lineno: int, obj: dict[str, Any], key: str, context: str) -> float:
        value = obj.get(key)
        try:
            if type(value) is bool:  # float(True) is 1.0
                raise TypeError
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise self.wrong_type(lineno, obj, key, NUMBER, context) from None

    def levels(self, lineno: int, obj: dict[str, Any], key: str, context: str, rows: _Rows) -> int:
        """Append the ``[[price, qty], ...]`` list ``obj[key]`` to ``rows``; return its length."""
        value = obj.get(key)
        if type(value) is not list:
            raise self.wrong_type(lineno, obj, key, "a list of [price, qty] pairs", context)
        price, qty = rows.price, rows.qty
        try:
            for px, q in value:
                if px.__class__ is bool or q.__class__ is bool:  # float(True) is 1.0
                    raise TypeError
                price.append(float(px))
                qty.append(float(q))
        except (TypeError, ValueError, OverflowError):
            for i, level in enumerate(value):  # slow path: name the offending level
                try:
                    px, q = level
                    if bool in (type(px), type(q)):
                        raise TypeError
                    float(px), float(q)
                except (TypeError, ValueError, OverflowError):
                    raise self.fail(
                        "wrong-type",
                        lineno,
                        f"{context}: key '{key}' level {i} must be a [price, qty] pair, each {NUMBER}, "
                        f"got {level!r:.80}",
                    ) from None
            raise  # unreachable: the slow path found the same error
        return len(value)

    def check_symbol(self, lineno: int, data: dict[str, Any], context: str, required: bool) -> None:
        s = data.get("s")
        if s is None and not required:
            return
        if type(s) is not str:
            raise self.wrong_type(lineno, data, "s", "a string (the symbol)", context)
        if s != self.symbol:
            raise self.fail(
                "symbol-mismatch",
                lineno,
                f"{context}: message is for symbol {s!r}, but the import is for {self.symbol!r} "
                "(one file must hold one instrument; the symbol is compared exactly, case included)",
            )

    # -- lines and messages -------------------------------------------------------------------------

    def line(self, lineno: int, raw: bytes) -> None:
        """Convert one ``<local_ts> <json>`` line (the local timestamp is kept in its raw unit here)."""
        sp = raw.find(b" ")
        if sp < 0:
            raise self.fail("malformed-record", lineno, f"expected '<local_ts> <json>', no space found: {raw!r:.80}")
        ts_text = raw[:sp]
        if not ts_text.isdigit():
            raise self.fail(
                "malformed-record",
                lineno,
                f"local timestamp must be a non-negative integer, got {ts_text!r:.40}",
            )
        local = int(ts_text)
        if local > INT64_MAX:
            raise self.fail("timestamp-out-of-range", lineno, f"local timestamp {local} does not fit int64")
        try:
            msg = json.loads(raw[sp + 1 :])
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self.fail("malformed-record", lineno, f"invalid JSON after the timestamp: {exc}") from None
        if type(msg) is not dict:
            raise self.fail("malformed-record", lineno, f"the JSON message must be an object, got {type(msg).__name__}")
        if "data" in msg:
            self.stream_message(lineno, local, msg)
        elif "code" in msg:
            self.error_lines += 1
        else:
            self.rest_snapshot(lineno, local, msg)

    def stream_message(self, lineno: int, local: int, msg: dict[str, Any]) -> None:
        """A combined-stream message: dispatch on its event type ``e``."""
        data = msg["data"]
        if type(data) is not dict:
            raise self.wrong_type(lineno, msg, "data", "an object", "combined-stream message")
        event = data.get("e")
        if type(event) is not str:
            raise self.wrong_type(lineno, data, "e", "a string (the event type)", "combined-stream data")
        context = f"'{event}' message"
        if event == "depthUpdate":
            self.depth_update(lineno, local, data, context)
        elif event == "bookTicker":
            self.book_ticker(lineno, local, data, context)
        elif event == "trade":
            self.trade(lineno, local, data, context)
        else:
            self.check_symbol(lineno, data, context, False)
            self.ignored[event] = self.ignored.get(event, 0) + 1

    def depth_update(self, lineno: int, local: int, data: dict[str, Any], context: str) -> None:
        self.check_symbol(lineno, data, context, True)
        exch = self.timestamp(lineno, data, context)
        depth = self.depth
        n = self.levels(lineno, data, "b", context, depth)
        depth.segment(exch, local, lineno, DEPTH, BID, n)
        n = self.levels(lineno, data, "a", context, depth)
        depth.segment(exch, local, lineno, DEPTH, ASK, n)

    def book_ticker(self, lineno: int, local: int, data: dict[str, Any], context: str) -> None:
        self.check_symbol(lineno, data, context, True)
        exch = self.timestamp(lineno, data, context)
        bbo = self.bbo
        bbo.price.append(self.number(lineno, data, "b", context))
        bbo.qty.append(self.number(lineno, data, "B", context))
        bbo.price.append(self.number(lineno, data, "a", context))
        bbo.qty.append(self.number(lineno, data, "A", context))
        bbo.segment(exch, local, lineno, BBO, BID, 1)
        bbo.segment(exch, local, lineno, BBO, ASK, 1)

    def trade(self, lineno: int, local: int, data: dict[str, Any], context: str) -> None:
        self.check_symbol(lineno, data, context, True)
        status = data.get("X")
        if type(status) is not str:
            raise self.wrong_type(lineno, data, "X", "a string (the order type)", context)
        if status != "MARKET":
            key = f"trade X={status}"
            self.ignored[key] = self.ignored.get(key, 0) + 1
            return
        exch = self.timestamp(lineno, data, context)
        maker = data.get("m")
        if type(maker) is not bool:
            raise self.wrong_type(lineno, data, "m", "a boolean (buyer is maker)", context)
        trades = self.trades
        trades.price.append(self.number(lineno, data, "p", context))
        trades.qty.append(self.number(lineno, data, "q", context))
        trades.segment(exch, local, lineno, TRADE, ASK if maker else BID, 1)

    def rest_snapshot(self, lineno: int, local: int, msg: dict[str, Any]) -> None:
        context = "REST depth snapshot (a line without 'data' or 'code')"
        exch = self.timestamp(lineno, msg, context)
        snapshot = self.snapshot
        for key, side in (("bids", BID), ("asks", ASK)):
            value = msg.get(key)
            if type(value) is not list:
                raise self.wrong_type(lineno, msg, key, "a list of [price, qty] pairs", context)
            if not value:
                continue
            start = len(snapshot.price)
            snapshot.price.append(0.0)  # CLEAR row, filled in below
            snapshot.qty.append(0.0)
            n = self.levels(lineno, msg, key, context, snapshot)
            # The CLEAR row clears the side up to the last (deepest) snapshot level, as hftbacktest does.
            snapshot.price[start] = snapshot.price[-1]
            snapshot.segment(exch, local, lineno, CLEAR, side, 1)
            snapshot.segment(exch, local, lineno, SNAPSHOT, side, n)

    # -- output -------------------------------------------------------------------------------------

    def local_unit(self, ts_unit: str) -> tuple[str, str]:
        """``(unit, how)`` of the local timestamps: ``ts_unit`` if not ``auto``, else detected against the
        exchange timestamps (ns) of the same lines, else nanoseconds (the collector's own unit)."""
        if ts_unit != "auto":
            return ts_unit, "forced"
        local = np.concatenate([np.asarray(r.local, dtype=np.int64) for r in self.feeds.values()])
        exch = np.concatenate([np.asarray(r.exch, dtype=np.int64) for r in self.feeds.values()])
        return detect_unit(local, "ns", reference_ns=exch)

    def check_fits(self, unit: str) -> None:
        """Refuse (``timestamp-out-of-range``) the first line whose local timestamp overflows int64 ns."""
        lines = [
            rows.line[i]
            for rows in self.feeds.values()
            if (i := first_overflow(np.asarray(rows.local, dtype=np.int64), unit)) is not None
        ]
        if lines:
            raise self.fail(
                "timestamp-out-of-range",
                min(lines),
                f"local timestamp read as {unit} does not fit int64 nanoseconds (see --ts-unit)",
            )

    def frames(self, unit: str) -> list[FeedFrame]:
        """One frame per feed that has rows, in :data:`FEEDS` order; local timestamps read in ``unit``."""
        self.check_fits(unit)
        scale = TS_UNITS[unit]
        return [rows.frame(feed, self.source, scale) for feed, rows in self.feeds.items() if rows.price]


def convert(path: Path, instrument: Instrument, ts_unit: str = "auto") -> IngestResult:
    """Convert one gzipped Binance Futures collector file into canonical feeds (see the module docstring).

    Assumptions: the file holds combined-stream messages of ONE instrument, ``instrument.symbol`` spelled exactly
    as the venue spells it in ``s`` (e.g. ``"BTCUSDT"``); ``T`` is in milliseconds; local timestamps are
    in ``ts_unit`` (``auto``: detected, see the module docstring) and are not corrected here. Rows are
    returned in file order per feed; feeds with no rows are left out. ``FeedFrame.source`` is
    ``str(path)`` and each row's ``line`` is its 1-based line.

    Raises :class:`~hftlab.errors.DataError` (``unreadable-input``, ``malformed-record``, ``wrong-type``,
    ``symbol-mismatch``, ``timestamp-out-of-range``) naming the file and line. The instrument checks its
    own fields (ValueError).
    """
    path = Path(path)
    converter = _Converter(str(path), instrument.symbol)
    for lineno, raw in _read_lines(path):
        converter.line(lineno, raw)
    unit, how = converter.local_unit(ts_unit)
    frames = converter.frames(unit)
    lineage = converter_lineage(
        CONVERTER_NAME,
        CONVERTER_VERSION,
        [path],
        symbol=instrument.symbol,
        ignored_messages=dict(sorted(converter.ignored.items())),
        skipped_error_lines=converter.error_lines,
    )
    lineage["timestamp_units"] = {"exch_ts": unit_entry("ms", "format"), "local_ts": unit_entry(unit, how)}
    return IngestResult(instrument=instrument, feeds=frames, lineage=lineage)


IMPORTER = register(
    file_importer(
        CONVERTER_NAME,
        "Binance futures collector file (<local_ts_ns> <json> per line, gzip)",
        "binance-futures",
        convert,
    )
)
