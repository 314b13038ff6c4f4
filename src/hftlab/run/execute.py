"""Execute one run: config -> run definition -> (cached?) -> backtest -> metrics -> results directory."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numba.core import event as numba_event

from hftlab.analysis.metrics import compute_metrics
from hftlab.errors import HftlabError
from hftlab.feed import DatasetRef, load_events
from hftlab.jit import PYTHON_MODE
from hftlab.run.definition import build_definition, run_id
from hftlab.run.results import clean_partial, is_complete, runs_dir, write_run
from hftlab.run.schema import typed_config
from hftlab.runtime.progress import CompileNotice, RunProgress
from hftlab.runtime.runner import compile_seconds, run_backtest
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
    if run.runtime.debug and not PYTHON_MODE:
        _execute_in_python_mode(config, project_dir, results_dir, force)
        return RunResult(rid, target, False, target / "metrics.json")
    t0 = time.perf_counter()
    bar = RunProgress(f"run {rid}", 0, 0, 1, run.output.progress)
    notice = CompileNotice(lambda: bar.say(f"run {rid}: compiling the runtime… (once per machine and code version)"))
    with (
        numba_event.install_listener("numba:compile", notice),
        numba_event.install_recorder("numba:compile") as feed_compiles,
    ):
        fed = load_events(
            DatasetRef(dataset.id, dataset.version, tuple(run.dataset.feeds), run.dataset.start, run.dataset.end),
            catalog,
        )
    feed_seconds = time.perf_counter() - t0
    ev = fed.events
    # first and last rows bound event time closely enough for progress (no pass over the array)
    bar.window(len(ev), int(ev[0]["local_ts"]) if len(ev) else 0, int(ev[-1]["local_ts"]) if len(ev) else 1)
    with numba_event.install_listener("numba:compile", notice):
        out = run_backtest(fed, strategy, params, run.venue, run.risk, run.execution, run.runtime, progress=bar)
    bar.finish()
    wall = time.perf_counter() - t0
    feed_compile = compile_seconds(feed_compiles.buffer)
    metrics = compute_metrics(
        out.tables, out.account, run.metrics.capital, run.metrics.sample_interval_ns, list(run.metrics.markout_horizons_ns),
        out.venue.contract_size,
    )  # fmt: skip
    telemetry = {
        "wall_seconds": wall,
        "feed_seconds": feed_seconds - feed_compile,
        "loop_seconds": out.telemetry["loop_seconds"],
        "compile_seconds": feed_compile + out.telemetry["compile_seconds"],
        "events": out.events,
        "events_per_second": out.events / out.telemetry["loop_seconds"] if out.telemetry["loop_seconds"] else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "host": platform.node(),
        "python": platform.python_version(),
    }
    write_run(target, definition, metrics, out.tables, telemetry)
    return RunResult(rid, target, False, target / "metrics.json")


def _execute_in_python_mode(config: dict[str, Any], project_dir: Path, results_dir: Path | None, force: bool) -> None:
    """``runtime.debug``: run this config again in a child process with numba's JIT disabled (whole loop and
    strategy in Python). The child shares the terminal, so ``breakpoint()`` in a strategy stops there."""
    with tempfile.TemporaryDirectory(prefix="hftlab-debug-") as tmp:
        job = Path(tmp) / "job.json"
        error = Path(tmp) / "error.txt"
        job.write_text(json.dumps({"config": config, "project_dir": str(project_dir), "force": force,
                                   "results_dir": None if results_dir is None else str(results_dir)}))  # fmt: skip
        env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
        code = subprocess.call([sys.executable, "-m", "hftlab.run.execute", str(job), str(error)], env=env)
        if code != 0:
            detail = error.read_text() if error.is_file() else f"it exited with code {code} (its output is above)"
            raise HftlabError(f"debug run (runtime.debug=true, plain Python): {detail}")


def _debug_child(job_path: str, error_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    results_dir = None if job["results_dir"] is None else Path(job["results_dir"])
    try:
        execute(job["config"], Path(job["project_dir"]), results_dir=results_dir, force=job["force"])
    except HftlabError as exc:
        Path(error_path).write_text(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_debug_child(sys.argv[1], sys.argv[2]))
