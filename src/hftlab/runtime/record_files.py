"""Execution records as Parquet files: written at once, or spilled while the loop runs (bounded memory).

A long window makes long record tables (a market maker re-quoting all day writes ~0.6M order rows a
day). With a :class:`RecordWriter`, a table that reaches its capacity is written out instead of grown:
its rows go to the table's Parquet file in full row groups of :data:`ROW_GROUP` rows, so the file is
byte for byte what writing the whole table at once gives (:func:`write_table`), whenever the rows were
spilled. After the run, :class:`StoredTables` reads back only the columns a metric asks for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftlab.runtime.memory import release_freed_memory

#: Rows per Parquet row group of a record file, and the most rows a record table holds in memory once
#: it spills (about 9 MiB of order rows).
ROW_GROUP = 1 << 17
#: Parquet writer settings of record files; fixed so files are byte-identical for one pyarrow version.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True, "use_dictionary": False}


def _arrow(rows: np.ndarray) -> pa.Table:
    return pa.table({name: rows[name] for name in rows.dtype.names or ()})


def load_converters() -> None:
    """pyarrow imports pandas on its first conversion of numpy data (0.3 s): a process that forks runs does it
    once, before the fork (:func:`hftlab.runtime.runner.warm`)."""
    _arrow(np.zeros(1, dtype=[("x", np.float64)]))


def write_table(path: Path, rows: np.ndarray, row_group: int = ROW_GROUP) -> None:
    """Write a whole record table."""
    pq.write_table(_arrow(rows), path, row_group_size=row_group, **PARQUET_OPTIONS)


class RecordWriter:
    """Record tables spilled to ``directory/<name>.parquet`` while the loop runs (see the module docstring)."""

    def __init__(self, directory: Path, row_group: int = ROW_GROUP) -> None:
        self.directory = directory
        self.row_group = row_group
        directory.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, list[np.ndarray]] = {}
        self._waiting: dict[str, int] = {}

    def spill(self, name: str, rows: np.ndarray) -> None:
        """Append rows to table ``name``; full row groups are written, the rest waits for more."""
        parts = self._pending.setdefault(name, [])
        parts.append(rows.copy())
        self._waiting[name] = self._waiting.get(name, 0) + len(rows)
        if self._waiting[name] < self.row_group:
            return
        pending = np.concatenate(parts)
        full = len(pending) - len(pending) % self.row_group
        if full:
            writer = self._writers.get(name)
            chunk = _arrow(pending[:full])
            if writer is None:
                writer = pq.ParquetWriter(self.directory / f"{name}.parquet", chunk.schema, **PARQUET_OPTIONS)
                self._writers[name] = writer
            writer.write_table(chunk, row_group_size=self.row_group)
        self._pending[name] = [pending[full:]] if full < len(pending) else []
        self._waiting[name] = len(pending) - full
        del pending, chunk
        release_freed_memory()

    def finish(self, tables: Mapping[str, np.ndarray]) -> StoredTables:
        """Write the rows still in memory (``tables``: every table's last rows) and close every file."""
        for name, rows in tables.items():
            if name not in self._writers and self._waiting.get(name, 0) + len(rows) < self.row_group:
                # never a full row group: one write, as without a writer
                self._waiting.pop(name, None)
                pending = [*self._pending.pop(name, []), rows]
                write_table(self.directory / f"{name}.parquet", np.concatenate(pending), self.row_group)
                continue
            self.spill(name, rows)
            writer = self._writers.pop(name)
            rest = self._pending.pop(name, [])
            self._waiting.pop(name, None)
            if sum(len(r) for r in rest):
                writer.write_table(_arrow(np.concatenate(rest)), row_group_size=self.row_group)
            writer.close()
        return StoredTables(self.directory, tuple(tables))

    def abort(self) -> None:
        """Close every open file (after a failed run; the directory is removed by its owner)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class StoredTable:
    """One record file, read a column at a time: ``table["price"]``, ``len(table)``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __getitem__(self, column: str) -> np.ndarray:
        """The whole column, read a row group at a time into one array (Arrow never holds the column)."""
        with pq.ParquetFile(self.path) as file:
            meta = file.metadata
            dtype = file.schema_arrow.field(column).type.to_pandas_dtype()
            out = np.empty(meta.num_rows, dtype=dtype)
            at = 0
            for group in range(meta.num_row_groups):
                part = file.read_row_group(group, columns=[column]).column(0).to_numpy()
                out[at : at + len(part)] = part
                at += len(part)
                del part
        release_freed_memory()
        return out

    def __len__(self) -> int:
        return int(pq.ParquetFile(self.path).metadata.num_rows)


class StoredTables(Mapping[str, StoredTable]):
    """The record tables of a run as files (what metrics read, a column at a time)."""

    def __init__(self, directory: Path, names: tuple[str, ...]) -> None:
        self.directory = directory
        self.names = names

    def __getitem__(self, name: str) -> StoredTable:
        if name not in self.names:
            raise KeyError(name)
        return StoredTable(self.directory / f"{name}.parquet")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)
