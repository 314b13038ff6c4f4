"""Dataset manifests and the content hashes that make a dataset version.

The version of a dataset is a hash of its *content*, not of its files' bytes: the rows of every
partition (column bytes in a fixed little-endian layout), the partition paths, the instrument and the
schema version. So the same rows give the same version on any machine and with any Parquet writer,
while the per-file byte hashes in the manifest let readers catch a tampered or truncated file cheaply.

The manifest itself is sealed: ``manifest_sha256`` is the sha256 of the canonical JSON of every other
field, checked by every read (:meth:`Manifest.read`: listing, ``verify``, ``verify --quick``, the
feeder). So an edit of any field the version does not hash (rank and time ranges, file hashes, lineage)
is refused before the manifest is used. Threat model: the seal catches edits and corruption, by hand or
by a tool; someone who rewrites rows *and* recomputes the file hashes and the seal is caught by the full
``verify``, which re-hashes the rows into the version. A manifest without a seal (written before seals)
is refused: re-import it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftlab.errors import StorageError
from hftlab.files import canonical_json, jsonable
from hftlab.storage.schema import COLUMNS, SCHEMA_VERSION, Instrument

MANIFEST_NAME = "manifest.json"
#: The manifest field holding the sha256 of the canonical JSON of all its other fields.
SEAL = "manifest_sha256"
#: Hex digits of the content hash used as the version name.
VERSION_LENGTH = 16
_CHUNK = 1 << 22


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def columns_sha256(columns: dict[str, np.ndarray], names: dict[str, np.dtype[Any]] = COLUMNS) -> str:
    """sha256 of canonical columns: for each column of ``names`` (a feed's stored columns, see
    :func:`~hftlab.storage.schema.feed_columns`) in schema order, its name, dtype and LE bytes."""
    digest = hashlib.sha256()
    for name, dtype in names.items():
        values = np.ascontiguousarray(columns[name], dtype=dtype.newbyteorder("<"))
        digest.update(f"{name}:{values.dtype.str}:{values.size};".encode())
        digest.update(values.data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Partition:
    """One Parquet file of a dataset: one feed on one UTC date."""

    path: str  #: relative to the version directory, '/'-separated
    feed: str
    date: str  #: UTC date of the exchange timestamps, YYYY-MM-DD
    rows: int
    exch_ts_min: int
    exch_ts_max: int
    local_ts_min: int
    local_ts_max: int
    seq_min: int
    seq_max: int
    content_sha256: str
    file_sha256: str
    file_bytes: int
    #: Index of the import (:class:`Source`) these rows came from, in :attr:`Manifest.sources`.
    source: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Source:
    """One import (a raw file, or a generator run) that a dataset version holds: its lineage (converter,
    raw input hashes, parameters, its own local-timestamp correction) and the exchange-time window
    ``[start_ns, end_ns]`` (both inclusive) of its rows."""

    lineage: dict[str, Any]
    start_ns: int
    end_ns: int
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"lineage": self.lineage, "start_ns": self.start_ns, "end_ns": self.end_ns, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        return cls(data["lineage"], int(data["start_ns"]), int(data["end_ns"]), int(data["rows"]))

    def names(self) -> str:
        """The raw input file names (or the converter name) for messages."""
        raw = [str(r.get("name")) for r in self.lineage.get("raw_inputs", [])]
        return ", ".join(raw) if raw else str(self.lineage.get("converter", "?"))


def content_hash(instrument: Instrument, partitions: list[Partition], schema_version: int) -> str:
    """The dataset content hash: schema version, instrument, and each partition's path, rows and content."""
    body = {
        "schema_version": schema_version,
        "instrument": instrument.to_dict(),
        "partitions": sorted(
            ({"path": p.path, "rows": p.rows, "content_sha256": p.content_sha256} for p in partitions),
            key=lambda d: str(d["path"]),
        ),
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """Everything known about one promoted dataset version."""

    dataset_id: str
    version: str
    content_hash: str
    schema_version: int
    instrument: Instrument
    partitions: tuple[Partition, ...]
    #: The imports this version holds, in exchange-time order; ``Partition.source`` indexes it.
    sources: tuple[Source, ...]
    #: The version this one grew from (None for a first import).
    parent: str | None = None

    @property
    def lineage(self) -> dict[str, Any]:
        """The lineage of the first import (the only one unless the dataset grew; see :attr:`sources`)."""
        return self.sources[0].lineage

    @property
    def seq_range(self) -> tuple[int, int]:
        """The first and last Processing Order rank stored (dense in between)."""
        return min(p.seq_min for p in self.partitions), max(p.seq_max for p in self.partitions)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def start_ns(self) -> int:
        return min(p.exch_ts_min for p in self.partitions)

    @property
    def end_ns(self) -> int:
        return max(p.exch_ts_max for p in self.partitions)

    @property
    def feeds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.partitions:
            out[p.feed] = out.get(p.feed, 0) + p.rows
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "version": self.version,
            "content_hash": self.content_hash,
            "schema_version": self.schema_version,
            "instrument": self.instrument.to_dict(),
            "rows": self.rows,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "feeds": self.feeds,
            "partitions": [p.to_dict() for p in self.partitions],
            "sources": [src.to_dict() for src in self.sources],
            "parent": self.parent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        partitions = tuple(Partition(**p) for p in data["partitions"])
        for part in partitions:
            parts = part.path.split("/")
            if part.path.startswith("/") or ".." in parts or "" in parts:
                raise ValueError(f"partition path {part.path!r} leaves the version directory")
        schema_version = int(data["schema_version"])
        if schema_version > SCHEMA_VERSION:
            raise StorageError(
                f"dataset '{data['dataset_id']}' {data['version']} has schema version {schema_version}; this hftlab "
                f"reads versions up to {SCHEMA_VERSION}: upgrade hftlab"
            )
        return cls(
            dataset_id=data["dataset_id"],
            version=data["version"],
            content_hash=data["content_hash"],
            schema_version=schema_version,
            instrument=Instrument.from_dict(data["instrument"]),
            partitions=partitions,
            sources=tuple(Source.from_dict(s) for s in data["sources"]),
            parent=data["parent"],
        )

    def sealed(self) -> dict[str, Any]:
        """What ``manifest.json`` holds: :meth:`to_dict` and its seal (:data:`SEAL`)."""
        body = jsonable(self.to_dict())
        return {**body, SEAL: _seal_of(body)}

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at ``path``; :class:`StorageError` naming the file when it is not valid JSON, has no
        seal or a seal its content does not hash to (edited), or lacks a key."""
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StorageError(f"{path}: not valid JSON ({exc}): the manifest is corrupt") from None
        if not isinstance(data, dict):
            raise StorageError(f"{path}: a manifest is a JSON object, found {type(data).__name__}")
        found = data.pop(SEAL, None)
        if found is None:
            raise StorageError(
                f"{path}: no {SEAL} (written by an hftlab before manifests were sealed, or edited): re-import "
                "the dataset"
            )
        if found != _seal_of(data):
            raise StorageError(
                f"{path}: edited manifest: its content does not hash to its {SEAL}; refusing to use it (restore "
                "it with `dvc checkout` or `git checkout`, or re-import the dataset)"
            )
        try:
            return cls.from_dict(data)
        except KeyError as exc:
            raise StorageError(f"{path}: the manifest lacks the key {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise StorageError(f"{path}: malformed manifest: {exc}") from None


def _seal_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()
