"""Event cache: the fed Event stream of a dataset window, kept on local disk in pieces hftbacktest reads.

A window is fed once (Parquet decoded, merged into Processing Order, see :func:`hftlab.feed.stream_events`)
and written as ``.npy`` pieces of at most ``HFTLAB_FEED_CHUNK_ROWS`` rows (default 2M, 128 MiB; never more
than a UTC day). The Simulated Venue hands the list of files to hftbacktest, which holds the piece it
reads and the next one only: memory does not grow with the window. Repeated runs and every sweep worker
on the machine read the pieces instead of decoding Parquet again.

- **Location**: ``$HFTLAB_EVENT_CACHE``, else ``$XDG_CACHE_HOME/hftlab/events``, else
  ``~/.cache/hftlab/events``. ``HFTLAB_EVENT_CACHE=off`` feeds in memory instead (one array).
- **Key**: sha256 of the dataset's content hash, the feeds, the window, the piece budget and the feeder
  version (a hash of the feeder's source files): a changed dataset, window or feeder is a new entry.
- **Verified before use**: each entry's ``index.json`` records every file's size and sha256; a hit
  re-hashes every file (two threads). A file that does not match is reported, the entry removed and fed
  again. An entry appears by an atomic rename of a complete directory, so a killed writer leaves none.
- **Size limit**: ``$HFTLAB_EVENT_CACHE_GB`` (default 20); after a new entry is written, the least
  recently used entries (by the time of their last use) are removed until the cache fits; the entry in
  use is never removed. ``hftlab cache info`` / ``hftlab cache clear`` show and empty it.

The cache is a local accelerator, not a record: results never depend on it (a run fed from the cache
and one fed in memory give byte-identical records, tested).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftlab import feed as F
from hftlab import feed_kernels as K
from hftlab.errors import ConfigError
from hftlab.files import canonical_json, write_json
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage.catalog import Dataset
from hftlab.storage.manifest import file_sha256

CACHE_ENV = "HFTLAB_EVENT_CACHE"
LIMIT_ENV = "HFTLAB_EVENT_CACHE_GB"
CHUNK_ENV = "HFTLAB_FEED_CHUNK_ROWS"
DEFAULT_LIMIT_GB = 20.0
INDEX = "index.json"
#: Sources whose code decides the fed bytes: a change makes every entry stale.
_FEEDER_SOURCES = ("feed.py", "feed_kernels.py", "hftbacktest_types.py", "event_cache.py")


def feeder_version() -> str:
    """sha256 over the feeder's source files."""
    digest = hashlib.sha256()
    base = Path(__file__).parent
    for name in _FEEDER_SOURCES:
        digest.update(name.encode() + b"\0" + (base / name).read_bytes())
    return digest.hexdigest()


def default_dir() -> Path | None:
    """The cache directory the environment names (None: ``HFTLAB_EVENT_CACHE=off``)."""
    value = os.environ.get(CACHE_ENV, "")
    if value == "off":
        return None
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hftlab" / "events"


