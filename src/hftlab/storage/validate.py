"""Validation of rows before they may enter Canonical Storage.

Every rule raises :class:`~hftlab.errors.DataError` naming the source file, the line (or row) of the
first offending row, and the rule. Rules (``DataError.rule``):

- ``empty-input``: no rows at all.
- ``kind-not-in-feed``: a row kind that its feed may not hold (see ``FEED_KINDS``).
- ``invalid-side``: side not in {-1, 0, 1}, or 0 on a book row (except a ``CLEAR`` of both sides in the
  ``orders`` feed).
- ``timestamp-not-positive``: an exchange or local timestamp <= 0.
- ``price-not-positive-finite``: NaN, infinite, zero or negative price.
- ``quantity-not-finite`` / ``negative-quantity``.
- ``price-off-tick``: price not a multiple of the instrument's tick size (the ``hidden`` feed excepted:
  hidden executions may be priced between ticks).
- ``timestamp-backwards``: exchange or local timestamp decreasing within a feed (a feed is one channel).
- ``local-before-exchange``: local timestamp earlier than the exchange timestamp, after the
  dataset's recorded correction.
- ``crossed-quote``: a best bid/offer quote (``bbo`` feed) whose bid is at or above its ask; see
  :func:`check_quotes`.
- ``crossed-book``: the book feeds, replayed, leave the book crossed or locked after a message; see
  :func:`check_book`.
- the order-by-order rules of an ``orders`` feed (:mod:`hftlab.storage.l3`): ``unknown-order-id``,
  ``duplicate-add``, ``negative-remaining-quantity``, ``cancel-increases-quantity``, ``fill-exceeds-order``,
  ``order-quantity-not-positive``, ``side-mismatch``, ``price-mismatch``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hftlab.errors import DataError
from hftlab.storage.l3 import derive_l2
from hftlab.storage.schema import (
    FEED_KINDS,
    L2_BOOK_FEEDS,
    L3_FEEDS,
    OFF_GRID_FEEDS,
    FeedFrame,
    IngestResult,
    Instrument,
    Kind,
    Side,
    processing_order,
)

#: Allowed distance from the tick grid, in ticks (float rounding of decimal prices).
TICK_TOLERANCE = 1e-6


def _fail(rule: str, frame: FeedFrame, bad: np.ndarray, detail: Callable[[int], str]) -> None:
    """Raise for the first True in ``bad`` (if any); ``detail(i)`` describes row ``i``."""
    hits = np.flatnonzero(bad)
    if hits.size == 0:
        return
    i = int(hits[0])
    more = f" ({hits.size} rows break this rule)" if hits.size > 1 else ""
    raise DataError(
        rule,
        frame.source,
        frame.where(i),
        f"feed '{frame.feed}': " + detail(i) + more,
    )


def validate_frame(frame: FeedFrame, instrument: Instrument) -> None:
    """Check every rule on one feed frame."""
    f = frame
    tick_size = instrument.tick_size
    l3 = f.feed in L3_FEEDS
    if f.feed not in FEED_KINDS:
        raise DataError("unknown-feed", f.source, None, f"unknown feed '{f.feed}'; known: {sorted(FEED_KINDS)}")
    allowed = np.array(sorted(FEED_KINDS[f.feed]), dtype=np.uint8)
    _fail(
        "kind-not-in-feed",
        f,
        ~np.isin(f.kind, allowed),
        lambda i: f"row kind {f.kind[i]} is not allowed in this feed (allowed: {allowed.tolist()})",
    )
    book = (f.kind != Kind.TRADE) & ~(l3 & (f.kind == Kind.CLEAR))
    _fail(
        "invalid-side",
        f,
        ~np.isin(f.side, np.array([-1, 0, 1], dtype=np.int8)) | (book & (f.side == 0)),
        lambda i: f"side {f.side[i]} is not valid (1 bid/buy, -1 ask/sell, 0 only for trades of unknown side)",
    )
    _fail(
        "timestamp-not-positive",
        f,
        (f.exch_ts <= 0) | (f.local_ts <= 0),
        lambda i: f"timestamps must be > 0 ns since the epoch, got exch_ts={f.exch_ts[i]} local_ts={f.local_ts[i]}",
    )
    _fail(
        "price-not-positive-finite",
        f,
        ~(np.isfinite(f.price) & (f.price > 0)),
        lambda i: f"price must be finite and > 0, got {f.price[i]!r}",
    )
    _fail("quantity-not-finite", f, ~np.isfinite(f.qty), lambda i: f"quantity must be finite, got {f.qty[i]!r}")
    if not l3:  # the L3 rules name a negative quantity by what it means (negative-remaining-quantity)
        _fail("negative-quantity", f, f.qty < 0, lambda i: f"quantity must be >= 0, got {f.qty[i]!r}")
    if f.feed not in OFF_GRID_FEEDS:
        ticks = f.price / tick_size
        _fail(
            "price-off-tick",
            f,
            np.abs(ticks - np.rint(ticks)) > TICK_TOLERANCE,
            lambda i: f"price {f.price[i]!r} is not a multiple of the tick size {tick_size!r}",
        )
    for column in ("exch_ts", "local_ts"):
        values: np.ndarray = getattr(f, column)
        back = np.zeros(len(f), dtype=bool)
        back[1:] = values[1:] < values[:-1]

        def backwards(i: int, v: np.ndarray = values, c: str = column) -> str:
            return f"{c} goes backwards within the feed: {v[i]} after {v[i - 1]}"

        _fail("timestamp-backwards", f, back, backwards)
    _fail(
        "local-before-exchange",
        f,
        f.local_ts < f.exch_ts,
        lambda i: (
            f"local_ts {f.local_ts[i]} is before exch_ts {f.exch_ts[i]} (by {f.exch_ts[i] - f.local_ts[i]} ns) "
            "after the configured local-timestamp correction; set a correction "
            "(e.g. --local-ts-correction auto) if the receiving clock was behind the exchange's"
        ),
    )


def check_quotes(frame: FeedFrame, tick_size: float) -> None:
    """Refuse (``crossed-quote``) a quote of a ``bbo`` feed whose bid price is at or above its ask price.

    A quote is the ``bbo`` rows sharing one exchange and local timestamp (one line of a Tardis quotes file,
    one Binance ``bookTicker``, one timestamp of hftbacktest BBO events); its bid and ask are the last
    BID and ASK row in it. A quote showing one side only is not judged.

    Refused rather than kept with a warning, locked (bid = ask) as well as crossed (bid > ask): one
    venue's own best bid and offer cannot cross or lock (its matching engine trades them first), and the
    real samples show none: 0 of 9,999 quotes in the Tardis binance-futures BTCUSDT file, 0 of 66,089
    BTCUSDT and 0 of 53,992 ETHUSDT Binance ``bookTicker`` messages (and 0 of 10 Tardis top-5
    snapshots). Such a quote is a parse or column error (bid and ask swapped, a wrong column), or quotes
    of two venues in one file. Only the ``bbo`` feed is judged here: a ``depth`` feed is a book only once
    replayed from a snapshot (the Historical Input Feeder's work). Replayed, the Binance samples' books
    never cross or lock either (0 of 6,546 BTCUSDT and 6,580 ETHUSDT depth messages after the snapshot).
    """
    if frame.feed != "bbo" or len(frame) == 0:
        return
    f = frame
    n = len(f)
    starts = np.flatnonzero(np.r_[True, (f.exch_ts[1:] != f.exch_ts[:-1]) | (f.local_ts[1:] != f.local_ts[:-1])])
    index = np.arange(n)
    last_bid = np.maximum.reduceat(np.where(f.side == Side.BID, index, -1), starts)
    last_ask = np.maximum.reduceat(np.where(f.side == Side.ASK, index, -1), starts)
    both = (last_bid >= 0) & (last_ask >= 0)
    bid, ask = last_bid[both], last_ask[both]
    lock = TICK_TOLERANCE * tick_size
    hits = np.flatnonzero(f.price[bid] >= f.price[ask] - lock)
    if not hits.size:
        return
    b, a = float(f.price[bid[hits[0]]]), float(f.price[ask[hits[0]]])
    how = "locked (bid = ask)" if abs(b - a) <= lock else "crossed (bid > ask)"
    more = f" ({hits.size} quotes break this rule)" if hits.size > 1 else ""
    raise DataError(
        "crossed-quote",
        f.source,
        f.where(int(max(bid[hits[0]], ask[hits[0]]))),  # the row completing the quote
        f"feed 'bbo': quote {how}: bid {b!r} >= ask {a!r}; a venue's own best bid and offer never cross or "
        f"lock (bid and ask swapped, a wrong column, or quotes of several venues in one file?){more}",
    )


def check_book(result: IngestResult) -> None:
    """Refuse (``crossed-book``) book feeds (``snapshot``, ``depth``) that, replayed in Processing Order
    from the first snapshot row on (before it the book is not known), leave the book crossed or locked
    (best bid >= best ask) once a message is whole (the rows sharing one exchange and local time).

    Refused rather than kept with a warning, as :func:`check_quotes` refuses quotes: a venue's own book
    never crosses, and the real samples never do: 0 of 445,523 BTCUSDT and 430,664 ETHUSDT Binance
    futures book rows, the Tardis Deribit snapshot, the Databento ESH4 MBO snapshot and the whole LOBSTER
    GOOG day (61,188 book rows derived from its orders). Such a book comes from rows out of order, a wrong
    side or price column, or a missing clear. (hftbacktest would not refuse it: its depth moves the
    opposite best past a crossing level, so a backtest would run on a book the data never showed.)
    """
    from hftlab.feed_kernels import crossed_messages

    frames = [f for f in result.feeds if f.feed in L2_BOOK_FEEDS and len(f)]
    if not frames:
        return
    order = processing_order(frames)
    c = {
        k: np.concatenate([getattr(f, k) for f in frames])[order]
        for k in ("exch_ts", "local_ts", "kind", "side", "price", "qty")
    }
    count, last = crossed_messages(c["exch_ts"], c["local_ts"], c["kind"], c["side"], c["price"], c["qty"],
                                   result.instrument.tick_size)  # fmt: skip
    if count == 0:
        return
    bounds = np.cumsum([0] + [len(f) for f in frames])
    j = int(order[last])
    k = int(np.searchsorted(bounds, j, side="right")) - 1
    f, row = frames[k], j - int(bounds[k])
    more = f" ({count} messages leave it so)" if count > 1 else ""
    raise DataError(
        "crossed-book",
        f.source,
        f.where(row),
        f"feed '{f.feed}': after this message the book is crossed or locked (best bid >= best ask){more}; a "
        "venue's own book never crosses (rows out of order, a wrong side or price column, a missing clear?)",
    )


def validate(result: IngestResult) -> None:
    """Check every rule on every feed of an import; raise on the first broken rule.

    An import of order-by-order rows that brings no L2 book feed gets its ``snapshot`` and ``depth`` feeds
    here: the replay that checks the L3 rules derives them (:func:`hftlab.storage.l3.derive_l2`), and they
    are checked like any feed and added to ``result``.
    """
    raw = [str(r.get("name")) for r in result.lineage.get("raw_inputs", [])]  # when no feed is left to say
    sources = sorted({f.source for f in result.feeds if f.source}) or raw or ["<no input>"]
    if sum(len(f) for f in result.feeds) == 0:
        raise DataError("empty-input", ", ".join(sources), None, "the input holds no rows")
    seen: set[str] = set()
    derived: list[FeedFrame] = []
    for frame in result.feeds:
        if frame.feed in seen:
            raise DataError("duplicate-feed", frame.source, None, f"feed '{frame.feed}' given twice")
        seen.add(frame.feed)
        validate_frame(frame, result.instrument)
        check_quotes(frame, result.instrument.tick_size)
        if frame.feed in L3_FEEDS:
            derived += derive_l2(frame, result.instrument.tick_size, result.instrument.lot_size)
    if derived and not L2_BOOK_FEEDS & seen:
        for frame in derived:
            validate_frame(frame, result.instrument)
        result.feeds += derived
    check_book(result)
