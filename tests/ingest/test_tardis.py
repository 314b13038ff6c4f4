"""The Tardis.dev CSV importer: real samples, agreement with hftbacktest, snapshot blocks, errors."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hftlab.errors import DataError
from hftlab.ingest.common import apply_local_ts_correction
from hftlab.ingest.tardis import CONVERTER_VERSION, convert
from hftlab.storage import Catalog, IngestResult, Instrument, Kind, Side
from tests.conftest import tree_snapshot

TRADES = Path("tardis") / "tardis_trades_binance-futures_BTCUSDT_2020-02-22.csv"
QUOTES = Path("tardis") / "tardis_quotes_binance-futures_BTCUSDT_2020-02-22.csv"
BOOK = Path("tardis") / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"

BINANCE = Instrument(symbol="BTCUSDT", tick_size=0.01, lot_size=0.001, venue="binance-futures")
DERIBIT = Instrument(
    symbol="BTC-PERPETUAL", tick_size=0.5, lot_size=10.0, venue="deribit", contract_type="inverse", contract_size=10.0
)
SPEC = Instrument(symbol="ABC", tick_size=0.5, lot_size=1.0, venue="test")

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
QUOTES_HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


def sample(shared_data: Path, rel: Path) -> Path:
    path = shared_data / rel
    if not path.is_file():
        pytest.skip(f"sample {path} not found")
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def feeds_of(result: IngestResult) -> dict[str, Any]:
    return {f.feed: f for f in result.feeds}


def columns(frame: Any) -> list[tuple[Any, ...]]:
    """Rows of a frame as plain tuples (exch_ts, local_ts, kind, side, price, qty, line)."""
    return [
        (int(e), int(lo), int(k), int(s), float(p), float(q), int(n))
        for e, lo, k, s, p, q, n in zip(
            frame.exch_ts, frame.local_ts, frame.kind, frame.side, frame.price, frame.qty, frame.line, strict=True
        )
    ]


def raises(rule: str, path: Path, location: str | None, **inputs: Any) -> DataError:
    with pytest.raises(DataError) as info:
        convert(**inputs, instrument=SPEC)
    err = info.value
    assert rule == err.rule
    assert str(path) == err.source
    assert location == err.location
    assert path.name in str(err)
    return err


# -- the real samples -----------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_trades_sample_count_and_first_row(shared_data: Path) -> None:
    """Protects trade parsing: 9,999 rows, µs -> ns, buy -> BID, values and line equal the CSV text."""
    path = sample(shared_data, TRADES)
    text = csv_rows(path)
    result = convert(trades=path, instrument=BINANCE)

    trades = feeds_of(result)["trades"]
    assert ["trades"] == [f.feed for f in result.feeds]
    assert 9_999 == len(trades)
    first = text[0]
    expected_first = (
        int(first["timestamp"]) * 1000,
        int(first["local_timestamp"]) * 1000,
        int(Kind.TRADE),
        int({"buy": Side.BID, "sell": Side.ASK}[first["side"]]),
        float(first["price"]),
        float(first["amount"]),
        2,
    )
    assert expected_first == columns(trades)[0]
    assert sum(r["side"] == "buy" for r in text) == int((trades.side == Side.BID).sum())
    assert sum(r["side"] == "sell" for r in text) == int((trades.side == Side.ASK).sum())
    assert (len(text) + 1) == int(trades.line[-1])
    assert "tardis" == result.lineage["converter"]
    assert CONVERTER_VERSION == result.lineage["converter_version"]
    assert [path.name] == [r["name"] for r in result.lineage["raw_inputs"]]


@pytest.mark.shared_data
def test_real_quotes_sample_gives_a_bid_and_an_ask_row_per_quote(shared_data: Path) -> None:
    """Protects quote parsing: two BBO rows (bid then ask) per line that has both sides."""
    path = sample(shared_data, QUOTES)
    text = csv_rows(path)
    both = sum(all(r[c] for c in ("ask_amount", "ask_price", "bid_price", "bid_amount")) for r in text)
    result = convert(quotes=path, instrument=BINANCE)

    bbo = feeds_of(result)["bbo"]
    assert 2 * both == len(bbo)
    first = text[0]
    ts, local = int(first["timestamp"]) * 1000, int(first["local_timestamp"]) * 1000
    expected = [
        (ts, local, int(Kind.BBO), int(Side.BID), float(first["bid_price"]), float(first["bid_amount"]), 2),
        (ts, local, int(Kind.BBO), int(Side.ASK), float(first["ask_price"]), float(first["ask_amount"]), 2),
    ]
    assert expected == columns(bbo)[:2]


@pytest.mark.shared_data
def test_real_deribit_book_sample_is_one_snapshot_block(shared_data: Path) -> None:
    """Protects snapshot blocks: the file's 15 ask snapshot rows get one ask CLEAR at the highest ask."""
    path = sample(shared_data, BOOK)
    text = csv_rows(path)
    assert 15 == len(text)
    assert {("true", "ask")} == {(r["is_snapshot"], r["side"]) for r in text}
    result = convert(book=path, instrument=DERIBIT)

    assert ["snapshot"] == [f.feed for f in result.feeds]  # no incremental rows: no depth feed
    snap = feeds_of(result)["snapshot"]
    ts, local = int(text[0]["timestamp"]) * 1000, int(text[0]["local_timestamp"]) * 1000
    highest = max(float(r["price"]) for r in text)
    highest_line = 2 + [float(r["price"]) for r in text].index(highest)
    expected = [(ts, local, int(Kind.CLEAR), int(Side.ASK), highest, 0.0, highest_line)] + [
        (
            int(r["timestamp"]) * 1000,
            int(r["local_timestamp"]) * 1000,
            int(Kind.SNAPSHOT),
            int(Side.ASK),
            float(r["price"]),
            float(r["amount"]),
            line,
        )
        for line, r in enumerate(text, start=2)
    ]
    assert expected == columns(snap)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("role", "rel", "spec"), [("trades", TRADES, BINANCE), ("quotes", QUOTES, BINANCE), ("book", BOOK, DERIBIT)]
)
def test_real_samples_promote_without_correction(
    shared_data: Path, catalog: Catalog, role: str, rel: Path, spec: Instrument
) -> None:
    """Protects the pipeline: each sample (receive clock after the exchange's) promotes with correction 0."""
    path = sample(shared_data, rel)
    result = convert(**{role: path}, instrument=spec)
    assert 0 == apply_local_ts_correction(result, 0)

    dataset, new = catalog.promote(result, "x")

    assert new
    assert sum(len(f) for f in result.feeds) == sum(p.rows for p in dataset.manifest.partitions)
    assert 0 == dataset.manifest.lineage["local_ts_correction_ns"]
    catalog.verify("x")


