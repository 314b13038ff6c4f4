"""The Databento MBO importer: the real ESH4 sample through the CLI (counts per action against databento_dbn's
own decoder, the derived start-of-day book), a hand-made file with every action (exact canonical rows), each
refusal (rule, file and record named, nothing promoted) and the instrument arguments."""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import numpy as np
import pyarrow.parquet as pq
import pytest

from hftlab.cli import build_parser, main
from hftlab.errors import ConfigError, DataError, HftlabError
from hftlab.ingest.common import finish_import
from hftlab.ingest.databento import convert
from hftlab.storage import Catalog
from hftlab.storage.schema import Kind
from hftlab.storage.validate import validate
from tests.conftest import SHARED_DATA

HFTLAB = str(Path(sys.executable).with_name("hftlab"))
SAMPLE = SHARED_DATA / "databento" / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"

ESH4, ESM4 = 17077, 17078
DAY = datetime.date(2023, 12, 24)
#: ts_recv of the hand-made file's snapshot block; its records carry an entry time an hour before.
S = 1_703_422_805_000_000_000
OLD = S - 3_600_000_000_000
SNAP, LAST, BAD_TS = dbn.F_SNAPSHOT, dbn.F_LAST, dbn.F_BAD_TS_RECV
A, C, M, F, T, R, N = (dbn.Action.ADD, dbn.Action.CANCEL, dbn.Action.MODIFY, dbn.Action.FILL, dbn.Action.TRADE,
                       dbn.Action.CLEAR, dbn.Action.NONE)  # fmt: skip
BID, ASK, NONE = dbn.Side.BID, dbn.Side.ASK, dbn.Side.NONE


# -- writing DBN files --------------------------------------------------------------------------------------


@dataclass
class _Interval:
    start_date: datetime.date
    end_date: datetime.date
    symbol: str


@dataclass
class _Mapping:
    """A ``databento_dbn`` SymbolMapping: raw symbol -> instrument id over date intervals."""

    raw_symbol: str
    intervals: list[_Interval]


def mbo(
    action: dbn.Action,
    side: dbn.Side,
    order_id: int,
    price: float | None,
    size: int,
    ts_event: int,
    ts_recv: int,
    flags: int = 0,
    instrument_id: int = ESH4,
) -> bytes:
    """One MBO record as ``databento_dbn`` encodes it (price None: undefined, as on R and N records)."""
    fixed = dbn.UNDEF_PRICE if price is None else round(price * 1_000_000_000)
    msg = dbn.MBOMsg(publisher_id=1, instrument_id=instrument_id, ts_event=ts_event, order_id=order_id, price=fixed,
                     size=size, action=action, side=side, ts_recv=ts_recv, flags=flags, channel_id=0, sequence=1,
                     ts_in_delta=0)  # fmt: skip
    return bytes(msg)


def write_dbn(path: Path, records: list[bytes], symbols: dict[str, int] | None = None) -> Path:
    """A DBN file of ``records`` after GLBX.MDP3 MBO metadata mapping ``symbols`` (raw symbol -> id)."""
    symbols = {"ESH4": ESH4} if symbols is None else symbols
    mappings = [_Mapping(s, [_Interval(DAY, DAY + datetime.timedelta(days=1), str(i))]) for s, i in symbols.items()]
    metadata = dbn.Metadata(dataset="GLBX.MDP3", schema=dbn.Schema.MBO, start=OLD, stype_in=dbn.SType.RAW_SYMBOL,
                            stype_out=dbn.SType.INSTRUMENT_ID, symbols=list(symbols), partial=[], not_found=[],
                            mappings=mappings)  # fmt: skip
    path.write_bytes(bytes(metadata.encode()) + b"".join(records))
    return path


def t(offset: int, latency: int = 100) -> tuple[int, int]:
    """(ts_event, ts_recv) of a live record ``offset`` ns after the snapshot."""
    return S + offset, S + offset + latency


def book_of_two() -> list[bytes]:
    """Records 1-2: a bid order 101 (5 @ 4799) and an ask order 102 (3 @ 4800)."""
    return [mbo(A, BID, 101, 4799.0, 5, *t(1_000)), mbo(A, ASK, 102, 4800.0, 3, *t(2_000))]


