"""The Binance Futures importer: real-sample counts, agreement with hftbacktest, the pipeline, errors."""

from __future__ import annotations

import dataclasses
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hftlab.errors import DataError
from hftlab.ingest.binance_futures import CONVERTER_VERSION, convert
from hftlab.ingest.common import apply_local_ts_correction
from hftlab.storage import Catalog, IngestResult, Instrument, Kind, Side
from tests.conftest import tree_snapshot

SAMPLE = Path("binance-futures") / "btcusdt_20240808.gz"
SPEC: dict[str, Any] = {"venue": "binance-futures", "symbol": "BTCUSDT", "tick_size": 0.1, "lot_size": 0.001}

T0 = 1723161256298  # ms
L0 = 1723161255030314667  # ns


def sample_path(shared_data: Path) -> Path:
    path = shared_data / SAMPLE
    if not path.is_file():
        pytest.skip(f"sample {path} not found")
    return path


def feeds_of(result: IngestResult) -> dict[str, Any]:
    return {f.feed: f for f in result.feeds}


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def stream(event: str, **data: Any) -> str:
    """A combined-stream message line body for BTCUSDT."""
    stream_name = {"depthUpdate": "depth@0ms", "trade": "trade", "bookTicker": "bookTicker"}.get(event, event)
    return json.dumps({"stream": f"btcusdt@{stream_name}", "data": {"e": event, "s": "BTCUSDT", **data}})


