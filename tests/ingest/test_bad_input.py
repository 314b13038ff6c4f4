"""Bad input data, every class refused one way, through the real CLI: one line
``hftlab: error: <file>, <line>: [<rule>] ...``, exit code 2, no traceback, Canonical Storage unchanged.

Covers integer overflow in every importer's timestamp and number parsers, booleans where numbers belong,
crossed or locked quotes, and absurd local-timestamp corrections (the decisions are documented in
:func:`hftlab.storage.validate.check_quotes` and :mod:`hftlab.ingest.common`).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from hftlab.ingest import binance_futures
from hftlab.ingest.npz import BUY_EVENT, EXCH_EVENT, LOCAL_EVENT
from hftlab.storage import Instrument, Kind, Side
from hftlab.storage.validate import check_quotes
from tests.conftest import tree_snapshot
from tests.ingest.test_binance_futures import depth, stream, trade, write_gz

HFTLAB = Path(sys.executable).with_name("hftlab")
BINANCE = ("--symbol", "BTCUSDT", "--tick-size", "0.1", "--lot-size", "0.001", "--local-ts-correction", "auto")
TARDIS = ("--symbol", "BTCUSDT", "--tick-size", "0.01", "--lot-size", "0.001", "--venue", "binance-futures")
T0 = 1723161256298  # ms
L0 = 1723161255030314667  # ns: 1.27 s before T0, as in the real sample (--local-ts-correction auto fixes it)
US0 = 1582329601096000  # Tardis µs
QUOTES_HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
BIG = "99999999999999999999999"  # beyond int64 and uint64


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([HFTLAB, "--root", str(root), *args], capture_output=True, text=True, env=env)


def refused(root: Path, args: list[str], where: str, rule: str, *also: str) -> str:
    """Run ``hftlab data import <args>``: exit 2, one error line naming ``where`` and ``rule`` (and each of
    ``also``), no traceback, nothing promoted, every file of ``root`` as before. Returns the line."""
    before = tree_snapshot(root)
    out = cli(root, "data", "import", *args)
    assert 2 == out.returncode, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "promoted" not in out.stdout
    (line,) = out.stderr.splitlines()  # one line: no warning either
    assert line.startswith("hftlab: error: ")
    assert f"{where}: [{rule}] " in line, line
    for text in also:
        assert text in line, line
    assert before == tree_snapshot(root)
    return line


def good_lines(k0: int = 0) -> list[str]:
    """Four valid collector lines (depth, trade, bookTicker, depth) from ``k0`` ms on."""
    return [
        f"{L0 + k0 * 10**6} " + depth(T0 + k0, [["100.0", "1.0"]], [["100.1", "2.0"]]),
        f"{L0 + (k0 + 1) * 10**6} " + trade(T0 + k0 + 1, "100.1", "0.5", False),
        f"{L0 + (k0 + 2) * 10**6} " + ticker(T0 + k0 + 2, "100.0", "100.1"),
        f"{L0 + (k0 + 3) * 10**6} " + depth(T0 + k0 + 3, [["99.9", "1.0"]], []),
    ]


def ticker(t: int, bid: str, ask: str) -> str:
    return stream("bookTicker", u=9, b=bid, B="1.5", a=ask, A="2.5", T=t, E=t)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage root holding one good import (dataset ``held``) that no refused import may change."""
    tmp = tmp_path_factory.mktemp("bad-input")
    root = tmp / "canonical"
    good = write_gz(tmp / "good.gz", good_lines())
    out = cli(root, "data", "import", "binance-futures", str(good), *BINANCE, "--id", "held")
    assert 0 == out.returncode, out.stderr
    return root


# -- Binance futures: overflow, booleans, crossed quotes -------------------------------------------------


def with_t(t: str) -> str:
    return trade(T0 + 4, "100.1", "0.5", False).replace(f'"T": {T0 + 4}', f'"T": {t}')