@pytest.mark.shared_data
def test_real_trades_agree_with_hftbacktest_tardis_converter(shared_data: Path) -> None:
    """Protects semantic parity with hftbacktest's tardis converter on trades: timestamps, sides, prices."""
    from hftbacktest.data.utils import tardis as hbt_tardis

    path = sample(shared_data, TRADES)
    arr = hbt_tardis.convert([str(path)], buffer_size=20_000)
    trades = feeds_of(convert(trades=path, instrument=BINANCE))["trades"]

    exch_rows = arr[(arr["ev"] & (1 << 31)) != 0]
    hbt_side = np.where(exch_rows["ev"] & (1 << 29), 1, np.where(exch_rows["ev"] & (1 << 28), -1, 0))
    assert len(exch_rows) == len(trades)
    # The sample's feed latency is positive, so hftbacktest's local-timestamp correction is a no-op.
    for theirs, ours in [
        (exch_rows["exch_ts"], trades.exch_ts),
        (exch_rows["local_ts"], trades.local_ts),
        (hbt_side, trades.side),
        (exch_rows["px"], trades.price),
        (exch_rows["qty"], trades.qty),
    ]:
        assert theirs.tolist() == ours.tolist()


# -- semantics on hand-made files ----------------------------------------------------------------


def test_book_snapshot_blocks_clear_rows_and_depth(tmp_path: Path) -> None:
    """Protects book semantics: per block a CLEAR per side (lowest bid / highest ask) then its rows; rest is depth."""
    path = write(
        tmp_path / "book.csv",
        BOOK_HEADER,
        [
            "t,ABC,100,150,true,ask,10.5,1",  # line 2: block 1
            "t,ABC,100,150,true,bid,10,2",  # 3
            "t,ABC,100,150,true,ask,11,3",  # 4
            "t,ABC,100,150,true,bid,9.5,4",  # 5
            "t,ABC,200,250,false,bid,10,0",  # 6: depth
            "t,ABC,300,350,false,ask,10.5,5",  # 7: depth
            "t,ABC,400,450,true,bid,9,6",  # 8: block 2 (bids only)
            "t,ABC,400,450,true,bid,8.5,7",  # 9
            "t,ABC,500,550,false,bid,9,1",  # 10: depth
            "t,ABC,600,650,true,ask,12,8",  # 11: block 3, ends the file
        ],
    )
    result = convert(book=path, instrument=SPEC)

    feeds = feeds_of(result)
    assert ["snapshot", "depth"] == [f.feed for f in result.feeds]
    c, s, b, a = int(Kind.CLEAR), int(Kind.SNAPSHOT), int(Side.BID), int(Side.ASK)
    assert [
        (100_000, 150_000, c, b, 9.5, 0.0, 5),  # CLEAR line: the row holding its price
        (100_000, 150_000, c, a, 11.0, 0.0, 4),
        (100_000, 150_000, s, a, 10.5, 1.0, 2),
        (100_000, 150_000, s, b, 10.0, 2.0, 3),
        (100_000, 150_000, s, a, 11.0, 3.0, 4),
        (100_000, 150_000, s, b, 9.5, 4.0, 5),
        (400_000, 450_000, c, b, 8.5, 0.0, 9),
        (400_000, 450_000, s, b, 9.0, 6.0, 8),
        (400_000, 450_000, s, b, 8.5, 7.0, 9),
        (600_000, 650_000, c, a, 12.0, 0.0, 11),
        (600_000, 650_000, s, a, 12.0, 8.0, 11),
    ] == columns(feeds["snapshot"])
    d = int(Kind.DEPTH)
    assert [
        (200_000, 250_000, d, b, 10.0, 0.0, 6),
        (300_000, 350_000, d, a, 10.5, 5.0, 7),
        (500_000, 550_000, d, b, 9.0, 1.0, 10),
    ] == columns(feeds["depth"])
    assert str(path) == feeds["depth"].source