# -- importing and reading back -----------------------------------------------------------------------------


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HFTLAB, "--root", str(root), "data", *args], capture_output=True, text=True)


def imported(root: Path, path: Path, *args: str) -> str:
    """Import ``path`` with the CLI; returns its output."""
    done = cli(root, "import", "databento", str(path), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("promoted: GLBX.MDP3-ESH4 version ")
    return done.stdout


def stored(root: Path, dataset_id: str, feed: str) -> dict[str, np.ndarray]:
    """The stored rows of ``feed`` (every partition), in Processing Order."""
    d = Catalog(root).resolve(dataset_id)
    tables = [pq.read_table(d.path / p.path) for p in d.manifest.partitions if p.feed == feed]
    assert tables, f"no '{feed}' partition"
    cols = {c: np.concatenate([tb.column(c).to_numpy() for tb in tables]) for c in tables[0].column_names}
    order = np.argsort(cols["seq"], kind="stable")
    return {c: v[order] for c, v in cols.items()}


def rows(cols: dict[str, np.ndarray], names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return [tuple(v.item() for v in row) for row in zip(*(cols[n] for n in names), strict=True)]


ORDER_COLUMNS = ("kind", "side", "price", "qty", "order_id", "exch_ts", "local_ts")
L2_COLUMNS = ("kind", "side", "price", "qty", "exch_ts", "local_ts")


# -- the real sample ----------------------------------------------------------------------------------------


def decoded_sample() -> list[Any]:
    """The sample's MBO records, decoded by databento_dbn (independently of the importer)."""
    decoder = dbn.DBNDecoder(compression=dbn.Compression.ZSTD)
    decoder.write(SAMPLE.read_bytes())
    records = decoder.decode()
    assert isinstance(records[0], dbn.Metadata)
    return records[1:]


@pytest.mark.shared_data
def test_real_sample_counts_book_and_instrument(tmp_path: Path) -> None:
    """The ESH4 start-of-day book: one stored row per record and action (plus the clear inserted before the
    snapshot), the instrument from the file, and a snapshot feed whose levels add up to the added orders."""
    if not SAMPLE.is_file():
        pytest.skip(f"real Databento sample not found at {SAMPLE} (a user's clone has no ../shared/data)")
    records = decoded_sample()
    actions = Counter(str(r.action) for r in records)
    assert actions == {"A": 8_725}  # golden: the sample is a start-of-day snapshot only
    assert {r.instrument_id for r in records} == {ESH4}
    assert all(r.flags & SNAP and r.flags & BAD_TS for r in records)

    root = tmp_path / "canonical"
    out = imported(root, SAMPLE)
    assert "tick size 0.25 inferred" in out
    dataset = Catalog(root).resolve("GLBX.MDP3-ESH4")
    m = dataset.manifest
    assert (m.instrument.venue, m.instrument.symbol, m.instrument.tick_size) == ("GLBX.MDP3", "ESH4", 0.25)
    assert (m.instrument.lot_size, m.instrument.contract_size) == (1.0, 1.0)
    assert m.schema_version == 2
    assert m.lineage["instrument_from"]["tick_size"].startswith("inferred")
    assert m.lineage["params"]["instrument_id"] == ESH4

    counts = m.lineage["record_counts"]
    inserted = counts["inserted_clears"]
    assert inserted == 1
    assert {a: counts[a] for a in "ACMFTRN"} == {a: actions.get(a, 0) for a in "ACMFTRN"}
    orders = stored(root, "GLBX.MDP3-ESH4", "orders")
    kinds = Counter(int(k) for k in orders["kind"])
    assert kinds[Kind.ADD] == actions["A"]
    assert kinds[Kind.CANCEL] == actions["C"]
    assert kinds[Kind.MODIFY] == actions["M"]
    assert kinds[Kind.FILL] == actions["F"]
    assert kinds[Kind.CLEAR] - inserted == actions["R"]
    assert m.feeds.get("trades", 0) == actions["T"]
    assert m.feeds == {"orders": 8_726, "snapshot": 1_453}  # golden

    # Exchange time of a snapshot record is its ts_recv (its ts_event is the order's entry, hours before).
    (ts_recv,) = {r.ts_recv for r in records}
    assert min(r.ts_event for r in records) < ts_recv
    assert set(orders["exch_ts"].tolist()) == set(orders["local_ts"].tolist()) == {ts_recv}

    # The order ids and quantities are the records'.
    adds = orders["kind"] == Kind.ADD
    assert sorted(orders["order_id"][adds].tolist()) == sorted(r.order_id for r in records)

    # The derived book image: one level per price, the level sums add up to the added sizes per side.
    snap = stored(root, "GLBX.MDP3-ESH4", "snapshot")
    assert set(snap["exch_ts"].tolist()) == set(snap["local_ts"].tolist()) == {ts_recv}
    for side, code in ((BID, 1), (ASK, -1)):
        mine = [r for r in records if str(r.side) == str(side)]
        levels = (snap["kind"] == Kind.SNAPSHOT) & (snap["side"] == code)
        assert snap["qty"][levels].sum() == sum(r.size for r in mine)
        assert sorted(snap["price"][levels].tolist()) == sorted({r.price / 1e9 for r in mine})
        assert ((snap["kind"] == Kind.CLEAR) & (snap["side"] == code)).sum() == 1
    levels = Counter(int(s) for s in snap["side"][snap["kind"] == Kind.SNAPSHOT])
    assert levels == {1: 892, -1: 559}  # golden: price levels per side

    done = cli(root, "verify", "GLBX.MDP3-ESH4")
    assert done.returncode == 0, done.stderr
    assert "ok: GLBX.MDP3-ESH4" in done.stdout
    Catalog(root).verify("GLBX.MDP3-ESH4")


# -- every action on a hand-made file -----------------------------------------------------------------------


def every_action() -> list[bytes]:
    return [
        mbo(A, BID, 101, 4799.0, 5, OLD, S, SNAP),  # 1: snapshot, no R before it: a CLEAR is inserted
        mbo(A, ASK, 102, 4800.0, 3, OLD + 7, S, SNAP | LAST),  # 2
        mbo(A, BID, 103, 4799.0, 4, *t(1_000), BAD_TS),  # 3: live add, ts_recv flagged bad (counted)
        mbo(C, BID, 103, 4799.0, 1, *t(2_000)),  # 4: partial cancel of 1: 3 remain
        mbo(C, BID, 101, 4799.0, 5, *t(3_000)),  # 5: full cancel
        mbo(M, BID, 103, 4799.25, 6, *t(4_000)),  # 6: modify to 6 @ 4799.25
        mbo(T, BID, 0, 4800.0, 2, *t(5_000)),  # 7: a buy aggressor takes 2 @ 4800
        mbo(F, BID, 102, 4800.0, 2, *t(5_000)),  # 8: fill of the resting ask 102 (record side: not the order's)
        mbo(C, ASK, 102, 4800.0, 2, *t(5_000)),  # 9: the traded 2 leave the book: 1 remains
        mbo(T, NONE, 0, 4799.25, 1, *t(6_000)),  # 10: a trade of unknown aggressor
        mbo(N, NONE, 0, None, 0, *t(7_000)),  # 11: no action: skipped, counted
        mbo(R, NONE, 0, None, 0, *t(8_000)),  # 12: clear book
        mbo(A, ASK, 104, 4800.5, 7, *t(9_000)),  # 13
    ]


def test_every_action_gives_the_exact_canonical_rows(tmp_path: Path) -> None:
    root = tmp_path / "canonical"
    out = imported(root, write_dbn(tmp_path / "esh4.mbo.dbn", every_action()))
    assert "1 book clear(s) inserted" in out
    m = Catalog(root).resolve("GLBX.MDP3-ESH4").manifest
    assert m.feeds == {"snapshot": 6, "trades": 2, "depth": 7, "orders": 11}
    assert m.instrument.tick_size == 0.25  # the gcd of 4799, 4799.25, 4800, 4800.5: R/N's undefined price ignored
    assert m.lineage["record_counts"] == {
        "A": 4, "C": 3, "M": 1, "F": 1, "T": 2, "R": 1, "N": 1, "inserted_clears": 1, "bad_ts_recv": 1,
        "snapshot_ts_clamped": 0,
    }  # fmt: skip

    assert rows(stored(root, "GLBX.MDP3-ESH4", "orders"), ORDER_COLUMNS) == [
        (Kind.CLEAR, 0, 0.25, 0.0, 0, S, S),  # inserted before the snapshot block
        (Kind.ADD, 1, 4799.0, 5.0, 101, S, S),  # snapshot: exchange time = ts_recv
        (Kind.ADD, -1, 4800.0, 3.0, 102, S, S),
        (Kind.ADD, 1, 4799.0, 4.0, 103, *t(1_000)),
        (Kind.CANCEL, 1, 4799.0, 3.0, 103, *t(2_000)),  # what remains, at the order's price
        (Kind.CANCEL, 1, 4799.0, 0.0, 101, *t(3_000)),
        (Kind.MODIFY, 1, 4799.25, 6.0, 103, *t(4_000)),
        (Kind.FILL, -1, 4800.0, 2.0, 102, *t(5_000)),  # the resting order's side
        (Kind.CANCEL, -1, 4800.0, 1.0, 102, *t(5_000)),
        (Kind.CLEAR, 0, 0.25, 0.0, 0, S + 8_100, S + 8_100),  # R: exchange time = ts_recv
        (Kind.ADD, -1, 4800.5, 7.0, 104, *t(9_000)),
    ]
    assert rows(stored(root, "GLBX.MDP3-ESH4", "trades"), L2_COLUMNS) == [
        (Kind.TRADE, 1, 4800.0, 2.0, *t(5_000)),  # the aggressor's side
        (Kind.TRADE, 0, 4799.25, 1.0, *t(6_000)),
    ]
    assert rows(stored(root, "GLBX.MDP3-ESH4", "depth"), L2_COLUMNS) == [
        (Kind.DEPTH, 1, 4799.0, 9.0, *t(1_000)),  # level quantity after each change
        (Kind.DEPTH, 1, 4799.0, 8.0, *t(2_000)),
        (Kind.DEPTH, 1, 4799.0, 3.0, *t(3_000)),
        (Kind.DEPTH, 1, 4799.0, 0.0, *t(4_000)),  # the modify leaves 4799 ...
        (Kind.DEPTH, 1, 4799.25, 6.0, *t(4_000)),  # ... for 4799.25
        (Kind.DEPTH, -1, 4800.0, 1.0, *t(5_000)),  # the fill changes no level, the cancel after it does
        (Kind.DEPTH, -1, 4800.5, 7.0, *t(9_000)),
    ]
    assert rows(stored(root, "GLBX.MDP3-ESH4", "snapshot"), L2_COLUMNS) == [
        (Kind.CLEAR, 1, 4799.0, 0.0, S, S),
        (Kind.SNAPSHOT, 1, 4799.0, 5.0, S, S),
        (Kind.CLEAR, -1, 4800.0, 0.0, S, S),
        (Kind.SNAPSHOT, -1, 4800.0, 3.0, S, S),
        (Kind.CLEAR, 1, 4799.25, 0.0, S + 8_100, S + 8_100),  # R: up to the farthest level it removes
        (Kind.CLEAR, -1, 4800.0, 0.0, S + 8_100, S + 8_100),
    ]
    assert cli(root, "verify", "GLBX.MDP3-ESH4").returncode == 0


def test_a_snapshot_after_r_gets_no_inserted_clear(tmp_path: Path) -> None:
    """An R right before the snapshot block is its clear: none is inserted; the block becomes the book image."""
    records = [mbo(R, NONE, 0, None, 0, OLD, S, SNAP), *every_action()[:2]]
    root = tmp_path / "canonical"
    imported(root, write_dbn(tmp_path / "esh4.mbo.dbn", records), "--tick-size", "0.25")
    m = Catalog(root).resolve("GLBX.MDP3-ESH4").manifest
    assert (m.lineage["record_counts"]["R"], m.lineage["record_counts"]["inserted_clears"]) == (1, 0)
    assert rows(stored(root, "GLBX.MDP3-ESH4", "orders"), ORDER_COLUMNS)[:2] == [
        (Kind.CLEAR, 0, 0.25, 0.0, 0, S, S),
        (Kind.ADD, 1, 4799.0, 5.0, 101, S, S),
    ]
    assert m.feeds == {"snapshot": 4, "orders": 3}


# -- instrument arguments -----------------------------------------------------------------------------------


def test_tick_and_contract_size_arguments_are_used_and_recorded(tmp_path: Path) -> None:
    root = tmp_path / "canonical"
    path = write_dbn(tmp_path / "esh4.mbo.dbn", every_action())
    out = imported(root, path, "--tick-size", "0.05", "--contract-size", "50", "--lot-size", "1")
    assert "inferred" not in out and "assumed" not in out
    m = Catalog(root).resolve("GLBX.MDP3-ESH4").manifest
    assert (m.instrument.tick_size, m.instrument.contract_size, m.instrument.lot_size) == (0.05, 50.0, 1.0)
    assert m.lineage["instrument_from"] == {"tick_size": "argument", "contract_size": "argument"}
    # The clear rows carry the given tick as their (unused) price.
    clears = stored(root, "GLBX.MDP3-ESH4", "orders")
    assert clears["price"][clears["kind"] == Kind.CLEAR].tolist() == [0.05, 0.05]


def test_tick_size_argument_the_prices_are_not_on_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "canonical"
    path = write_dbn(tmp_path / "esh4.mbo.dbn", every_action())
    done = cli(root, "import", "databento", str(path), "--tick-size", "0.5")
    assert done.returncode == 2
    assert "[price-off-tick]" in done.stderr and "4799.25" in done.stderr
    assert Catalog(root).datasets() == []


def test_symbol_picks_one_instrument_of_several(tmp_path: Path) -> None:
    """--symbol keeps the records of one instrument; the other's are not imported."""
    records = [
        mbo(A, BID, 101, 4799.0, 5, *t(1_000)),
        mbo(A, BID, 201, 4850.0, 9, *t(1_500), instrument_id=ESM4),
        mbo(C, BID, 101, 4799.0, 2, *t(2_000)),
        mbo(C, BID, 201, 4850.0, 9, *t(2_500), instrument_id=ESM4),
    ]
    root = tmp_path / "canonical"
    path = write_dbn(tmp_path / "es.mbo.dbn", records, {"ESH4": ESH4, "ESM4": ESM4})
    imported(root, path, "--symbol", "ESH4")
    m = Catalog(root).resolve("GLBX.MDP3-ESH4").manifest
    assert m.lineage["params"]["instrument_id"] == ESH4
    assert m.lineage["record_counts"]["A"] == 1 and m.lineage["record_counts"]["C"] == 1
    assert rows(stored(root, "GLBX.MDP3-ESH4", "orders"), ORDER_COLUMNS) == [
        (Kind.CLEAR, 0, 4799.0, 0.0, 0, *t(1_000)),  # each import starts from its own book (price: the tick)
        (Kind.ADD, 1, 4799.0, 5.0, 101, *t(1_000)),
        (Kind.CANCEL, 1, 4799.0, 3.0, 101, *t(2_000)),
    ]
    assert m.lineage["record_counts"]["inserted_clears"] == 1


def test_without_mappings_the_instrument_id_is_the_symbol(tmp_path: Path) -> None:
    root = tmp_path / "canonical"
    path = write_dbn(tmp_path / "esh4.mbo.dbn", book_of_two(), symbols={})
    done = cli(root, "import", "databento", str(path))
    assert done.returncode == 0, done.stderr
    assert Catalog(root).resolve(f"GLBX.MDP3-{ESH4}").manifest.instrument.symbol == str(ESH4)


# -- refusals -----------------------------------------------------------------------------------------------


def refused(
    tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str], *args: str, error: type[HftlabError] = DataError
) -> Any:
    """Import ``path``: the import (conversion, checks before promotion) raises ``error``; the CLI exits 2
    printing it and promotes nothing."""
    root = tmp_path / "canonical"
    argv = ["--root", str(root), "data", "import", "databento", str(path), *args]
    parsed: argparse.Namespace = build_parser().parse_args(argv)
    with pytest.raises(error) as info:
        result = convert(path, parsed)
        finish_import(result, parsed)
        validate(result)
    capsys.readouterr()
    assert main(argv) == 2
    assert f"hftlab: error: {info.value}" in capsys.readouterr().err
    assert Catalog(root).datasets() == []
    assert not root.exists() or not list(root.rglob("*.parquet"))
    return info.value


def refused_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], records: list[bytes], rule: str, record: int | None, *args: str
) -> DataError:
    """The file of ``records`` is refused for ``rule`` at ``record N`` (None: no record named)."""
    path = write_dbn(tmp_path / "esh4.mbo.dbn", records)
    return refused_file(tmp_path, capsys, path, rule, record, *args)


