"""Validation rules of Canonical Storage: each refuses a tiny hand-made bad input, names the rule,
the file and the line, and leaves storage exactly as it was."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hftlab.errors import DataError
from hftlab.ingest.common import apply_local_ts_correction
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument
from tests.conftest import tree_snapshot

INSTRUMENT = Instrument(venue="test", symbol="ABC", tick_size=0.5, lot_size=1.0)


def good_depth(**override: Any) -> FeedFrame:
    cols: dict[str, Any] = {
        "exch_ts": [100, 200, 300, 400],
        "local_ts": [110, 210, 310, 410],
        "kind": [1, 1, 1, 1],
        "side": [1, -1, 1, -1],
        "price": [10.0, 10.5, 9.5, 11.0],
        "qty": [1.0, 2.0, 0.0, 3.0],
        "line": [2, 3, 4, 5],
    }
    cols.update(override)
    return FeedFrame.from_columns("depth", "book.csv", **cols)


def good_trades(**override: Any) -> FeedFrame:
    cols: dict[str, Any] = {
        "exch_ts": [150, 250],
        "local_ts": [160, 260],
        "kind": [2, 2],
        "side": [1, 0],
        "price": [10.0, 10.5],
        "qty": [1.0, 0.5],
    }
    cols.update(override)
    return FeedFrame.from_columns("trades", "trades.csv", **cols)


@pytest.fixture
def populated(catalog: Catalog) -> Catalog:
    """A storage root already holding one promoted dataset, so 'unchanged' means something."""
    catalog.promote(IngestResult(INSTRUMENT, [good_depth(), good_trades()], {"test": 1}), "existing")
    return catalog


CASES = [
    ("price-not-positive-finite", {"price": [10.0, np.nan, 9.5, 11.0]}, "line 3"),
    ("price-not-positive-finite", {"price": [10.0, 10.5, np.inf, 11.0]}, "line 4"),
    ("price-not-positive-finite", {"price": [10.0, 10.5, 9.5, 0.0]}, "line 5"),
    ("price-not-positive-finite", {"price": [-10.0, 10.5, 9.5, 11.0]}, "line 2"),
    ("negative-quantity", {"qty": [1.0, 2.0, -0.5, 3.0]}, "line 4"),
    ("quantity-not-finite", {"qty": [1.0, np.nan, 0.0, 3.0]}, "line 3"),
    ("timestamp-backwards", {"exch_ts": [100, 200, 150, 400], "local_ts": [210, 220, 230, 440]}, "line 4"),
    ("timestamp-backwards", {"local_ts": [110, 210, 205, 410]}, "line 4"),
    ("local-before-exchange", {"local_ts": [110, 210, 299, 410]}, "line 4"),
    ("price-off-tick", {"price": [10.0, 10.5, 9.7, 11.0]}, "line 4"),
    ("kind-not-in-feed", {"kind": [1, 2, 1, 1]}, "line 3"),
    ("invalid-side", {"side": [1, 0, 1, -1]}, "line 3"),
    ("invalid-side", {"side": [1, -1, 7, -1]}, "line 4"),
    ("timestamp-not-positive", {"exch_ts": [0, 200, 300, 400]}, "line 2"),
]


@pytest.mark.parametrize(("rule", "override", "location"), CASES)
def test_each_rule_refuses_and_names_rule_file_and_line(populated: Catalog, rule: str, override: dict, location: str):
    """A broken rule is reported with its name, the file and the first offending line; nothing changes."""
    before = tree_snapshot(populated.root)
    with pytest.raises(DataError) as err:
        populated.promote(IngestResult(INSTRUMENT, [good_depth(**override), good_trades()], {}), "bad")
    assert rule == err.value.rule
    assert "book.csv" == err.value.source
    assert location == err.value.location
    assert f"[{rule}]" in str(err.value) and "book.csv, " + location in str(err.value)
    assert before == tree_snapshot(populated.root)
    assert not (populated.root / "bad").exists()


def test_empty_input_is_refused(populated: Catalog):
    """An import with no rows at all is refused, naming its source."""
    before = tree_snapshot(populated.root)
    empty = good_depth(**{k: [] for k in ("exch_ts", "local_ts", "kind", "side", "price", "qty", "line")})
    with pytest.raises(DataError) as err:
        populated.promote(IngestResult(INSTRUMENT, [empty], {}), "bad")
    assert "empty-input" == err.value.rule
    assert "book.csv" in str(err.value)
    assert before == tree_snapshot(populated.root)


def test_trade_side_zero_is_allowed_but_not_on_book_rows(catalog: Catalog):
    """Unknown-initiator trades (side 0) are valid; the same side on a book row is not (tested above)."""
    dataset, _ = catalog.promote(IngestResult(INSTRUMENT, [good_depth(), good_trades()], {}), "ok")
    assert {"depth": 4, "trades": 2} == dataset.manifest.feeds


def test_local_ts_correction_makes_skewed_clock_valid_and_is_recorded(catalog: Catalog):
    """A configured correction is applied before validation and recorded in the lineage."""
    skewed = good_depth(local_ts=[50, 150, 250, 350])  # receiving clock 50 ns behind the exchange's
    with pytest.raises(DataError) as err:
        Catalog(catalog.root).promote(IngestResult(INSTRUMENT, [skewed], {}), "skew")
    assert "local-before-exchange" == err.value.rule
    result = IngestResult(INSTRUMENT, [good_depth(local_ts=[50, 150, 250, 350])], {})
    assert 50 == apply_local_ts_correction(result, "auto")
    dataset, _ = catalog.promote(result, "skew")
    assert 50 == dataset.manifest.lineage["local_ts_correction_ns"]
    assert "auto" == dataset.manifest.lineage["local_ts_correction"]
    assert 100 == dataset.manifest.partitions[0].local_ts_min


def test_duplicate_feed_is_refused(catalog: Catalog):
    """Two frames for one feed would make the per-feed ordering rules meaningless: refused."""
    with pytest.raises(DataError) as err:
        catalog.promote(IngestResult(INSTRUMENT, [good_depth(), good_depth()], {}), "dup")
    assert "duplicate-feed" == err.value.rule