def test_trades_sides_and_quotes_with_a_missing_side(tmp_path: Path) -> None:
    """Protects side mapping (buy/sell/unknown) and that a quote side with an empty field is skipped."""
    trades = write(
        tmp_path / "trades.csv",
        TRADES_HEADER,
        ["t,ABC,1,2,a,buy,10,1", "t,ABC,3,4,b,sell,10.5,2", "t,ABC,5,6,c,unknown,11,3"],
    )
    quotes = write(
        tmp_path / "quotes.csv",
        QUOTES_HEADER,
        ["t,ABC,1,2,1,10.5,10,2", "t,ABC,3,4,,,10,3", "t,ABC,5,6,4,11,10,", "t,ABC,7,8,5,11.5,,"],
    )
    result = convert(trades=trades, quotes=quotes, instrument=SPEC)

    feeds = feeds_of(result)
    assert [int(Side.BID), int(Side.ASK), int(Side.NONE)] == feeds["trades"].side.tolist()
    assert [2, 3, 4] == feeds["trades"].line.tolist()
    bbo = int(Kind.BBO)
    assert [
        (1000, 2000, bbo, int(Side.BID), 10.0, 2.0, 2),
        (1000, 2000, bbo, int(Side.ASK), 10.5, 1.0, 2),
        (3000, 4000, bbo, int(Side.BID), 10.0, 3.0, 3),
        (5000, 6000, bbo, int(Side.ASK), 11.0, 4.0, 4),
        (7000, 8000, bbo, int(Side.ASK), 11.5, 5.0, 5),
    ] == columns(feeds["bbo"])
    assert {"trades": trades.name, "quotes": quotes.name} == result.lineage["params"]["files"]


def test_gzipped_csv_reads_like_plain_csv(tmp_path: Path) -> None:
    """Protects .csv.gz input: the same rows and lines as the uncompressed file."""
    rows = ["t,ABC,1,2,a,buy,10,1", "t,ABC,3,4,b,sell,10.5,2"]
    plain = write(tmp_path / "trades.csv", TRADES_HEADER, rows)
    packed = tmp_path / "trades.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    expected = columns(convert(trades=plain, instrument=SPEC).feeds[0])
    assert expected == columns(convert(trades=packed, instrument=SPEC).feeds[0])


