"""Benchmark: the Core Runtime (grid strategy) against the plain hftbacktest grid loop, same data, same run.

Builds (once, cached in --dir) a ~10M-event synthetic dataset, then measures each case in --repeats fresh
processes (median reported):

- reference: ``hftlab.venue.reference.run_reference_grid`` (hftbacktest's tutorial grid loop, no Risk,
  no Execution Control, no records but a fill log);
- runtime:   ``run_backtest`` with ``strategies/grid.py`` (permissive Risk and Execution Control).

Per process: import, feed the whole dataset, warm up (compile) on a one-minute window of it, then time the
full run. Measured:

- run seconds and events/s of the full run (compile excluded);
- peak RSS: ``ru_maxrss`` growth from the child's first line (before imports) to the end of the run, and
  its growth during the run alone (the parent imports nothing heavy: a child's ``ru_maxrss`` starts at the
  RSS its parent had when it forked);
- start-to-first-event: wall time from the parent spawning the process until the loop is ready to
  process events (interpreter start + imports + feed + compile; the warm-up window's own feed is not
  counted). Each case gets a fresh, empty ``NUMBA_CACHE_DIR``: its first process compiles every numba
  function (cold), the next ones load the cached ``cache=True`` functions and compile only what cannot
  be cached (the plain loop, which touches hftbacktest's jitclass objects; the runtime: nothing). The numba
  functions each process compiled are listed.

Prints a table, then ``runtime_peak_rss`` (runtime / reference peak RSS, aim 1.1), ``runtime_throughput``
(runtime / reference events/s, aim 1.0) and ends with ``runtime_start ratio=<runtime warm start-to-first-event
/ reference warm start-to-first-event> aim=0.2``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GRID = {"grid_num": 5, "grid_interval": 0.2, "half_spread": 0.2, "order_qty": 0.01, "max_position": 0.2}
INTERVAL_NS = 100_000_000
WARMUP_NS = 60 * 1_000_000_000

CHILD = r"""
import os, resource, sys, time
rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import json
from pathlib import Path

case, root, spawn_ns, strategies, grid, interval, warmup = sys.argv[1:8]
spawn_ns, interval, warmup, grid = int(spawn_ns), int(interval), int(warmup), json.loads(grid)

from hftlab.feed import DatasetRef
from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.progress import RunProgress
from hftlab.runtime.runner import contract_of, run_backtest
from hftlab.runtime.state import on_lot_value
from hftlab.runtime.strategy import load_strategy
from hftlab.storage import Catalog
from hftlab.venue.config import VenueConfig
from hftlab.venue.reference import run_reference_grid

t_imported = time.time_ns()
catalog = Catalog(root)
fed = DatasetRef("bench").load(catalog)
t_fed = time.time_ns()
tiny = DatasetRef("bench", end=fed.dataset.manifest.start_ns + warmup).load(catalog)
strategy = load_strategy("grid", strategies)
params = strategy.params(grid)


def run(feed):
    if case.startswith("runtime"):
        progress = None
        if case == "runtime+progress":  # progress reporting on, written to /dev/null as log lines
            ev = feed.events
            progress = RunProgress("bench", len(ev), int(ev[0]["local_ts"]), int(ev[-1]["local_ts"]),
                                   mode="log", stream=open(os.devnull, "w"), log_every_s=0.0)
        out = run_backtest(feed, strategy, params, venue=VenueConfig(), runtime=RuntimeConfig(interval_ns=interval),
                           progress=progress)
        return len(out.tables["fills"]), out.account["position"]
    ref = run_reference_grid(feed, VenueConfig(), params, interval)
    # hftbacktest's position is a float sum; the runtime stores it on the lot grid: compare like with like
    contract = contract_of(VenueConfig().resolve(feed.dataset.manifest.instrument))
    return len(ref["fills"]), on_lot_value(contract, ref["position"])


t_tiny = time.time_ns()
run(tiny)  # compile (and a one-minute run)
t_ready = time.time_ns()
rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
fills, position = run(fed)
seconds = time.perf_counter() - t0
rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

from numba.core.registry import CPUDispatcher
compiled, loaded = [], 0
for name, module in list(sys.modules.items()):
    if not name.startswith(("hftlab", "hftbacktest")):
        continue
    for attr, obj in list(vars(module).items()):
        if isinstance(obj, CPUDispatcher) and getattr(obj, "__module__", None) == name:
            stats = obj.stats
            loaded += sum(stats.cache_hits.values()) > 0
            if sum(stats.cache_misses.values()):
                compiled.append(f"{name.rsplit('.', 1)[-1]}.{attr}")
print(json.dumps({
    "events": len(fed.events), "seconds": seconds, "fills": fills, "position": position,
    "import_s": (t_imported - spawn_ns) / 1e9, "feed_s": (t_fed - t_imported) / 1e9,
    "compile_s": (t_ready - t_tiny) / 1e9,
    "first_event_s": (t_fed - spawn_ns + t_ready - t_tiny) / 1e9,
    "peak_rss": (rss_end - rss_start) * 1024, "run_rss": (rss_end - rss_ready) * 1024,
    "compiled": sorted(compiled), "loaded_from_cache": loaded,
}))
"""


BUILD = r"""
import sys
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.storage import Catalog

