"""Canonical Storage: staging, validation, atomic promotion, immutability, listing, verification.

Layout under the storage root (default ``data/canonical`` relative to the working directory, or
``$HFTLAB_DATA_ROOT``)::

    <root>/<dataset_id>/<version>/manifest.json
    <root>/<dataset_id>/<version>/venue=<v>/symbol=<s>/feed=<f>/date=<YYYY-MM-DD>/part-0.parquet
    <root>/.staging/...            (work in progress; never read as a dataset)

A version directory appears only by an atomic rename of a complete staging directory, and its files
are made read-only. Promoting content whose version already exists is a no-op when the stored
manifest matches, and refused otherwise: promoted files are never rewritten.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftlab import faults
from hftlab.errors import StorageError, writing
from hftlab.files import lock_file, write_json
from hftlab.storage.growth import Block, plan, renumbered, source_of, stored_base
from hftlab.storage.manifest import (
    MANIFEST_NAME,
    VERSION_LENGTH,
    Manifest,
    Partition,
    columns_sha256,
    content_hash,
    file_sha256,
)
from hftlab.storage.schema import (
    IngestResult,
    arrow_schema,
    check_name,
    feed_columns,
    processing_order,
    schema_version_for,
)
from hftlab.storage.validate import validate
from hftlab.times import NS_PER_DAY, utc_date

DEFAULT_ROOT = Path("data") / "canonical"
ROOT_ENV = "HFTLAB_DATA_ROOT"
STAGING = ".staging"
#: Parquet writer settings; fixed so files are byte-identical for one pyarrow version.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 1 << 20, "write_statistics": True}


def default_root() -> Path:
    """The storage root: ``$HFTLAB_DATA_ROOT`` if set, else ``data/canonical`` under the working directory."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def assign_seq(result: IngestResult, base: int = 0) -> list[np.ndarray]:
    """Processing Order rank of every row (from ``base``): by exchange time, local time, feed rank, source order."""
    order = processing_order(result.feeds)
    seq = np.empty(len(order), dtype=np.int64)
    seq[order] = np.arange(base, base + len(order), dtype=np.int64)
    bounds = np.cumsum([0] + [len(f) for f in result.feeds])
    return [seq[bounds[i] : bounds[i + 1]] for i in range(len(result.feeds))]


def _free_path(directory: str, taken: set[str]) -> str:
    """The first ``<directory>/part-<k>.parquet`` not yet used (a date can hold rows of several imports)."""
    k = 0
    while f"{directory}/part-{k}.parquet" in taken:
        k += 1
    taken.add(f"{directory}/part-{k}.parquet")
    return f"{directory}/part-{k}.parquet"


def _write_partition(
    target: Path, rel: str, feed: str, date: str, cols: dict[str, np.ndarray], source: int
) -> Partition:
    names = feed_columns(feed)
    table = pa.Table.from_arrays([pa.array(cols[n]) for n in names], schema=arrow_schema(feed))
    path = target / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **PARQUET_OPTIONS)
    return Partition(
        path=rel,
        feed=feed,
        date=date,
        rows=len(cols["seq"]),
        exch_ts_min=int(cols["exch_ts"][0]),
        exch_ts_max=int(cols["exch_ts"][-1]),
        local_ts_min=int(cols["local_ts"].min()),
        local_ts_max=int(cols["local_ts"].max()),
        seq_min=int(cols["seq"][0]),
        seq_max=int(cols["seq"][-1]),
        content_sha256=columns_sha256(cols, names),
        file_sha256=file_sha256(path),
        file_bytes=path.stat().st_size,
        source=source,
    )


def _write_import(result: IngestResult, base: int, source: int, target: Path, taken: set[str]) -> list[Partition]:
    """Write one import's rows, a file per feed and UTC date, ranks from ``base``."""
    inst = result.instrument
    partitions: list[Partition] = []
    for frame, seq in zip(result.feeds, assign_seq(result, base), strict=True):
        if len(frame) == 0:
            continue
        day = frame.exch_ts // NS_PER_DAY
        cuts = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(frame)], strict=True):
            date = utc_date(int(frame.exch_ts[lo]))
            rel = _free_path(f"venue={inst.venue}/symbol={inst.symbol}/feed={frame.feed}/date={date}", taken)
            cols = {name: getattr(frame, name)[lo:hi] for name in frame.columns}
            cols["seq"] = seq[lo:hi]
            partitions.append(_write_partition(target, rel, frame.feed, date, cols, source))
    return partitions


