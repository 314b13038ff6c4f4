"""Datasets that grow: more time windows into one dataset id make a new version that shares the stored
files, keeps per-import lineage, refuses overlaps, and leaves the old version resolvable and unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from hftlab.errors import StorageError
from hftlab.feed import DatasetRef
from hftlab.storage import Catalog, FeedFrame, IngestResult
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
