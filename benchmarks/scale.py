"""Benchmark: how runs scale with the window length (1, 5, 20 days), and feeding from the event cache.

Builds (once, cached in --dir) a synthetic dataset ``scale`` of --days consecutive UTC days of at least
--events-per-day hftbacktest events each (snapshot + depth + trades rows). It is built day by day: one
``generate`` + ``Catalog.promote`` per day (seed = base seed + day index), each promote growing the
dataset id by one day (a new version holding the old days' files, hard-linked, plus the new day). A stamp
file marks the build complete; an interrupted build resumes at the first missing day.

Measured, every case in its own fresh child process (the parent imports nothing heavy: a child's
``ru_maxrss`` starts at its parent's RSS):

- runs: ``execute(prepare(...))`` of the default experiment (grid strategy) over the first N days of
  the dataset, for each window of --windows, in a fresh results directory (the run cache never answers).
  The window's event cache (``$HFTLAB_EVENT_CACHE``, a directory under --dir) is filled by a separate
  process beforehand, so the run feeds from the cache; without ``hftlab.event_cache`` runs feed from
  Parquet. A warm-up run on a ten-minute window first loads (or compiles) the numba code. Per window:
  events, feed / loop / wall seconds (``telemetry.json``), throughput = events / loop seconds, and the
  child's peak RSS (its own ``ru_maxrss`` at the end; ``telemetry.json``'s figure alongside).
- feed time of the first window (median of --repeats processes each): ``EventCache(empty dir).feed``
  (from Parquet: decode + merge + write the cache), ``load_events`` (the single-array feeder, for
  reference) and ``EventCache(same dir).feed`` again (from the cache: verify + index). Numba kernels are
  loaded on a one-second window before the timed call.

Prints tables and ends with ``scale_throughput ratio=<largest window events/s / 1-day events/s> aim=0.9``,
``event_cache ratio=<feed from Parquet s / feed from cache s> aim=3`` and
``scale_rss ratio=<largest window peak RSS / 1-day peak RSS> aim=1.3``. ``--build-only`` builds and stops;
``--quick`` is a smoke test (3 days of 500k events, windows 1,3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATASET_ID = "scale"
START_DATE = dt.date(2024, 1, 1)
BASE_SEED = 7_000
#: Canonical rows per unit of ``events_per_second`` per second, a little below the measured 1.73-1.78
#: (depth + trades rows per market event times the mean regime rate factor), so most days reach the target
#: at the first try; a day short of it is generated again at a proportionally higher rate.
ROWS_PER_RATE_SECOND = 1.70
CACHE_ENV = "HFTLAB_EVENT_CACHE"
MIB = 1 / (1 << 20)

BUILD = r"""
import datetime as dt, json, sys, time
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.storage import Catalog

root, days, per_day, start, base_seed, rows_per_rate = sys.argv[1:7]
days, per_day, base_seed, rows_per_rate = int(days), int(per_day), int(base_seed), float(rows_per_rate)
catalog = Catalog(root)
head = catalog.head("scale")
stored = {p.date for p in head.manifest.partitions} if head is not None else set()
first = dt.date.fromisoformat(start)
for i in range(days):
    date = (first + dt.timedelta(days=i)).isoformat()
    if date in stored:
        continue
    t0 = time.perf_counter()
    rate = per_day / rows_per_rate / 86_400
    while True:  # deterministic: the same arguments give the same rate and rows
        result = generate(SynthParams(seed=base_seed + i, start=date, days=1.0, events_per_second=rate))
        rows = sum(len(f) for f in result.feeds)
        if rows >= per_day:
            break
        rate *= per_day / rows * 1.01
    t1 = time.perf_counter()
    dataset, _ = catalog.promote(result, "scale")
    del result
    dates = {p.date for p in dataset.manifest.partitions}
    if date not in dates or not stored <= dates:
        sys.exit(f"promoting {date} into 'scale' gave version {dataset.version} holding {sorted(dates)}: "
                 "Catalog.promote does not grow a dataset id (yet)")
    stored = dates
    print(json.dumps({"date": date, "rows": rows, "rate": rate, "version": dataset.version,
                      "generate_s": t1 - t0, "promote_s": time.perf_counter() - t1}), flush=True)
dataset = catalog.resolve("scale")
per_date = {}
for p in dataset.manifest.partitions:
    per_date[p.date] = per_date.get(p.date, 0) + p.rows
