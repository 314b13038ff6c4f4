"""Results layout and atomic, deterministic writing.

``<results>/<experiment>/runs/<run_id>/``:

- ``run.json``: the run definition (Experiment / Artifact Storage);
- ``metrics.json``: the metrics (Experiment / Artifact Storage);
- ``records/{orders,fills,dispatch,risk,throttles,state}.parquet``: execution records (Execution
  Record Storage);
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
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftlab.run.definition import jsonable

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
TELEMETRY_FILE = "telemetry.json"
RECORDS_DIR = "records"
_TMP_PREFIX = ".tmp-"
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True, "use_dictionary": False}


def dumps(data: Any) -> str:
    return json.dumps(jsonable(data), sort_keys=True, indent=2, allow_nan=False) + "\n"


def runs_dir(results_dir: Path, experiment: str) -> Path:
    return results_dir / experiment / "runs"


def is_complete(run_dir: Path) -> bool:
    """A run directory under its final name holds a complete result (it only appears by rename)."""
    return run_dir.is_dir() and not run_dir.name.startswith(_TMP_PREFIX) and (run_dir / RUN_FILE).is_file()


def write_table(path: Path, table: np.ndarray) -> None:
    arrow = pa.table({name: table[name] for name in table.dtype.names or ()})
    pq.write_table(arrow, path, **PARQUET_OPTIONS)


def deterministic_files(run_dir: Path) -> list[str]:
    """Relative paths of the files whose bytes must reproduce exactly (everything but telemetry)."""
    return sorted(
        p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file() and p.name != TELEMETRY_FILE
    )


def write_run(
    target: Path,
    definition: dict[str, Any],
    metrics: dict[str, Any],
    tables: dict[str, np.ndarray],
    telemetry: dict[str, Any],
) -> bool:
    """Write a complete run directory at ``target`` atomically. False if it already existed (kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / RUN_FILE).write_text(dumps(definition))
        (tmp / METRICS_FILE).write_text(dumps(metrics))
        (tmp / RECORDS_DIR).mkdir()
        for name, table in tables.items():
            write_table(tmp / RECORDS_DIR / f"{name}.parquet", table)
        (tmp / TELEMETRY_FILE).write_text(dumps(telemetry))
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            if pid > 0 and pid != os.getpid() and _alive(pid):
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed
