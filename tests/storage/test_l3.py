"""The canonical order-by-order (L3) feed: each L3 rule refuses the import naming file, line and rule; the
L2 feeds derived from the orders; schema versions (L2 datasets keep version 1 and their versions); the
order ids and partial cancels as the Historical Input Feeder hands them to hftbacktest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hftlab import hftbacktest_types as HB
from hftlab.errors import DataError, StorageError
from hftlab.feed import Window, load_events
from hftlab.storage import Catalog
from hftlab.storage.l3 import derive_l2
from hftlab.storage.schema import FeedFrame, IngestResult, Instrument, Kind
from tests.conftest import rewrite_manifest

INST = Instrument(venue="TEST", symbol="L3X", tick_size=0.5, lot_size=1.0)
T = 1_700_000_000_000_000_000
A, C, M, F, CLR = Kind.ADD, Kind.CANCEL, Kind.MODIFY, Kind.FILL, Kind.CLEAR

#: (kind, side, price, qty, order_id) of a small valid book: a clear, a two-order image, then changes.
BOOK = [
    (CLR, 0, 0.5, 0.0, 0),
    (A, 1, 100.0, 5.0, 1),
    (A, -1, 101.0, 3.0, 2),
    (A, 1, 100.0, 2.0, 3),  # behind order 1 at 100
    (C, 1, 100.0, 4.0, 1),  # partial cancel: order 1 keeps 4
    (M, -1, 101.5, 6.0, 2),  # to another price (and more): to the back of 101.5
    (F, 1, 100.0, 4.0, 1),  # order 1 trades 4 ...
    (C, 1, 100.0, 0.0, 1),  # ... and leaves the book
    (C, 1, 100.0, 0.0, 3),
]


def orders(rows: list[tuple[int, int, float, float, int]], source: str = "orders.csv") -> FeedFrame:
    """Rows at increasing exchange times (the first two share the clear's timestamp: a book image)."""
    ts = [T if i < 3 else T + i for i in range(len(rows))]
    return FeedFrame.from_rows(
        "orders",
        source,
        [(t, t + 10, k, s, p, q, o, i + 1) for i, (t, (k, s, p, q, o)) in enumerate(zip(ts, rows, strict=True))],
    )


def promote(tmp_path: Path, rows: list[tuple[int, int, float, float, int]]) -> tuple[Catalog, str]:
    frame = orders(rows)
    result = IngestResult(INST, [frame], {"converter": "test"})  # storage derives the L2 feeds
    catalog = Catalog(tmp_path / "canonical")
    dataset, _ = catalog.promote(result, "l3")
    return catalog, dataset.version


@pytest.mark.parametrize(
    ("row", "rule", "line"),
    [
        ((C, 1, 100.0, 0.0, 99), "unknown-order-id", 6),
        ((M, 1, 100.0, 1.0, 99), "unknown-order-id", 6),
        ((F, 1, 100.0, 1.0, 99), "unknown-order-id", 6),
        ((A, 1, 100.0, 1.0, 2), "duplicate-add", 6),
        ((C, 1, 100.0, -1.0, 3), "negative-remaining-quantity", 6),
        ((C, 1, 100.0, 3.0, 3), "cancel-increases-quantity", 6),
        ((F, 1, 100.0, 3.0, 3), "fill-exceeds-order", 6),
        ((A, 1, 100.0, 0.0, 7), "order-quantity-not-positive", 6),
        ((M, 1, 100.0, 0.0, 3), "order-quantity-not-positive", 6),
        ((C, -1, 100.0, 1.0, 3), "side-mismatch", 6),
        ((C, 1, 99.5, 1.0, 3), "price-mismatch", 6),
        ((F, 1, 99.5, 1.0, 3), "price-mismatch", 6),
    ],
)
def test_each_l3_rule_refuses_naming_file_line_and_rule(tmp_path: Path, row, rule: str, line: int) -> None:
    """Order 3 rests on the bid at 100 with 2 (order 2 was modified away); the bad row comes last."""
    with pytest.raises(DataError) as err:
        promote(tmp_path, [*BOOK[:4], BOOK[5], row])
    assert err.value.rule == rule
    assert err.value.source == "orders.csv" and err.value.location == f"line {line}"
    assert not (tmp_path / "canonical" / "l3").exists(), "nothing may be promoted"


def test_generic_rules_still_hold_on_the_orders_feed(tmp_path: Path) -> None:
    """Side 0 only on a clear; prices on the tick grid."""
    with pytest.raises(DataError) as err:
        promote(tmp_path, [*BOOK[:3], (A, 0, 100.0, 1.0, 9)])
    assert err.value.rule == "invalid-side" and err.value.location == "line 4"
    with pytest.raises(DataError) as err:
        promote(tmp_path, [*BOOK[:3], (A, 1, 100.2, 1.0, 9)])
    assert err.value.rule == "price-off-tick" and err.value.location == "line 4"


def _rows(f: FeedFrame) -> list[tuple[int, int, float, float, int]]:
    return [
        (int(k), int(s), float(p), float(q), int(ln))
        for k, s, p, q, ln in zip(f.kind, f.side, f.price, f.qty, f.line, strict=True)
    ]


def test_derived_l2_rows() -> None:
    """The book image becomes CLEAR + SNAPSHOT rows per side; every later change one DEPTH row per level
    touched, with the level's new quantity; fills change nothing."""
    snap, depth = derive_l2(orders(BOOK), INST.tick_size, INST.lot_size)
    assert _rows(snap) == [
        (Kind.CLEAR, 1, 100.0, 0.0, 1),
        (Kind.SNAPSHOT, 1, 100.0, 5.0, 1),
        (Kind.CLEAR, -1, 101.0, 0.0, 1),
        (Kind.SNAPSHOT, -1, 101.0, 3.0, 1),
    ]
    assert _rows(depth) == [
        (Kind.DEPTH, 1, 100.0, 7.0, 4),
        (Kind.DEPTH, 1, 100.0, 6.0, 5),
        (Kind.DEPTH, -1, 101.0, 0.0, 6),
        (Kind.DEPTH, -1, 101.5, 6.0, 6),
        (Kind.DEPTH, 1, 100.0, 2.0, 8),
        (Kind.DEPTH, 1, 100.0, 0.0, 9),
    ]
    assert snap.exch_ts.tolist() == [T] * 4 and depth.exch_ts.tolist() == [T + 3, T + 4, T + 5, T + 5, T + 7, T + 8]


def test_l3_dataset_is_schema_2_with_order_ids_and_l2_datasets_stay_schema_1(tmp_path: Path) -> None:
    catalog, version = promote(tmp_path, BOOK)
    m = catalog.resolve("l3", version).manifest
    assert m.schema_version == 2
    files = {p.feed: catalog.resolve("l3").path / p.path for p in m.partitions}
    assert pq.read_schema(files["orders"]).names == [
        "exch_ts",
        "local_ts",
        "kind",
        "side",
        "price",
        "qty",
        "order_id",
        "seq",
    ]
    assert pq.read_table(files["orders"]).column("order_id").to_pylist() == [o for *_, o in BOOK]
    assert "order_id" not in pq.read_schema(files["depth"]).names
    catalog.verify("l3")
    # the same rows without the orders feed: an L2 dataset, stored as schema 1 (as before schema 2 existed)
    frame = orders(BOOK)
    l2, _ = catalog.promote(IngestResult(INST, derive_l2(frame, 0.5, 1.0), {"converter": "test"}), "l2")
    assert l2.manifest.schema_version == 1
    assert all("order_id" not in pq.read_schema(l2.path / p.path).names for p in l2.manifest.partitions)


def test_a_manifest_claiming_another_schema_version_is_refused(tmp_path: Path) -> None:
    catalog, _ = promote(tmp_path, BOOK)
    version_dir = catalog.resolve("l3").path
    rewrite_manifest(version_dir, lambda d: d.update(schema_version=1))
    with pytest.raises(StorageError, match="does not hash to version"):
        Catalog(tmp_path / "canonical").verify("l3")
    rewrite_manifest(version_dir, lambda d: d.update(schema_version=3))
    with pytest.raises(StorageError, match="schema version 3"):
        Catalog(tmp_path / "canonical").verify("l3")


def test_fed_events_carry_order_ids_and_a_partial_cancel_is_a_modify(tmp_path: Path) -> None:
    """hftbacktest's CANCEL removes the whole order: a canonical CANCEL that leaves quantity is fed as
    MODIFY to that quantity at the same price (which keeps the order's queue place in the L3 FIFO model)."""
    catalog, _ = promote(tmp_path, BOOK)
    fed = load_events(catalog.resolve("l3"), Window(("orders",)))
    ev = fed.events
    kinds = (ev["ev"] & HB.KIND_MASK).tolist()
    assert kinds == [3, 10, 10, 10, 12, 12, 13, 11, 11]
    assert ev["order_id"].tolist() == [o for *_, o in BOOK]
    assert (ev["px"][4], ev["qty"][4]) == (100.0, 4.0)
    buy = (ev["ev"] & HB.BUY_EVENT) != 0
    sell = (ev["ev"] & HB.SELL_EVENT) != 0
    assert not buy[0] and not sell[0], "a clear of both sides carries no side flag"
    assert buy.tolist()[1:] == [s == 1 for _, s, *_ in BOOK[1:]]
    l2 = load_events(catalog.resolve("l3"), Window(("snapshot", "depth")))
    assert np.all(l2.events["order_id"] == 0)


def test_order_ids_belong_to_an_l3_feed_only() -> None:
    from hftlab.errors import ConfigError

    with pytest.raises(ConfigError, match="order_id is required"):
        FeedFrame.from_columns("orders", "x", exch_ts=[T], local_ts=[T], kind=[A], side=[1], price=[1.0], qty=[1.0])
    with pytest.raises(ConfigError, match="an L3 column only"):
        FeedFrame.from_columns(
            "depth", "x", exch_ts=[T], local_ts=[T], kind=[1], side=[1], price=[1.0], qty=[1.0], order_id=[1]
        )


def test_an_orders_file_without_its_order_ids_is_refused_by_full_verify(tmp_path: Path) -> None:
    """The file rewritten without ``order_id`` and the manifest's file hash updated to match."""
    from hftlab.storage.manifest import file_sha256

    catalog, _ = promote(tmp_path, BOOK)
    dataset = catalog.resolve("l3")
    index, part = next((i, p) for i, p in enumerate(dataset.manifest.partitions) if p.feed == "orders")
    victim = dataset.path / part.path
    os.chmod(victim.parent, 0o755)
    os.chmod(victim, 0o644)
    pq.write_table(pq.read_table(victim).drop(["order_id"]), victim)
    sha, size = file_sha256(victim), victim.stat().st_size
    rewrite_manifest(dataset.path, lambda d: d["partitions"][index].update(file_sha256=sha, file_bytes=size))
    with pytest.raises(StorageError, match=r"columns \['order_id'\] of feed 'orders' are missing"):
        catalog.verify("l3", full=True)


def test_order_ids_of_the_whole_uint64_range_keep_their_values():
    """Order ids at and beyond 2**63 next to small ones (venues' u64 ids): exact, not rounded through float."""
    ids = [1, 2**63 + 1, 2**64 - 1]
    frame = FeedFrame.from_rows("orders", "x.dbn", [(1, 2, 10, 1, 1.0, 1.0, oid, i + 1) for i, oid in enumerate(ids)])
    assert np.uint64 == frame.order_id.dtype and ids == [int(x) for x in frame.order_id]
