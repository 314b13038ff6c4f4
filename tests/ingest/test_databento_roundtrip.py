"""The Databento importer at scale, on real trading: the LOBSTER GOOG day (74k order rows, 7.8k trades)
written as a Databento MBO file (A/C/M/F/T/R records, 56 bytes each, laid out by ``databento_dbn``'s own
record layout), imported back with `hftlab data import databento`, gives the same canonical order and
trade rows, the same fed events, and fills equal to a plain hftbacktest L3 loop.

The real ESH4 sample is a start-of-day book only (no trading), so this is where Databento's cancel,
fill, trade and clear actions meet a real day's order flow."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hftlab.feed import DatasetRef
from hftlab.storage import Catalog
from hftlab.storage.schema import Kind
from tests.conftest import SHARED_DATA
from tests.ingest.test_databento import _Interval, _Mapping

HFTLAB = str(Path(sys.executable).with_name("hftlab"))
LOBSTER = SHARED_DATA / "lobster" / "GOOG" / "message.csv"
INSTRUMENT_ID = 11_111


def _feed(catalog: Catalog, dataset_id: str, feed: str) -> dict[str, np.ndarray]:
    d = catalog.resolve(dataset_id)
    tables = [pq.read_table(d.path / p.path) for p in d.manifest.partitions if p.feed == feed]
    return {c: np.concatenate([t.column(c).to_numpy() for t in tables]) for c in tables[0].column_names}


def write_dbn(path: Path, orders: dict[str, np.ndarray], trades: dict[str, np.ndarray]) -> dict[str, int]:
    """Canonical orders and trades (merged by ``seq``) as MBO records; returns the count per action."""
    import databento_dbn as dbn

    dtype = np.dtype(dbn.MBOMsg._dtypes)
    assert dtype.itemsize == 56
    n_o, n_t = len(orders["seq"]), len(trades["seq"])
    order = np.argsort(np.concatenate([orders["seq"], trades["seq"]]), kind="stable")
    rec = np.zeros(n_o + n_t, dtype=dtype)
    rec["length"], rec["rtype"], rec["publisher_id"], rec["instrument_id"] = 14, 0xA0, 1, INSTRUMENT_ID
    left: dict[int, float] = {}
    action = {Kind.ADD: b"A", Kind.CANCEL: b"C", Kind.MODIFY: b"M", Kind.FILL: b"F", Kind.CLEAR: b"R"}
    side = {1: b"B", -1: b"A", 0: b"N"}
    for j, k in enumerate(order.tolist()):
        r = rec[j : j + 1]
        if k < n_o:
            kind, oid, qty = int(orders["kind"][k]), int(orders["order_id"][k]), float(orders["qty"][k])
            size = qty
            if kind == Kind.CANCEL:  # Databento states the cancelled size, the canonical row what remains
                size = left[oid] - qty
            if kind in (Kind.ADD, Kind.MODIFY, Kind.CANCEL):
                left[oid] = qty
            r["action"], r["side"], r["order_id"] = action[Kind(kind)], side[int(orders["side"][k])], oid
            price = np.iinfo(np.int64).max if kind == Kind.CLEAR else round(float(orders["price"][k]) * 1e9)
            r["price"], r["size"] = price, round(size)
            r["ts_event"], r["ts_recv"] = orders["exch_ts"][k], orders["local_ts"][k]
        else:
            k -= n_o
            r["action"], r["side"] = b"T", side[int(trades["side"][k])]
            r["price"], r["size"] = round(float(trades["price"][k]) * 1e9), round(float(trades["qty"][k]))
            r["ts_event"], r["ts_recv"] = trades["exch_ts"][k], trades["local_ts"][k]
    day = datetime.date(2012, 6, 21)
    metadata = dbn.Metadata(
        dataset="XNAS.ITCH", schema=dbn.Schema.MBO, start=int(rec["ts_event"][0]),
        stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID, symbols=["GOOG"], partial=[],
        not_found=[], mappings=[_Mapping("GOOG", [_Interval(day, day + datetime.timedelta(days=1), str(INSTRUMENT_ID))])],
    )  # fmt: skip
    path.write_bytes(bytes(metadata.encode()) + rec.tobytes())
    actions, counts = np.unique(rec["action"], return_counts=True)
    return {a.decode(): int(c) for a, c in zip(actions, counts, strict=True)}


@pytest.mark.shared_data
def test_lobster_day_through_dbn_gives_the_same_rows_events_and_fills(tmp_path: Path) -> None:
    if not LOBSTER.is_file():
        pytest.skip(f"real market sample not found at {LOBSTER} (a user's clone has no ../shared/data)")
    root = tmp_path / "canonical"
    base = [HFTLAB, "--root", str(root), "data", "import"]
    lobster = [*base, "lobster", str(LOBSTER), "--symbol", "GOOG", "--date", "2012-06-21", "--sub-penny", "hidden"]
    subprocess.run(lobster, check=True, capture_output=True)
    catalog = Catalog(root)
    orders, trades = _feed(catalog, "NASDAQ-GOOG", "orders"), _feed(catalog, "NASDAQ-GOOG", "trades")
    counts = write_dbn(tmp_path / "goog.mbo.dbn", orders, trades)
    kinds = dict(zip(*np.unique(orders["kind"], return_counts=True), strict=True))
    assert counts == {
        "A": kinds[Kind.ADD],  # submissions, orders named before a submission, unseen liquidity
        "C": kinds[Kind.CANCEL],
        "F": kinds[Kind.FILL],
        "R": kinds[Kind.CLEAR],
        "T": len(trades["seq"]),
    }
    assert (counts["F"], counts["T"], counts["R"]) == (7_765, 7_765, 1) and counts["A"] > 24_368
    done = subprocess.run(
        [*base, "databento", str(tmp_path / "goog.mbo.dbn"), "--tick-size", "0.01"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "XNAS.ITCH-GOOG" in done.stdout
    lineage = catalog.resolve("XNAS.ITCH-GOOG").manifest.lineage
    assert {k: v for k, v in lineage["record_counts"].items() if v} == counts
    for feed in ("orders", "trades", "snapshot", "depth"):
        ours, theirs = _feed(catalog, "XNAS.ITCH-GOOG", feed), _feed(catalog, "NASDAQ-GOOG", feed)
        for column in theirs:
            if column != "seq":
                np.testing.assert_array_equal(ours[column], theirs[column], err_msg=f"{feed}.{column}")
    fed = [DatasetRef(i, feeds=("orders", "trades")).load(catalog).events for i in ("XNAS.ITCH-GOOG", "NASDAQ-GOOG")]
    assert fed[0].tobytes() == fed[1].tobytes()
