"""Data warnings of a fed stream: what a run over it must report, because its results may be wrong there.

- **No book at the start** (:class:`BookStart`): no initial snapshot, and depth updates before the first
  snapshot row: the book is built from increments only, so mid, spread and fills are wrong until then.
- **Gaps** (:class:`Gaps`): :data:`GAP_NS` (60 s) or more of local time without any event, inside the
  window or at its edges: the simulated book stands still through them (a feed outage, a missing file, a
  halt). The threshold is an assumption for the liquid instruments this stack targets, where a minute
  without one book update or trade does not happen in a healthy feed.

Both watch the stream piece by piece (the event cache feeds it in bounded memory), so they see it whole.
"""

from __future__ import annotations

import numpy as np

from hftlab import hftbacktest_types as HB
from hftlab.storage.catalog import Dataset
from hftlab.times import iso

#: A gap: this much local time (ns) or more without any event.
GAP_NS = 60 * 1_000_000_000
#: Gaps named one by one in a warning (the largest first); the rest are counted.
GAPS_SHOWN = 3


class BookStart:
    """Watches a fed stream for a window that starts without a book: no initial snapshot, and depth
    updates before the first snapshot row (the book is then built from increments only and mid, spread
    and fills are wrong until the first snapshot)."""

    def __init__(self, snapshot: np.ndarray | None) -> None:
        self.has_snapshot = snapshot is not None and len(snapshot) > 0
        self.first_depth: int | None = None
        self.first_snapshot: int | None = None

    def see(self, events: np.ndarray) -> None:
        if self.has_snapshot or self.first_snapshot is not None:
            return
        kind = events["ev"] & HB.KIND_MASK
        snaps = np.flatnonzero(kind == HB.DEPTH_SNAPSHOT_EVENT)
        depth = np.flatnonzero(kind == HB.DEPTH_EVENT)
        if self.first_depth is None and len(depth):
            self.first_depth = int(events["exch_ts"][depth[0]])
        if len(snaps):
            self.first_snapshot = int(events["exch_ts"][snaps[0]])

    def warnings(self, start_ns: int) -> list[str]:
        if self.has_snapshot or self.first_depth is None:
            return []
        if self.first_snapshot is None:
            return [
                f"the window starting {iso(start_ns)} has no book snapshot before it nor in it: the book is "
                "built from incremental updates only, so mid, spread and fills may be wrong throughout"
            ]
        if self.first_snapshot <= self.first_depth:
            return []
        late = (self.first_snapshot - start_ns) / 1e9
        return [
            f"the window starting {iso(start_ns)} has no book snapshot before it: the book is built from "
            f"incremental updates only until the first snapshot at {iso(self.first_snapshot)} ({late:.3f} s "
            "later); mid, spread and fills before then may be wrong"
        ]


class Gaps:
    """Watches a fed stream for :data:`GAP_NS` or more of local time without an event."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.found: list[tuple[int, int]] = []  #: (from, to) local times

    def see(self, events: np.ndarray) -> None:
        ts = np.asarray(events["local_ts"][(events["ev"] & HB.LOCAL_EVENT) != 0], dtype=np.int64)
        if not len(ts):
            return
        if self.first is None:
            self.first = int(ts[0])
        joined = ts if self.last is None else np.concatenate([[self.last], ts])
        at = np.flatnonzero(np.diff(joined) >= GAP_NS)
        self.found.extend((int(joined[i]), int(joined[i + 1])) for i in at)
        self.last = int(ts[-1])

    def warnings(self, start_ns: int, end_ns: int) -> list[str]:
        """The gaps, with the window's edges: from its start to the first event, from the last to its end."""
        if self.first is None or self.last is None:
            return []
        gaps = list(self.found)
        if self.first - start_ns >= GAP_NS:
            gaps.append((start_ns, self.first))
        if end_ns - self.last >= GAP_NS:
            gaps.append((self.last, end_ns))
        if not gaps:
            return []
        gaps.sort(key=lambda g: (g[0] - g[1], g[0]))  # largest first, then earliest
        named = ", ".join(f"{(b - a) / 1e9:,.0f} s from {iso(a)}" for a, b in gaps[:GAPS_SHOWN])
        more = f" and {len(gaps) - GAPS_SHOWN} more" if len(gaps) > GAPS_SHOWN else ""
        total = sum(b - a for a, b in gaps) / 1e9
        return [
            f"{len(gaps)} gap(s) of {GAP_NS // 1_000_000_000} s or more without any event ({total:,.0f} s in all): "
            f"{named}{more}; the simulated book stands still through them"
        ]


class StreamWarnings:
    """Every data warning of one fed stream (see the module docstring)."""

    def __init__(self, snapshot: np.ndarray | None) -> None:
        self.book = BookStart(snapshot)
        self.gaps = Gaps()

    def see(self, events: np.ndarray) -> None:
        self.book.see(events)
        self.gaps.see(events)

    def warnings(self, start: int | None, end: int | None, dataset: Dataset) -> list[str]:
        """The warnings for the window ``[start, end)`` (None: the dataset's own start or end)."""
        start_ns = start if start is not None else dataset.manifest.start_ns
        end_ns = end if end is not None else dataset.manifest.end_ns + 1
        return self.book.warnings(start_ns) + self.gaps.warnings(start_ns, end_ns)
