"""Parity: the Core Runtime running ``strategies/grid.py`` (Risk and Execution Control permissive) makes
exactly the fills of the plain hftbacktest grid loop (``hftlab.venue.reference``), on ~1M synthetic
events and on the real Binance BTCUSDT sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hftlab.feed import DatasetRef, FeedData
from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.runner import contract_of, run_backtest
from hftlab.runtime.state import on_lot_value
from hftlab.runtime.strategy import load_strategy
from hftlab.venue.config import VenueConfig
from hftlab.venue.reference import run_reference_grid
from tests.runtime.conftest import STRATEGIES, SYNTH_GRID, Synthetic, assert_accounting

INTERVAL = 100_000_000
#: Grid for BTCUSDT (~61,000, tick 0.1, lot 0.001): ~1,000 fills on the sample.
BTC_GRID = {"grid_num": 10, "grid_interval": 1.0, "half_spread": 1.0, "order_qty": 0.001, "max_position": 0.01}


@pytest.fixture(scope="module")
def btc(btc_sample) -> FeedData:
    """The BTCUSDT sample, fed whole."""
    catalog, _ = btc_sample
    return DatasetRef("btc").load(catalog)


def _key(fills: np.ndarray) -> np.ndarray:
    """(exch_ts, side, price, qty) sorted the reference's way: exchange time, side, price."""
    f = fills[np.lexsort((fills["price"], fills["side"], fills["exch_ts"]))]
    out = np.zeros(len(f), dtype=[("exch_ts", "i8"), ("side", "i1"), ("price", "f8"), ("qty", "f8")])
    for name in out.dtype.names:
        out[name] = f[name]
    return out


def _assert_parity(fed: FeedData, values: dict[str, Any], min_fills: int, depth: str) -> None:
    strategy = load_strategy("grid", STRATEGIES)
    params = strategy.params(values)
    venue = VenueConfig(depth=depth)
    out = run_backtest(fed, strategy, params, venue=venue, runtime=RuntimeConfig(interval_ns=INTERVAL))
    ref = run_reference_grid(fed, venue, params, INTERVAL)
    assert_accounting(out)
    ours, theirs = _key(out.tables["fills"]), _key(ref["fills"])
    assert len(ours) > min_fills, f"only {len(ours)} fills: the comparison would mean little"
    assert len(ours) == len(theirs) == ref["num_trades"]
    diff = np.flatnonzero(ours != theirs)
    assert diff.size == 0, f"first differing fill #{diff[0]}: runtime {ours[diff[0]]} vs reference {theirs[diff[0]]}"
    assert out.tables["risk"].size == 0 and out.tables["throttles"].size == 0  # permissive: nothing refused
    # hftbacktest's position is a float sum (-0.19000000000000003); ours is stored on the lot grid (-0.19).
    assert out.account["position"] == on_lot_value(contract_of(out.venue), ref["position"])
    assert out.account["mid"] == ref["mid"]
    ref_equity = ref["balance"] - ref["fee"] + ref["position"] * ref["mid"]
    assert out.account["equity"] == pytest.approx(ref_equity, rel=1e-9, abs=0.0)
    assert out.account["fees"] == pytest.approx(ref["fee"], rel=1e-9, abs=0.0)


@pytest.mark.parametrize("depth", ["roi_vector", "hashmap"])
def test_grid_parity_on_synthetic_market(synthetic: Synthetic, depth: str):
    """~1M synthetic events: identical fills, position and equity as the plain hftbacktest loop (both depth
    implementations: the runtime calls a different set of hftbacktest's C functions for each)."""
    _assert_parity(synthetic.fed, SYNTH_GRID, min_fills=1_000, depth=depth)


@pytest.mark.shared_data
@pytest.mark.parametrize("depth", ["roi_vector", "hashmap"])
def test_grid_parity_on_real_btcusdt(btc: FeedData, depth: str):
    """The real BTCUSDT sample (492k events): identical fills, position and equity."""
    _assert_parity(btc, BTC_GRID, min_fills=500, depth=depth)
