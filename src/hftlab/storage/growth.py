"""Datasets that grow: where each import of a new version goes in Processing Order.

A dataset version holds one or more imports (:class:`~hftlab.storage.manifest.Source`: a raw file or a
generator run), each covering an exchange-time window ``[first row, last row]``. Importing more windows
into an existing dataset id makes a new version holding the head version's imports plus the new ones:

- Windows never overlap, nor touch (two imports sharing an exchange timestamp would need a rule to order
  their rows): such an import is refused naming both sources, unless its rows equal the stored import's
  rows, in which case it is already there and is skipped.
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
from hftlab.storage.schema import COLUMNS, IngestResult
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


def _refuse(new: Source, other: Source, where: str) -> StorageError:
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
            for name in COLUMNS:
                if name != "seq" and not np.array_equal(table.column(name).to_numpy(), getattr(frame, name)[lo:hi]):
                    return False
            pieces += 1
    return pieces == len(stored)


def plan(parent: tuple[str, Manifest] | None, results: Sequence[IngestResult]) -> list[Block]:
    """The imports of the new version in time order, with their first ranks.

    ``parent`` is the head version (its directory and manifest) or None for a new dataset id. New imports
    whose rows are already stored are dropped; overlapping ones are refused (:class:`StorageError`).
    """
    blocks: list[tuple[Source, int | None, IngestResult | None]] = []
    first_seq = 0
    if parent is not None:
        manifest = parent[1]
        for i, src in enumerate(manifest.sources):
            blocks.append((src, i, None))
        first_seq = min(p.seq_min for p in manifest.partitions if p.source == 0)
    for result in sorted(results, key=lambda r: source_of(r).start_ns):
        new = source_of(result)
        clash = [(s, i, r) for s, i, r in blocks if _overlap(new, s)]
        if clash:
            other, stored, _ = clash[0]
            if stored is not None and parent is not None and _same_rows(parent[0], parent[1], stored, result):
                continue
            raise _refuse(new, other, "the stored import of" if stored is not None else "the import of")
        blocks.append((new, None, result))
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
