"""Event cache: the fed Event stream of a dataset window, kept on local disk in pieces hftbacktest reads.

A window is fed once (Parquet decoded, merged into Processing Order, see :func:`hftlab.feed.stream_events`)
and written as ``.npy`` pieces of at most ``HFTLAB_FEED_CHUNK_ROWS`` rows (default 2M, 128 MiB; never more
than a UTC day). The Simulated Venue hands the list of files to hftbacktest, which holds the pieces its
exchange and local sides read and the next one only: memory does not grow with the window. Repeated runs and every sweep worker
on the machine read the pieces instead of decoding Parquet again.

- **Location**: ``$HFTLAB_EVENT_CACHE``, else ``$XDG_CACHE_HOME/hftlab/events``, else
  ``~/.cache/hftlab/events``. ``HFTLAB_EVENT_CACHE=off`` feeds in memory instead (one array).
- **Key**: sha256 of the dataset's content hash, the feeds, the window, the piece budget and the feeder
  version (a hash of the feeder's source files, numpy's and numba's versions): a changed dataset, window
  or feeder is a new entry. A hit first checks the dataset version itself (its manifest hashes to it,
  every partition file is there with its size), as feeding from Parquet would.
- **Verified before use**: each entry's ``index.json`` records the key's inputs and every file's size
  and sha256; a hit checks that the inputs hash to the entry's name, that the pieces listed are the
  pieces on disk, and re-hashes every file (two threads). A file that does not match is reported, the entry removed and fed
  again. An entry appears by an atomic rename of a complete directory, so a killed writer leaves none.
- **Size limit**: ``$HFTLAB_EVENT_CACHE_GB`` (default 20); after a new entry is written, the least
  recently used entries (by the time of their last use) are removed until the cache fits, with the
  unfinished writes of processes that died. ``hftlab cache info`` / ``hftlab cache clear`` show and
  empty it.
- **Shared between processes**: a run holds a shared lock (``flock``) on its entry's ``lock`` file for as
  long as its :class:`~hftlab.feed.FeedData` lives; trimming and clearing take an exclusive lock without
  waiting and skip entries in use, so no process removes the files another one's backtest is reading.
  The cache must be on a local file system (``flock`` is per machine).

The cache is a local accelerator, not a record: results never depend on it (a run fed from the cache
and one fed in memory give byte-identical records, tested).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftlab import faults
from hftlab import feed as F
from hftlab import feed_kernels as K
from hftlab.errors import ConfigError, StorageError, writing
from hftlab.feed_warnings import StreamWarnings
from hftlab.files import canonical_json, lock_file, process_alive, write_json
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage.catalog import Dataset, check_manifest, check_present
from hftlab.storage.manifest import file_sha256

CACHE_ENV = "HFTLAB_EVENT_CACHE"
LIMIT_ENV = "HFTLAB_EVENT_CACHE_GB"
CHUNK_ENV = "HFTLAB_FEED_CHUNK_ROWS"
DEFAULT_LIMIT_GB = 20.0
INDEX = "index.json"
LOCK = "lock"
STAGING = ".staging"
#: Version of an entry's layout; entries of another format are fed again (3: warnings name data gaps).
FORMAT = 3
#: Sources whose code decides the fed bytes: a change makes every entry stale.
_FEEDER_SOURCES = ("feed.py", "feed_read.py", "feed_kernels.py", "hftbacktest_types.py", "event_cache.py", "jit.py")


def feeder_version() -> str:
    """sha256 over the feeder's source files and the numpy and numba versions that run them."""
    import numba

    digest = hashlib.sha256(f"numpy {np.__version__} numba {numba.__version__}".encode())
    base = Path(__file__).parent
    for name in _FEEDER_SOURCES:
        digest.update(name.encode() + b"\0" + (base / name).read_bytes())
    return digest.hexdigest()


