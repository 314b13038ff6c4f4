"""Execute one run: checked config -> :func:`prepare` (definition, run id) -> :func:`execute` (cached? else
feed -> backtest -> metrics -> results directory)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba.core import event as numba_event

from hftlab.errors import HftlabError, writing
from hftlab.feed import FeedData, Window, load_events
from hftlab.files import jsonable
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.jit import PYTHON_MODE
from hftlab.metrics import compute_metrics, metrics_definition
from hftlab.metrics.marks import replay_mids
from hftlab.run.definition import build_definition, run_id
from hftlab.run.results import (
    METRICS_FILE,
    RECORDS_DIR,
    Metrics,
    check_complete,
    clean_partial,
    new_run_dir,
    read_records,
    replace_metrics,
    restore_pruned,
    reuse_elsewhere,
    runs_dir,
    stored_metrics_definition,
    write_run,
)
from hftlab.run.schema import RunConfig, run_config
from hftlab.runtime.progress import CompileNotice, RunProgress
from hftlab.runtime.runner import compile_seconds, run_backtest, warm
from hftlab.runtime.strategy import Strategy, load_strategy
from hftlab.storage.catalog import Catalog, Dataset
from hftlab.venue.config import VenueConfig
from hftlab.venue.simulated import fed_feeds
from hftlab.watchdog import supervised


@dataclass(frozen=True)
class PreparedRun:
    """A checked run config resolved against the project: its strategy, dataset, venue, definition and id."""

    config: RunConfig
    strategy: Strategy
    params: Any  #: the strategy's ``Params``
    dataset: Dataset  #: the resolved dataset version
    venue: VenueConfig  #: resolved with the dataset's instrument
    definition: dict[str, Any]
    run_id: str
    project_dir: Path
    run_dir: Path  #: ``<results>/<experiment>/runs/<run_id>``


@dataclass(frozen=True)
class RunResult:
    """Where a run's results are, and whether this call executed it or found it complete."""

    run_id: str
    path: Path
    cached: bool
    metrics_path: Path
    metrics_recomputed: bool = False  #: cached, and its metrics were recomputed from its records


def prepare(config: RunConfig, project_dir: Path, *, results_dir: Path | None = None) -> PreparedRun:
    """Resolve a checked run config (:func:`~hftlab.run.schema.run_config`) against the project: load the
    strategy, resolve the dataset version and the venue, build the run definition and its id."""
    strategy = load_strategy(config.strategy.name, project_dir / "strategies")
    params = strategy.params(dataclasses.asdict(config.strategy.params))
    dataset = Catalog(project_dir / config.dataset.root).resolve(config.dataset.id, config.dataset.version)
    venue = config.venue.resolve(dataset.manifest.instrument)
    feeds = fed_feeds(venue, dataset, config.dataset.feeds)
    if list(feeds) != list(config.dataset.feeds):  # the definition records what is fed
        config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, feeds=list(feeds)))
    definition = build_definition(config, strategy, params, dataset, venue, project_dir)
    rid = run_id(definition)
    runs = runs_dir(results_dir or project_dir / config.output.results_dir, config.experiment_name)
    return PreparedRun(config, strategy, params, dataset, venue, definition, rid, project_dir, runs / rid)


def execute(prepared: PreparedRun, *, force: bool = False, watched: bool = False) -> RunResult:
    """Run one backtest unless complete results for its run id exist (the content-addressed run cache).

    Complete means proven so (:func:`~hftlab.run.results.check_complete`: every file as its ``content.json``
    records it); a run directory that is not is executed again, saying why on stderr, and replaced; a run
    that pruning moved aside is restored. A complete run whose metrics were computed by other metrics code gets them recomputed from its
    stored records (no backtest). With ``watched`` (as the command line runs), the backtest runs in a
    child process under the run watchdog (:mod:`hftlab.watchdog`): stopped at its limits (``watchdog.*``)
    or on Ctrl-C, which compiled code would otherwise hold off until it returns."""
    target = prepared.run_dir
    if not force and (found := find_cached(prepared)) is not None:
        return found
    with writing(target.parent):
        clean_partial(target.parent)
        if prepared.config.runtime.debug and not PYTHON_MODE:
            _execute_in_python_mode(prepared, force)
        elif watched:
            _execute_watched(prepared)
        else:
            _execute_here(prepared)
    return RunResult(prepared.run_id, target, False, target / METRICS_FILE)


