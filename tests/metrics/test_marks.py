"""Exact-horizon mids for markouts, on a hand-made event stream replayed by the real Simulated Venue
(hftbacktest): the mid at each asked time, and a markout where the sampled state series and the exact
horizon differ."""

from __future__ import annotations

import numpy as np
import pytest

from hftlab.feed import DatasetRef
from hftlab.metrics import compute as M
from hftlab.metrics.marks import replay_mids
from hftlab.storage import Catalog, Instrument
from hftlab.venue.config import VenueConfig
from tests.runtime.conftest import MS, T0, promote_rows

S = 1_000 * MS
FEED_LATENCY = MS  #: promote_rows: local_ts = exch_ts + 1 ms


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """Mid 100.0 from T0, 100.05 from T0+1 s (bid up a tick), 100.15 from T0+1.4 s (ask up two ticks),
    in local time (+1 ms); a last trade at T0+3 s ends the data."""
    catalog = Catalog(tmp_path_factory.mktemp("marks"))
    rows = [("snapshot", T0, 4, 1, 99.9, 1.0), ("snapshot", T0, 4, -1, 100.1, 1.0),
            ("depth", T0 + S, 1, 1, 100.0, 1.0),
            ("depth", T0 + 1_400 * MS, 1, -1, 100.1, 0.0), ("depth", T0 + 1_400 * MS, 1, -1, 100.3, 1.0),
            ("trades", T0 + 3 * S, 2, 1, 100.3, 0.5)]  # fmt: skip
    promote_rows(catalog, "marks", Instrument("test", "MARK", 0.1, 0.01), rows, feed_latency=FEED_LATENCY)
    fed = DatasetRef("marks").load(catalog)
    venue = VenueConfig().resolve(fed.dataset.manifest.instrument)
    return fed, venue


def test_the_mid_at_each_asked_time_follows_every_event_up_to_it(stream):
    fed, venue = stream
    lat = FEED_LATENCY
    times = np.array([T0 + lat, T0 + S + lat - 1, T0 + S + lat, T0 + 1_400 * MS + lat, T0 + 2 * S,
                      T0 + 3 * S + lat, T0 + 10 * S], dtype=np.int64)  # fmt: skip
    mids = replay_mids(fed, venue)(times)
    # an event is seen at its local time exactly (not 1 ns later); past the data's end: unknown
    assert [100.0, 100.0, 100.05, 100.15, 100.15, 100.15] == pytest.approx(mids[:-1].tolist(), abs=1e-12)
    assert np.isnan(mids[-1])
    with pytest.raises(ValueError, match="sorted and unique"):
        replay_mids(fed, venue)(times[::-1])


def test_a_markout_at_the_exact_horizon_differs_from_the_sampled_one(stream):
    """A buy at 100.0 seen at T0+0.401 s: one second later the mid is 100.15 (the ask moved at T0+1.401 s),
    a +0.15 markout (15 bps). The 1 s state series has rows at T0+0.001 s and T0+1.001 s only, so reading
    its last row at or before T0+1.401 s gives 100.05: +0.05, 0.4 s early."""
    fed, venue = stream
    fill_ts, side, price = np.array([T0 + 401 * MS]), np.array([1.0]), np.array([100.0])
    exact = M.markouts(fill_ts, side, price, [S], replay_mids(fed, venue))
    assert pytest.approx(0.15, abs=1e-9) == exact["markout_1s"]
    assert pytest.approx(15.0, abs=1e-6) == exact["markout_1s_bps"] and 1 == exact["markout_1s_n"]
    state_ts, state_mid = np.array([T0 + MS, T0 + S + MS]), np.array([100.0, 100.05])
    sampled = state_mid[np.searchsorted(state_ts, fill_ts + S, side="right") - 1] - price
    assert pytest.approx(0.05, abs=1e-9) == float(sampled[0])
