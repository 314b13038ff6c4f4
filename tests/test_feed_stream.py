"""The Event stream in pieces: concatenated, the pieces are byte for byte the single-array stream, for
any piece budget, on synthetic data and on real Binance data (whose REST snapshots are stamped out of
local order); the initial snapshot replayed piece by piece equals the one replayed at once."""

from __future__ import annotations

import numpy as np
import pytest

from hftlab.feed import Window, _initial_snapshot, load_events, stream_events
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.storage import Catalog
from hftlab.times import to_ns


@pytest.fixture(scope="module")
def three_days(tmp_path_factory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("canonical"))
    catalog.promote(generate(SynthParams(seed=5, start="2024-03-01", days=3.0, events_per_second=0.2)), "syn3")
    return catalog


def _pieces(dataset, window: Window, budget: int) -> list[np.ndarray]:
    return list(stream_events(dataset, window, budget))


@pytest.mark.parametrize("budget", [5_000, 40_000, 10**9])
def test_pieces_concatenate_to_the_single_array(three_days: Catalog, budget: int):
    dataset = three_days.resolve("syn3")
    window = Window(start=to_ns("2024-03-01T07:00"), end=to_ns("2024-03-03T20:00"))
    whole = load_events(dataset, window).events
    pieces = _pieces(dataset, window, budget)
    assert np.concatenate(pieces).tobytes() == whole.tobytes()
    assert len(pieces) >= 3  # never more than a UTC day per piece
    if budget == 5_000:
        assert max(len(p) for p in pieces) <= 3 * budget and len(pieces) > len(whole) // (3 * budget)


def test_initial_snapshot_replayed_in_pieces_equals_one_replay(three_days: Catalog):
    dataset = three_days.resolve("syn3")
    start = to_ns("2024-03-03T05:00")
    once = _initial_snapshot(dataset, start, budget=10**9)
    assert len(once) > 10
    for budget in (3_000, 50_000):
        assert _initial_snapshot(dataset, start, budget=budget).tobytes() == once.tobytes()


@pytest.mark.parametrize("budget", [20_000, 100_000])
def test_pieces_on_real_data_with_split_rows(btc_sample, budget: int):
    """The real sample's REST snapshots are stamped before the stream around them (rows split into
    EXCH-only and LOCAL-only copies): the cut points keep that split exactly as on the whole."""
    catalog, _ = btc_sample
    dataset = catalog.resolve("btc")
    whole = load_events(dataset).events
    stored = sum(n for feed, n in dataset.manifest.feeds.items() if feed in Window().feeds)
    assert len(whole) > stored  # some rows were split
    pieces = _pieces(dataset, Window(), budget)
    assert len(pieces) > 3
    assert np.concatenate(pieces).tobytes() == whole.tobytes()