print(json.dumps({"version": dataset.version, "rows_per_day": [per_date[d] for d in sorted(per_date)],
                  "files": len(dataset.manifest.partitions), "start_ns": dataset.manifest.start_ns}))
"""

RUN = r"""
import json, resource, sys, time
from pathlib import Path
from hftlab import compose_runs, execute, prepare

project, root, start, end, results = sys.argv[1:6]
overrides = ["dataset.id=scale", f"dataset.root={root}", f"dataset.start={start}", f"dataset.end={end}",
             f"output.results_dir={results}", "experiment_name=scale", "output.progress=off"]
(config,) = compose_runs([overrides], Path(project))
t0 = time.perf_counter()
result = execute(prepare(config, Path(project)))
wall = time.perf_counter() - t0
telemetry = json.loads((result.path / "telemetry.json").read_text())
print(json.dumps({"cached": result.cached, "wall": wall, "telemetry": telemetry,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

FILL = r"""
import json, resource, sys, time
from pathlib import Path
from hftlab.event_cache import EventCache
from hftlab.feed import Window
from hftlab.storage import Catalog
from hftlab.storage.schema import DEFAULT_FEEDS

root, start, end, cache = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
dataset = Catalog(root).resolve("scale")
t0 = time.perf_counter()
EventCache(cache).feed(dataset, Window(DEFAULT_FEEDS, start, end))
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

FEED = r"""
import json, resource, sys, time
from pathlib import Path
from hftlab.feed import Window, load_events
from hftlab.storage import Catalog
from hftlab.storage.schema import DEFAULT_FEEDS

case, root, start, end, cache, warm = sys.argv[1:7]
start, end = int(start), int(end)
dataset = Catalog(root).resolve("scale")
window, tiny = Window(DEFAULT_FEEDS, start, end), Window(DEFAULT_FEEDS, start, start + 1_000_000_000)
if case == "load_events":
    feed = lambda w: load_events(dataset, w)
    feed(tiny)  # load the numba kernels outside the timed call
else:
    from hftlab.event_cache import EventCache
    EventCache(Path(warm)).feed(dataset, tiny)
    feed = lambda w: EventCache(Path(cache)).feed(dataset, w)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
fed = feed(window)
seconds = time.perf_counter() - t0
events = getattr(fed, "events", None)
print(json.dumps({"seconds": seconds, "rows": len(events) if events is not None else None,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_growth": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024}))
"""


# --- child processes ----------------------------------------------------------------------------------


def child(code: str, args: list[str], env: dict[str, str] | None = None) -> list[dict]:
    """Run ``code`` in a fresh interpreter in the project directory; its stdout's JSON lines. A failing
    child stops the benchmark showing the end of its stderr."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "HFTLAB_PROGRESS": "off", **(env or {})},
    )
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"scale benchmark: a child process failed (exit {out.returncode}):\n{tail}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def has_event_cache() -> bool:
    """Whether ``hftlab.event_cache`` exists (importing the light ``hftlab`` package only)."""
    return importlib.util.find_spec("hftlab.event_cache") is not None


# --- the dataset --------------------------------------------------------------------------------------


def disk_bytes(directory: Path) -> int:
    """Bytes of every file under ``directory``, hard links counted once."""
    seen: dict[tuple[int, int], int] = {}
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def build(base: Path, days: int, per_day: int) -> dict:
    """Build the dataset day by day unless the stamp says it is complete; the stamp's contents."""
    stamp = base / "built.json"
    if stamp.is_file():
        info = json.loads(stamp.read_text())
        print(f"dataset cached: {stamp.parent} (built in {info['build_seconds']:.0f} s)", flush=True)
        return info
    base.mkdir(parents=True, exist_ok=True)
    print(f"building {days} days x >= {per_day:,} events into {base} ...", flush=True)
    t0 = time.perf_counter()
    args = [str(base / "canonical"), str(days), str(per_day), START_DATE.isoformat(), str(BASE_SEED)]
    lines = child(BUILD, [*args, str(ROWS_PER_RATE_SECOND)])
    for day in lines[:-1]:
        print(
            f"  {day['date']}: {day['rows']:,} rows (events_per_second={day['rate']:.2f}), "
            f"generate {day['generate_s']:.1f} s, promote {day['promote_s']:.1f} s",
            flush=True,
        )
    info = {
        **lines[-1],
        "days": days,
        "events_per_day": per_day,
        "build_seconds": time.perf_counter() - t0,
        "disk_bytes": disk_bytes(base / "canonical"),
    }
    stamp.write_text(json.dumps(info, indent=1))
    return info


def describe(info: dict) -> None:
    rows = info["rows_per_day"]
    print(
        f"dataset {DATASET_ID} {info['version']}: {len(rows)} days, {sum(rows):,} events "
        f"(per day min {min(rows):,}, max {max(rows):,}), {info['files']} files, "
        f"{info['disk_bytes'] / 1e9:.2f} GB on disk; build took {info['build_seconds']:.0f} s"
    )


# --- measurements -------------------------------------------------------------------------------------


def iso(day: int, minutes: int = 0) -> str:
    when = dt.datetime.combine(START_DATE, dt.time()) + dt.timedelta(days=day, minutes=minutes)
    return when.strftime("%Y-%m-%dT%H:%M")


def ns(day: int, start_ns: int) -> int:
    return start_ns + day * 86_400 * 1_000_000_000


def measure_run(root: Path, work: Path, name: str, end: str, cache: bool, start_ns: int, days: int) -> dict:
    """One run over ``[day 0, end)`` in a fresh results directory; the window's event cache filled first."""
    env = {CACHE_ENV: str(work / f"cache-{name}")}
    fill = None
    if cache:
        fill = child(FILL, [str(root), str(start_ns), str(ns(days, start_ns)), env[CACHE_ENV]], env)[-1]
    run = child(RUN, [str(PROJECT_ROOT), str(root), iso(0), end, str(work / f"results-{name}")], env)[-1]
    if run["cached"]:
        raise SystemExit(f"scale benchmark: the {name} run was answered by the run cache")
    shutil.rmtree(work / f"results-{name}", ignore_errors=True)
    shutil.rmtree(env[CACHE_ENV], ignore_errors=True)
    return {**run, "fill": fill}


def measure_runs(root: Path, work: Path, windows: list[int], cache: bool, start_ns: int) -> dict[int, dict]:
    warm = measure_run(root, work, "warmup", iso(0, minutes=10), False, start_ns, 0)
    print(f"  warm-up run (10 min): compile {warm['telemetry']['compile_seconds']:.1f} s", flush=True)
    runs = {}
    for days in windows:
        runs[days] = measure_run(root, work, f"{days}d", iso(days), cache, start_ns, days)
        t = runs[days]["telemetry"]
        print(f"  {days}-day run: {t['events']:,} events, loop {t['loop_seconds']:.1f} s", flush=True)
    return runs


def measure_feed(root: Path, work: Path, days: int, repeats: int, cache: bool, start_ns: int) -> dict[str, dict]:
    """Median of ``repeats`` fresh processes per case; each from-Parquet case starts from an empty cache."""
    args = [str(root), str(start_ns), str(ns(days, start_ns))]
    warm = str(work / "cache-feed-warm")
    cases: dict[str, list[dict]] = {"load_events": [], "parquet": [], "cache": []}
    for k in range(repeats):
        cases["load_events"] += child(FEED, ["load_events", *args, "", warm])
        if cache:
            cache_dir = str(work / f"cache-feed-{k}")
            cases["parquet"] += child(FEED, ["cache", *args, cache_dir, warm])
            cases["cache"] += child(FEED, ["cache", *args, cache_dir, warm])
            shutil.rmtree(cache_dir, ignore_errors=True)
    return {case: sorted(r, key=lambda x: x["seconds"])[len(r) // 2] for case, r in cases.items() if r}


# --- report -------------------------------------------------------------------------------------------


def throughput(run: dict) -> float:
    t = run["telemetry"]
    return t["events"] / t["loop_seconds"]


def print_runs(runs: dict[int, dict], cache: bool) -> None:
    feed_from = "event cache, filled beforehand by another process" if cache else "Parquet (no hftlab.event_cache)"
    print(f"\nruns (grid strategy, default experiment; feed from {feed_from}):")
    print(
        f"{'window':>6} {'events':>13} {'feed s':>7} {'loop s':>7} {'wall s':>7} {'Mev/s':>6} "
        f"{'x 1-day':>7} {'peak RSS MiB':>12} {'x 1-day':>7} {'telemetry MiB':>13} {'fill s':>7}"
    )
    first = runs[min(runs)]
    for days, r in runs.items():
        t = r["telemetry"]
        fill = f"{r['fill']['seconds']:.1f}" if r["fill"] else "-"
        print(
            f"{days:>5}d {t['events']:>13,} {t['feed_seconds']:>7.1f} {t['loop_seconds']:>7.1f} {r['wall']:>7.1f} "
            f"{throughput(r) / 1e6:>6.2f} {throughput(r) / throughput(first):>7.2f} {r['peak_rss'] * MIB:>12.0f} "
            f"{r['peak_rss'] / first['peak_rss']:>7.2f} {t['peak_rss_mib']:>13.0f} {fill:>7}"
        )


def print_feed(feed: dict[str, dict], days: int) -> None:
    print(f"\nfeed time of the {days}-day window (median of fresh processes):")
    print(f"{'case':32} {'rows':>13} {'seconds':>8} {'Mrows/s':>8} {'peak RSS MiB':>12} {'growth MiB':>10}")
    names = {
        "parquet": "EventCache.feed, empty cache",
        "load_events": "load_events (single array)",
        "cache": "EventCache.feed, from the cache",
    }
    rows = feed["load_events"]["rows"]
    for case, r in feed.items():
        print(
            f"{names[case]:32} {r['rows'] or rows:>13,} {r['seconds']:>8.2f} "
            f"{(r['rows'] or rows) / r['seconds'] / 1e6:>8.1f} {r['peak_rss'] * MIB:>12.0f} {r['peak_growth'] * MIB:>10.0f}"
        )


def print_ratios(runs: dict[int, dict], feed: dict[str, dict]) -> None:
    first, last = runs[min(runs)], runs[max(runs)]
    big = max(runs)
    print(f"scale_throughput ratio={throughput(last) / throughput(first):.2f} aim=0.9 ({big}-day / 1-day events/s)")
    if "cache" in feed:
        ratio = feed["parquet"]["seconds"] / feed["cache"]["seconds"]
        ref = feed["load_events"]["seconds"] / feed["cache"]["seconds"]
        print(
            f"event_cache ratio={ratio:.2f} aim=3 (feed from Parquet / from the cache; load_events / cache {ref:.2f})"
        )
    else:
        print("event_cache ratio=nan aim=3 (not measured: module hftlab.event_cache not found)")
    print(f"scale_rss ratio={last['peak_rss'] / first['peak_rss']:.2f} aim=1.3 ({big}-day / 1-day peak RSS)")


# --- main ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "hftlab-bench-scale")
    parser.add_argument("--days", type=int, default=20, help="days in the dataset (default 20)")
    parser.add_argument("--events-per-day", type=int, default=5_000_000, help="at least (default 5M)")
    parser.add_argument("--windows", default="1,5,20", help="window lengths in days, the first is the baseline")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per feed-time case (median)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 days x 500k events, windows 1,3")
    parser.add_argument("--build-only", action="store_true", help="build (or find) the dataset and stop")
    args = parser.parse_args()
    if args.quick:
        args.days, args.events_per_day, args.windows = 3, 500_000, "1,3"
    args.windows = [int(w) for w in args.windows.split(",")]
    if args.windows[0] != 1 or any(not 1 <= w <= args.days for w in args.windows) or args.repeats < 1:
        parser.error(f"--windows must start with 1 and lie within 1..{args.days} days; --repeats >= 1")
    return args


def main() -> None:
    args = parse_args()
    base = args.dir / f"days-{args.days}-epd-{args.events_per_day}"
    info = build(base, args.days, args.events_per_day)
    describe(info)
    if args.build_only:
        return
    cache = has_event_cache()
    if not cache:
        print("note: module hftlab.event_cache not found: runs feed from Parquet, the event cache is not measured")
    work = Path(tempfile.mkdtemp(prefix="work-", dir=base))
    try:
        root = base / "canonical"
        runs = measure_runs(root, work, args.windows, cache, info["start_ns"])
        feed = measure_feed(root, work, args.windows[0], args.repeats, cache, info["start_ns"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_runs(runs, cache)
    print_feed(feed, args.windows[0])
    print()
    print_ratios(runs, feed)


if __name__ == "__main__":
    main()
