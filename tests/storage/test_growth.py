"""Datasets that grow: more time windows into one dataset id make a new version that shares the stored
files, keeps per-import lineage, refuses overlaps, and leaves the old version resolvable and unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from hftlab.errors import StorageError
from hftlab.feed import DatasetRef
from hftlab.storage import Catalog, FeedFrame, IngestResult
from hftlab.storage.growth import source_of
from hftlab.times import NS_PER_DAY
from tests.conftest import tree_snapshot
from tests.storage.test_validation import INSTRUMENT

T0 = 19_000 * NS_PER_DAY  # 2022-01-08 00:00 UTC


def day(d: int, correction: int = 0, qty: float = 1.0) -> IngestResult:
    """One import of a few book and trade rows on UTC day ``d`` (a raw file per day)."""
    base = T0 + d * NS_PER_DAY + 3_600_000_000_000
    exch = base + np.arange(6, dtype=np.int64) * 1_000_000
    snapshot = FeedFrame.from_columns(
        "snapshot",
        f"day{d}.gz",
        exch_ts=exch[:2],
        local_ts=exch[:2] + 5_000 + correction,
        kind=[4, 4],
        side=[1, -1],
        price=[10.0, 10.5],
        qty=[qty, 2.0],
    )
    depth = FeedFrame.from_columns(
        "depth",
        f"day{d}.gz",
        exch_ts=exch[2:],
        local_ts=exch[2:] + 5_000 + correction,
        kind=[1, 1, 1, 1],
        side=[1, -1, 1, -1],
        price=[10.0, 10.5, 9.5, 11.0],
        qty=[3.0, 1.0, 1.0, 2.0],
    )
    trades = FeedFrame.from_columns(
        "trades",
        f"day{d}.gz",
        exch_ts=exch[2:4] + 1,
        local_ts=exch[2:4] + 9_000,
        kind=[2, 2],
        side=[1, -1],
        price=[10.5, 10.0],
        qty=[1.0, 1.0],
    )
    lineage = {"converter": "test", "raw_inputs": [{"name": f"day{d}.gz"}], "local_ts_correction_ns": correction}
    return IngestResult(INSTRUMENT, [snapshot, depth, trades], lineage)


def test_a_second_day_grows_a_new_version_sharing_the_first_days_files(catalog: Catalog):
    first, _ = catalog.promote(day(0), "ds")
    before = tree_snapshot(first.path)
    grown, new = catalog.promote(day(1, correction=7), "ds")
    assert new and grown.version != first.version and grown.manifest.parent == first.version
    assert [s.lineage["raw_inputs"][0]["name"] for s in grown.manifest.sources] == ["day0.gz", "day1.gz"]
    assert [s.lineage["local_ts_correction_ns"] for s in grown.manifest.sources] == [0, 7]
    shared = [p for p in grown.manifest.partitions if p.source == 0]
    assert len(shared) == 3
    for part in shared:  # the same file, not a copy
        assert (grown.path / part.path).stat().st_ino == (first.path / part.path).stat().st_ino
    # the old version is still there, byte-identical, and resolvable; the id resolves to the newest
    assert tree_snapshot(first.path) == before
    assert catalog.resolve("ds", first.version).manifest == first.manifest
    assert catalog.resolve("ds").version == grown.version
    catalog.verify("ds", grown.version)
    catalog.verify("ds", first.version)
    # seq stays dense over the version, in time order
    lo, hi = grown.manifest.seq_range
    assert (lo, hi) == (0, grown.manifest.rows - 1)


def test_growth_feeds_what_one_import_of_both_days_feeds(tmp_path):
    """Two days imported one by one feed the same events as both days imported at once."""
    grown = Catalog(tmp_path / "a")
    grown.promote(day(1), "ds")
    grown.promote(day(0), "ds")  # an earlier day: ranks below the stored ones
    grown.promote(day(3), "ds")
    grown.promote(day(2), "ds")  # a gap between stored days: the later day's files are rewritten
    at_once = Catalog(tmp_path / "b")
    at_once.promote([day(2), day(0), day(3), day(1)], "ds")
    a, b = DatasetRef("ds").load(grown), DatasetRef("ds").load(at_once)
    # ranks differ (the grown version's first stored day kept ranks from 0), the fed order does not
    assert a.events.tobytes() == b.events.tobytes()
    assert len(grown.versions("ds")) == 4
    lo, hi = a.dataset.manifest.seq_range
    assert hi - lo + 1 == a.dataset.manifest.rows


def test_overlapping_import_is_refused_naming_both_sources(catalog: Catalog):
    catalog.promote(day(0), "ds")
    before = tree_snapshot(catalog.root)
    with pytest.raises(StorageError, match=r"import of day0\.gz .* overlaps the stored import of day0\.gz"):
        catalog.promote(day(0, qty=5.0), "ds")
    assert tree_snapshot(catalog.root) == before
    with pytest.raises(StorageError, match=r"import of day1\.gz .* overlaps the import of day1\.gz"):
        catalog.promote([day(1), day(1, qty=5.0)], "ds")
    assert tree_snapshot(catalog.root) == before


def test_an_import_already_stored_is_a_no_op(catalog: Catalog):
    first, _ = catalog.promote([day(0), day(1)], "ds")
    again, new = catalog.promote(day(1), "ds")
    assert (again.version, new) == (first.version, False)
    assert len(catalog.versions("ds")) == 1


def test_another_instrument_cannot_grow_a_dataset(catalog: Catalog):
    catalog.promote(day(0), "ds")
    other = day(1)
    other.instrument = type(INSTRUMENT)(venue="test", symbol="XYZ", tick_size=0.5, lot_size=1.0)
    with pytest.raises(StorageError, match="describes instrument"):
        catalog.promote(other, "ds")


def test_concurrent_imports_into_one_id_grow_one_chain(catalog: Catalog, monkeypatch):
    """Two imports into one id at once: each grows the head the other left (a lock per id), so the head
    holds both days. Planning is slowed so that, unlocked, both would read the same head."""
    import threading
    import time

    import hftlab.storage.catalog as catalog_module

    catalog.promote(day(0), "ds")
    slow_plan = catalog_module.plan

    def plan(*args, **kwargs):
        time.sleep(0.3)
        return slow_plan(*args, **kwargs)

    monkeypatch.setattr(catalog_module, "plan", plan)
    errors: list[BaseException] = []

    def grow(d: int) -> None:
        try:
            Catalog(catalog.root).promote(day(d), "ds")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=grow, args=(d,)) for d in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    head = catalog.resolve("ds")
    assert 3 == len(catalog.versions("ds"))
    assert {f"day{d}.gz" for d in (0, 1, 2)} == {s.lineage["raw_inputs"][0]["name"] for s in head.manifest.sources}


def after_day0(local_after_ns: int) -> IngestResult:
    """An import starting at the exchange timestamp day 0's import ends at (a collector file cut by its
    local clock): a depth row there received ``local_after_ns`` after that timestamp, then one more."""
    t = source_of(day(0)).end_ns
    depth = FeedFrame.from_columns(
        "depth",
        "next.gz",
        exch_ts=[t, t + 1_000_000],
        local_ts=[t + local_after_ns, t + 1_000_000 + 6_000],
        kind=[1, 1],
        side=[1, -1],
        price=[9.0, 11.5],
        qty=[1.0, 1.0],
    )
    return IngestResult(INSTRUMENT, [depth], {"converter": "test", "raw_inputs": [{"name": "next.gz"}]})


def test_touching_windows_grow_when_the_rows_there_keep_one_order(tmp_path):
    """Day 0's last row (depth, received 5 µs after T) and the next file's first (depth at T, received
    6 µs after): one order, as in one import of both, so they grow a version feeding the same events."""
    grown = Catalog(tmp_path / "a")
    grown.promote(day(0), "ds")
    grown.promote(after_day0(6_000), "ds")
    both = day(0)
    for frame in both.feeds:
        if frame.feed == "depth":
            nxt = after_day0(6_000).feeds[0]
            for name in ("exch_ts", "local_ts", "kind", "side", "price", "qty"):
                setattr(frame, name, np.concatenate([getattr(frame, name), getattr(nxt, name)]))
            frame.line = np.concatenate([frame.line, frame.line[-1] + 1 + np.arange(len(nxt))])
    one = Catalog(tmp_path / "b")
    one.promote(both, "ds")
    assert DatasetRef("ds").load(grown).events.tobytes() == DatasetRef("ds").load(one).events.tobytes()


def test_touching_windows_whose_rows_interleave_are_refused(catalog: Catalog):
    catalog.promote(day(0), "ds")
    before = tree_snapshot(catalog.root)
    with pytest.raises(StorageError, match=r"next to the stored import of day0\.gz .* touch at .* interleave"):
        catalog.promote(after_day0(4_000), "ds")  # received before day 0's last row at T
    assert tree_snapshot(catalog.root) == before