def depth(t: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    return stream("depthUpdate", E=t + 1, T=t, U=1, u=2, pu=0, b=bids, a=asks)


def trade(t: int, p: str, q: str, m: bool, x: str = "MARKET") -> str:
    return stream("trade", E=t + 1, T=t, t=7, p=p, q=q, X=x, m=m)


def book_ticker(t: int) -> str:
    return stream("bookTicker", u=9, b="100.0", B="1.5", a="100.1", A="2.5", T=t, E=t)


GOOD_LINES = [
    f"{L0} " + depth(T0, [["100.0", "1.0"]], [["100.1", "2.0"]]),
    f"{L0 + 1} " + trade(T0 + 1, "100.1", "0.5", False),
    f"{L0 + 2} " + book_ticker(T0 + 2),
]


def raises_at(path: Path, rule: str, line: int, **spec: Any) -> DataError:
    with pytest.raises(DataError) as info:
        convert(path, Instrument(**(SPEC | spec)))
    err = info.value
    assert rule == err.rule
    assert str(path) == err.source
    assert f"line {line}" == err.location
    assert path.name in str(err)
    assert f"line {line}:" in str(err)
    return err


# -- the real sample ------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_sample_row_counts_match_a_plain_json_count(shared_data: Path) -> None:
    """Protects completeness: every depth level, MARKET trade, snapshot level and BBO of the file becomes a row."""
    path = sample_path(shared_data)
    counts = {"depth": 0, "trades": 0, "snapshot": 0, "bbo": 0}
    first_bid = None
    with gzip.open(path, "rt") as f:
        for text in f:
            ts, body = text.split(" ", 1)
            msg = json.loads(body)
            data = msg.get("data")
            if data is None:
                if "code" not in msg:
                    counts["snapshot"] += (1 + len(msg["bids"])) * bool(msg["bids"])
                    counts["snapshot"] += (1 + len(msg["asks"])) * bool(msg["asks"])
            elif data["e"] == "depthUpdate":
                counts["depth"] += len(data["b"]) + len(data["a"])
                if first_bid is None and data["b"]:
                    first_bid = (data["T"] * 1_000_000, int(ts), float(data["b"][0][0]), float(data["b"][0][1]))
            elif data["e"] == "trade":
                counts["trades"] += data["X"] == "MARKET"
            elif data["e"] == "bookTicker":
                counts["bbo"] += 2

    result = convert(path, Instrument(**SPEC))

    assert counts == {f.feed: len(f) for f in result.feeds}
    d = feeds_of(result)["depth"]
    assert first_bid == (int(d.exch_ts[0]), int(d.local_ts[0]), float(d.price[0]), float(d.qty[0]))
    assert (Kind.DEPTH, Side.BID) == (d.kind[0], d.side[0])
    assert "binance-futures" == result.lineage["converter"]
    assert CONVERTER_VERSION == result.lineage["converter_version"]
    assert [path.name] == [r["name"] for r in result.lineage["raw_inputs"]]


@pytest.mark.shared_data
def test_real_sample_agrees_with_hftbacktest_converter(shared_data: Path) -> None:
    """Protects semantic parity with hftbacktest's converter: same events, timestamps, prices, sides."""
    from hftbacktest.data.utils import binancefutures

    path = sample_path(shared_data)
    arr = binancefutures.convert(str(path), combined_stream=True, buffer_size=2_000_000)
    result = convert(path, Instrument(**SPEC))

    # hftbacktest's event-order correction duplicates some events into an EXCH-only and a LOCAL-only row;
    # each original event carries the EXCH_EVENT flag exactly once.
    exch_rows = arr[(arr["ev"] & (1 << 31)) != 0]
    hbt_kind = exch_rows["ev"] & 0xFF
    hbt_side = np.where(exch_rows["ev"] & (1 << 29), 1, np.where(exch_rows["ev"] & (1 << 28), -1, 0))
    ours = {
        Kind.DEPTH: feeds_of(result)["depth"],
        Kind.TRADE: feeds_of(result)["trades"],
        Kind.CLEAR: feeds_of(result)["snapshot"],
        Kind.SNAPSHOT: feeds_of(result)["snapshot"],
    }
    for kind, frame in ours.items():
        mine = frame.kind == kind
        theirs = hbt_kind == kind
        assert int(theirs.sum()) == int(mine.sum()), f"row count of kind {kind!r}"
        # Same multiset of (exch_ts, side, price, qty): sort both, compare column by column.
        a = (exch_rows["exch_ts"][theirs], hbt_side[theirs], exch_rows["px"][theirs], exch_rows["qty"][theirs])
        b = (frame.exch_ts[mine], frame.side[mine], frame.price[mine], frame.qty[mine])
        order_a, order_b = np.lexsort(a[::-1]), np.lexsort(b[::-1])
        for col_a, col_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(col_a[order_a], col_b[order_b])


@pytest.mark.shared_data
def test_real_sample_promotes_only_after_local_ts_correction(shared_data: Path, catalog: Catalog) -> None:
    """Protects the pipeline: the receive clock ~1.27 s behind is refused uncorrected and accepted corrected."""
    path = sample_path(shared_data)
    raw = convert(path, Instrument(**SPEC))
    corrected = IngestResult(
        instrument=raw.instrument,
        feeds=[dataclasses.replace(f) for f in raw.feeds],
        lineage=dict(raw.lineage),
    )

    before = tree_snapshot(catalog.root)
    with pytest.raises(DataError) as info:
        catalog.promote(raw, "btc")
    assert "local-before-exchange" == info.value.rule
    assert before == tree_snapshot(catalog.root)
    assert not (catalog.root / "btc").exists()

    offset = apply_local_ts_correction(corrected, "auto")
    assert 1_200_000_000 < offset < 1_300_000_000
    dataset, new = catalog.promote(corrected, "btc")
    assert new
    assert offset == dataset.manifest.lineage["local_ts_correction_ns"]
    assert sum(len(f) for f in raw.feeds) == sum(p.rows for p in dataset.manifest.partitions)
    catalog.verify("btc")

    # A refused promotion leaves existing storage untouched as well.
    before = tree_snapshot(catalog.root)
    with pytest.raises(DataError) as info:
        catalog.promote(raw, "btc-raw")
    assert "local-before-exchange" == info.value.rule
    assert before == tree_snapshot(catalog.root)
    assert not (catalog.root / "btc-raw").exists()


# -- semantics on a hand-made file ----------------------------------------------------------------


def test_hand_made_file_rows_lines_and_lineage(tmp_path: Path) -> None:
    """Protects the mapping rules: row order, sides, CLEAR price, skipped lines, line numbers, lineage."""
    snap = {"lastUpdateId": 5, "E": T0 + 4, "T": T0 + 3, "bids": [["99.9", "1"], ["99.8", "2"]], "asks": []}
    lines = [
        f"{L0} " + depth(T0, [["100.0", "1.0"], ["99.9", "0"]], [["100.1", "2.0"]]),  # 1
        f"{L0 + 1} " + trade(T0 + 1, "100.1", "0.5", False),  # 2: buyer-initiated
        f"{L0 + 2} " + trade(T0 + 1, "100.0", "0.25", True),  # 3: seller-initiated
        f"{L0 + 3} " + trade(T0 + 1, "100.0", "9", True, x="INSURANCE_FUND"),  # 4: skipped
        f"{L0 + 4} " + json.dumps({"code": -1, "msg": "disconnected"}),  # 5: collector error
        f"{L0 + 5} " + stream("markPriceUpdate", E=T0 + 2, T=T0 + 2, p="100", i="100", r="0.0001"),  # 6
        f"{L0 + 6} " + json.dumps(snap),  # 7
        f"{L0 + 7} " + book_ticker(T0 + 5),  # 8
    ]
    path = write_gz(tmp_path / "hand.gz", lines)

    result = convert(path, Instrument(**SPEC))

    ms = 1_000_000
    rows = {
        f.feed: list(
            zip(
                f.exch_ts.tolist(),
                f.local_ts.tolist(),
                f.kind.tolist(),
                f.side.tolist(),
                f.price.tolist(),
                f.qty.tolist(),
                f.line.tolist(),
                strict=True,
            )
        )
        for f in result.feeds
    }
    assert {
        "depth": [
            (T0 * ms, L0, 1, 1, 100.0, 1.0, 1),
            (T0 * ms, L0, 1, 1, 99.9, 0.0, 1),
            (T0 * ms, L0, 1, -1, 100.1, 2.0, 1),
        ],
        "trades": [
            ((T0 + 1) * ms, L0 + 1, 2, 1, 100.1, 0.5, 2),
            ((T0 + 1) * ms, L0 + 2, 2, -1, 100.0, 0.25, 3),
        ],
        "snapshot": [
            ((T0 + 3) * ms, L0 + 6, 3, 1, 99.8, 0.0, 7),
            ((T0 + 3) * ms, L0 + 6, 4, 1, 99.9, 1.0, 7),
            ((T0 + 3) * ms, L0 + 6, 4, 1, 99.8, 2.0, 7),
        ],
        "bbo": [
            ((T0 + 5) * ms, L0 + 7, 5, 1, 100.0, 1.5, 8),
            ((T0 + 5) * ms, L0 + 7, 5, -1, 100.1, 2.5, 8),
        ],
    } == rows
    assert ["snapshot", "trades", "depth", "bbo"] == list(rows)  # every L2 feed, in Processing Order rank
    assert {str(path)} == {f.source for f in result.feeds}
    assert {
        "symbol": "BTCUSDT",
        "ignored_messages": {"markPriceUpdate": 1, "trade X=INSURANCE_FUND": 1},
        "skipped_error_lines": 1,
    } == result.lineage["params"]


def test_feeds_without_rows_are_left_out(tmp_path: Path) -> None:
    """Protects the contract that an importer returns no empty feed frames."""
    path = write_gz(tmp_path / "trades-only.gz", [f"{L0} " + trade(T0, "100.0", "1", False)])
    assert ["trades"] == [f.feed for f in convert(path, Instrument(**SPEC)).feeds]


# -- errors ---------------------------------------------------------------------------------------


def test_truncated_gzip_names_the_line_where_input_breaks_off(tmp_path: Path) -> None:
    """Protects against silently importing a partial download: a cut gzip stream is `unreadable-input`."""
    lines = [
        f"{L0 + i} " + trade(T0 + i, f"{100 + i % 97}.{i % 10}", f"{i % 13}.{i % 7}", i % 2 == 0) for i in range(3000)
    ]
    full = write_gz(tmp_path / "full.gz", lines).read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(full[: len(full) // 2])
    # Independent count of the lines complete in the surviving bytes (zlib tolerates a missing end).
    complete = zlib.decompressobj(wbits=31).decompress(full[: len(full) // 2]).count(b"\n")
    assert 0 < complete < len(lines)

    err = raises_at(cut, "unreadable-input", complete + 1)
    assert "EOFError" in err.detail


def test_gzip_missing_only_its_trailer_is_unreadable(tmp_path: Path) -> None:
    """Protects the CRC/size check: cutting the last bytes of a gzip file is refused, after its last line."""
    full = write_gz(tmp_path / "full.gz", GOOD_LINES).read_bytes()
    cut = tmp_path / "no-trailer.gz"
    cut.write_bytes(full[:-4])
    raises_at(cut, "unreadable-input", len(GOOD_LINES) + 1)


def test_not_gzip_is_unreadable(tmp_path: Path) -> None:
    """Protects against reading an uncompressed or foreign file: it is `unreadable-input` at line 1."""
    path = tmp_path / "plain.gz"
    path.write_text("\n".join(GOOD_LINES) + "\n")
    raises_at(path, "unreadable-input", 1)


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    """Protects the error contract for a wrong path: a DataError naming the file, not a bare OSError."""
    path = tmp_path / "absent.gz"
    with pytest.raises(DataError) as info:
        convert(path, Instrument(**SPEC))
    assert "unreadable-input" == info.value.rule
    assert path.name in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("no-space-at-all", id="no-space"),
        pytest.param("17231612550303x4667 {}", id="non-integer-timestamp"),
        pytest.param("-1723161255030314667 {}", id="negative-timestamp"),
        pytest.param(f"{L0} " + '{"stream": "btcusdt@trade", "data": {', id="invalid-json"),
        pytest.param(f"{L0} [1, 2]", id="json-not-an-object"),
    ],
)
def test_malformed_line(tmp_path: Path, bad: str) -> None:
    """Protects against guessing at a damaged line: it is `malformed-record` naming its line."""
    path = write_gz(tmp_path / "malformed.gz", [*GOOD_LINES[:2], bad, GOOD_LINES[2]])
    raises_at(path, "malformed-record", 3)


def test_missing_key_is_wrong_type_naming_the_key(tmp_path: Path) -> None:
    """Protects against KeyError tracebacks: a trade without its price is `wrong-type` naming key 'p'."""
    body = json.loads(trade(T0, "100.0", "1", False))
    del body["data"]["p"]
    path = write_gz(tmp_path / "missing.gz", [GOOD_LINES[0], f"{L0} " + json.dumps(body)])
    err = raises_at(path, "wrong-type", 2)
    assert "missing key 'p'" in err.detail


def test_non_numeric_price_is_wrong_type_naming_the_key(tmp_path: Path) -> None:
    """Protects against ValueError tracebacks: a depth level with a non-numeric price names key 'a'."""
    bad = f"{L0} " + depth(T0, [["100.0", "1"]], [["100.1", "1"], ["abc", "1"]])
    path = write_gz(tmp_path / "price.gz", [*GOOD_LINES, bad])
    err = raises_at(path, "wrong-type", 4)
    assert "key 'a' level 1" in err.detail


def test_non_integer_exchange_timestamp_is_wrong_type(tmp_path: Path) -> None:
    """Protects the timestamp unit: a non-integer `T` is refused instead of being truncated."""
    path = write_gz(tmp_path / "t.gz", [f"{L0} " + trade(T0, "100.0", "1", False).replace(f'"T": {T0}', '"T": "x"')])
    err = raises_at(path, "wrong-type", 1)
    assert "'T'" in err.detail


def test_symbol_mismatch(tmp_path: Path) -> None:
    """Protects against mixing instruments: a message for another symbol is `symbol-mismatch`."""
    other = f"{L0} " + trade(T0, "3000.0", "1", False).replace('"BTCUSDT"', '"ETHUSDT"')
    path = write_gz(tmp_path / "mixed.gz", [*GOOD_LINES, other])
    err = raises_at(path, "symbol-mismatch", 4)
    assert "ETHUSDT" in err.detail