def refused_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path, rule: str, record: int | None, *args: str
) -> DataError:
    err = refused(tmp_path, path, capsys, *args)
    assert err.rule == rule
    assert err.source == str(path)
    assert str(path) in str(err) and f"[{rule}]" in str(err)
    if record is None:
        assert err.location is None
        assert str(err).startswith(f"{path}: [{rule}]")
    else:
        assert err.location == f"record {record}"
        assert f"{path}, record {record}: [{rule}]" in str(err)
    return err


@pytest.mark.parametrize(
    ("record", "rule", "order"),
    [
        (mbo(C, BID, 999, 4799.0, 1, *t(3_000)), "unknown-order-id", "999"),  # cancel of an unknown order
        (mbo(A, BID, 101, 4798.0, 1, *t(3_000)), "duplicate-add", "101"),  # add of an order in the book
        (mbo(C, BID, 101, 4799.0, 6, *t(3_000)), "negative-remaining-quantity", "101"),  # cancel of 6 of 5
        (mbo(F, ASK, 102, 4800.0, 4, *t(3_000)), "fill-exceeds-order", "102"),  # fill of 4 of 3
    ],
    ids=["unknown-order-id", "duplicate-add", "negative-remaining-quantity", "fill-exceeds-order"],
)
def test_each_l3_rule_names_its_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: bytes, rule: str, order: str
) -> None:
    err = refused_at(tmp_path, capsys, [*book_of_two(), record], rule, 3)
    assert order in err.detail


