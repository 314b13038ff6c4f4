"""Data warnings of a fed stream: gaps of a minute or more without any event (hand-made streams)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hftlab import hftbacktest_types as HB
from hftlab.event_cache import EventCache
from hftlab.feed import Window, load_events
from hftlab.feed_warnings import GAP_NS, Gaps
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument
from hftlab.times import to_ns

S = 1_000_000_000
T0 = to_ns("2024-03-01T00:00")


def _events(local_ts: list[int], local: bool = True) -> np.ndarray:
    rows = np.zeros(len(local_ts), EVENT_DTYPE)
    rows["local_ts"] = local_ts
    rows["ev"] = HB.EXCH_EVENT | (HB.LOCAL_EVENT if local else 0)
    return rows


def test_gaps_across_pieces_and_at_the_edges():
    """A 61 s gap across the boundary of two pieces is found, 59.999999999 s is not; an EXCH-only row in
    it does not close it; the window's start 70 s before the first event is a gap too."""
    gaps = Gaps()
    gaps.see(_events([T0, T0 + 60 * S - 1]))  # 59.999999999 s apart: no gap
    gaps.see(_events([T0 + 90 * S], local=False))  # an exchange-only row: not an event in local time
    gaps.see(_events([T0 + 121 * S - 1, T0 + 122 * S]))  # 61 s after the last local event
    assert gaps.found == [(T0 + 60 * S - 1, T0 + 121 * S - 1)]
    (warning,) = gaps.warnings(T0 - 70 * S, T0 + 122 * S + 1)
    assert warning == (
        "2 gap(s) of 60 s or more without any event (131 s in all): 70 s from 2024-02-29T23:58:50Z, "
        "61 s from 2024-03-01T00:00:59.999999999Z; the simulated book stands still through them"
    )
    assert gaps.warnings(T0, T0 + 122 * S + 1) == [  # a window starting at the first event: no edge gap
        "1 gap(s) of 60 s or more without any event (61 s in all): 61 s from 2024-03-01T00:00:59.999999999Z; "
        "the simulated book stands still through them"
    ]


def test_more_gaps_than_shown_are_counted():
    gaps = Gaps()
    gaps.see(_events([T0 + i * 2 * GAP_NS for i in range(6)]))
    (warning,) = gaps.warnings(T0, T0 + 10 * GAP_NS + 1)
    assert warning.startswith("5 gap(s) of 60 s or more without any event (600 s in all): 120 s from ")
    assert warning.endswith(" and 2 more; the simulated book stands still through them")


def test_a_dataset_with_a_hole_warns_in_memory_and_through_the_cache(catalog: Catalog, tmp_path: Path):
    """Book updates each second, then 5 minutes of nothing (a feed outage), then updates again: the fed
    stream names the gap whether fed whole or through the event cache; a window after it has none."""
    times = [T0 + i * S for i in range(30)] + [T0 + 330 * S + i * S for i in range(30)]
    n = len(times)
    snapshot = FeedFrame.from_columns(
        "snapshot", "s", exch_ts=[T0 - 1] * 2, local_ts=[T0 - 1] * 2, kind=[4, 4], side=[1, -1],
        price=[9.5, 10.5], qty=[1, 2],
    )  # fmt: skip
    depth = FeedFrame.from_columns(
        "depth", "d", exch_ts=times, local_ts=[t + 1000 for t in times], kind=[1] * n,
        side=[1, -1] * (n // 2), price=[9.5, 10.5] * (n // 2), qty=[1.0] * n,
    )  # fmt: skip
    catalog.promote(IngestResult(Instrument("test", "ABC", 0.5, 1.0), [snapshot, depth], {}), "hole")
    dataset = catalog.resolve("hole")
    for fed in (load_events(dataset), EventCache(tmp_path / "cache").feed(dataset)):
        (warning,) = fed.warnings
        assert warning.startswith("1 gap(s) of 60 s or more without any event (301 s in all): 301 s from "
                                  "2024-03-01T00:00:29.000001Z")  # fmt: skip
    assert load_events(dataset, Window(start=T0 + 330 * S)).warnings == ()