# -- importer errors ------------------------------------------------------------------------------


def test_non_numeric_price_names_file_line_and_column(tmp_path: Path) -> None:
    """Protects wrong-type errors: pyarrow's message has no line, so the importer finds line 4 itself."""
    path = write(
        tmp_path / "trades.csv",
        TRADES_HEADER,
        ["t,ABC,1,2,a,buy,10,1", "t,ABC,3,4,b,buy,10.5,1", "t,ABC,5,6,c,buy,1O.5,1", "t,ABC,7,8,d,buy,x,1"],
    )
    err = raises("wrong-type", path, "line 4", trades=path)
    assert "'price'" in str(err)
    assert "'1O.5'" in str(err)
    assert f"{path}, line 4:" in str(err)


def test_first_bad_line_wins_across_columns(tmp_path: Path) -> None:
    """Protects locating: the earliest bad line wins (timestamp on line 3, not the amount on line 4)."""
    path = write(
        tmp_path / "book.csv",
        BOOK_HEADER,
        ["t,ABC,1,2,false,bid,10,1", "t,ABC,1.5,2,false,bid,10,1", "t,ABC,3,4,false,bid,10,one"],
    )
    err = raises("wrong-type", path, "line 3", book=path)
    assert "'timestamp'" in str(err)


@pytest.mark.parametrize(
    ("row", "column"),
    [("t,ABC,1,2,a,buy,,1", "price"), ("t,ABC,,2,a,buy,10,1", "timestamp"), ("t,ABC,1,2,a,buy,10,", "amount")],
)
def test_empty_required_value_is_wrong_type(tmp_path: Path, row: str, column: str) -> None:
    """Protects required fields: an empty price, timestamp or amount names its line and column."""
    path = write(tmp_path / "trades.csv", TRADES_HEADER, ["t,ABC,1,2,a,buy,10,1", row])
    err = raises("wrong-type", path, "line 3", trades=path)
    assert f"'{column}'" in str(err)


def test_bad_is_snapshot_value_is_wrong_type(tmp_path: Path) -> None:
    """Protects is_snapshot parsing: only true/false are accepted, naming the line."""
    path = write(tmp_path / "book.csv", BOOK_HEADER, ["t,ABC,1,2,false,bid,10,1", "t,ABC,1,2,yes,bid,10,1"])
    err = raises("wrong-type", path, "line 3", book=path)
    assert "'is_snapshot'" in str(err)


def test_missing_column_is_named(tmp_path: Path) -> None:
    """Protects header checks: a file without 'amount' is refused naming that column."""
    path = write(
        tmp_path / "trades.csv", "exchange,symbol,timestamp,local_timestamp,id,side,price", ["t,ABC,1,2,a,buy,10"]
    )
    err = raises("wrong-type", path, "line 1", trades=path)
    assert "'amount'" in str(err)


def test_row_with_wrong_field_count_is_malformed(tmp_path: Path) -> None:
    """Protects parse errors: a short line (e.g. a truncated last line) is named by its line number."""
    path = write(tmp_path / "trades.csv", TRADES_HEADER, ["t,ABC,1,2,a,buy,10,1", "t,ABC,3,4,b,buy,10,1", "t,ABC,5,6"])
    err = raises("malformed-row", path, "line 4", trades=path)
    assert "got 4" in str(err)


def test_blank_line_is_malformed_and_counted(tmp_path: Path) -> None:
    """Protects line numbering: a blank line is named as such, at its own line, not skipped silently."""
    path = write(tmp_path / "trades.csv", TRADES_HEADER, ["t,ABC,1,2,a,buy,10,1", "", "t,ABC,3,4,b,buy,10,1"])
    err = raises("malformed-row", path, "line 3", trades=path)
    assert "blank line" in str(err)


def truncated_gz(tmp_path: Path) -> Path:
    body = "\n".join([TRADES_HEADER] + [f"t,ABC,{i},{i + 1},{i},buy,10,1" for i in range(1, 20_000)]) + "\n"
    packed = gzip.compress(body.encode())
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    return path


def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "trades.csv"
    path.write_bytes(bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8)))
    return path


