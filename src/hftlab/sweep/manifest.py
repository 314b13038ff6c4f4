"""Sweep manifests: which runs belong to an experiment, with which overrides, and how far they got.

``results/<experiment>/manifest.json`` lists every grid point (its overrides, run id once known,
status ``pending``/``running``/``done``/``cached``/``failed`` and the error text). Every update is a
read-modify-write under an exclusive ``flock`` on ``results/<experiment>/.lock`` followed by an atomic
rename, so parallel workers and two sweeps started at once never lose or half-write an update.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hftlab.files import write_json

MANIFEST = "manifest.json"
LOCK = ".lock"
STATUSES = ("pending", "running", "done", "cached", "failed")
FINISHED = ("done", "cached")


def point_key(overrides: list[str]) -> str:
    """The identity of a grid point: its overrides, sorted (order on the command line does not matter)."""
    return " ".join(sorted(overrides))


@contextmanager
def locked(experiment_dir: Path) -> Iterator[None]:
    experiment_dir.mkdir(parents=True, exist_ok=True)
    with open(experiment_dir / LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read(experiment_dir: Path) -> dict[str, Any] | None:
    path = experiment_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _write(experiment_dir: Path, manifest: dict[str, Any]) -> None:
    write_json(experiment_dir / MANIFEST, manifest)


def update(experiment_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to the manifest under the lock and write it back atomically."""
    with locked(experiment_dir):
        manifest = read(experiment_dir) or {"experiment": experiment_dir.name, "grid": [], "runs": []}
        change(manifest)
        manifest["runs"].sort(key=lambda r: r["key"])
        _write(experiment_dir, manifest)
        return manifest


def start_sweep(experiment_dir: Path, grid: list[str], points: list[list[str]]) -> dict[str, Any]:
    """Declare a sweep: its grid definition and every point, all pending (earlier run ids are kept as
    hints). Points of an earlier, different grid leave the manifest; their results stay in ``runs/``."""

    def change(m: dict[str, Any]) -> None:
        m["grid"] = grid
        old = {r["key"]: r for r in m["runs"]}
        m["runs"] = [
            {"key": point_key(o), "overrides": sorted(o), "run_id": (old.get(point_key(o)) or {}).get("run_id"),
             "status": "pending", "error": None}
            for o in points
        ]  # fmt: skip

    return update(experiment_dir, change)


def set_status(
    experiment_dir: Path, overrides: list[str], status: str, run_id: str | None = None, error: str | None = None
) -> dict[str, Any]:
    """Record one point's status (and run id / error)."""
    assert status in STATUSES, status
    key = point_key(overrides)

    def change(m: dict[str, Any]) -> None:
        for r in m["runs"]:
            if r["key"] == key:
                break
        else:
            r = {"key": key, "overrides": sorted(overrides)}
            m["runs"].append(r)
        r["status"] = status
        r["run_id"] = run_id or r.get("run_id")
        r["error"] = error

    return update(experiment_dir, change)


def counts(manifest: dict[str, Any]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in manifest["runs"]:
        out[r["status"]] += 1
    out["total"] = len(manifest["runs"])
    return out


def is_complete(manifest: dict[str, Any]) -> bool:
    return bool(manifest["runs"]) and all(r["status"] in FINISHED for r in manifest["runs"])


def prune_runs(experiment_dir: Path, manifest: dict[str, Any]) -> int:
    """Delete run directories not referenced by the manifest's current grid; return how many."""
    import shutil

    keep = {r.get("run_id") for r in manifest["runs"]}
    runs = experiment_dir / "runs"
    removed = 0
    if runs.is_dir():
        for p in sorted(runs.iterdir()):
            if p.is_dir() and not p.name.startswith(".") and p.name not in keep:
                shutil.rmtree(p)
                removed += 1
    return removed