def default_dir() -> Path | None:
    """The cache directory the environment names, absolute (None: ``HFTLAB_EVENT_CACHE=off``)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() == "off":
        return None
    if value.lower() in ("0", "false", "no", "none", "disable", "disabled"):
        raise ConfigError(f"${CACHE_ENV}={value!r}: give a directory, or 'off' to feed in memory")
    if value:
        return Path(value).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).absolute() / "hftlab" / "events"


def _env_number(name: str, default: float, *, minimum: float, whole: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        raise ConfigError(f"${name}={raw!r}: must be a {'whole ' if whole else ''}number") from None
    if not (math.isfinite(value) and value >= minimum):
        raise ConfigError(f"${name}={raw!r}: must be a finite number >= {minimum:g}")
    return value


def chunk_rows() -> int:
    """The piece budget: ``$HFTLAB_FEED_CHUNK_ROWS`` or :data:`hftlab.feed.CHUNK_ROWS`."""
    return int(_env_number(CHUNK_ENV, F.CHUNK_ROWS, minimum=1000, whole=True))


class Lease:
    """A shared lock on a cache entry, held while the object lives (see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def take(cls, entry: Path) -> Lease | None:
        """A lease on a complete entry; None if there is none (or it was removed before we held it)."""
        if not (entry / INDEX).is_file():
            return None
        try:
            fd = lock_file(entry / LOCK, exclusive=False)
        except FileNotFoundError:
            return None
        assert fd is not None  # waited for it
        if not (entry / INDEX).is_file():  # a remover held it before us
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.release()


def _remove_unused(entry: Path) -> bool:
    """Remove an entry unless some process holds its lock; True if removed."""
    try:
        fd = lock_file(entry / LOCK, exclusive=True, wait=False)
    except OSError:  # gone already
        return False
    if fd is None:  # in use
        return False
    try:
        shutil.rmtree(entry, ignore_errors=True)
    finally:
        os.close(fd)
    return True


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
        return _key(_key_inputs(dataset, window, budget))

    def feed(self, dataset: Dataset, window: F.Window = F.Window(), budget: int | None = None) -> F.FeedData:
        """The fed stream of ``window`` as cached files: read from the cache when a verified entry exists,
        else fed from Canonical Storage and written (then the cache is trimmed to its limit)."""
        budget = budget or chunk_rows()
        check_manifest(dataset)  # a hit must not answer for a tampered or damaged dataset version
        check_present(dataset)
        inputs = _key_inputs(dataset, window, budget)
        key = _key(inputs)
        entry = self.root / key[:2] / key
        for _ in range(3):  # another process may remove the entry before we hold it: look again
            lease = Lease.take(entry)
            if lease is not None:
                problem = _verify(entry, inputs)
                if problem is None:
                    os.utime(entry / INDEX)
                    return _feed_data(dataset, window, entry, hit=True, lease=lease)
                lease.release()
                if not _remove_unused(entry):
                    raise StorageError(
                        f"event cache entry {entry}: {problem}, and another process is using it: run again when "
                        f"it ends, or feed in memory with {CACHE_ENV}=off"
                    )
                print(f"hftlab: event cache entry {entry}: {problem}: removed, feeding again", file=sys.stderr)
            self._write(dataset, window, budget, entry, inputs)
            lease = Lease.take(entry)
            if lease is not None:
                self.trim(keep=entry)
                return _feed_data(dataset, window, entry, hit=False, lease=lease)
        raise StorageError(f"event cache {self.root}: entry {key} was removed by other processes three times")

    def _write(self, dataset: Dataset, window: F.Window, budget: int, entry: Path, inputs: dict[str, Any]) -> None:
        with writing(self.root):
            self._write_entry(dataset, window, budget, entry, inputs)

    def _write_entry(
        self, dataset: Dataset, window: F.Window, budget: int, entry: Path, inputs: dict[str, Any]
    ) -> None:
        staging = self.root / STAGING / f"{entry.name}-{os.getpid()}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        (staging / LOCK).touch()
        try:
            files = []
            px = (np.inf, -np.inf)
            start = window.start
            snapshot = F.initial_snapshot(dataset, start, budget, window.feeds)
            watch = StreamWarnings(snapshot)
            for i, piece in enumerate(F.stream_events(dataset, window, budget)):
                files.append(_save(staging / f"chunk-{i:05d}.npy", piece))
                faults.point("feed.cache")
                px = K.book_px_range(piece, *px)
                watch.see(piece)
                del piece
            if len(snapshot):
                px = (min(px[0], float(snapshot["px"].min())), max(px[1], float(snapshot["px"].max())))
            snap_file = _save(staging / "snapshot.npy", snapshot)
            index = {
                "format": FORMAT,
                "key": inputs,
                "dataset_id": dataset.id,
                "version": dataset.version,
                "feeds": list(window.feeds),
                "start": window.start,
                "end": window.end,
                "budget": budget,
                "chunks": files,
                "snapshot": snap_file,
                "book_px": [px[0], px[1]] if np.isfinite(px[0]) else None,
                "warnings": watch.warnings(start, window.end, dataset),
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
            try:  # another process may remove the entry meanwhile: skip it
                data = json.loads(index.read_text())
                used = index.stat().st_mtime
                size = _bytes(index.parent)
            except (OSError, ValueError):
                continue
            out.append(Entry(index.parent, size, used, data))
        return sorted(out, key=lambda e: (e.last_used, e.path.name))

    def staging(self) -> tuple[int, int]:
        """Unfinished writes: remove those of processes that died; (bytes, count) of the live ones."""
        live_bytes = live = 0
        root = self.root / STAGING
        for path in list(root.iterdir()) if root.is_dir() else []:
            parts = path.name.split("-")
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if pid is None or not process_alive(pid):
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                live_bytes, live = live_bytes + _bytes(path), live + 1
            except OSError:
                continue
        return live_bytes, live

    def trim(self, keep: Path | None = None) -> list[Entry]:
        """Remove least recently used entries until the cache fits its limit (counting other processes'
        unfinished writes; removing those of dead processes); entries in use are skipped. Returns those
        removed."""
        entries = self.entries()
        total = sum(e.bytes for e in entries) + self.staging()[0]
        removed = []
        for e in entries:
            if total <= self.limit:
                break
            if keep is not None and e.path == keep:
                continue
            if _remove_unused(e.path):
                total -= e.bytes
                removed.append(e)
        return removed

    def clear(self) -> tuple[int, int]:
        """Remove every entry not in use and the unfinished writes of dead processes; (bytes freed,
        entries kept because a process is using them)."""
        freed = kept = 0
        for e in self.entries():
            if _remove_unused(e.path):
                freed += e.bytes
            else:
                kept += 1
        self.staging()
        for prefix in list(self.root.glob("??")) if self.root.is_dir() else []:
            for leftover in list(prefix.iterdir()):  # entries without an index: never completed
                if not (leftover / INDEX).exists():
                    _remove_unused(leftover)
            if not any(prefix.iterdir()):
                prefix.rmdir()
        return freed, kept


def _bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file())


def _key_inputs(dataset: Dataset, window: F.Window, budget: int) -> dict[str, Any]:
    return {
        "dataset": dataset.manifest.content_hash,
        "feeds": list(window.feeds),
        "start": window.start,
        "end": window.end,
        "budget": budget,
        "feeder": feeder_version(),
    }


def _key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


class _Stream:
    """A file seen by numpy as a plain stream: ``np.save`` writes a real file with ``ndarray.tofile``, whose
    short write on a full disk raises an OSError without errno; written in chunks, a full disk is ENOSPC."""

    def __init__(self, fh: Any) -> None:
        self.write = fh.write


def _save(path: Path, events: np.ndarray) -> dict[str, Any]:
    with open(path, "wb") as fh:  # the bytes of np.save
        np.lib.format.write_array(_Stream(fh), np.ascontiguousarray(events, dtype=EVENT_DTYPE), allow_pickle=False)
    return {"file": path.name, "rows": len(events), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _verify(entry: Path, inputs: dict[str, Any]) -> str | None:
    """None when the entry is the one ``inputs`` key and every file matches its index, else what is wrong."""
    try:
        index = json.loads((entry / INDEX).read_text())
        files = [*index["chunks"], index["snapshot"]]
        names = [c["file"] for c in index["chunks"]]
        on_disk = sorted(p.name for p in entry.glob("chunk-*.npy"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {INDEX} ({exc})"
    if index.get("format") != FORMAT:
        return f"entry format {index.get('format')!r}, this hftlab writes {FORMAT}"
    if index.get("key") != inputs:  # ``inputs`` hash to the entry's name
        return f"{INDEX} is not the index of this entry's key"
    if names != [f"chunk-{i:05d}.npy" for i in range(len(names))] or names != on_disk:
        return f"{INDEX} lists pieces {names[:3]}... but the entry holds {on_disk[:3]}... ({len(on_disk)} files)"

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


def _feed_data(dataset: Dataset, window: F.Window, entry: Path, *, hit: bool, lease: Lease) -> F.FeedData:
    """The entry as fed data, holding ``lease`` (so no other process removes it while it is used)."""
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
        lease=lease,
    )