def _carry(parent: Dataset, part: Partition, shift: int, source: int, target: Path) -> Partition:
    """A stored partition in the new version: a hard link to the parent's file when its ranks stay (a copy
    where the filesystem has no hard links), else rewritten with ranks shifted by ``shift``."""
    origin = parent.path / part.path
    if shift == 0:
        verify_partition(parent.path, part, full=False)
        dest = target / part.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(origin, dest)
        except OSError:
            shutil.copyfile(origin, dest)
        return renumbered(part, source)
    verify_partition(parent.path, part, full=True)
    table = pq.read_table(origin)
    cols = {name: table.column(name).to_numpy() for name in feed_columns(part.feed)}
    cols["seq"] = cols["seq"] + np.int64(shift)
    return _write_partition(target, part.path, part.feed, part.date, cols, source)


def _make_read_only(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


@dataclass(frozen=True)
class Dataset:
    """A promoted dataset version: where it is and what its manifest says."""

    path: Path
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.manifest.dataset_id

    @property
    def version(self) -> str:
        return self.manifest.version


class Catalog:
    """Canonical Storage at one root directory."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    # -- writing -------------------------------------------------------------------------------
    def promote(self, results: IngestResult | Sequence[IngestResult], dataset_id: str) -> tuple[Dataset, bool]:
        """Validate, stage and atomically promote imports. Returns (dataset, newly_promoted).

        Each :class:`IngestResult` is one import (a raw file, with its own lineage and local-timestamp
        correction). Into a new dataset id they make its first version; into an existing one, a new
        version grown from the head version (see :mod:`hftlab.storage.growth`), whose parent stays as it
        was. Nothing is written to the root before validation passed; a failure while writing leaves
        only a staging directory, which is removed.
        """
        check_name("dataset id", dataset_id)
        imports = [results] if isinstance(results, IngestResult) else list(results)
        if not imports:
            raise StorageError(f"dataset '{dataset_id}': nothing to import")
        for result in imports:
            validate(result)
        with (
            writing(self.root),
            self._locked(dataset_id),
        ):  # one import into an id at a time: each grows the head it read
            return self._promote_locked(imports, dataset_id)

    @contextmanager
    def _locked(self, dataset_id: str) -> Iterator[None]:
        """An exclusive lock on ``dataset_id`` (``flock`` on ``<root>/.locks/<id>``; waits for the holder)."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = lock_file(locks / dataset_id, exclusive=True)
        assert fd is not None  # waited for it
        try:
            yield
        finally:
            os.close(fd)

    def _promote_locked(self, imports: list[IngestResult], dataset_id: str) -> tuple[Dataset, bool]:
        instrument = imports[0].instrument
        try:
            parent = self.head(dataset_id)
        except StorageError as exc:
            raise StorageError(
                f"{exc}. An import grows the newest version: import under a new dataset id, or remove the "
                "versions you do not want to grow (`hftlab data list` shows them)"
            ) from None
        if parent is not None:
            check_manifest(parent)  # never grow from (or answer with) a tampered version
            instrument = parent.manifest.instrument
        for result in imports:
            if result.instrument != instrument:
                raise StorageError(
                    f"dataset '{dataset_id}': import of {source_of(result).names()} describes instrument "
                    f"{result.instrument.to_dict()}, the dataset holds {instrument.to_dict()}"
                )
        blocks = plan((str(parent.path), parent.manifest) if parent else None, imports)
        if parent is not None and all(b.stored is not None for b in blocks):
            return parent, False
        staging = self.root / STAGING / f"{dataset_id}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            partitions = self._stage(staging, parent, blocks)
            schema_version = schema_version_for(p.feed for p in partitions)
            full_hash = content_hash(instrument, partitions, schema_version)
            manifest = Manifest(
                dataset_id=dataset_id,
                version=full_hash[:VERSION_LENGTH],
                content_hash=full_hash,
                schema_version=schema_version,
                instrument=instrument,
                partitions=tuple(partitions),
                sources=tuple(b.source for b in blocks),
                parent=parent.version if parent else None,
            )
            write_json(staging / MANIFEST_NAME, manifest.sealed())
            target = self.root / dataset_id / manifest.version
            if target.exists():
                return self._already_promoted(target, manifest), False
            _make_read_only(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            faults.point("import.staged")
            try:
                os.rename(staging, target)
            except OSError:
                # Another process promoted the same version between our check and our rename.
                if target.exists():
                    return self._already_promoted(target, manifest), False
                raise
            faults.point("import.promoted")
            return Dataset(target, manifest), True
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _stage(staging: Path, parent: Dataset | None, blocks: list[Block]) -> list[Partition]:
        """Write (or link) every partition of the new version into ``staging``."""
        partitions: list[Partition] = []
        taken = {p.path for p in parent.manifest.partitions} if parent else set()
        for index, block in enumerate(blocks):
            if block.result is not None:
                partitions += _write_import(block.result, block.base, index, staging, taken)
                continue
            assert parent is not None and block.stored is not None
            shift = block.base - stored_base(parent.manifest, block.stored)
            for part in parent.manifest.partitions:
                if part.source == block.stored:
                    partitions.append(_carry(parent, part, shift, index, staging))
        return sorted(partitions, key=lambda p: p.path)

    def _already_promoted(self, target: Path, manifest: Manifest) -> Dataset:
        existing = Manifest.read(target / MANIFEST_NAME)
        if existing.content_hash != manifest.content_hash or [
            (p.path, p.content_sha256) for p in existing.partitions
        ] != [(p.path, p.content_sha256) for p in manifest.partitions]:
            raise StorageError(
                f"{target}: refusing to promote: version {manifest.version} already exists with different "
                f"content (stored content hash {existing.content_hash}, new {manifest.content_hash}); "
                "promoted versions are immutable"
            )
        self.verify(existing.dataset_id, existing.version, full=False)
        return Dataset(target, existing)

    # -- reading -------------------------------------------------------------------------------
    def datasets(self) -> list[Dataset]:
        """Every promoted dataset version, sorted by id then version."""
        out: list[Dataset] = []
        if not self.root.is_dir():
            return out
        for id_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for version_dir in sorted(p for p in id_dir.iterdir() if p.is_dir()):
                manifest_path = version_dir / MANIFEST_NAME
                if manifest_path.is_file():
                    out.append(Dataset(version_dir, Manifest.read(manifest_path)))
        return out

    def versions(self, dataset_id: str) -> list[Dataset]:
        """Every promoted version of ``dataset_id``, sorted by version name."""
        check_name("dataset id", dataset_id)
        id_dir = self.root / dataset_id
        if not id_dir.is_dir():
            return []
        return [
            Dataset(p, Manifest.read(p / MANIFEST_NAME))
            for p in sorted(id_dir.iterdir())
            if (p / MANIFEST_NAME).is_file()
        ]

    def head(self, dataset_id: str) -> Dataset | None:
        """The newest version of ``dataset_id``: the one no other version grew from (None: no version).

        Several such versions (imported separately before datasets could grow) are ambiguous: refused,
        naming them.
        """
        versions = self.versions(dataset_id)
        parents = {d.manifest.parent for d in versions}
        heads = [d for d in versions if d.version not in parents]
        if len(heads) > 1:
            found = ", ".join(d.version for d in heads)
            raise StorageError(
                f"dataset '{dataset_id}' in {self.root}: give a version ({len(heads)} versions not grown from "
                f"one another: {found})"
            )
        return heads[0] if heads else None

    def resolve(self, dataset_id: str, version: str | None = None) -> Dataset:
        """The dataset version named; without a version, the newest one (:meth:`head`)."""
        versions = self.versions(dataset_id)
        if not versions:
            known = (
                [d.name for d in sorted(self.root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
                if self.root.is_dir()
                else []
            )
            raise StorageError(
                f"no dataset '{dataset_id}' in Canonical Storage at {self.root} (datasets there: "
                f"{known or 'none'}): import or build it first (`hftlab data ...`; in this repository "
                "`./dev run` builds 'synthetic')"
            )
        if version is None:
            head = self.head(dataset_id)
            assert head is not None  # versions exist, and a version chain has a head
            return head
        check_name("dataset version", version)
        for dataset in versions:
            if dataset.version == version:
                return dataset
        raise StorageError(
            f"dataset '{dataset_id}' version {version} is not in Canonical Storage at {self.root} "
            f"(versions found: {', '.join(d.version for d in versions)})"
        )

    def verify(self, dataset_id: str, version: str | None = None, *, full: bool = True) -> Dataset:
        """Check a dataset version against its manifest; raise :class:`StorageError` naming the file.

        Always: the manifest's partitions re-hash to its version, every file exists with its recorded
        size and sha256, and no unlisted file sits among them. With ``full``: every file's rows are read
        and re-hashed, so a manifest edited to match a changed file is caught too.
        """
        dataset = self.resolve(dataset_id, version)
        check_manifest(dataset)
        m = dataset.manifest
        listed = {p.path for p in m.partitions} | {MANIFEST_NAME}
        for path in sorted(dataset.path.rglob("*")):
            rel = path.relative_to(dataset.path).as_posix()
            if path.is_symlink():
                raise StorageError(f"{path}: {_SYMLINK}")
            if path.is_file() and rel not in listed:
                raise StorageError(f"{path}: file is not listed in the manifest of {dataset_id} {m.version}")
        for part in m.partitions:
            verify_partition(dataset.path, part, full=full)
        return dataset


def check_manifest(dataset: Dataset) -> None:
    """Cheap integrity check: the manifest's partitions must hash to the version it sits under."""
    m = dataset.manifest
    if (
        m.schema_version != schema_version_for(p.feed for p in m.partitions)
        or content_hash(m.instrument, list(m.partitions), m.schema_version) != m.content_hash
        or not m.content_hash.startswith(m.version)
        or dataset.path.name != m.version
    ):
        raise StorageError(f"{dataset.path / MANIFEST_NAME}: manifest does not hash to version {dataset.path.name}")


def check_present(dataset: Dataset) -> None:
    """Cheaper still than :func:`verify_partition`: every partition file exists with its recorded size."""
    for part in dataset.manifest.partitions:
        check_regular(dataset.path, dataset.path / part.path)
        _check_size(dataset.path / part.path, part)


_SYMLINK = (
    "is a symbolic link (or lies under one): a dataset version holds regular files only, inside its own "
    "directory; refusing to read it"
)


def check_regular(version_dir: Path, path: Path) -> None:
    """Refuse ``path`` (a file of ``version_dir``) when it, or a folder between it and ``version_dir``, is a
    symbolic link: a partition replaced by a link to a file elsewhere would be read under this version."""
    inside = path.relative_to(version_dir)
    for depth in range(len(inside.parts)):
        if (version_dir.joinpath(*inside.parts[: depth + 1])).is_symlink():
            raise StorageError(f"{path}: {_SYMLINK}")


def _check_size(path: Path, part: Partition) -> None:
    if not path.is_file():
        raise StorageError(f"{path}: partition file is missing")
    size = path.stat().st_size
    if size != part.file_bytes:
        raise StorageError(f"{path}: size {size} bytes, manifest says {part.file_bytes} (truncated or modified)")


def verify_partition(version_dir: Path, part: Partition, *, full: bool) -> None:
    """Check one partition file's size and sha256 (and, with ``full``, its rows' content hash)."""
    path = version_dir / part.path
    check_regular(version_dir, path)
    _check_size(path, part)
    found = file_sha256(path)
    if found != part.file_sha256:
        raise StorageError(f"{path}: sha256 mismatch: manifest {part.file_sha256}, file {found} (modified)")
    check_ranges(path, part)
    if full:
        names = feed_columns(part.feed)
        table = pq.read_table(path)
        missing = [name for name in names if name not in table.column_names]
        if missing:
            raise StorageError(f"{path}: columns {missing} of feed '{part.feed}' are missing")
        cols = {name: table.column(name).to_numpy() for name in names}
        if columns_sha256(cols, names) != part.content_sha256:
            raise StorageError(f"{path}: row content does not match the manifest's content hash")


def check_ranges(path: Path, part: Partition) -> None:
    """The manifest's rows and ranges of ``part`` (ranks, exchange and local times) equal its file's own,
    read from the Parquet footer's statistics (no rows decoded): a manifest edited after promotion is
    refused naming the file."""
    meta = pq.ParquetFile(path).metadata
    found: dict[str, list[int]] = {}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            column = group.column(c)
            stats = column.statistics
            if column.path_in_schema in ("seq", "exch_ts", "local_ts") and stats is not None and stats.has_min_max:
                lo, hi = found.setdefault(column.path_in_schema, [int(stats.min), int(stats.max)])
                found[column.path_in_schema] = [min(lo, int(stats.min)), max(hi, int(stats.max))]
    want = {
        "seq": [part.seq_min, part.seq_max],
        "exch_ts": [part.exch_ts_min, part.exch_ts_max],
        "local_ts": [part.local_ts_min, part.local_ts_max],
    }
    if meta.num_rows != part.rows:
        raise StorageError(
            f"{path}: {meta.num_rows} rows, the manifest says {part.rows} (edited manifest?): the manifest does not "
            "describe this file"
        )
    for name, (lo, hi) in want.items():
        if name in found and found[name] != [lo, hi]:
            raise StorageError(
                f"{path}: {name} spans {found[name][0]}..{found[name][1]} in the file, the manifest says {lo}..{hi} "
                "(edited manifest?): the manifest does not describe this file"
            )
