"""The LOBSTER importer: the real GOOG day replayed against LOBSTER's own orderbook file after every
message, each convention of the module docstring on hand-written message/orderbook pairs, and its errors.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hftlab.errors import ConfigError, DataError
from hftlab.ingest import lobster, lobster_book
from hftlab.storage import Catalog
from hftlab.storage.l3 import OrderBook, apply_row, derive_l2, top_of_book
from hftlab.storage.schema import FeedFrame, IngestResult, Kind
from tests.conftest import SHARED_DATA

HFTLAB = str(Path(sys.executable).with_name("hftlab"))
GOOG = SHARED_DATA / "lobster" / "GOOG"
ASK_DUMMY, BID_DUMMY = 9_999_999_999, -9_999_999_999
NAN = float("nan")
ADD, CANCEL, FILL, CLEAR, TRADE = (int(k) for k in (Kind.ADD, Kind.CANCEL, Kind.FILL, Kind.CLEAR, Kind.TRADE))
UNSEEN = lobster_book.UNSEEN_ID_BASE


# -- helpers ----------------------------------------------------------------------------------------


def utc(*fields: int, ns: int = 0) -> int:
    """A UTC wall time (year, month, day, hour, minute[, second]) as ns since the epoch."""
    return int(datetime(*fields, tzinfo=UTC).timestamp()) * 10**9 + ns


def options(**overrides: Any) -> argparse.Namespace:
    """The arguments :func:`lobster.convert` reads, as the CLI gives them by default."""
    values: dict[str, Any] = {
        "symbol": "TEST",
        "date": "2012-06-21",
        "timezone": "America/New_York",
        "feed_latency": 0,
        "sub_penny": "refuse",
        "venue": None,
        "tick_size": None,
        "lot_size": None,
        "contract_type": "linear",
        "contract_size": None,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def write_pair(
    folder: Path, messages: list[tuple[Any, ...]], books: list[tuple[int, ...]], name: str = "message.csv"
) -> Path:
    """A message file and its orderbook file beside it (no header, as LOBSTER writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(",".join(map(str, m)) + "\n" for m in messages))
    lobster.orderbook_path(path).write_text("".join(",".join(map(str, b)) + "\n" for b in books))
    return path


def feeds_of(result: IngestResult) -> dict[str, FeedFrame]:
    return {f.feed: f for f in result.feeds}


def order_rows(frame: FeedFrame) -> list[tuple[int, int, float, float, int, int]]:
    """An orders frame as (kind, side, price, qty, order_id, line)."""
    assert frame.order_id is not None
    return [
        (int(k), int(s), float(p), float(q), int(o), int(n))
        for k, s, p, q, o, n in zip(
            frame.kind, frame.side, frame.price, frame.qty, frame.order_id, frame.line, strict=True
        )
    ]


def trade_rows(frame: FeedFrame) -> list[tuple[int, int, float, float, int]]:
    """A trades or hidden frame as (kind, side, price, qty, line)."""
    return [
        (int(k), int(s), float(p), float(q), int(n))
        for k, s, p, q, n in zip(frame.kind, frame.side, frame.price, frame.qty, frame.line, strict=True)
    ]


def book_after_each_message(frame: FeedFrame, n_messages: int) -> np.ndarray:
    """Best ask px, ask qty, best bid px, bid qty after each message (a message with no row keeps the book)."""
    last = np.searchsorted(frame.line, np.arange(1, n_messages + 1), side="right") - 1
    return top_of_book(frame, 0.01, 1.0, last)


def expected_top(orderbook: np.ndarray) -> np.ndarray:
    """LOBSTER's level-1 orderbook rows as top_of_book gives them: prices in USD, NaN for an empty side."""
    out = orderbook[:, :4].astype(np.float64)
    out[:, [0, 2]] /= lobster_book.PRICE_SCALE
    for col in (0, 2):
        empty = np.abs(orderbook[:, col]) == lobster_book.DUMMY_PRICE
        out[empty, col : col + 2] = NAN
    return out


def stored_feed(dataset: Any, feed: str) -> dict[str, np.ndarray]:
    """The stored rows of ``feed`` (every partition), in ``seq`` order."""
    tables = [pq.read_table(dataset.path / p.path) for p in dataset.manifest.partitions if p.feed == feed]
    table = pa.concat_tables(tables)
    cols = {c: table.column(c).to_numpy() for c in table.column_names}
    order = np.argsort(cols["seq"], kind="stable")
    return {c: v[order] for c, v in cols.items()}