def test_record_numbers_count_the_other_instruments_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --symbol, ``record N`` still counts every record of the file."""
    records = [
        mbo(A, BID, 201, 4850.0, 9, *t(500), instrument_id=ESM4),
        *book_of_two(),
        mbo(A, BID, 202, 4850.0, 9, *t(2_500), instrument_id=ESM4),
        mbo(C, BID, 999, 4799.0, 1, *t(3_000)),
    ]
    path = write_dbn(tmp_path / "es.mbo.dbn", records, {"ESH4": ESH4, "ESM4": ESM4})
    refused_file(tmp_path, capsys, path, "unknown-order-id", 5, "--symbol", "ESH4")


def trade_msg() -> bytes:
    """A trades-schema record (48 bytes, rtype 0x00)."""
    msg = dbn.TradeMsg(publisher_id=1, instrument_id=ESH4, ts_event=S, price=4_800_000_000_000, size=1, action=T,
                       side=BID, ts_recv=S + 100, flags=0, depth=0, sequence=1, ts_in_delta=0)  # fmt: skip
    return bytes(msg)


def test_a_trade_record_is_unsupported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = book_of_two()
    err = refused_at(tmp_path, capsys, [first, trade_msg(), second], "unsupported-record", 2)
    assert "rtype 0x0 " in err.detail


def test_a_trade_record_at_the_end_is_unsupported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_at(tmp_path, capsys, [*book_of_two(), trade_msg()], "unsupported-record", 3)


def test_a_record_of_another_rtype_is_unsupported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = bytearray(mbo(A, BID, 103, 4799.0, 1, *t(3_000)))
    other[1] = 0x01  # an MBP-1 rtype in an MBO-sized record
    err = refused_at(tmp_path, capsys, [*book_of_two(), bytes(other)], "unsupported-record", 3)
    assert "rtype 0x1 " in err.detail


def test_a_file_that_is_not_dbn_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "esh4.mbo.dbn"
    path.write_text("ts_recv,ts_event,action\n1,2,A\n")
    err = refused_file(tmp_path, capsys, path, "unreadable-input", None)
    assert "not a DBN file" in err.detail


def test_a_file_truncated_inside_a_record_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = write_dbn(tmp_path / "whole.dbn", [*book_of_two(), mbo(C, BID, 101, 4799.0, 1, *t(3_000))])
    path = tmp_path / "esh4.mbo.dbn"
    path.write_bytes(whole.read_bytes()[:-10])
    err = refused_file(tmp_path, capsys, path, "unreadable-input", 3)
    assert "truncated" in err.detail


def test_a_file_truncated_inside_its_metadata_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = write_dbn(tmp_path / "whole.dbn", book_of_two())
    path = tmp_path / "esh4.mbo.dbn"
    path.write_bytes(whole.read_bytes()[:100])
    err = refused_file(tmp_path, capsys, path, "unreadable-input", None)
    assert "metadata" in err.detail


def test_an_unknown_action_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = bytearray(mbo(C, BID, 101, 4799.0, 1, *t(3_000)))
    assert odd[38:39] == b"C"  # the action byte of the MBO layout
    odd[38:39] = b"X"
    err = refused_at(tmp_path, capsys, [*book_of_two(), bytes(odd)], "unknown-action", 3)
    assert "X" in err.detail


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        pytest.param(mbo(F, ASK, 102, 4801.0, 1, *t(3_000)), "price-mismatch", id="fill-off-the-order-price"),
        pytest.param(mbo(A, NONE, 103, 4799.0, 1, *t(3_000)), "invalid-side", id="add-without-side"),
        pytest.param(mbo(A, BID, 103, 4799.0, 0, *t(3_000)), "order-quantity-not-positive", id="add-of-0"),
        pytest.param(mbo(M, BID, 101, 4799.0, 0, *t(3_000)), "order-quantity-not-positive", id="modify-to-0"),
        pytest.param(mbo(M, BID, 999, 4799.0, 1, *t(3_000)), "unknown-order-id", id="modify-of-unknown-order"),
        pytest.param(mbo(A, BID, 103, 4799.0, 1, *t(-5_000)), "timestamp-backwards", id="ts-event-backwards"),
        pytest.param(mbo(A, BID, 103, 4799.0, 1, S + 3_000, S + 2_000), "local-before-exchange", id="recv-first"),
    ],
)
def test_the_canonical_rules_name_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: bytes, rule: str
) -> None:
    """Rules checked on the translated rows (the L3 replay, validation) also name the file and record."""
    refused_at(tmp_path, capsys, [*book_of_two(), record], rule, 3)


def test_a_file_without_records_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_at(tmp_path, capsys, [], "empty-input", None)


def test_a_symbol_not_in_the_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused_at(tmp_path, capsys, book_of_two(), "symbol-mismatch", None, "--symbol", "NQH4")
    assert "'NQH4'" in err.detail and "ESH4" in err.detail


def test_two_instruments_without_symbol_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [*book_of_two(), mbo(A, BID, 201, 4850.0, 9, *t(2_500), instrument_id=ESM4)]
    path = write_dbn(tmp_path / "es.mbo.dbn", records, {"ESH4": ESH4, "ESM4": ESM4})
    err = refused(tmp_path, path, capsys, error=ConfigError)
    assert str(path) in str(err)
    assert "2 instruments" in str(err) and "ESH4" in str(err) and "ESM4" in str(err) and "--symbol" in str(err)


def test_a_snapshot_is_timed_no_later_than_the_live_record_after_it(tmp_path: Path) -> None:
    """Snapshot records take their receive time as exchange time, except where a live record after them
    happened earlier at the exchange: then the live record's exchange time (the feed never goes back)."""
    records = [
        mbo(A, BID, 101, 4799.0, 5, OLD, S, SNAP),
        mbo(A, ASK, 102, 4800.0, 3, OLD, S, SNAP | LAST),
        mbo(A, BID, 103, 4799.25, 1, S - 200, S + 300),  # sent by the exchange before the snapshot arrived
    ]
    root = tmp_path / "canonical"
    imported(root, write_dbn(tmp_path / "esh4.mbo.dbn", records))
    rows = stored(root, "GLBX.MDP3-ESH4", "orders")
    assert rows["exch_ts"].tolist() == [S - 200] * 3 + [S - 200]
    assert rows["local_ts"].tolist() == [S, S, S, S + 300]
    assert Catalog(root).resolve("GLBX.MDP3-ESH4").manifest.lineage["record_counts"]["snapshot_ts_clamped"] == 2