@pytest.mark.parametrize(
    "make",
    [lambda tmp: tmp / "absent.csv", truncated_gz, garbage, lambda tmp: tmp],
    ids=["missing", "truncated-gz", "binary-garbage", "directory"],
)
def test_unreadable_input(tmp_path: Path, make: Any) -> None:
    """Protects unreadable-input: missing file, truncated gzip, binary garbage or a directory name the file."""
    path = make(tmp_path)
    raises("unreadable-input", path, None, trades=path)


def test_symbol_mismatch_names_the_line(tmp_path: Path) -> None:
    """Protects against importing another instrument's rows: the first foreign symbol's line is named."""
    path = write(tmp_path / "trades.csv", TRADES_HEADER, ["t,ABC,1,2,a,buy,10,1", "t,XYZ,3,4,b,buy,10,1"])
    err = raises("symbol-mismatch", path, "line 3", trades=path)
    assert "'XYZ'" in str(err)


@pytest.mark.parametrize(
    ("name", "header", "row"),
    [("trades.csv", TRADES_HEADER, "t,ABC,3,4,b,bid,10,1"), ("book.csv", BOOK_HEADER, "t,ABC,3,4,false,up,10,1")],
)
def test_unknown_side_value_is_refused(tmp_path: Path, name: str, header: str, row: str) -> None:
    """Protects side mapping: a side the file kind does not define is an error, not a guess."""
    good = "t,ABC,1,2,a,buy,10,1" if name == "trades.csv" else "t,ABC,1,2,false,bid,10,1"
    path = write(tmp_path / name, header, [good, row])
    raises("invalid-side", path, "line 3", **{name.removesuffix(".csv"): path})


def test_nanosecond_timestamps_are_refused_not_overflowed(tmp_path: Path) -> None:
    """Protects the µs -> ns conversion: a value that would overflow int64 ns is an error naming the line."""
    path = write(
        tmp_path / "trades.csv", TRADES_HEADER, ["t,ABC,1,2,a,buy,10,1", "t,ABC,1582329602111000000,2,a,buy,10,1"]
    )
    raises("timestamp-out-of-range", path, "line 3", trades=path)


def test_no_input_or_no_rows_is_empty_input(tmp_path: Path) -> None:
    """Protects empty-input: no file given, or only a header line."""
    with pytest.raises(DataError) as info:
        convert(instrument=SPEC)
    assert "empty-input" == info.value.rule
    path = write(tmp_path / "trades.csv", TRADES_HEADER, [])
    raises("empty-input", path, None, trades=path)


# -- validation rules reached through the importer ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "header", "rows", "rule", "line"),
    [
        ("trades.csv", TRADES_HEADER, ["t,ABC,1,2,a,buy,10,1", "t,ABC,3,4,b,buy,10,-1"], "negative-quantity", 3),
        ("book.csv", BOOK_HEADER, ["t,ABC,1,2,true,bid,10,1", "t,ABC,3,4,false,bid,9,-2"], "negative-quantity", 3),
        ("book.csv", BOOK_HEADER, ["t,ABC,1,2,true,bid,10,1", "t,ABC,1,2,true,ask,10.3,1"], "price-off-tick", 3),
        ("trades.csv", TRADES_HEADER, ["t,ABC,5,6,a,buy,10,1", "t,ABC,3,7,b,buy,10,1"], "timestamp-backwards", 3),
        ("quotes.csv", QUOTES_HEADER, ["t,ABC,1,2,1,11,10,1", "t,ABC,5,4,1,11,10,1"], "local-before-exchange", 3),
    ],
)
def test_validation_rule_names_csv_file_and_line_and_writes_nothing(
    tmp_path: Path, catalog: Catalog, name: str, header: str, rows: list[str], rule: str, line: int
) -> None:
    """Protects error provenance: a validation failure at promotion names the CSV file and line; nothing is stored."""
    path = write(tmp_path / name, header, rows)
    result = convert(**{name.removesuffix(".csv"): path}, instrument=SPEC)

    with pytest.raises(DataError) as info:
        catalog.promote(result, "x")

    assert rule == info.value.rule
    assert str(path) == info.value.source
    assert f"line {line}" == info.value.location
    assert f"{path}, line {line}:" in str(info.value)
    assert {} == tree_snapshot(catalog.root)
    assert not (catalog.root / "x").exists()