def find_cached(prepared: PreparedRun) -> RunResult | None:
    """The run's complete results if the run cache has them (restored from a prune, or copied from another
    experiment, if that is where they are; metrics recomputed if stale, see :func:`refresh_metrics`);
    None when the run must execute."""
    if not _cached(prepared):
        return None
    target = prepared.run_dir
    return RunResult(prepared.run_id, target, True, target / METRICS_FILE, refresh_metrics(prepared))


def _cached(prepared: PreparedRun) -> bool:
    """Whether the run directory is complete (restored first if pruning moved it aside); says why not on
    stderr when a directory is there but is not complete."""
    target, rid = prepared.run_dir, prepared.run_id
    if not target.exists():
        source = restore_pruned(target)
        if source is not None:
            print(f"run {rid}: restored from {source} (moved aside by an earlier prune)", file=sys.stderr, flush=True)
    if not target.exists():
        source = reuse_elsewhere(target)
        if source is not None:
            print(f"run {rid}: reused from {source} (the same run definition in another experiment)",
                  file=sys.stderr, flush=True)  # fmt: skip
    if not target.exists():
        return False
    problems = check_complete(target)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        print(f"run {rid}: {problems[0]}{more}: re-executing", file=sys.stderr, flush=True)
    return not problems


def refresh_metrics(prepared: PreparedRun) -> bool:
    """Recompute a complete run's metrics from its stored records (and, for exact-horizon markouts, its
    event stream fed again) if they were computed by other metrics code or config; True if they were."""
    run_dir, config = prepared.run_dir, prepared.config.metrics
    current = metrics_definition(config)
    if stored_metrics_definition(run_dir) == current:
        return False
    mid_at = replay_mids(_fed(prepared), prepared.venue)
    replace_metrics(run_dir, Metrics(compute_metrics(read_records(run_dir), config, mid_at=mid_at), current))
    return True


def _fed(prepared: PreparedRun) -> FeedData:
    """The run's Event stream (its window of its dataset, the feeds it reads)."""
    start, end = prepared.config.dataset.window()
    return feed(prepared.dataset, Window(tuple(prepared.config.dataset.feeds), start, end))