catalog = Catalog(sys.argv[1])
if not any(d.id == "bench" for d in catalog.datasets()):
    rate = int(sys.argv[2]) / 1.85 / 86_400  # about 1.85 fed rows per synthetic market event
    dataset, _ = catalog.promote(generate(SynthParams(seed=11, days=1.0, events_per_second=rate)), "bench")
    print(f"built dataset: {dataset.manifest.rows:,} rows in {len(dataset.manifest.partitions)} files", flush=True)
"""


def build(root: Path, events_target: int) -> None:
    """Build the dataset once, in a child: a child process inherits its parent's RSS as the starting value
    of ``ru_maxrss``, so the parent must stay small for the peak-RSS measurements."""
    subprocess.run([sys.executable, "-c", BUILD, str(root), str(events_target)], check=True, cwd=PROJECT_ROOT)


def measure(case: str, root: Path, cache_dir: Path) -> dict:
    """One fresh process; ``cache_dir`` is its numba cache (empty before a case's first process)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    env.pop("HFTLAB_CACHE_DIR", None)  # hftlab's caches then live under NUMBA_CACHE_DIR too
    args = [str(root), "", str(PROJECT_ROOT / "strategies"), json.dumps(GRID), str(INTERVAL_NS), str(WARMUP_NS)]
    args[1] = str(time.time_ns())  # the child's start-to-first-event clock starts here
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case, *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    run = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {case:9}: {run['seconds']:.2f} s run, {run['first_event_s']:.2f} s to first event", flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="target fed events (default 10M)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per case (>= 2: cold + warm)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "hftlab-bench-runtime")
    args = parser.parse_args()
    root = args.dir / f"events-{args.events}"
    build(root, args.events)
    results: dict[str, list[dict]] = {"reference": [], "runtime": [], "runtime+progress": []}
    with tempfile.TemporaryDirectory(prefix="hftlab-numba-cache-") as caches:
        for _ in range(max(args.repeats, 2)):  # alternate the cases, so drift in machine speed hits both
            for case, runs in results.items():
                runs.append(measure(case, root, Path(caches) / case))

    def med(case: str, key: str, runs: slice = slice(None)) -> float:
        return statistics.median(r[key] for r in results[case][runs])

    mib = 1 / (1 << 20)
    print()
    print(
        f"{'case':10} {'events':>11} {'fills':>7} {'run s':>6} {'Mevents/s':>9} {'peak RSS MiB':>12} "
        f"{'run RSS MiB':>11} {'1st event s cold':>16} {'warm':>5}"
    )
    for case in ("reference", "runtime", "runtime+progress"):
        r = results[case]
        seconds = med(case, "seconds")
        print(
            f"{case:10} {r[0]['events']:>11,} {r[0]['fills']:>7,} {seconds:>6.2f} {r[0]['events'] / seconds / 1e6:>9.2f} "
            f"{med(case, 'peak_rss') * mib:>12.0f} {med(case, 'run_rss') * mib:>11.0f} "
            f"{r[0]['first_event_s']:>16.2f} {med(case, 'first_event_s', slice(1, None)):>5.2f}"
        )
    print()
    print("start to first event, cold (empty numba cache) / warm process, seconds:")
    print(f"{'case':10} {'import':>13} {'feed':>13} {'compile':>13}  numba functions compiled (warm process)")
    for case in ("reference", "runtime"):
        cold, warm = results[case][0], results[case][1]
        parts = " ".join(f"{cold[k]:>6.2f}/{warm[k]:<6.2f}" for k in ("import_s", "feed_s", "compile_s"))
        print(f"{case:10} {parts}  {', '.join(warm['compiled'])}")
        print(
            f"{'':10} cold: {len(cold['compiled'])} compiled, {cold['loaded_from_cache']} loaded from cache; "
            f"warm: {len(warm['compiled'])} compiled, {warm['loaded_from_cache']} loaded from cache "
            "(with their cached callees inside)"
        )
    same = all(results["runtime"][0][k] == results["reference"][0][k] for k in ("fills", "position"))
    print(f"same number of fills and final position in both: {same}")
    rt_speed = results["runtime"][0]["events"] / med("runtime", "seconds")
    ref_speed = results["reference"][0]["events"] / med("reference", "seconds")
    overhead = med("runtime+progress", "seconds") / med("runtime", "seconds")
    print(f"progress_overhead ratio={overhead:.3f} aim=1.03 (runtime with progress reporting / without)")
    print(f"runtime_peak_rss ratio={med('runtime', 'peak_rss') / med('reference', 'peak_rss'):.2f} aim=1.1")
    print(f"runtime_throughput ratio={rt_speed / ref_speed:.2f} aim=1.0 (runtime events/s / plain loop events/s)")
    warm_start = med("runtime", "first_event_s", slice(1, None)) / med("reference", "first_event_s", slice(1, None))
    print(f"runtime_start ratio={warm_start:.2f} aim=0.2 (warm start-to-first-event: runtime / plain loop)")


if __name__ == "__main__":
    main()
