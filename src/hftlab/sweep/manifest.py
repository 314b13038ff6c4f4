"""Sweep manifests: which runs belong to an experiment, with which overrides, and how far they got.

``results/<experiment>/manifest.json`` lists every grid point (its overrides, run id once known,
status ``pending``/``running``/``done``/``cached``/``failed`` and the error text; read with ``verify``, a
finished point whose run directory does not check complete reads as ``incomplete``). Every update is a read-modify-write under an
exclusive ``flock`` on ``results/<experiment>/.lock`` followed by an atomic rename, so parallel workers and
two sweeps started at once never lose or half-write an update.

Sweeps register themselves (``sweeps``: pid, process start time, boot, grid, points) while they run, so
concurrent sweeps of one experiment, even with different grids, keep each other's points: a sweep starting
keeps the rows of live sweeps as they stand, and re-queues (``pending``) every other point of its grid,
including those a dead sweep left ``running``. The latest sweep started owns the grid shown and writes the
summary. A sweep that ran alongside another does not prune; pruning moves run directories aside
(:func:`~hftlab.run.results.move_aside`) and spares those of live sweeps and those changed since the
pruning sweep started.
"""

from __future__ import annotations

import fcntl
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hftlab.files import process_token, token_alive, write_json
from hftlab.run.results import check_complete, move_aside, pruned_dir, runs_dir

MANIFEST = "manifest.json"
LOCK = ".lock"
STATUSES = ("pending", "running", "done", "cached", "failed", "incomplete")
FINISHED = ("done", "cached")
#: Run directories changed this long before a pruning sweep started are still spared (coarse file times).
CLOCK_SLACK = 2.0


def point_key(overrides: list[str]) -> str:
    """The identity of a grid point: its overrides, sorted (order on the command line does not matter)."""
    return " ".join(sorted(overrides))


@contextmanager
def locked(experiment_dir: Path) -> Iterator[None]:
    """Hold the experiment's exclusive lock (not re-entrant: never nest it)."""
    experiment_dir.mkdir(parents=True, exist_ok=True)
    with open(experiment_dir / LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load(experiment_dir: Path) -> dict[str, Any] | None:
    path = experiment_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def read(experiment_dir: Path, *, verify: bool = True) -> dict[str, Any] | None:
    """The manifest (None if there is none). With ``verify``, a finished point whose run directory is not
    complete (:func:`~hftlab.run.results.check_complete`: edited, deleted or unverifiable files) reads as
    ``incomplete``, its problems as the error; this reads and hashes every finished run's files."""
    m = _load(experiment_dir)
    if m is not None and verify:
        m["runs"] = verify_rows(experiment_dir, m["runs"])
    return m


def verify_rows(experiment_dir: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with every finished one whose run directory is not complete marked ``incomplete``."""
    runs = runs_dir(experiment_dir.parent, experiment_dir.name)
    out = []
    for r in rows:
        problems = check_complete(runs / str(r.get("run_id"))) if r["status"] in FINISHED else []
        out.append({**r, "status": "incomplete", "error": f"run directory: {'; '.join(problems)}"} if problems else r)
    return out


def _write(experiment_dir: Path, manifest: dict[str, Any]) -> None:
    write_json(experiment_dir / MANIFEST, manifest)


def update(experiment_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to the manifest under the lock and write it back atomically."""
    with locked(experiment_dir):
        manifest = _load(experiment_dir) or {"experiment": experiment_dir.name, "grid": [], "runs": []}
        change(manifest)
        manifest["runs"].sort(key=lambda r: r["key"])
        _write(experiment_dir, manifest)
        return manifest


def _live(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The registered sweeps whose process still runs."""
    return {sid: s for sid, s in (m.get("sweeps") or {}).items() if token_alive(s["process"])}


def start_sweep(experiment_dir: Path, grid: list[str], points: list[list[str]]) -> str:
    """Register a sweep and declare its grid and every point; the sweep's id (for :func:`finish_sweep`).

    Its points are re-queued as ``pending`` (earlier run ids are kept as hints), but for points a live
    sweep also holds, kept as they stand. Rows of live sweeps stay; other points leave the manifest
    (their results stay in ``runs/``). Registered sweeps whose process ended are dropped."""
    sid = uuid.uuid4().hex[:12]
    keys = sorted({point_key(o) for o in points})

    def change(m: dict[str, Any]) -> None:
        live = _live(m)
        for other in live.values():
            other["overlap"] = True  # ran alongside another sweep: it will not prune
        held = {k for s in live.values() for k in s["points"]}
        old = {r["key"]: r for r in m["runs"]}
        rows = {k: r for k, r in old.items() if k in held}
        for o in points:
            rows.setdefault(point_key(o), {
                "key": point_key(o), "overrides": sorted(o), "run_id": (old.get(point_key(o)) or {}).get("run_id"),
                "status": "pending", "error": None,
            })  # fmt: skip
        me = {"process": process_token(), "grid": grid, "points": keys, "overlap": bool(live)}
        m.update(grid=grid, grid_points=keys, owner=sid, runs=list(rows.values()), sweeps={**live, sid: me})

    update(experiment_dir, change)
    return sid


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
    """How many points have each status, and ``total``."""
    out = dict.fromkeys(STATUSES, 0)
    for r in manifest["runs"]:
        out[r["status"]] += 1
    out["total"] = len(manifest["runs"])
    return out


def is_complete(manifest: dict[str, Any]) -> bool:
    """Every point finished (statuses as recorded: :func:`read` verifies them against the run directories)."""
    return bool(manifest["runs"]) and all(r["status"] in FINISHED for r in manifest["runs"])


@dataclass
class SweepEnd:
    """How a sweep ended (:func:`finish_sweep`)."""

    manifest: dict[str, Any]  #: this sweep's grid and its points only, verified: what its summary shows
    owner: bool  #: no sweep of this experiment started after it: it writes the summary
    overlap: bool  #: another sweep of this experiment ran at the same time (so it did not prune)
    pruned: list[str] = field(default_factory=list)  #: run directories moved aside
    pruned_to: Path | None = None


def finish_sweep(
    experiment_dir: Path, sweep_id: str, grid: list[str], points: list[list[str]], *, prune: bool, since: float
) -> SweepEnd:
    """End a sweep: verify its own points against their run directories (a finished point whose directory
    is not complete is ``incomplete``; one another sweep finished counts as ``cached``), unregister it, and,
    with ``prune`` and no other sweep alongside, move run directories outside its grid aside
    (:func:`prune_runs`), under the experiment's lock. ``since``: when the sweep started (time.time())."""
    keys = {point_key(o): sorted(o) for o in points}
    snapshot = {r["key"]: r for r in (_load(experiment_dir) or {"runs": []})["runs"]}
    mine = [snapshot.get(k) or {"key": k, "overrides": o, "run_id": None, "status": "pending", "error": None}
            for k, o in sorted(keys.items())]  # fmt: skip
    runs = runs_dir(experiment_dir.parent, experiment_dir.name)
    for r in mine:
        if r["status"] in ("pending", "running") and r.get("run_id") and not check_complete(runs / r["run_id"]):
            r["status"] = "cached"  # finished by another sweep of the same point
    mine = verify_rows(experiment_dir, mine)
    end = SweepEnd({"experiment": experiment_dir.name, "grid": grid, "runs": mine}, True, False)
    with locked(experiment_dir):
        m = _load(experiment_dir) or {"experiment": experiment_dir.name, "grid": grid, "runs": []}
        me = (m.get("sweeps") or {}).pop(sweep_id, None) or {"overlap": True}
        end.owner, end.overlap = m.get("owner") == sweep_id, bool(me["overlap"])
        held = {k for s in _live(m).values() for k in s["points"]} | set(m.get("grid_points") or [])
        m["runs"] = [r for r in m["runs"] if r["key"] in held]  # a later sweep's grid replaced this one's
        _write(experiment_dir, m)
        if prune and not end.overlap:
            end.pruned = _prune(experiment_dir, m, {r.get("run_id") for r in m["runs"]}, since)
            end.pruned_to = pruned_dir(experiment_dir) if end.pruned else None
    return end


def prune_runs(experiment_dir: Path, keep: set[str], since: float) -> list[str]:
    """Move the run directories outside ``keep`` aside into ``<experiment>/.pruned`` (under the
    experiment's lock); their names. Spared: those of live sweeps' points and those changed after
    ``since`` (a time.time(): when the caller started), which another process may have just written."""
    with locked(experiment_dir):
        m = _load(experiment_dir) or {"runs": []}
        return _prune(experiment_dir, m, keep, since)


def _prune(experiment_dir: Path, m: dict[str, Any], keep: set[Any], since: float) -> list[str]:
    held = {k for s in _live(m).values() for k in s["points"]}
    keep = keep | {r.get("run_id") for r in m["runs"] if r["key"] in held}
    runs = runs_dir(experiment_dir.parent, experiment_dir.name)
    moved = []
    for p in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not p.is_dir() or p.name.startswith(".") or p.name in keep:
            continue
        st = p.stat()
        if max(st.st_mtime, st.st_ctime) >= since - CLOCK_SLACK:
            continue
        move_aside(p)
        moved.append(p.name)
    return moved