def _execute_here(prepared: PreparedRun) -> None:
    config, rid = prepared.config, prepared.run_id
    t0 = time.perf_counter()
    bar = RunProgress(f"run {rid}", 0, 0, 1, config.output.progress)
    notice = CompileNotice(lambda: bar.say(f"run {rid}: compiling the runtime… (once per machine and code version)"))
    with (
        numba_event.install_listener("numba:compile", notice),
        numba_event.install_recorder("numba:compile") as feed_compiles,
    ):
        fed = _fed(prepared)
    feed_seconds = time.perf_counter() - t0
    for warning in fed.warnings:
        bar.say(f"run {rid}: warning: {warning}")
    bar.window(fed.rows, fed.start_ns, fed.end_ns)
    tmp = new_run_dir(prepared.run_dir)  # records are written into it while the loop runs
    try:
        with numba_event.install_listener("numba:compile", notice):
            out = run_backtest(
                fed, prepared.strategy, prepared.params, venue=prepared.venue, risk=config.risk,
                execution=config.execution, runtime=config.runtime, progress=bar, records_dir=tmp / RECORDS_DIR,
            )  # fmt: skip
        bar.finish()
        telemetry = {
            "wall_seconds": time.perf_counter() - t0,
            "feed_seconds": feed_seconds - compile_seconds(feed_compiles.buffer),
            "event_cache": {None: "off", True: "hit", False: "filled"}[fed.cache_hit],
            "compile_seconds": compile_seconds(feed_compiles.buffer) + out.telemetry["compile_seconds"],
            "events": out.events,
            "loop_seconds": out.telemetry["loop_seconds"],
            "events_per_second": out.events / out.telemetry["loop_seconds"] if out.telemetry["loop_seconds"] else None,
            "host": platform.node(),
            "python": platform.python_version(),
        }
        t_metrics = time.perf_counter()
        with numba_event.install_listener("numba:compile", notice):  # markouts replay the stream: compiled
            values = compute_metrics(out, config.metrics, mid_at=replay_mids(fed, out.venue))
        telemetry["metrics_seconds"] = time.perf_counter() - t_metrics
        metrics = Metrics(values, metrics_definition(config.metrics))
        telemetry["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        write_run(prepared.run_dir, prepared.definition, out, metrics, telemetry, list(fed.warnings), tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # renamed into place unless something failed


def _execute_watched(prepared: PreparedRun) -> None:
    """:func:`_execute_here` in a child process the watchdog stops when it stalls or overruns; the compiled
    code is loaded here first (from a stand-in stream of one event), so the child inherits it."""
    config = prepared.config
    tick = prepared.dataset.manifest.instrument.tick_size
    empty = np.zeros(0, EVENT_DTYPE)
    stand_in = FeedData(prepared.dataset, np.zeros(1, EVENT_DTYPE), empty, 0, 1, tuple(config.dataset.feeds),
                        book_px=(tick, 2 * tick))  # fmt: skip
    say = f"run {prepared.run_id}: compiling the runtime… (once per machine and code version)"
    notice = CompileNotice(lambda: print(say, file=sys.stderr, flush=True))
    with numba_event.install_listener("numba:compile", notice):  # an edited strategy compiles here
        warm(
            stand_in, prepared.strategy, prepared.params, prepared.venue, config.risk, config.execution, config.runtime
        )
    runs = prepared.run_dir.parent
    supervised(
        lambda: _write_here(prepared, runs), f"run {prepared.run_id}", config.watchdog, lambda: clean_partial(runs)
    )


def _write_here(prepared: PreparedRun, runs: Path) -> None:
    with writing(runs):  # in the watched child too: a full disk is a one-line error there
        _execute_here(prepared)


def feed(dataset: Dataset, window: Window) -> FeedData:
    """The run's Event stream: through the event cache (:mod:`hftlab.event_cache`), or in memory where
    ``HFTLAB_EVENT_CACHE=off``."""
    from hftlab.event_cache import EventCache, default_dir

    root = default_dir()
    return load_events(dataset, window) if root is None else EventCache(root).feed(dataset, window)


def _execute_in_python_mode(prepared: PreparedRun, force: bool) -> None:
    """``runtime.debug``: run this config again in a child process with numba's JIT disabled (whole loop and
    strategy in Python). The child shares the terminal, so ``breakpoint()`` in a strategy stops there."""
    with tempfile.TemporaryDirectory(prefix="hftlab-debug-") as tmp:
        job = Path(tmp) / "job.json"
        error = Path(tmp) / "error.txt"
        results_dir = prepared.run_dir.parent.parent.parent
        job.write_text(json.dumps({"config": jsonable(prepared.config), "project_dir": str(prepared.project_dir),
                                   "force": force, "results_dir": str(results_dir)}))  # fmt: skip
        env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
        code = subprocess.call([sys.executable, "-m", "hftlab.run.execute", str(job), str(error)], env=env)
        if code != 0 and error.is_file():  # the child's HftlabError: bad input
            raise HftlabError(f"debug run (runtime.debug=true, plain Python): {error.read_text()}")
        if code != 0:  # anything else failed in the child: its traceback is above
            raise RuntimeError(f"debug run (runtime.debug=true, plain Python): it exited with code {code}")


def _debug_child(job_path: str, error_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    project_dir = Path(job["project_dir"])
    try:
        config = run_config(job["config"], project_dir / "strategies")
        execute(prepare(config, project_dir, results_dir=Path(job["results_dir"])), force=job["force"])
    except HftlabError as exc:
        Path(error_path).write_text(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_debug_child(sys.argv[1], sys.argv[2]))