def test_a_file_written_with_ts_out_imports_the_same_rows(tmp_path: Path) -> None:
    """DBN appends the gateway send time to every record when ``ts_out`` is set (64-byte records)."""
    plain = write_dbn(tmp_path / "plain.mbo.dbn", book_of_two())
    metadata = dbn.Metadata(dataset="GLBX.MDP3", schema=dbn.Schema.MBO, start=OLD, stype_in=dbn.SType.RAW_SYMBOL,
                            stype_out=dbn.SType.INSTRUMENT_ID, symbols=["ESH4"], partial=[], not_found=[],
                            mappings=[_Mapping("ESH4", [_Interval(DAY, DAY + datetime.timedelta(days=1), str(ESH4))])],
                            ts_out=True)  # fmt: skip
    body = b"".join(bytes([16]) + r[1:] + (S + 9_999).to_bytes(8, "little") for r in book_of_two())
    with_out = tmp_path / "ts_out.mbo.dbn"
    with_out.write_bytes(bytes(metadata.encode()) + body)
    imported(tmp_path / "a", plain)
    imported(tmp_path / "b", with_out)
    a, b = stored(tmp_path / "a", "GLBX.MDP3-ESH4", "orders"), stored(tmp_path / "b", "GLBX.MDP3-ESH4", "orders")
    assert all(np.array_equal(a[c], b[c]) for c in a) and len(a["seq"]) == 3  # a clear, the two adds


