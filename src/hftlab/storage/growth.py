"""Datasets that grow: where each import of a new version goes in Processing Order.

A dataset version holds one or more imports (:class:`~hftlab.storage.manifest.Source`: a raw file or a
generator run), each covering an exchange-time window ``[first row, last row]``. Importing more windows
into an existing dataset id makes a new version holding the head version's imports plus the new ones:

- Windows never overlap: such an import is refused naming both sources, unless its rows equal the stored
  import's rows, in which case it is already there and is skipped. Windows may *touch* (the later one
  starts at the exchange timestamp the earlier one ends at: files a collector cut by its local clock do)
  when the Processing Order of the rows at that timestamp is the same as in one import of both files:
  every row of the earlier import at that timestamp comes before every row of the later one by local
  time, then feed. Otherwise the rows would interleave and it is refused, saying so.
- Every row's ``seq`` (its Processing Order rank) stays dense over the version, imports in time order.
  The first stored import keeps its ranks; imports before it get ranks below it (negative ranks are
  allowed), imports after it continue upwards. A stored import whose ranks stay the same is *shared*: its
  files are hard links to the parent version's files (no copy). One whose ranks move (a new import
  placed in a gap between two stored ones) is rewritten with shifted ranks; the parent version is never
  touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from hftlab.errors import StorageError
from hftlab.storage.manifest import Manifest, Partition, Source
from hftlab.storage.schema import FEEDS, IngestResult
from hftlab.times import NS_PER_DAY, iso, utc_date


@dataclass(frozen=True)
class Block:
    """One import of the new version: a stored one (``stored`` = its index in the parent's sources) or a
    new one (``result``), with the first ``seq`` its rows get in the new version."""

    source: Source
    base: int
    stored: int | None = None
    result: IngestResult | None = None


def source_of(result: IngestResult) -> Source:
    """The :class:`Source` entry an import will have: its lineage and exchange-time window."""
    rows = [f for f in result.feeds if len(f)]
    return Source(
        lineage=dict(result.lineage),
        start_ns=min(int(f.exch_ts.min()) for f in rows),
        end_ns=max(int(f.exch_ts.max()) for f in rows),
        rows=sum(len(f) for f in rows),
    )


def _overlap(a: Source, b: Source) -> bool:
    return a.start_ns <= b.end_ns and b.start_ns <= a.end_ns


#: (src, index of a stored import or None, new import or None), as :func:`plan` keeps them.
_Planned = tuple[Source, int | None, IngestResult | None]


def _keys_at(t: int, block: _Planned, parent: tuple[str, Manifest] | None) -> list[tuple[int, int]]:
    """(local time, feed rank) of every row of an import at exchange time ``t``."""
    _, stored, result = block
    keys: list[tuple[int, int]] = []
    if result is not None:
        for frame in result.feeds:
            at = frame.exch_ts == t
            keys += [(int(lt), FEEDS.index(frame.feed)) for lt in frame.local_ts[at]]
        return keys
    assert parent is not None
    for part in parent[1].partitions:
        if part.source == stored and part.exch_ts_min <= t <= part.exch_ts_max:
            table = pq.read_table(f"{parent[0]}/{part.path}", columns=["exch_ts", "local_ts"])
            at = table.column("exch_ts").to_numpy() == t
            keys += [(int(lt), FEEDS.index(part.feed)) for lt in table.column("local_ts").to_numpy()[at]]
    return keys


def _touch(new: _Planned, other: _Planned, parent: tuple[str, Manifest] | None) -> str | None:
    """When the windows only touch: None if their rows at the shared timestamp keep one Processing
    Order (see the module docstring), else why not. Not a touch (they overlap): 'overlap'."""
    a, b = (other, new) if new[0].start_ns == other[0].end_ns else (new, other)
    if not (a[0].end_ns == b[0].start_ns and a[0].start_ns < b[0].start_ns and a[0].end_ns < b[0].end_ns):
        return "overlap"
    t = b[0].start_ns
    last, first = max(_keys_at(t, a, parent)), min(_keys_at(t, b, parent))
    if last <= first:
        return None
    return (
        f"their windows touch at {iso(t)} and the rows at that timestamp interleave (local time "
        f"{last[0]} of {a[0].names()} is after local time {first[0]} of {b[0].names()}), which one import of "
        "both files would order differently"
    )


def _refuse(new: Source, other: Source, where: str, why: str) -> StorageError:
    if why != "overlap":
        return StorageError(
            f"import of {new.names()} ({iso(new.start_ns)} .. {iso(new.end_ns)}) next to {where} {other.names()} "
            f"({iso(other.start_ns)} .. {iso(other.end_ns)}): {why} (concatenate the two raw files and import them as one)"
        )
    return StorageError(
        f"import of {new.names()} ({iso(new.start_ns)} .. {iso(new.end_ns)}) overlaps {where} {other.names()} "
        f"({iso(other.start_ns)} .. {iso(other.end_ns)}) in exchange time: the windows of one dataset must "
        "not overlap (import it under another dataset id, or import only the missing days)"
    )


def _same_rows(version_dir: str, manifest: Manifest, index: int, result: IngestResult) -> bool:
    """True when ``result`` holds exactly the rows (apart from their ranks) of stored import ``index``."""
    stored = {(p.feed, p.date): p for p in manifest.partitions if p.source == index}
    pieces = 0
    for frame in result.feeds:
        if not len(frame):
            continue
        day = frame.exch_ts // NS_PER_DAY
        cuts = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(frame)], strict=True):
            part = stored.get((frame.feed, utc_date(int(frame.exch_ts[lo]))))
            if part is None or part.rows != hi - lo:
                return False
            table = pq.read_table(f"{version_dir}/{part.path}")
            for name in frame.columns:
                if not np.array_equal(table.column(name).to_numpy(), getattr(frame, name)[lo:hi]):
                    return False
            pieces += 1
    return pieces == len(stored)


def plan(parent: tuple[str, Manifest] | None, results: Sequence[IngestResult]) -> list[Block]:
    """The imports of the new version in time order, with their first ranks.

    ``parent`` is the head version (its directory and manifest) or None for a new dataset id. New imports
    whose rows are already stored are dropped; overlapping ones are refused (:class:`StorageError`).
    """
    blocks: list[_Planned] = []
    first_seq = 0
    if parent is not None:
        manifest = parent[1]
        for i, src in enumerate(manifest.sources):
            blocks.append((src, i, None))
        first_seq = min(p.seq_min for p in manifest.partitions if p.source == 0)
    for result in sorted(results, key=lambda r: source_of(r).start_ns):
        new = source_of(result)
        planned: _Planned = (new, None, result)
        clash = [(b, why) for b in blocks if _overlap(new, b[0]) and (why := _touch(planned, b, parent))]
        if clash:
            (other, stored, _), why = clash[0]
            if stored is not None and parent is not None and _same_rows(parent[0], parent[1], stored, result):
                continue
            raise _refuse(new, other, "the stored import of" if stored is not None else "the import of", why)
        blocks.append(planned)
    blocks.sort(key=lambda b: b[0].start_ns)
    # The first stored import (or the first import of a new id) keeps its ranks.
    anchor = next((k for k, b in enumerate(blocks) if b[1] == 0), 0)
    bases = [0] * len(blocks)
    bases[anchor] = first_seq
    for k in range(anchor - 1, -1, -1):
        bases[k] = bases[k + 1] - blocks[k][0].rows
    for k in range(anchor + 1, len(blocks)):
        bases[k] = bases[k - 1] + blocks[k - 1][0].rows
    return [Block(src, base, stored, result) for (src, stored, result), base in zip(blocks, bases, strict=True)]


def stored_base(manifest: Manifest, index: int) -> int:
    """The first rank of stored import ``index`` in its version."""
    return min(p.seq_min for p in manifest.partitions if p.source == index)


def renumbered(part: Partition, source: int) -> Partition:
    """``part`` as a partition of import ``source`` of the new version (same file)."""
    return Partition(**{**part.to_dict(), "source": source})
