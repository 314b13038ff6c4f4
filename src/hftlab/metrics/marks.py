"""Mids at exact times, for markouts: the fed Event stream replayed by the Simulated Venue, without orders.

A markout at horizon ``h`` compares a fill's price with the mid at ``fill local_ts + h``. The state series
is sampled (``runtime.record_interval_ns``) at evaluation points, so reading the mid there measures up to
one sampling interval early; this module replays the run's own stream instead and reads the local book at
each asked time exactly: after every event whose local timestamp is at or before it (hftbacktest's
``elapse`` to that time), as the strategy would have seen it had it woken up then. The replay uses the
run's venue (depth implementation, tick, L2 or L3 feeds) with a zero order latency: no order is sent, and
feed timestamps do not depend on the order latency model.

Cost: one more pass over the stream up to the last asked time (no strategy, no orders), compiled once per
machine like the Core Runtime (:func:`hftlab.jit.engine_jit`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hftlab.errors import VenueError
from hftlab.feed import FeedData
from hftlab.hftbacktest_types import EMPTY_ASK_TICK, EMPTY_BID_TICK, LOCAL_EVENT
from hftlab.jit import engine_jit
from hftlab.metrics.compute import MidAt
from hftlab.venue import abi
from hftlab.venue.config import LatencyConfig, VenueConfig


@engine_jit
def _mids_at(bt, targets, last_ts, tick_size, out):
    """Fill ``out[i]`` with the mid at local time ``targets[i]`` (ascending; NaN after ``last_ts``, the last
    local event's time); returns 0, or an hftbacktest error code (>= 10)."""
    depth = abi.depth(bt)
    ended = False
    if abi.current_timestamp(bt) == np.iinfo(np.int64).max:  # not started: hftbacktest starts at the first event
        result = abi.elapse(bt, 0)
        if result >= 10:
            return result
        ended = result != 0
    for i in range(len(targets)):
        if targets[i] > last_ts:
            break
        now = abi.current_timestamp(bt)
        if targets[i] > now and not ended:
            result = abi.elapse(bt, targets[i] - now)
            if result >= 10:
                return result
            ended = result != 0  # every event processed: the book stays as it is up to last_ts
        bid, ask = abi.best_ticks(bt, depth)
        if bid != EMPTY_BID_TICK and ask != EMPTY_ASK_TICK:
            out[i] = (bid * tick_size + ask * tick_size) / 2.0
    return 0


def replay_mids(fed: FeedData, venue: VenueConfig) -> MidAt:
    """A :data:`MidAt` over ``fed`` as ``venue`` (the run's) would show it; times after the stream's last
    local event give NaN. Each call replays the stream from its start."""
    from hftlab.venue.simulated import SimulatedVenue

    quiet = dataclasses.replace(venue, latency=LatencyConfig())

    def mid_at(times: np.ndarray) -> np.ndarray:
        targets = np.ascontiguousarray(times, dtype=np.int64)
        if len(targets) > 1 and not np.all(np.diff(targets) > 0):
            raise ValueError("mid_at: times must be sorted and unique")
        out = np.full(len(targets), np.nan)
        if len(targets) == 0:
            return out
        last_ts = max((int(p["local_ts"][(p["ev"] & LOCAL_EVENT) != 0].max(initial=-1)) for p in fed.pieces()),
                      default=-1)  # fmt: skip
        sim = SimulatedVenue(fed, quiet)
        with sim as bt:
            code = _mids_at(bt, targets, last_ts, sim.config.tick_size, out)
        if code != 0:
            raise VenueError(f"hftbacktest returned error code {code} while replaying mids for markouts")
        return out

    return mid_at
