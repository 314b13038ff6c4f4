"""The Historical Input Feeder on the real Binance BTCUSDT sample, checked against hftbacktest itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def btc(btc_sample):
    return btc_sample


def test_event_counts_equal_hftbacktest_converter(btc):
    """Same number of depth, trade, clear and snapshot events as hftbacktest's own converter."""
    from hftbacktest.data.utils import binancefutures

    from hftlab.feed import DatasetRef

    catalog, path = btc
    theirs = binancefutures.convert(str(path), combined_stream=True)
    ours = DatasetRef("btc").load(catalog).events
    for kind in (1, 2, 3, 4):
        assert int(np.sum((theirs["ev"] & 0xFF) == kind)) == int(np.sum((ours["ev"] & 0xFF) == kind)), kind
    assert len(theirs) == len(ours)


def test_fed_array_is_in_processing_order(btc):
    """hftbacktest's own validator accepts the fed order (EXCH rows by exch_ts, LOCAL rows by local_ts)."""
    from hftbacktest.data import validate_event_order

    from hftlab.feed import DatasetRef

    catalog, _ = btc
    events = DatasetRef("btc").load(catalog).events
    validate_event_order(events)
    assert events.flags["C_CONTIGUOUS"]


def _crossed_steps(events: np.ndarray, snapshot: np.ndarray | None) -> tuple[int, int]:
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
    from numba import njit

    @njit
    def loop(hbt):
        crossed = 0
        steps = 0
        while hbt.elapse(10_000_000) == 0:
            depth = hbt.depth(0)
            bid, ask = depth.best_bid_tick, depth.best_ask_tick
            if bid != np.iinfo(np.int64).min and ask != np.iinfo(np.int64).max:  # empty sides
                steps += 1
                if bid >= ask:
                    crossed += 1
        return crossed, steps

    asset = (
        BacktestAsset()
        .data(events)
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(0.1)
        .lot_size(0.001)
    )
    if snapshot is not None and len(snapshot):
        asset = asset.initial_snapshot(snapshot)
    hbt = HashMapMarketDepthBacktest([asset])
    try:
        return loop(hbt)
    finally:
        hbt.close()


def test_replay_in_plain_hftbacktest_never_shows_a_crossed_book(btc):
    """Replaying the fed stream in a plain hftbacktest loop: best bid < best ask at every 10 ms step."""
    from hftlab.feed import DatasetRef

    catalog, _ = btc
    events = np.ascontiguousarray(DatasetRef("btc").load(catalog).events)
    crossed, steps = _crossed_steps(events, None)
    assert steps > 30_000
    assert 0 == crossed


def test_window_starting_mid_stream_gets_the_replayed_book(btc):
    """A window starting mid-stream comes with an initial snapshot equal to the book hftbacktest built."""
    from hftlab.feed import DatasetRef
    from hftlab.feed_kernels import replay_book

    catalog, _ = btc
    full = DatasetRef("btc").load(catalog)
    start = full.dataset.manifest.start_ns + 120 * 1_000_000_000
    part = DatasetRef("btc", start=start).load(catalog)
    assert len(part.initial_snapshot) > 100
    assert int(part.events["exch_ts"].min()) >= start
    # The snapshot equals an independent replay of every fed book row (EXCH copies) before start.
    ev = full.events[(full.events["ev"] & (1 << 31)) != 0]
    before = ev[(ev["exch_ts"] < start) & np.isin(ev["ev"] & 0xFF, [1, 3, 4])]
    side = np.where(before["ev"] & (1 << 29), 1, -1).astype(np.int8)
    bids, asks = replay_book((before["ev"] & 0xFF).astype(np.uint8), side, before["px"], before["qty"], 0.1)
    expected_px = np.concatenate([before["px"][bids], before["px"][asks]])
    assert expected_px.tolist() == part.initial_snapshot["px"].tolist()
    assert before["px"][bids[0]] < before["px"][asks[0]]
    crossed, steps = _crossed_steps(np.ascontiguousarray(part.events), part.initial_snapshot)
    assert steps > 10_000
    assert 0 == crossed


def test_tampered_file_is_refused_by_the_feeder(btc, tmp_path: Path):
    """Flipping one byte of a promoted file makes the feeder refuse the dataset, naming the file."""
    import os
    import shutil

    from hftlab.errors import StorageError
    from hftlab.feed import DatasetRef
    from hftlab.storage import Catalog

    catalog, _ = btc
    copy = Catalog(tmp_path / "canonical")
    shutil.copytree(catalog.root, copy.root)
    dataset = copy.resolve("btc")
    victim = dataset.path / next(p.path for p in dataset.manifest.partitions if p.feed == "trades")
    os.chmod(victim, 0o644)
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(StorageError) as err:
        DatasetRef("btc").load(copy)
    assert str(victim) in str(err.value)