BINANCE_CASES = {
    "T-beyond-int64": (f"{L0} {with_t(BIG)}", "timestamp-out-of-range", "key 'T'"),
    "T-int64-max-ms": (f"{L0} {with_t(str(2**63 - 1))}", "timestamp-out-of-range", "does not fit int64"),
    "T-negative-beyond-int64": (f"{L0} {with_t('-' + BIG)}", "timestamp-out-of-range", "key 'T'"),
    "local-beyond-int64": (f"{BIG} " + trade(T0 + 4, "100.1", "0.5", False), "timestamp-out-of-range", "int64"),
    "price-json-integer-beyond-float": (
        f"{L0} " + trade(T0 + 4, "1" + "0" * 400, "0.5", False).replace('"1' + "0" * 400 + '"', "1" + "0" * 400),
        "wrong-type",
        "key 'p'",
    ),
    "trade-quantity-true": (
        f"{L0} " + trade(T0 + 4, "100.1", "0.5", False).replace('"q": "0.5"', '"q": true'),
        "wrong-type",
        "not a boolean",
    ),
    "depth-quantity-true": (
        f"{L0} " + depth(T0 + 4, [["100.0", "1.0"]], [["100.1", "2.0"]]).replace('"2.0"', "true"),
        "wrong-type",
        "key 'a' level 0",
    ),
    "depth-price-false": (
        f"{L0} " + depth(T0 + 4, [["100.0", "1.0"]], []).replace('"100.0"', "false"),
        "wrong-type",
        "key 'b' level 0",
    ),
    "book-ticker-quantity-true": (
        f"{L0} " + ticker(T0 + 4, "100.0", "100.1").replace('"A": "2.5"', '"A": true'),
        "wrong-type",
        "key 'A'",
    ),
    "book-ticker-crossed": (f"{L0 + 4 * 10**6} " + ticker(T0 + 4, "100.2", "100.1"), "crossed-quote", "crossed"),
    "book-ticker-locked": (f"{L0 + 4 * 10**6} " + ticker(T0 + 4, "100.1", "100.1"), "crossed-quote", "locked"),
}


@pytest.mark.parametrize(("bad", "rule", "text"), BINANCE_CASES.values(), ids=BINANCE_CASES.keys())
def test_binance_bad_line_is_refused_naming_line_and_rule(
    root: Path, tmp_path: Path, bad: str, rule: str, text: str
) -> None:
    """Line 5 (after four good lines) is the bad one; nothing is stored."""
    path = write_gz(tmp_path / "bad.gz", [*good_lines(), bad])
    refused(root, ["binance-futures", str(path), *BINANCE, "--id", "held"], f"{path}, line 5", rule, text)


def test_auto_correction_refuses_one_absurd_line_and_says_so(root: Path, tmp_path: Path) -> None:
    """One line whose local time is two days behind would make ``auto`` shift everything by two days:
    refused naming that line and the bound's option, counting the rows that need it and showing the
    median latency (1.27 s), which tells an absurd line from a clock that is really off."""
    lines = good_lines() + good_lines(10)
    lines[0] = f"{L0 - 2 * 86_400 * 10**9} " + lines[0].split(" ", 1)[1]
    path = write_gz(tmp_path / "absurd.gz", lines)
    refused(
        root,
        ["binance-futures", str(path), *BINANCE],
        f"{path}, line 1",
        "local-ts-correction-too-large",
        "2.0 days",
        "--max-local-ts-correction",
        "2 of 8 rows need more than the bound",  # line 1 holds a bid and an ask row
        "the median latency is -1.26",
    )


@pytest.mark.parametrize(
    ("correction", "bound"),
    [(BIG, "999999999999999999999h"), (str(9 * 10**18), "999999999h")],
    ids=["beyond-int64", "wraps-around"],
)
def test_given_correction_that_would_overflow_is_refused(root: Path, tmp_path: Path, correction: str, bound: str):
    """A correction accepted by a raised bound still may not carry local times beyond int64."""
    path = write_gz(tmp_path / "ok.gz", good_lines())
    args = ["binance-futures", str(path), *BINANCE[:-2], "--local-ts-correction", correction]
    refused(root, [*args, "--max-local-ts-correction", bound], "--local-ts-correction", "local-ts-correction-too-large")


