"""Sweep summary: one row per grid point (parameters + metrics), and the best run per chosen metric.

Written to ``results/<experiment>/summary.parquet``, ``summary.csv`` and ``summary.json``, each whole in
memory, then to a temporary file in the same folder renamed over the old one: a sweep killed while writing
leaves the previous file readable (temporary files of killed writers are removed by the next write). Rows
are in grid-point order (sorted overrides) and contain no timing, so the files are deterministic for a
given set of results. Metrics come only from points whose run directory was verified complete (the
manifest as :func:`hftlab.sweep.manifest.read` or ``finish_sweep`` give it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hftlab import faults
from hftlab.files import atomic_write, remove_stale_temps, write_json
from hftlab.metrics.overfitting import deflated_sharpe
from hftlab.ranking import best_index, goal, rankable
from hftlab.run.results import METRICS_FILE, runs_dir
from hftlab.sweep.manifest import FINISHED, counts, verify_rows

SUMMARY_FILES = ("summary.parquet", "summary.csv", "summary.json")
#: Overrides that choose where results go, not what a run does: not parameter columns.
_NOT_PARAMS = ("experiment", "sweep.", "hydra", "output.")


def override_value(text: str) -> Any:
    """An override's value, Hydra's escapes removed, as a number where it is one."""
    text = re.sub(r"\\(.)", r"\1", text)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def summary_rows(experiment_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per point of ``manifest`` (verified: see the module doc): run id, status, error, parameters,
    and the metrics of finished points."""
    rows = []
    for r in manifest["runs"]:
        # "done" and "cached" both mean complete: which one depends on history, not on the results.
        status = "complete" if r["status"] in FINISHED else r["status"]
        row: dict[str, Any] = {"run_id": r.get("run_id"), "status": status, "error": r.get("error")}
        for override in r["overrides"]:
            key, _, value = override.partition("=")
            if key.lstrip("+~").startswith(_NOT_PARAMS):
                continue
            row[f"param.{key.lstrip('+~')}"] = override_value(value)
        metrics_path = runs_dir(experiment_dir.parent, experiment_dir.name) / str(r.get("run_id")) / METRICS_FILE
        if r["status"] in FINISHED and metrics_path.is_file():
            for k, v in json.loads(metrics_path.read_text()).items():
                row[k] = v
        rows.append(row)
    return rows