def test_two_days_grow_one_dataset_each_from_its_own_book_and_an_l3_run_spans_them(tmp_path: Path) -> None:
    """Day 2 begins with live records only: its import starts with an inserted clear, so its rows are
    checked against the book they build, and an L3 run across both days never sees an order added twice."""
    from hftlab.feed import DatasetRef
    from hftlab.runtime.runner import run_backtest
    from hftlab.runtime.strategy import load_strategy
    from hftlab.venue.config import QueueConfig, QueueModel, VenueConfig
    from tests.conftest import PROJECT_ROOT

    day = 86_400 * 10**9
    day1 = [
        mbo(A, BID, 101, 4799.0, 5, OLD, S, SNAP),
        mbo(A, ASK, 102, 4800.0, 3, OLD, S, SNAP | LAST),
        mbo(A, BID, 103, 4799.25, 1, *t(1_000)),
    ]
    day2 = [
        mbo(A, BID, 201, 4799.0, 2, *t(day)),
        mbo(A, BID, 103, 4799.25, 1, *t(day + 1_000)),
        mbo(A, ASK, 202, 4800.0, 4, *t(day + 1_500)),
        mbo(C, BID, 201, 4799.0, 2, *t(day + 2_000)),
    ]
    root = tmp_path / "canonical"
    imported(root, write_dbn(tmp_path / "d1.mbo.dbn", day1), "--tick-size", "0.25")
    out = imported(root, write_dbn(tmp_path / "d2.mbo.dbn", day2), "--tick-size", "0.25")
    assert "grown from" in out
    orders = stored(root, "GLBX.MDP3-ESH4", "orders")
    day1_kinds = [Kind.CLEAR, Kind.ADD, Kind.ADD, Kind.ADD]
    day2_kinds = [Kind.CLEAR, Kind.ADD, Kind.ADD, Kind.ADD, Kind.CANCEL]
    assert [int(k) for k in orders["kind"]] == [*day1_kinds, *day2_kinds]
    depth = stored(root, "GLBX.MDP3-ESH4", "depth")
    assert depth["qty"].tolist()[-1] == 0.0 and depth["price"].tolist()[-1] == 4799.0  # day 2's book: 201 only
    fed = DatasetRef("GLBX.MDP3-ESH4", feeds=("orders",)).load(Catalog(root))
    strategy = load_strategy("grid", PROJECT_ROOT / "strategies")
    params = strategy.params({"grid_num": 1, "grid_interval": 0.25, "half_spread": 0.25, "order_qty": 1.0,
                              "max_position": 5.0})  # fmt: skip
    venue = VenueConfig(queue=QueueConfig(model=QueueModel.l3_fifo), depth="hashmap")
    run_backtest(fed, strategy, params, venue=venue)  # hftbacktest would fail on an order id added twice


def test_a_corrupt_zstd_file_is_unreadable_input(tmp_path: Path) -> None:
    path = tmp_path / "esh4.mbo.dbn.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"not a zstd frame" * 4)
    root = tmp_path / "canonical"
    done = cli(root, "import", "databento", str(path))
    assert done.returncode == 2 and "[unreadable-input] cannot read or decompress" in done.stderr
    assert not root.exists() or not any(root.rglob("*.parquet"))