def hftlab(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hftlab --root root args...``, its output captured."""
    return subprocess.run([HFTLAB, "--root", str(root), *args], capture_output=True, text=True)


def raises(rule: str, source: Path, location: str | None, path: Path, **overrides: Any) -> DataError:
    with pytest.raises(DataError) as info:
        lobster.convert(path, options(**overrides))
    err = info.value
    assert (rule, str(source), location) == (err.rule, err.source, err.location)
    assert source.name in str(err)
    return err


# -- the real GOOG day ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def goog(tmp_path_factory) -> dict[str, Any]:
    """The real sample imported by the CLI (--sub-penny hidden), its in-memory conversion and raw files."""
    message = GOOG / "message.csv"
    if not message.is_file() or not (GOOG / "orderbook.csv").is_file():
        pytest.skip(f"real LOBSTER sample not found at {GOOG} (a user's clone has no ../shared/data)")
    root = tmp_path_factory.mktemp("lobster") / "canonical"
    done = hftlab(
        root,
        "data",
        "import",
        "lobster",
        str(message),
        "--symbol",
        "GOOG",
        "--date",
        "2012-06-21",
        "--sub-penny",
        "hidden",
    )
    assert 0 == done.returncode, done.stderr
    result = lobster.convert(message, options(symbol="GOOG", sub_penny="hidden"))
    return {
        "root": root,
        "dataset": Catalog(root).resolve("NASDAQ-GOOG"),
        "result": result,
        "messages": np.loadtxt(message, delimiter=","),
        "orderbook": np.loadtxt(GOOG / "orderbook.csv", delimiter=",", dtype=np.int64),
    }


@pytest.mark.shared_data
def test_real_day_top_of_book_after_every_message_equals_lobster(goog: dict[str, Any]) -> None:
    """Protects the whole import: the stored orders rows, replayed, give LOBSTER's level 1 after each of the
    49,482 messages (the stored rows equal the converter's, whose lines map rows to messages)."""
    frame = feeds_of(goog["result"])["orders"]
    stored = stored_feed(goog["dataset"], "orders")
    assert [*frame.columns, "seq"] == list(stored)
    assert 68_953 == len(frame)
    for col in frame.columns:
        assert getattr(frame, col).dtype == stored[col].dtype, col
        assert np.array_equal(getattr(frame, col), stored[col]), col
    assert np.all(np.diff(frame.line) >= 0)

    n = len(goog["messages"])
    assert 49_482 == n == len(goog["orderbook"])
    replayed = FeedFrame.from_columns("orders", frame.source, line=frame.line, **{c: stored[c] for c in frame.columns})
    top = book_after_each_message(replayed, n)
    expected = expected_top(goog["orderbook"])
    assert not np.isnan(expected).any()  # the sample never empties a side
    mismatched = np.flatnonzero(~np.all(top == expected, axis=1))
    assert [] == mismatched.tolist()


@pytest.mark.shared_data
def test_real_day_counts_lineage_and_verify(goog: dict[str, Any]) -> None:
    """Protects feed routing and lineage: a trade per type-4 message (aggressor = -direction), a hidden
    trade per type-5 message, the recorded message counts and reconciliation; the stored day verifies."""
    m = goog["messages"]
    dataset = goog["dataset"]
    kind = m[:, 1].astype(int)
    assert {"orders": 68_953, "trades": 7_765, "hidden": 3_913, "depth": 61_186, "snapshot": 2} == dict(
        dataset.manifest.feeds
    )
    assert int(np.sum(kind == 4)) == dataset.manifest.feeds["trades"]
    assert int(np.sum(kind == 5)) == dataset.manifest.feeds["hidden"]

    trades, hidden = stored_feed(dataset, "trades"), stored_feed(dataset, "hidden")
    assert (-m[kind == 4, 5]).astype(int).tolist() == trades["side"].tolist()
    assert (m[kind == 4, 4] / 10_000).tolist() == trades["price"].tolist()
    assert (-m[kind == 5, 5]).astype(int).tolist() == hidden["side"].tolist()
    assert (m[kind == 5, 4] / 10_000).tolist() == hidden["price"].tolist()
    assert 50 == int(np.sum(m[kind == 5, 4] % 100 != 0))  # the sub-penny hidden executions are kept

    lineage = dataset.manifest.lineage
    counts = {str(t): int(np.sum(kind == t)) for t in range(1, 8)}
    assert {"1": 24_368, "2": 7, "3": 13_429, "4": 7_765, "5": 3_913, "6": 0, "7": 0} == counts
    assert counts == lineage["message_counts"]
    assert {
        "unseen_added": 1_060,
        "unseen_qty": 69_317,
        "cancelled_by_book": 8_976,
        "cancelled_qty": 603_723,
        "placed_before_named": 3_221,  # of the 3,822 orders named before any submission
        "named_unseen": 601,
    } == lineage["reconciliation"]
    assert [] == lineage["trading_status"]
    params = {"date": "2012-06-21", "timezone": "America/New_York", "feed_latency_ns": 0, "levels": 1}
    assert params.items() <= lineage["params"].items()
    assert "hidden" == lineage["params"]["sub_penny"]
    assert ["message.csv", "orderbook.csv"] == [r["name"] for r in lineage["raw_inputs"]]
    assert utc(2012, 6, 21, 13, 30, ns=15_105_074) == dataset.manifest.start_ns  # 34200.015105074 EDT

    done = hftlab(goog["root"], "data", "verify", "NASDAQ-GOOG")
    assert 0 == done.returncode, done.stderr
    assert done.stdout.startswith("ok: NASDAQ-GOOG ")


@pytest.mark.shared_data
def test_real_day_refused_by_default_at_first_sub_penny_message(goog: dict[str, Any], tmp_path: Path) -> None:
    """Protects the default --sub-penny refuse: the CLI exits 2 naming the file and line 862 (577.775)."""
    message = GOOG / "message.csv"
    assert 577.775 == goog["messages"][861, 4] / 10_000
    done = hftlab(tmp_path / "c", "data", "import", "lobster", str(message), "--symbol", "GOOG", "--date", "2012-06-21")
    assert 2 == done.returncode
    assert f"{message}, line 862: [sub-penny-price]" in done.stderr
    assert not (tmp_path / "c" / "NASDAQ-GOOG").exists()


# -- time ---------------------------------------------------------------------------------------------


def exchange_times(folder: Path, times: list[str], **overrides: Any) -> list[int]:
    """The exchange times of a session of bid submissions (order i at 100.00) at ``times``."""
    messages = [(t, 1, i + 1, 100, 1_000_000, 1) for i, t in enumerate(times)]
    books = [(ASK_DUMMY, 0, 1_000_000, 100 * (i + 1)) for i in range(len(times))]
    frame = feeds_of(lobster.convert(write_pair(folder, messages, books), options(**overrides)))["orders"]
    adds = frame.kind == ADD
    assert list(range(1, len(times) + 1)) == frame.line[adds].tolist()
    return frame.exch_ts[adds].tolist()


@pytest.mark.parametrize(
    ("day", "times", "expected"),
    [
        ("2012-03-09", ["34200"], [utc(2012, 3, 9, 14, 30)]),  # EST: UTC-5
        ("2012-03-12", ["34200"], [utc(2012, 3, 12, 13, 30)]),  # EDT: UTC-4
        # The spring-forward day: 01:59:59.999999999 EST and 03:00 EDT are 1 ns apart in UTC.
        (
            "2012-03-11",
            ["3600", "7199.999999999", "10800", "34200"],
            [utc(2012, 3, 11, 6, 0), utc(2012, 3, 11, 7, 0) - 1, utc(2012, 3, 11, 7, 0), utc(2012, 3, 11, 13, 30)],
        ),
        # The fall-back day: the ambiguous 01:30 takes the first offset (EDT), 02:30 is EST.
        ("2012-11-04", ["5400", "9000"], [utc(2012, 11, 4, 5, 30), utc(2012, 11, 4, 7, 30)]),
    ],
)
def test_wall_clock_converted_with_the_offset_at_each_time(
    tmp_path: Path, day: str, times: list[str], expected: list[int]
) -> None:
    """Protects time: seconds after New York midnight -> UTC with the DST offset in force at that time."""
    assert expected == exchange_times(tmp_path, times, date=day)


def test_same_wall_time_across_dst_is_one_hour_apart_in_offset(tmp_path: Path) -> None:
    """Protects time: 09:30 on the Friday before and the Monday after the switch differ by 3 days - 1 hour."""
    before = exchange_times(tmp_path / "a", ["34200"], date="2012-03-09")[0]
    after = exchange_times(tmp_path / "b", ["34200"], date="2012-03-12")[0]
    assert 3 * 86_400 * 10**9 - 3_600 * 10**9 == after - before


@pytest.mark.parametrize(
    ("day", "expected"), [("2012-01-05", utc(2012, 1, 5, 8, 0)), ("2012-06-21", utc(2012, 6, 21, 7, 0))]
)
def test_timezone_option_is_honoured(tmp_path: Path, day: str, expected: int) -> None:
    """Protects --timezone: 08:00 London is 08:00 UTC in winter (GMT) and 07:00 UTC in summer (BST)."""
    assert [expected] == exchange_times(tmp_path, ["28800"], date=day, timezone="Europe/London")


def test_nanoseconds_are_exact(tmp_path: Path) -> None:
    """Protects the 9 decimals: no float rounding shifts a time by a nanosecond."""
    times = ["34200.000000001", "34200.123456789", "57599.999999999", "86399.999999999"]
    open_ = utc(2012, 6, 21, 13, 30)
    expected = [open_ + 1, open_ + 123_456_789, utc(2012, 6, 21, 20, 0) - 1, utc(2012, 6, 22, 4, 0) - 1]
    assert expected == exchange_times(tmp_path, times)


def test_feed_latency_gives_local_time_and_is_recorded(tmp_path: Path) -> None:
    """Protects --feed-latency: every stored row has local = exchange + 200 us; the lineage records it."""
    path = write_pair(
        tmp_path,
        [("34200.5", 1, 1, 100, 1_000_000, 1), ("34201", 4, 1, 40, 1_000_000, 1), ("34202", 5, 0, 10, 1_000_100, -1)],
        [(ASK_DUMMY, 0, 1_000_000, 100), (ASK_DUMMY, 0, 1_000_000, 60), (ASK_DUMMY, 0, 1_000_000, 60)],
    )
    root = tmp_path / "canonical"
    done = hftlab(
        root,
        "data",
        "import",
        "lobster",
        str(path),
        "--symbol",
        "TEST",
        "--date",
        "2012-06-21",
        "--feed-latency",
        "200us",
    )
    assert 0 == done.returncode, done.stderr
    dataset = Catalog(root).resolve("NASDAQ-TEST")
    assert {"depth", "hidden", "orders", "snapshot", "trades"} == set(dataset.manifest.feeds)
    for feed in dataset.manifest.feeds:
        rows = stored_feed(dataset, feed)
        assert [200_000] * len(rows["seq"]) == (rows["local_ts"] - rows["exch_ts"]).tolist(), feed
    assert [utc(2012, 6, 21, 13, 30, ns=500_000_000)] * 2 == stored_feed(dataset, "orders")["exch_ts"][:2].tolist()
    assert 200_000 == dataset.manifest.lineage["params"]["feed_latency_ns"]
    assert 0 == lobster.convert(path, options()).lineage["params"]["feed_latency_ns"]


# -- book conventions ---------------------------------------------------------------------------------


def test_dummy_price_empties_the_side(tmp_path: Path) -> None:
    """Protects dummy prices: a side the orderbook shows as ±9999999999 (size 0) is empty after that message,
    whether a message emptied it or the book had to (unseen liquidity cancelled); no row has that price."""
    messages = [
        ("34200", 1, 1, 100, 1_000_000, 1),
        ("34201", 1, 2, 50, 1_000_000, 1),
        ("34202", 1, 3, 100, 1_020_000, -1),
        ("34203", 3, 1, 100, 1_000_000, 1),
        ("34204", 3, 2, 50, 1_000_000, 1),
    ]
    books = [
        (1_010_000, 200, 1_000_000, 100),  # an ask no message shows: unseen liquidity
        (ASK_DUMMY, 0, 1_000_000, 150),  # ... gone: the ask side is empty
        (1_020_000, 100, 1_000_000, 150),
        (1_020_000, 100, 1_000_000, 50),
        (1_020_000, 100, BID_DUMMY, 0),  # the bid side emptied by deletions
    ]
    result = lobster.convert(write_pair(tmp_path, messages, books), options())
    orders = feeds_of(result)["orders"]
    assert [
        (CLEAR, 0, 0.01, 0.0, 0, 1),
        (ADD, 1, 100.0, 100.0, 1, 1),
        (ADD, -1, 101.0, 200.0, UNSEEN, 1),
        (ADD, 1, 100.0, 50.0, 2, 2),
        (CANCEL, -1, 101.0, 0.0, UNSEEN, 2),
        (ADD, -1, 102.0, 100.0, 3, 3),
        (CANCEL, 1, 100.0, 0.0, 1, 4),
        (CANCEL, 1, 100.0, 0.0, 2, 5),
    ] == order_rows(orders)
    expected = [
        [101.0, 200.0, 100.0, 100.0],
        [NAN, NAN, 100.0, 150.0],
        [102.0, 100.0, 100.0, 150.0],
        [102.0, 100.0, 100.0, 50.0],
        [102.0, 100.0, NAN, NAN],
    ]
    np.testing.assert_array_equal(np.array(expected), book_after_each_message(orders, 5))
    np.testing.assert_array_equal(expected_top(np.array(books)), book_after_each_message(orders, 5))
    for frame in result.feeds:
        assert not np.any(np.abs(frame.price) > 1_000), frame.feed
    assert (1, 200) == (
        result.lineage["reconciliation"]["unseen_added"],
        result.lineage["reconciliation"]["unseen_qty"],
    )


def test_halt_messages_emit_no_row_and_are_recorded(tmp_path: Path) -> None:
    """Protects type 7: halt (-1), quote resume (0), trade resume (1) give no row, only lineage entries."""
    book = (1_010_000, 100, 1_000_000, 100)
    messages = [
        ("34200", 1, 1, 100, 1_000_000, 1),
        ("34300", 1, 2, 100, 1_010_000, -1),
        ("36000", 7, 0, 0, -1, -1),
        ("36300", 7, 0, 0, 0, -1),
        ("36600", 7, 0, 0, 1, -1),
        ("36601", 4, 2, 100, 1_010_000, -1),
    ]
    books = [(ASK_DUMMY, 0, 1_000_000, 100), book, book, book, book, (ASK_DUMMY, 0, 1_000_000, 100)]
    result = lobster.convert(write_pair(tmp_path, messages, books), options())
    lines = {f.feed: f.line.tolist() for f in result.feeds}
    assert {3, 4, 5}.isdisjoint(line for feed_lines in lines.values() for line in feed_lines)
    assert [1, 1, 2, 6, 6] == lines["orders"]
    assert [
        {"line": 3, "exch_ts": utc(2012, 6, 21, 14, 0), "status": "halt"},
        {"line": 4, "exch_ts": utc(2012, 6, 21, 14, 5), "status": "quote"},
        {"line": 5, "exch_ts": utc(2012, 6, 21, 14, 10), "status": "trade"},
    ] == result.lineage["trading_status"]
    assert "3 trading status message(s) (type 7): halt, quote, trade" in result.lineage["notes"]
    assert 3 == result.lineage["message_counts"]["7"]


def test_execution_sides_fill_cancel_and_trade(tmp_path: Path) -> None:
    """Protects type 4: FILL on the resting side (direction), CANCEL stating what remains, and a trade on
    the aggressor's side (-direction): a buy limit order executed is a seller-initiated trade."""
    messages = [
        ("34200", 1, 7, 300, 1_000_000, 1),
        ("34201", 4, 7, 100, 1_000_000, 1),
        ("34202", 1, 8, 50, 1_005_000, -1),
        ("34203", 4, 8, 50, 1_005_000, -1),
    ]
    books = [
        (ASK_DUMMY, 0, 1_000_000, 300),
        (ASK_DUMMY, 0, 1_000_000, 200),
        (1_005_000, 50, 1_000_000, 200),
        (ASK_DUMMY, 0, 1_000_000, 200),
    ]
    result = lobster.convert(write_pair(tmp_path, messages, books), options())
    feeds = feeds_of(result)
    assert [
        (CLEAR, 0, 0.01, 0.0, 0, 1),
        (ADD, 1, 100.0, 300.0, 7, 1),
        (FILL, 1, 100.0, 100.0, 7, 2),
        (CANCEL, 1, 100.0, 200.0, 7, 2),
        (ADD, -1, 100.5, 50.0, 8, 3),
        (FILL, -1, 100.5, 50.0, 8, 4),
        (CANCEL, -1, 100.5, 0.0, 8, 4),
    ] == order_rows(feeds["orders"])
    assert [(TRADE, -1, 100.0, 100.0, 2), (TRADE, 1, 100.5, 50.0, 4)] == trade_rows(feeds["trades"])
    assert [utc(2012, 6, 21, 13, 30, 1), utc(2012, 6, 21, 13, 30, 3)] == feeds["trades"].exch_ts.tolist()
    assert 0 == len(feeds["hidden"])
    np.testing.assert_array_equal(expected_top(np.array(books)), book_after_each_message(feeds["orders"], 4))


def test_hidden_execution_goes_to_hidden_feed_and_changes_no_quantity(tmp_path: Path) -> None:
    """Protects type 5: a 'hidden' trade with side -direction; no orders, depth or trades row."""
    book = (1_001_000, 100, 1_000_000, 100)
    messages = [
        ("34200", 1, 1, 100, 1_000_000, 1),
        ("34201", 1, 2, 100, 1_001_000, -1),
        ("34202", 5, 0, 30, 1_000_500, 1),
        ("34203", 5, 0, 20, 1_000_600, -1),
    ]
    books = [(ASK_DUMMY, 0, 1_000_000, 100), book, book, book]
    result = lobster.convert(write_pair(tmp_path, messages, books), options())
    feeds = feeds_of(result)
    assert [(TRADE, -1, 100.05, 30.0, 3), (TRADE, 1, 100.06, 20.0, 4)] == trade_rows(feeds["hidden"])
    assert [utc(2012, 6, 21, 13, 30, 2), utc(2012, 6, 21, 13, 30, 3)] == feeds["hidden"].exch_ts.tolist()
    derived = {f.feed: f for f in derive_l2(feeds["orders"], 0.01, 1.0)}  # what storage derives
    for frame in (feeds["orders"], derived["depth"], derived["snapshot"]):
        assert max(frame.line) <= 2, frame.feed
    assert 0 == len(feeds["trades"])
    np.testing.assert_array_equal(expected_top(np.array(books)), book_after_each_message(feeds["orders"], 4))


def sub_penny_pair(folder: Path, kind: int = 5) -> Path:
    """A bid, then a type-``kind`` message at 577.775 (line 2), then a hidden execution at 577.776 (line 3)."""
    messages = [
        ("34200", 1, 1, 100, 5_777_700, 1),
        ("34201", kind, {1: 2, 4: 1, 5: 0}[kind], 10, 5_777_750, 1),
        ("34202", 5, 0, 5, 5_777_760, -1),
    ]
    left = 90 if kind == 4 else 100
    books = [(ASK_DUMMY, 0, 5_777_700, 100), (ASK_DUMMY, 0, 5_777_700, left), (ASK_DUMMY, 0, 5_777_700, left)]
    return write_pair(folder, messages, books)


def test_sub_penny_refused_by_default(tmp_path: Path) -> None:
    """Protects --sub-penny refuse: the first sub-penny message is named (file, line) and the remedy given."""
    path = sub_penny_pair(tmp_path)
    err = raises("sub-penny-price", path, "line 2", path)
    assert "577.775" in err.detail
    assert "(2 such messages)" in err.detail
    assert "--sub-penny hidden" in err.detail


def test_sub_penny_hidden_keeps_exact_prices(tmp_path: Path, catalog: Catalog) -> None:
    """Protects --sub-penny hidden: hidden trades at their exact sub-penny prices, accepted by storage."""
    result = lobster.convert(sub_penny_pair(tmp_path), options(sub_penny="hidden"))
    assert [(TRADE, -1, 577.775, 10.0, 2), (TRADE, 1, 577.776, 5.0, 3)] == trade_rows(feeds_of(result)["hidden"])
    assert "hidden" == result.lineage["params"]["sub_penny"]
    dataset, new = catalog.promote(result, "x")
    assert new
    assert [577.775, 577.776] == stored_feed(dataset, "hidden")["price"].tolist()


@pytest.mark.parametrize("kind", [1, 4])
def test_sub_penny_visible_messages_refused_even_with_hidden(tmp_path: Path, kind: int) -> None:
    """Protects --sub-penny hidden's scope: only hidden executions may be off the grid."""
    path = sub_penny_pair(tmp_path, kind)
    err = raises("sub-penny-price", path, "line 2", path, sub_penny="hidden")
    assert f"type {kind} message" in err.detail


def test_execution_of_an_order_submitted_before_the_file(tmp_path: Path) -> None:
    """Order 999 is never submitted in the file: its messages (200 executed, 100 deleted) say it rests at
    100.00 with 300. It is placed where the orderbook file first shows that level (message 1), ahead of
    anything that joins later; the rest of the 500 shown is unseen liquidity; both are counted."""
    messages = [
        ("34200", 1, 1, 100, 1_001_000, -1),
        ("34201", 4, 999, 200, 1_000_000, 1),
        ("34202", 3, 999, 100, 1_000_000, 1),
    ]
    books = [(1_001_000, 100, 1_000_000, 500), (1_001_000, 100, 1_000_000, 300), (1_001_000, 100, 1_000_000, 200)]
    result = lobster.convert(write_pair(tmp_path, messages, books), options())
    feeds = feeds_of(result)
    assert [
        (CLEAR, 0, 0.01, 0.0, 0, 1),
        (ADD, -1, 100.1, 100.0, 1, 1),
        (ADD, 1, 100.0, 300.0, 999, 1),  # named at line 2, resting already
        (ADD, 1, 100.0, 200.0, UNSEEN, 1),  # the rest of what the orderbook shows
        (FILL, 1, 100.0, 200.0, 999, 2),
        (CANCEL, 1, 100.0, 100.0, 999, 2),
        (CANCEL, 1, 100.0, 0.0, 999, 3),
    ] == order_rows(feeds["orders"])
    assert [(TRADE, -1, 100.0, 200.0, 2)] == trade_rows(feeds["trades"])
    assert {
        "unseen_added": 1,
        "unseen_qty": 200,
        "cancelled_by_book": 0,
        "cancelled_qty": 0,
        "placed_before_named": 1,
        "named_unseen": 0,
    } == result.lineage["reconciliation"]
    np.testing.assert_array_equal(expected_top(np.array(books)), book_after_each_message(feeds["orders"], 3))


# -- errors and file names ----------------------------------------------------------------------------


def test_row_count_mismatch(tmp_path: Path) -> None:
    path = write_pair(
        tmp_path,
        [("34200", 1, 1, 100, 1_000_000, 1), ("34201", 1, 2, 100, 1_000_000, 1)],
        [(ASK_DUMMY, 0, 1_000_000, 100)],
    )
    err = raises("row-count-mismatch", path, None, path)
    assert "2 messages but 1 rows in orderbook.csv" in err.detail


def test_unknown_message_type_names_its_line(tmp_path: Path) -> None:
    book = (ASK_DUMMY, 0, 1_000_000, 100)
    path = write_pair(
        tmp_path,
        [("34200", 1, 1, 100, 1_000_000, 1), ("34201", 5, 0, 10, 1_000_000, 1), ("34202", 8, 0, 10, 1_000_000, 1)],
        [book, book, book],
    )
    err = raises("unknown-message-type", path, "line 3", path)
    assert "type 8" in err.detail


def test_duplicate_submission_of_a_live_order(tmp_path: Path) -> None:
    path = write_pair(
        tmp_path,
        [("34200", 1, 1, 100, 1_000_000, 1), ("34201", 1, 1, 100, 1_000_000, 1)],
        [(ASK_DUMMY, 0, 1_000_000, 100), (ASK_DUMMY, 0, 1_000_000, 200)],
    )
    err = raises("duplicate-add", path, "line 2", path)
    assert "order 1 " in err.detail


def test_missing_orderbook_file(tmp_path: Path) -> None:
    path = write_pair(tmp_path, [("34200", 1, 1, 100, 1_000_000, 1)], [(ASK_DUMMY, 0, 1_000_000, 100)])
    book = tmp_path / "orderbook.csv"
    book.unlink()
    raises("unreadable-input", book, None, path)


def test_no_date_and_no_date_in_the_file_name(tmp_path: Path) -> None:
    path = write_pair(tmp_path, [("34200", 1, 1, 100, 1_000_000, 1)], [(ASK_DUMMY, 0, 1_000_000, 100)])
    with pytest.raises(ConfigError, match="--date"):
        lobster.convert(path, options(date=None))


def test_lobster_file_name_supplies_symbol_and_date(tmp_path: Path) -> None:
    """Protects LOBSTER's naming: <TICKER>_<date>_<start>_<end>_message_<N>.csv and its orderbook_<N> file
    name the symbol and the date, through the CLI with neither option."""
    name = "GOOG_2012-03-09_34200000_57600000_message_1.csv"
    path = write_pair(tmp_path, [("34200", 1, 1, 100, 1_000_000, 1)], [(ASK_DUMMY, 0, 1_000_000, 100)], name=name)
    book = tmp_path / "GOOG_2012-03-09_34200000_57600000_orderbook_1.csv"
    assert book.is_file() and not (tmp_path / "orderbook.csv").exists()

    result = lobster.convert(path, options(symbol=None, date=None))
    assert ("NASDAQ", "GOOG") == (result.instrument.venue, result.instrument.symbol)
    assert "2012-03-09" == result.lineage["params"]["date"]
    assert [name, book.name] == [r["name"] for r in result.lineage["raw_inputs"]]

    root = tmp_path / "canonical"
    done = hftlab(root, "data", "import", "lobster", str(path))
    assert 0 == done.returncode, done.stderr
    dataset = Catalog(root).resolve("NASDAQ-GOOG")
    assert utc(2012, 3, 9, 14, 30) == dataset.manifest.start_ns  # 09:30 EST


def test_files_that_disagree_are_refused_where_the_book_cannot_match(tmp_path: Path) -> None:
    """The orderbook file empties the bid after message 2, but order 1 still rests there: message 3
    executes it. No cancel can reconcile that: refused, naming the message after which they disagree."""
    path = write_pair(
        tmp_path,
        [("34200", 1, 1, 100, 1_000_000, 1), ("34201", 1, 2, 100, 1_001_000, -1), ("34202", 4, 1, 100, 1_000_000, 1)],
        [(ASK_DUMMY, 0, 1_000_000, 100), (1_001_000, 100, BID_DUMMY, 0), (1_001_000, 100, BID_DUMMY, 0)],
    )
    err = raises("book-mismatch", path, "line 2", path)
    assert "shows 0 at 100.0 on the bid side" in err.detail and "hold 100" in err.detail


@pytest.mark.parametrize("zone", ["", "../x", "Mars/Olympus_Mons"])
def test_a_bad_timezone_is_named_as_such(tmp_path: Path, zone: str) -> None:
    path = write_pair(tmp_path, [("34200", 1, 1, 100, 1_000_000, 1)], [(ASK_DUMMY, 0, 1_000_000, 100)])
    with pytest.raises(ConfigError, match="--timezone"):
        lobster.convert(path, options(timezone=zone))


def test_a_level_two_file_matches_both_levels_with_unseen_liquidity(tmp_path: Path) -> None:
    """A level-2 file: when the best bid leaves, the file's second level shows a bid (98 × 4) that no
    message submitted (it rested at the third level): an unseen order of 4 is added there."""
    no_ask, no_bid = (ASK_DUMMY, 0), (BID_DUMMY, 0)
    messages = [
        ("34200", 1, 1, 10, 1_000_000, 1),
        ("34201", 1, 2, 5, 990_000, 1),
        ("34202", 1, 3, 7, 1_010_000, -1),
        ("34203", 1, 4, 3, 1_020_000, -1),
        ("34204", 3, 1, 10, 1_000_000, 1),
    ]
    books = [
        (*no_ask, 1_000_000, 10, *no_ask, *no_bid),
        (*no_ask, 1_000_000, 10, *no_ask, 990_000, 5),
        (1_010_000, 7, 1_000_000, 10, *no_ask, 990_000, 5),
        (1_010_000, 7, 1_000_000, 10, 1_020_000, 3, 990_000, 5),
        (1_010_000, 7, 990_000, 5, 1_020_000, 3, 980_000, 4),
    ]
    result = lobster.convert(write_pair(tmp_path, messages, books), options())
    orders = feeds_of(result)["orders"]
    assert result.lineage["params"]["levels"] == 2
    assert result.lineage["reconciliation"]["unseen_added"] == 1
    assert result.lineage["reconciliation"]["unseen_qty"] == 4
    book = OrderBook(0.01, 1.0)
    assert orders.order_id is not None
    for k, s, p, q, o in zip(orders.kind, orders.side, orders.price, orders.qty, orders.order_id, strict=True):
        apply_row(book, int(k), int(o), int(s), float(p), float(q))
    assert [(p, q) for _, p, q in book.side_levels(1)] == [(99.0, 5.0), (98.0, 4.0)]
    assert [(p, q) for _, p, q in book.side_levels(-1)] == [(101.0, 7.0), (102.0, 3.0)]


@pytest.mark.parametrize(
    ("message_text", "book_text", "where", "says"),
    [
        ("34200,1,1,100,1000000\n", "9999999999,0,1000000,100\n", "message", "5 columns"),
        ("34200,1,1,100,1000000,x\n", "9999999999,0,1000000,100\n", "message", "is not numeric"),
        ("34200,1,1,100,1000000,1\n", "9999999999,0,1000000\n", "orderbook", "not 4 per level"),
        ("34200,1,1,100,1000000,1\n34201,1,2\n", "9999999999,0,1000000,100\n" * 2, "message", "does not parse"),
    ],
    ids=["columns", "not-numeric", "levels", "ragged"],
)
def test_malformed_csv_is_refused_naming_the_file(tmp_path: Path, message_text, book_text, where, says) -> None:
    message = tmp_path / "message.csv"
    message.write_text(message_text)
    (tmp_path / "orderbook.csv").write_text(book_text)
    with pytest.raises(DataError) as err:
        lobster.convert(message, options())
    assert err.value.rule == "malformed-row" and err.value.source.endswith(f"{where}.csv")
    assert says in err.value.detail


def test_a_message_file_must_say_message_in_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'message' in its name"):
        lobster.orderbook_path(tmp_path / "events.csv")