def committed_manifest(experiment_dir: Path, *, verify: bool = True) -> dict[str, Any] | None:
    """The manifest the experiment's summary files describe (None without ``summary.json`` and
    ``summary.csv``): what was committed with the results, unlike the live ``manifest.json`` (not tracked:
    after a ``git checkout`` it may describe another branch's grid). Points are named by their grid values
    as the CSV holds them; with ``verify``, finished points are verified against their run directories."""
    import csv

    summary_json, summary_csv = experiment_dir / "summary.json", experiment_dir / "summary.csv"
    if not (summary_json.is_file() and summary_csv.is_file()):
        return None
    summary = json.loads(summary_json.read_text())
    runs = []
    with open(summary_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            overrides = sorted(f"{k[6:]}={v}" for k, v in row.items() if k.startswith("param."))
            status = "done" if row["status"] == "complete" else row["status"]
            runs.append({"key": " ".join(overrides), "overrides": overrides, "run_id": row["run_id"] or None,
                         "status": status, "error": row.get("error") or None})  # fmt: skip
    runs = verify_rows(experiment_dir, runs) if verify else runs
    return {"experiment": summary["experiment"], "grid": summary["grid"], "runs": runs}


def status_manifest(experiment_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest ``hftlab status`` shows, verified, and a note on its source (None when there is nothing
    to say). The live ``manifest.json`` is shown while it describes the committed summary's runs (it also
    tells done from cached) or while its sweep is unfinished (running or pending points); otherwise, e.g.
    after ``git checkout`` + ``dvc checkout`` of another revision, or on a fresh clone that has no live
    manifest, the committed summary's grid is shown."""
    from hftlab.sweep import manifest

    live, committed = manifest.read(experiment_dir), committed_manifest(experiment_dir)
    if committed is None or live is None:
        return live or committed, None
    if _ids(live) == _ids(committed):
        return live, None
    c = counts(live)
    if c["running"] or c["pending"]:
        return live, "a sweep is under way: shown is its live manifest.json, not the committed summary's grid"
    return committed, (
        f"{manifest.MANIFEST} (not tracked) describes another grid ({len(live['runs'])} points, e.g. of the "
        "revision checked out before): shown is the grid of the committed summary.json/summary.csv"
    )


def _ids(m: dict[str, Any]) -> list[str]:
    return sorted(str(r.get("run_id") or "") for r in m["runs"])


def best_runs(rows: list[dict[str, Any]], best_by: list[str]) -> dict[str, Any]:
    """For each metric (``-name`` = lower is better): the best finished run, its value and parameters."""
    out: dict[str, Any] = {}
    for spec in best_by:
        g = goal(spec, "sweep.best_by")
        best = best_index([r.get(g.metric) for r in rows], g.lower)
        if best is None:
            out[g.metric] = None
            continue
        row = rows[best]
        out[g.metric] = {
            "run_id": row["run_id"],
            "value": rankable(row[g.metric]),
            "goal": g.word,
            "params": {k[6:]: v for k, v in row.items() if k.startswith("param.")},
        }
    return out


def overfitting(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Trial count, Sharpe variance across trials, and the Deflated Sharpe Ratio of the best trial."""
    trials = [r for r in rows if rankable(r.get("sharpe")) is not None and r.get("returns_n")]
    if not trials:
        return None
    sharpes = [float(r["sharpe"]) for r in trials]
    best = int(max(range(len(trials)), key=lambda i: sharpes[i]))
    b = trials[best]
    out = deflated_sharpe(sharpes, best, int(b["returns_n"]), float(b["returns_skew"]), float(b["returns_kurtosis"]))
    return {**out, "best_run_id": b["run_id"], "best_sharpe": sharpes[best], "best_psr": b.get("psr")}


def write_summary(experiment_dir: Path, manifest: dict[str, Any], best_by: list[str]) -> dict[str, Any]:
    """Write the summary files of a verified ``manifest``, each atomically; the ``summary.json`` data."""
    for name in SUMMARY_FILES:
        remove_stale_temps(experiment_dir, name)
    rows = summary_rows(experiment_dir, manifest)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    table = pa.table({c: _column([_cell(row.get(c)) for row in rows]) for c in columns})
    parquet, csv = pa.BufferOutputStream(), pa.BufferOutputStream()
    pq.write_table(table, parquet, compression="zstd")
    pacsv.write_csv(table, csv)
    atomic_write(experiment_dir / "summary.parquet", parquet.getvalue().to_pybytes())
    faults.point("sweep.summary")  # one summary file new, the others as they were
    atomic_write(experiment_dir / "summary.csv", csv.getvalue().to_pybytes())
    c = counts(manifest)
    # Deterministic for a given set of results: no executed-vs-cached split, no timing.
    summary = {
        "experiment": manifest["experiment"],
        "grid": manifest["grid"],
        # the sweep's command line: what `hftlab check` composes again to tell whether these results are stale
        "overrides": manifest.get("overrides", []),
        "counts": {"total": c["total"], "complete": c["done"] + c["cached"], "failed": c["failed"]},
        "best": best_runs(rows, best_by),
        "overfitting": overfitting(rows),
    }
    write_json(experiment_dir / "summary.json", summary)
    return summary


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed numbers and text: keep it all as text
        return pa.array([None if v is None else str(v) for v in values])


def _cell(value: Any) -> Any:
    """Cells of one Parquet column must share a type: numbers as float, everything else as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return str(value)
