"""Dataset manifests and the content hashes that make a dataset version.

The version of a dataset is a hash of its *content*, not of its files' bytes: the rows of every
partition (column bytes in a fixed little-endian layout), the partition paths, the instrument and the
schema version. So the same rows give the same version on any machine and with any Parquet writer,
while the per-file byte hashes in the manifest let readers catch a tampered or truncated file cheaply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftlab.files import canonical_json
from hftlab.storage.schema import COLUMNS, SCHEMA_VERSION, Instrument

MANIFEST_NAME = "manifest.json"
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


def columns_sha256(columns: dict[str, np.ndarray]) -> str:
    """sha256 of canonical columns: for each column in schema order, its name, dtype and LE bytes."""
    digest = hashlib.sha256()
    for name, dtype in COLUMNS.items():
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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def content_hash(instrument: Instrument, partitions: list[Partition]) -> str:
    """The dataset content hash: schema version, instrument, and each partition's path, rows and content."""
    body = {
        "schema_version": SCHEMA_VERSION,
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
    lineage: dict[str, Any]

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
            "lineage": self.lineage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            dataset_id=data["dataset_id"],
            version=data["version"],
            content_hash=data["content_hash"],
            schema_version=int(data["schema_version"]),
            instrument=Instrument.from_dict(data["instrument"]),
            partitions=tuple(Partition(**p) for p in data["partitions"]),
            lineage=data["lineage"],
        )

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text()))
