"""Results layout and atomic, deterministic writing.

``<results>/<experiment>/runs/<run_id>/``:

- ``run.json``: the run definition (Experiment / Artifact Storage);
- ``metrics.json``: the metrics (Experiment / Artifact Storage), and ``metrics_definition.json``: the
  metrics code hash and config they were computed with (:mod:`hftlab.metrics`);
- ``records/{orders,fills,dispatch,risk,throttles,state}.parquet``: execution records (Execution
  Record Storage), and ``records/account.parquet``: the final account (one row);
- ``telemetry.json``: wall time, events/s, peak memory, compile time, host: measurements, never
  compared or hashed with the deterministic files.

A run directory is written under a temporary name in the same folder and renamed into place, so a run
killed at any point leaves no directory that looks complete; a directory named by a run id is complete.
JSON is written with sorted keys; Parquet with fixed writer options and no timestamps.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from hftlab.errors import StorageError
from hftlab.files import atomic_write, pretty_json, process_alive
from hftlab.metrics import Records
from hftlab.runtime.record_files import StoredTables, write_table

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
METRICS_DEFINITION_FILE = "metrics_definition.json"
#: The run's final account (one row), beside the record tables: metrics are recomputed from both.
ACCOUNT_FILE = "account.parquet"
TELEMETRY_FILE = "telemetry.json"
WARNINGS_FILE = "warnings.json"
RECORDS_DIR = "records"
_TMP_PREFIX = ".tmp-"


def runs_dir(results_dir: Path, experiment: str) -> Path:
    return results_dir / experiment / "runs"


def is_complete(run_dir: Path) -> bool:
    """A run directory under its final name holds a complete result (it only appears by rename)."""
    return run_dir.is_dir() and not run_dir.name.startswith(_TMP_PREFIX) and (run_dir / RUN_FILE).is_file()


def new_run_dir(target: Path) -> Path:
    """A temporary directory beside ``target`` to write a run into (:func:`write_run` renames it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def deterministic_files(run_dir: Path) -> list[str]:
    """Relative paths of the files whose bytes must reproduce exactly (everything but telemetry)."""
    return sorted(
        p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file() and p.name != TELEMETRY_FILE
    )


def write_run(
    target: Path,
    definition: dict[str, Any],
    records: Records,
    metrics: Metrics,
    telemetry: dict[str, Any],
    warnings: list[str] | None = None,
    tmp: Path | None = None,
) -> bool:
    """Write a complete run directory at ``target`` atomically. False if it already existed (kept).

    ``warnings`` (what the run must report about its input, e.g. a window without a book snapshot) go to
    ``warnings.json``, an empty list when there are none. ``tmp`` is the directory from
    :func:`new_run_dir` the run already wrote its record files into (``tmp/records``, by
    :class:`~hftlab.runtime.record_files.RecordWriter`); it is renamed to ``target`` or removed."""
    tmp = tmp if tmp is not None else new_run_dir(target)
    try:
        (tmp / RUN_FILE).write_text(pretty_json(definition))
        _write_metrics(tmp, metrics)
        (tmp / RECORDS_DIR).mkdir(exist_ok=True)
        if not isinstance(records.tables, StoredTables):
            for name, table in records.tables.items():
                write_table(tmp / RECORDS_DIR / f"{name}.parquet", table)
        elif records.tables.directory != tmp / RECORDS_DIR:
            raise ValueError(f"records written to {records.tables.directory}, not into {tmp / RECORDS_DIR}")
        write_table(tmp / RECORDS_DIR / ACCOUNT_FILE, _account_row(records.account))
        (tmp / TELEMETRY_FILE).write_text(pretty_json(telemetry))
        (tmp / WARNINGS_FILE).write_text(pretty_json(list(warnings or [])))
        try:
            os.rename(tmp, target)
        except OSError:
            if is_complete(target):  # another process finished the same run first: identical by definition
                return False
            raise
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Metrics:
    """A run's metrics and the metrics definition that produced them (:mod:`hftlab.metrics`)."""

    values: dict[str, Any]
    definition: dict[str, Any]


def _write_metrics(run_dir: Path, metrics: Metrics) -> None:
    # values first: a run interrupted between the two files has a stale definition, so it is recomputed again
    atomic_write(run_dir / METRICS_FILE, pretty_json(metrics.values))
    atomic_write(run_dir / METRICS_DEFINITION_FILE, pretty_json(metrics.definition))


def stored_metrics_definition(run_dir: Path) -> dict[str, Any] | None:
    """The metrics definition a run directory's metrics were computed with (None if it has none)."""
    path = run_dir / METRICS_DEFINITION_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def replace_metrics(run_dir: Path, metrics: Metrics) -> None:
    """Replace a complete run's metrics (recomputed from its records); the records are not touched."""
    _write_metrics(run_dir, metrics)


@dataclass(frozen=True)
class StoredRun:
    """A complete run directory's execution records, read back (:class:`hftlab.metrics.Records`)."""

    tables: dict[str, np.ndarray]
    account: dict[str, Any]
    contract_size: float


def read_records(run_dir: Path) -> StoredRun:
    """The record tables, the final account and the contract size of a complete run directory."""
    records = run_dir / RECORDS_DIR
    if not (records / ACCOUNT_FILE).is_file():
        raise StorageError(
            f"{run_dir}: no {RECORDS_DIR}/{ACCOUNT_FILE} (written since metrics are recomputed from records), so "
            "its metrics cannot be recomputed: delete the directory to execute the run again"
        )
    tables = {p.stem: _read_table(p) for p in sorted(records.glob("*.parquet")) if p.name != ACCOUNT_FILE}
    account_row = _read_table(records / ACCOUNT_FILE)
    account = {name: account_row[name][0].item() for name in account_row.dtype.names or ()}
    definition = json.loads((run_dir / RUN_FILE).read_text())
    return StoredRun(tables, account, float(definition["config"]["venue"]["contract_size"]))


def _read_table(path: Path) -> np.ndarray:
    table = pq.read_table(path)
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    out = np.empty(table.num_rows, dtype=[(name, col.dtype) for name, col in columns.items()])
    for name, col in columns.items():
        out[name] = col
    return out


def _account_row(account: Mapping[str, Any]) -> np.ndarray:
    names = sorted(account)
    row = np.zeros(1, dtype=[(n, np.bool_ if isinstance(account[n], bool) else np.float64) for n in names])
    for n in names:
        row[n] = account[n]
    return row


def clean_partial(runs: Path) -> int:
    """Remove temporary run directories of processes that no longer run (killed runs).

    None of them is ever read as a result; this only reclaims space. A directory of a live process
    (another sweep writing right now) is left alone.
    """
    removed = 0
    if runs.is_dir():
        for p in runs.iterdir():
            if not (p.is_dir() and p.name.startswith(_TMP_PREFIX)):
                continue
            parts = p.name.rsplit("-", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
            if pid > 0 and pid != os.getpid() and process_alive(pid):
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed
