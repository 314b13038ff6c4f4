"""Results layout and atomic, deterministic writing.

``<results>/<experiment>/runs/<run_id>/``:

- ``run.json``: the run definition (Experiment / Artifact Storage);
- ``metrics.json``: the metrics (Experiment / Artifact Storage), and ``metrics_definition.json``: the
  metrics code hash and config they were computed with (:mod:`hftlab.metrics`);
- ``records/{orders,fills,dispatch,risk,throttles,state}.parquet``: execution records (Execution
  Record Storage), and ``records/account.parquet``: the final account (one row);
- ``telemetry.json``: wall time, events/s, peak memory, compile time, host: measurements, never
  compared or hashed with the deterministic files;
- ``content.json``: every other file's relative path, size and sha256 (not telemetry: it is measured, and
  DVC does not track it), written last.

A run directory is written under a temporary name in the same folder and renamed into place, so a run
killed at any point leaves no directory that looks complete. Complete is proven, not assumed: a run
directory is complete only when its ``content.json`` exists and every file it lists is there with its
recorded size and sha256, and no other file is (:func:`check_complete`); anything else (a hand-edited
metric, a deleted record table, a directory from before ``content.json``) is executed again and replaced
atomically. JSON is written with sorted keys; Parquet with fixed writer options and no timestamps.

Pruning moves run directories aside into ``<results>/<experiment>/.pruned/`` (ignored by git, outside
DVC's outputs) rather than deleting them; a run needed again is restored from there (:func:`restore_pruned`).
"""

from __future__ import annotations

import contextlib
import errno
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

from hftlab import faults
from hftlab.errors import StorageError
from hftlab.files import atomic_write, exchange_paths, pretty_json, remove_dead_temporaries, sha256_file
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
#: Every other file of a run directory but telemetry, with its size and sha256: written last.
CONTENT_FILE = "content.json"
#: Where pruning moves run directories, in the experiment directory (ignored by git, outside DVC's outputs).
PRUNED_DIR = ".pruned"
_TMP_PREFIX = ".tmp-"
#: Files a run directory holds that content.json does not list.
_UNLISTED = (TELEMETRY_FILE, CONTENT_FILE)
#: Files every complete run directory has (a content.json that omits one is not trusted).
_REQUIRED = (RUN_FILE, METRICS_FILE, METRICS_DEFINITION_FILE, f"{RECORDS_DIR}/{ACCOUNT_FILE}", WARNINGS_FILE)


def runs_dir(results_dir: Path, experiment: str) -> Path:
    return results_dir / experiment / "runs"


def is_complete(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a complete run directory (:func:`check_complete` finds nothing wrong)."""
    return not check_complete(run_dir)


def check_complete(run_dir: Path) -> list[str]:
    """Why ``run_dir`` is not a complete run directory, one line per problem; empty when it is complete:
    its ``content.json`` exists and every file it lists is present with its recorded size and sha256, and
    no file it does not list is there (but ``telemetry.json``). Every file is read and hashed."""
    if not run_dir.is_dir():
        return ["no such run directory"]
    if run_dir.name.startswith(_TMP_PREFIX):
        return ["a temporary directory (a run being written, or killed while it was)"]
    return content_problems(run_dir)


def content_problems(run_dir: Path) -> list[str]:
    """:func:`check_complete` of a directory, whatever its name (a run directory being written or received)."""
    try:
        listed = _listed(json.loads((run_dir / CONTENT_FILE).read_text()))
    except FileNotFoundError:
        return [f"no {CONTENT_FILE} (written last: the run was interrupted, or is from an hftlab that did not "
                "record its content), so its files cannot be verified"]  # fmt: skip
    except (ValueError, TypeError, KeyError):
        return [f"{CONTENT_FILE} is not a content list written by hftlab"]
    problems = [f"{rel} is not recorded in {CONTENT_FILE}" for rel in _REQUIRED if rel not in listed]
    for rel, (size, digest) in sorted(listed.items()):
        path = run_dir / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{rel} has {path.stat().st_size} bytes, not the {size} recorded (truncated or edited?)")
        elif sha256_file(path) != digest:
            problems.append(f"{rel} does not match its recorded sha256 (edited?)")
    problems += [
        f"{rel} is not in {CONTENT_FILE} (added afterwards?)" for rel in _content_files(run_dir) if rel not in listed
    ]
    return problems


def _listed(content: Any) -> dict[str, tuple[int, str]]:
    files = content["files"]
    if not isinstance(files, dict):
        raise TypeError("files")
    return {str(rel): (int(e["bytes"]), str(e["sha256"])) for rel, e in files.items()}


def _content_files(run_dir: Path) -> list[str]:
    """The files content.json lists: every file of the run directory but telemetry and itself."""
    return [rel for rel in deterministic_files(run_dir) if rel not in _UNLISTED]


def write_content(run_dir: Path) -> None:
    """Write ``content.json`` (every other file but telemetry: path, size, sha256), atomically; call it last."""
    files = {rel: {"bytes": (run_dir / rel).stat().st_size, "sha256": sha256_file(run_dir / rel)}
             for rel in _content_files(run_dir)}  # fmt: skip
    atomic_write(run_dir / CONTENT_FILE, pretty_json({"files": files}))


def new_run_dir(target: Path) -> Path:
    """A temporary directory beside ``target`` to write a run into (:func:`write_run` renames it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def deterministic_files(run_dir: Path) -> list[str]:
    """Relative paths of the files whose bytes must reproduce exactly (everything but telemetry, including
    ``content.json``)."""
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
        faults.point("run.write")
        write_content(tmp)  # last: a directory without it was not written to its end
        return move_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def move_into_place(tmp: Path, target: Path) -> bool:
    """Rename the written run ``tmp`` to ``target``; an incomplete directory there is replaced atomically
    (it ends up in ``tmp``, which the caller removes). False when a complete ``target`` was there first."""
    try:
        os.rename(tmp, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if is_complete(target):  # another process finished the same run first: identical by definition
        return False
    if exchange_paths(tmp, target):
        return True
    aside = target.parent / f"{_TMP_PREFIX}{target.name}-replaced-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with contextlib.suppress(FileNotFoundError):
        os.rename(target, aside)  # no atomic exchange here: a reader may briefly find no directory
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not is_complete(target):
            raise
        return False
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return True


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
    """Replace a complete run's metrics (recomputed from its records) and its ``content.json``; the records
    are not touched. Killed in between, the directory no longer checks complete and is executed again."""
    _write_metrics(run_dir, metrics)
    write_content(run_dir)


@dataclass(frozen=True)
class StoredRun:
    """A complete run directory's execution records, read back (:class:`hftlab.metrics.Records`)."""

    tables: dict[str, np.ndarray]
    account: dict[str, Any]
    contract_size: float
    inverse: bool = False


def read_records(run_dir: Path) -> StoredRun:
    """The record tables, the final account and the contract size of a complete run directory."""
    records = run_dir / RECORDS_DIR
    if not (records / ACCOUNT_FILE).is_file():
        raise StorageError(
            f"{run_dir}: no {RECORDS_DIR}/{ACCOUNT_FILE} (written since metrics are recomputed from records), so "
            "its metrics cannot be recomputed: delete the directory to execute the run again"
        )
    tables = {p.stem: read_table(p) for p in sorted(records.glob("*.parquet")) if p.name != ACCOUNT_FILE}
    account_row = read_table(records / ACCOUNT_FILE)
    account = {name: account_row[name][0].item() for name in account_row.dtype.names or ()}
    definition = json.loads((run_dir / RUN_FILE).read_text())
    venue = definition["config"]["venue"]
    return StoredRun(tables, account, float(venue["contract_size"]), venue.get("contract_type") == "inverse")


def read_table(path: Path) -> np.ndarray:
    """A Parquet record table as one structured array (a field per column)."""
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
    return remove_dead_temporaries(runs, _TMP_PREFIX)


def pruned_dir(experiment_dir: Path) -> Path:
    """Where pruning moves an experiment's run directories: created with a ``.gitignore`` ignoring it all."""
    folder = experiment_dir / PRUNED_DIR
    if not (folder / ".gitignore").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / ".gitignore", "# run directories moved aside by pruning: never tracked\n*\n")
    return folder


def move_aside(run_dir: Path) -> Path:
    """Move a run directory into its experiment's :func:`pruned_dir` (an older copy there is replaced)."""
    dest = pruned_dir(run_dir.parent.parent) / run_dir.name
    if dest.exists():
        shutil.rmtree(dest)
    os.rename(run_dir, dest)
    return dest


def reuse_elsewhere(run_dir: Path) -> Path | None:
    """Give ``run_dir`` (absent) the complete run of the same id from another experiment of its results
    folder (its ``runs/`` or ``.pruned/``), copied into a temporary directory, then renamed into place;
    where it came from, or None when no experiment has it.

    The run cache is global: a run id is one run definition, whatever experiment it was computed for.
    Copied, not hard-linked: DVC takes a file with several links for one of its cache links and rewrites
    it before each stage (which also made pruning spare the directory as just written)."""
    results = run_dir.parent.parent.parent
    for source in sorted(results.glob(f"*/runs/{run_dir.name}")) + sorted(
        results.glob(f"*/{PRUNED_DIR}/{run_dir.name}")
    ):
        if source == run_dir or not source.is_dir() or check_complete(source):
            continue
        tmp = new_run_dir(run_dir)
        try:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            move_into_place(tmp, run_dir)  # the caller verifies it (changed while it was copied: executed)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return source
    return None


def restore_pruned(run_dir: Path) -> Path | None:
    """Move a complete run directory that pruning moved aside back to ``run_dir`` (absent); where it was,
    or None when there is no complete one."""
    source = run_dir.parent.parent / PRUNED_DIR / run_dir.name
    if not source.is_dir() or check_complete(source):
        return None
    try:
        os.rename(source, run_dir)
    except OSError:  # another process restored or wrote it first
        return None
    return source