# -- Tardis CSV ------------------------------------------------------------------------------------------


def quote(k: int, bid: str = "9681.92", ask: str = "9682", exch: str | None = None, amount: str = "0.84") -> str:
    ts = exch if exch is not None else str(US0 + k * 1000)
    return f"binance-futures,BTCUSDT,{ts},{US0 + k * 1000 + 500},{amount},{ask},{bid},0.67"


TARDIS_CASES = {
    "quote-crossed": (quote(2, bid="9682.5"), "crossed-quote", "crossed (bid > ask): bid 9682.5 >= ask 9682.0"),
    "quote-locked": (quote(2, bid="9682"), "crossed-quote", "locked (bid = ask)"),
    "timestamp-beyond-int64": (quote(2, exch=BIG), "timestamp-out-of-range", "column 'timestamp'"),
    "timestamp-int64-min": (quote(2, exch=str(-(2**63))), "timestamp-out-of-range", "column 'timestamp'"),
    "timestamp-beyond-int64-ns": (quote(2, exch=str(2**62)), "timestamp-out-of-range", "int64 nanoseconds"),
    "amount-true": (quote(2, amount="true"), "wrong-type", "column 'ask_amount': 'true' is not a valid number"),
}


@pytest.mark.parametrize(("bad", "rule", "text"), TARDIS_CASES.values(), ids=TARDIS_CASES.keys())
def test_tardis_bad_quote_is_refused_naming_line_and_rule(
    root: Path, tmp_path: Path, bad: str, rule: str, text: str
) -> None:
    """CSV line 4 (after the header and two good quotes) is the bad one."""
    path = tmp_path / "quotes.csv"
    path.write_text("\n".join([QUOTES_HEADER, quote(0), quote(1), bad, quote(3)]) + "\n")
    refused(root, ["tardis", "--quotes", str(path), *TARDIS], f"{path}, line 4", rule, text)


def test_tardis_trade_amount_true_is_refused(root: Path, tmp_path: Path) -> None:
    """A boolean where the trades file has a number is refused too (pyarrow reads no 'true' as 1)."""
    rows = [f"binance-futures,BTCUSDT,{US0 + k},{US0 + k + 500},{k},buy,9682,{q}" for k, q in enumerate(["1", "true"])]
    path = tmp_path / "trades.csv"
    path.write_text("\n".join([TRADES_HEADER, *rows]) + "\n")
    refused(root, ["tardis", "--trades", str(path), *TARDIS], f"{path}, line 3", "wrong-type", "column 'amount'")


# -- hftbacktest arrays, LOBSTER, Databento: overflow -------------------------------------------------------


def test_npz_timestamp_that_overflows_in_its_unit_is_refused(root: Path, tmp_path: Path) -> None:
    """Microsecond timestamps (detected) with one row whose value times 1000 leaves int64: row 3."""
    dtype = np.dtype([("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"), ("qty", "f8")])
    ev = EXCH_EVENT | LOCAL_EVENT | BUY_EVENT | int(Kind.DEPTH)
    rows = [(ev, US0 + k, US0 + k + 100, 100.0, 1.0) for k in range(4)]
    rows[2] = (ev, 2**62, 2**62, 100.0, 1.0)
    path = tmp_path / "events.npz"
    np.savez(path, data=np.array(rows, dtype=dtype))
    args = ["npz", str(path), "--symbol", "ABC", "--tick-size", "0.5", "--lot-size", "1"]
    refused(root, args, f"{path}, row 3", "timestamp-out-of-range", "read as us")


@pytest.mark.parametrize(
    ("row", "rule", "text"),
    [
        (f"34200.015105074,1,{BIG},4,5794000,1", "integer-out-of-range", "column 3"),  # order id
        (f"34200.015105074,1,15818974,{BIG},5794000,1", "integer-out-of-range", "column 4"),  # size
        (f"34200.015105074,1,15818974,4,{2**63 - 1},1", "integer-out-of-range", "column 5"),  # price
        ("1e300,1,15818974,4,5794000,1", "timestamp-out-of-range", "column 1"),
        ("34200.015105074,1,15818974.5,4,5794000,1", "wrong-type", "column 3"),
    ],
    ids=["order-id", "size", "price", "time", "fractional-order-id"],
)
def test_lobster_number_beyond_its_range_is_refused(
    root: Path, tmp_path: Path, shared_data: Path, row: str, rule: str, text: str
) -> None:
    """A LOBSTER value that a cast to int64 would wrap around (it was imported garbled, or crashed later)."""
    sample = shared_data / "lobster" / "GOOG"
    messages = (sample / "message.csv").read_text().splitlines()[:20]
    messages[0] = row
    (tmp_path / "message.csv").write_text("\n".join(messages) + "\n")
    (tmp_path / "orderbook.csv").write_text("\n".join((sample / "orderbook.csv").read_text().splitlines()[:20]) + "\n")
    path = tmp_path / "message.csv"
    args = ["lobster", str(path), "--symbol", "GOOG", "--date", "2012-06-21"]
    refused(root, args, f"{path}, line 1", rule, text)


def test_databento_undefined_timestamps_are_refused_and_large_order_ids_kept(root: Path, tmp_path: Path) -> None:
    """DBN times are uint64 (2**64 - 1: undefined): beyond int64 they are refused naming the record. An
    order id of 2**63 or more is valid and is stored exactly (it used to turn into a float)."""
    import pyarrow.parquet as pq

    from tests.ingest.test_databento import BID, A, S, book_of_two, mbo, t, write_dbn

    for record, column in ((mbo(A, BID, 103, 4798.0, 1, S + 3000, 2**64 - 1), "ts_recv"),
                           (mbo(A, BID, 103, 4798.0, 1, 2**63, S + 3000), "ts_event")):  # fmt: skip
        path = write_dbn(tmp_path / f"{column}.dbn", [*book_of_two(), record])
        refused(root, ["databento", str(path)], f"{path}, record 3", "timestamp-out-of-range", column)
    path = write_dbn(tmp_path / "ids.dbn", [*book_of_two(), mbo(A, BID, 2**64 - 1, 4798.0, 1, *t(3_000))])
    other = tmp_path / "canonical"
    out = cli(other, "data", "import", "databento", str(path))
    assert 0 == out.returncode and "" == out.stderr, out.stderr
    (orders,) = [p for p in other.rglob("*.parquet") if "feed=orders" in str(p)]
    assert 2**64 - 1 in pq.read_table(orders).column("order_id").to_pylist()


# -- the real samples: the evidence for refusing crossed quotes, and auto on real data --------------------


@pytest.mark.shared_data
def test_real_quotes_never_cross_or_lock(shared_data: Path) -> None:
    """The counts behind :func:`check_quotes` refusing crossed and locked quotes: none in 9,999 Tardis
    quotes nor in 66,089 + 53,992 Binance bookTicker messages; both import as they are."""
    tardis = pacsv.read_csv(shared_data / "tardis" / "tardis_quotes_binance-futures_BTCUSDT_2020-02-22.csv")
    bid, ask = tardis.column("bid_price").to_numpy(), tardis.column("ask_price").to_numpy()
    assert (9_999, 0) == (len(bid), int(np.count_nonzero(bid >= ask)))
    for symbol, quotes in (("btcusdt", 66_089), ("ethusdt", 53_992)):
        instrument = Instrument(venue="binance-futures", symbol=symbol.upper(), tick_size=0.01, lot_size=0.001)
        result = binance_futures.convert(shared_data / "binance-futures" / f"{symbol}_20240808.gz", instrument)
        (bbo,) = [f for f in result.feeds if f.feed == "bbo"]
        bids, asks = bbo.price[bbo.side == Side.BID], bbo.price[bbo.side == Side.ASK]
        assert (quotes, 0) == (len(bids), int(np.count_nonzero(bids >= asks)))
        check_quotes(bbo, instrument.tick_size)  # does not raise


@pytest.mark.shared_data
def test_real_sample_with_one_absurd_local_time_is_refused_not_shifted(shared_data: Path, tmp_path: Path) -> None:
    """The first 2,000 lines of the real BTCUSDT file import with ``auto`` (1.27 s); with line 1's local
    time 54.6 years earlier (a µs value in a ns file) or two days earlier, the import is refused naming
    line 1, and the storage holds only the good import."""
    with gzip.open(shared_data / "binance-futures" / "btcusdt_20240808.gz", "rt") as f:
        lines = [next(f).rstrip("\n") for _ in range(2_000)]
    root = tmp_path / "canonical"
    good = write_gz(tmp_path / "head.gz", lines)
    out = cli(root, "data", "import", "binance-futures", str(good), *BINANCE, "--id", "btc")
    assert 0 == out.returncode, out.stderr
    local, body = lines[0].split(" ", 1)
    for absurd, rule in ((int(local) // 1000, "timestamp-outside-calendar"),
                         (int(local) - 2 * 86_400 * 10**9, "local-ts-correction-too-large")):  # fmt: skip
        path = write_gz(tmp_path / "absurd.gz", [f"{absurd} {body}", *lines[1:]])
        refused(root, ["binance-futures", str(path), *BINANCE, "--id", "btc2"], f"{path}, line 1", rule)
    assert json.loads(cli(root, "data", "list", "--json").stdout)[0]["id"] == "btc"


BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
DERIBIT = ("--symbol", "BTC-PERPETUAL", "--tick-size", "0.5", "--lot-size", "10", "--venue", "deribit",
           "--contract-type", "inverse", "--contract-size", "10")  # fmt: skip


def book_line(us: int, snapshot: bool, side: str, price: str, amount: str) -> str:
    return f"deribit,BTC-PERPETUAL,{us},{us + 100},{str(snapshot).lower()},{side},{price},{amount}"


SNAPSHOT = [book_line(US0, True, "bid", "100.0", "10"), book_line(US0, True, "ask", "100.5", "10")]


@pytest.mark.parametrize(
    ("updates", "how"),
    [([book_line(US0 + 5, False, "bid", "101.0", "10")], "crossed"),
     ([book_line(US0 + 5, False, "ask", "100.0", "20")], "locked")],
    ids=["crossed", "locked"],
)  # fmt: skip
def test_a_book_update_that_crosses_or_locks_the_book_is_refused(root: Path, tmp_path: Path, updates, how) -> None:
    """Replayed from the snapshot, the update leaves best bid >= best ask: refused naming its line."""
    path = tmp_path / "book.csv"
    path.write_text("\n".join([BOOK_HEADER, *SNAPSHOT, *updates]) + "\n")
    refused(root, ["tardis", "--book", str(path), *DERIBIT], "line 4", "crossed-book", "crossed or locked")


def test_a_message_that_only_crosses_halfway_is_accepted(tmp_path: Path) -> None:
    """One message (one timestamp) raising the bid above the old ask and moving the ask up: whole, the book
    is not crossed, so it is promoted (the book is judged once a message is whole)."""
    path = tmp_path / "book.csv"
    moved = [book_line(US0 + 5, False, "bid", "101.0", "10"), book_line(US0 + 5, False, "ask", "100.5", "0"),
             book_line(US0 + 5, False, "ask", "101.5", "10")]  # fmt: skip
    path.write_text("\n".join([BOOK_HEADER, *SNAPSHOT, *moved]) + "\n")
    out = cli(tmp_path / "canonical", "data", "import", "tardis", "--book", str(path), *DERIBIT)
    assert 0 == out.returncode and "promoted" in out.stdout, out.stderr
