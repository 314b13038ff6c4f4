"""Execute one run: config -> run definition -> (cached?) -> backtest -> metrics -> results directory."""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numba.core import event as numba_event

from hftlab.analysis.metrics import compute_metrics
from hftlab.feed import DatasetRef, load_events
from hftlab.run.definition import build_definition, run_id
from hftlab.run.results import clean_partial, is_complete, runs_dir, write_run
from hftlab.run.schema import typed_config
from hftlab.runtime.progress import RunProgress
from hftlab.runtime.runner import run_backtest
from hftlab.storage.catalog import Catalog
from hftlab.venue.simulated import resolve_venue


@dataclass
class RunResult:
    """Where a run's results are, and whether this call executed it or found it complete."""

    run_id: str
    path: Path
    cached: bool
    metrics_path: Path


def prepare(config: dict[str, Any], project_dir: Path) -> tuple[Any, ...]:
    """Validate a run config and resolve it to (run, strategy, params, dataset, catalog, definition, run id)."""
    run, strategy, params = typed_config(config, project_dir / "strategies")
    catalog = Catalog(project_dir / run.dataset.root)
    dataset = catalog.resolve(run.dataset.id, run.dataset.version)
    venue = resolve_venue(run.venue, dataset.manifest.instrument)
    definition = build_definition(run, strategy, params, dataset, venue, project_dir)
    return run, strategy, params, dataset, catalog, definition, run_id(definition)


def execute(
    config: dict[str, Any], project_dir: Path, *, results_dir: Path | None = None, force: bool = False
) -> RunResult:
    """Run one backtest unless complete results for its run id exist (the content-addressed run cache)."""
    run, strategy, params, dataset, catalog, definition, rid = prepare(config, project_dir)
    runs = runs_dir(results_dir or project_dir / run.output.results_dir, run.experiment_name)
    target = runs / rid
    if is_complete(target) and not force:
        return RunResult(rid, target, True, target / "metrics.json")
    clean_partial(runs)
    t0 = time.perf_counter()
    with numba_event.install_recorder("numba:compile") as compiles:
        fed = load_events(
            DatasetRef(dataset.id, dataset.version, tuple(run.dataset.feeds), run.dataset.start, run.dataset.end),
            catalog,
        )
        t_fed = time.perf_counter()
        ev = fed.events
        # first and last rows bound event time closely enough for progress (no pass over the array)
        bar = RunProgress(f"run {rid}", len(ev), int(ev[0]["local_ts"]) if len(ev) else 0,
                          int(ev[-1]["local_ts"]) if len(ev) else 1, run.output.progress)  # fmt: skip
        out = run_backtest(fed, strategy, params, run.venue, run.risk, run.execution, run.runtime, progress=bar)
        bar.finish()
    wall = time.perf_counter() - t0
    metrics = compute_metrics(
        out.tables, out.account, run.metrics.capital, run.metrics.sample_interval_ns, list(run.metrics.markout_horizons_ns),
        out.venue.contract_size,
    )  # fmt: skip
    telemetry = {
        "wall_seconds": wall,
        "feed_seconds": t_fed - t0,
        "loop_seconds": out.telemetry["loop_seconds"],
        "compile_seconds": _compile_seconds(compiles.buffer),
        "events": out.events,
        "events_per_second": out.events / out.telemetry["loop_seconds"] if out.telemetry["loop_seconds"] else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "host": platform.node(),
        "python": platform.python_version(),
    }
    write_run(target, definition, metrics, out.tables, telemetry)
    return RunResult(rid, target, False, target / "metrics.json")


def _compile_seconds(buffer: list[tuple[float, Any]]) -> float:
    """Seconds spent in top-level numba compilations (nested compiles are inside their callers)."""
    total = 0.0
    depth = 0
    start = 0.0
    for ts, ev in buffer:
        if ev.is_start:
            if depth == 0:
                start = ts
            depth += 1
        elif ev.is_end:
            depth -= 1
            if depth == 0:
                total += ts - start
    return total