def _env_number(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${name}={raw!r}: must be a number") from None
    if not value >= minimum:
        raise ConfigError(f"${name}={raw!r}: must be >= {minimum:g}")
    return value


def chunk_rows() -> int:
    """The piece budget: ``$HFTLAB_FEED_CHUNK_ROWS`` or :data:`hftlab.feed.CHUNK_ROWS`."""
    return int(_env_number(CHUNK_ENV, F.CHUNK_ROWS, minimum=1000))


@dataclass(frozen=True)
class Entry:
    """One cached window on disk."""

    path: Path
    bytes: int
    last_used: float
    index: dict[str, Any]


class EventCache:
    """The event cache at ``root`` (default :func:`default_dir`) with a size limit in bytes."""

    def __init__(self, root: Path | None = None, limit_bytes: int | None = None) -> None:
        found = root if root is not None else default_dir()
        if found is None:
            raise ConfigError(f"${CACHE_ENV}=off: the event cache is switched off")
        self.root = found
        self.limit = (
            limit_bytes if limit_bytes is not None else int(_env_number(LIMIT_ENV, DEFAULT_LIMIT_GB, minimum=0) * 2**30)
        )

    # -- use ----------------------------------------------------------------------------------
    def key(self, dataset: Dataset, window: F.Window, budget: int) -> str:
        body = {
            "dataset": dataset.manifest.content_hash,
            "feeds": list(window.feeds),
            "start": window.start,
            "end": window.end,
            "budget": budget,
            "feeder": feeder_version(),
        }
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def feed(self, dataset: Dataset, window: F.Window = F.Window(), budget: int | None = None) -> F.FeedData:
        """The fed stream of ``window`` as cached files: read from the cache when a verified entry exists,
        else fed from Canonical Storage and written (then the cache is trimmed to its limit)."""
        budget = budget or chunk_rows()
        key = self.key(dataset, window, budget)
        entry = self.root / key[:2] / key
        if (entry / INDEX).is_file():
            problem = _verify(entry)
            if problem is None:
                os.utime(entry / INDEX)
                return _feed_data(dataset, window, entry, hit=True)
            print(f"hftlab: event cache entry {entry}: {problem}: removed, feeding again", file=sys.stderr)
            shutil.rmtree(entry, ignore_errors=True)
        self._write(dataset, window, budget, entry)
        self.trim(keep=entry)
        return _feed_data(dataset, window, entry, hit=False)

    def _write(self, dataset: Dataset, window: F.Window, budget: int, entry: Path) -> None:
        staging = self.root / ".staging" / f"{entry.name}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            files = []
            px = (np.inf, -np.inf)
            start = window.start
            snapshot = F.initial_snapshot(dataset, start, budget)
            book = F.BookStart(snapshot)
            for i, piece in enumerate(F.stream_events(dataset, window, budget)):
                files.append(_save(staging / f"chunk-{i:05d}.npy", piece))
                px = K.book_px_range(piece, *px)
                book.see(piece)
                del piece
            if len(snapshot):
                px = (min(px[0], float(snapshot["px"].min())), max(px[1], float(snapshot["px"].max())))
            snap_file = _save(staging / "snapshot.npy", snapshot)
            index = {
                "format": 1,
                "dataset_id": dataset.id,
                "version": dataset.version,
                "feeds": list(window.feeds),
                "start": window.start,
                "end": window.end,
                "budget": budget,
                "chunks": files,
                "snapshot": snap_file,
                "book_px": [px[0], px[1]] if np.isfinite(px[0]) else None,
                "warnings": book.warnings(start if start is not None else dataset.manifest.start_ns),
            }
            write_json(staging / INDEX, index)
            entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, entry)
            except OSError:
                if not (entry / INDEX).is_file():  # not a concurrent writer of the same entry: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- housekeeping ------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every complete entry, least recently used first."""
        out: list[Entry] = []
        if not self.root.is_dir():
            return out
        for index in self.root.glob(f"??/*/{INDEX}"):
            try:
                data = json.loads(index.read_text())
                used = index.stat().st_mtime
            except (OSError, ValueError):
                continue
            size = sum(f.stat().st_size for f in index.parent.iterdir() if f.is_file())
            out.append(Entry(index.parent, size, used, data))
        return sorted(out, key=lambda e: (e.last_used, e.path.name))

    def trim(self, keep: Path | None = None) -> list[Entry]:
        """Remove least recently used entries until the cache fits its limit; return those removed."""
        entries = self.entries()
        total = sum(e.bytes for e in entries)
        removed = []
        for e in entries:
            if total <= self.limit:
                break
            if keep is not None and e.path == keep:
                continue
            shutil.rmtree(e.path, ignore_errors=True)
            total -= e.bytes
            removed.append(e)
        return removed

    def clear(self) -> int:
        """Remove every entry (and unfinished writes); return the bytes freed."""
        freed = sum(e.bytes for e in self.entries())
        for child in list(self.root.iterdir()) if self.root.is_dir() else []:
            shutil.rmtree(child, ignore_errors=True)
        return freed


def _save(path: Path, events: np.ndarray) -> dict[str, Any]:
    np.save(path, np.ascontiguousarray(events, dtype=EVENT_DTYPE), allow_pickle=False)
    return {"file": path.name, "rows": len(events), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _verify(entry: Path) -> str | None:
    """None when every file of the entry matches its index, else what is wrong."""
    try:
        index = json.loads((entry / INDEX).read_text())
        files = [*index["chunks"], index["snapshot"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {INDEX} ({exc})"

    def check(rec: dict[str, Any]) -> str | None:
        path = entry / rec["file"]
        if not path.is_file() or path.stat().st_size != rec["bytes"]:
            return f"{rec['file']} is missing or has another size than recorded"
        if file_sha256(path) != rec["sha256"]:
            return f"{rec['file']} does not match its recorded sha256"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for p in pool.map(check, files) if p]
    return problems[0] if problems else None


def _feed_data(dataset: Dataset, window: F.Window, entry: Path, *, hit: bool) -> F.FeedData:
    index = json.loads((entry / INDEX).read_text())
    snapshot = np.load(entry / index["snapshot"]["file"], allow_pickle=False)
    files = tuple(entry / c["file"] for c in index["chunks"])
    rows = sum(int(c["rows"]) for c in index["chunks"])
    px = index["book_px"]
    return F.FeedData(
        dataset=dataset,
        events=np.empty(0, EVENT_DTYPE),
        initial_snapshot=snapshot,
        start_ns=window.start if window.start is not None else dataset.manifest.start_ns,
        end_ns=window.end if window.end is not None else dataset.manifest.end_ns + 1,
        feeds=tuple(window.feeds),
        files=files,
        rows=rows,
        book_px=(float(px[0]), float(px[1])) if px else None,
        cache_hit=hit,
        warnings=tuple(index["warnings"]),
    )
