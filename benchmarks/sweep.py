"""Benchmark: an 8-run sweep (grid strategy, ~2M fed events per run), serial vs local parallel, same run.

Sets up a throwaway project (this repository's ``conf/`` and ``strategies/`` plus a synthetic dataset of
about ``--events`` fed events) and times whole ``hftlab run -m`` commands, from spawn to exit, and the
moment each run finishes (from the sweep's progress lines):

- serial:   Hydra's basic launcher; every run in the one process;
- parallel: ``hydra/launcher=parallel`` (joblib/loky: fresh worker processes, one per core, reused for
  all runs; each worker imports everything and loads the compiled code from numba's cache);
- forked:   ``hydra/launcher=forked`` (runs in the launching process until the loop is loaded, then
  forks one worker per core that inherit the imports).

Every sweep starts with a warm numba cache (a single run fills it first): nothing compiles. From the
serial sweep: W = the warm single-run time (seconds between its first and last run finishing / 7), C =
what the first run costs beyond W (imports, cache loads). The ideal parallel sweep on ``n`` cores:
``8 W / n + C``; note that serial / ideal = (8 W + C) / (8 W / n + C) caps the ratio below ``n``.

Prints a table and ends with ``sweep ratio=<serial wall / best parallel wall> aim=1.8``; the lines above it
are ``sweep_parallel`` (the joblib launcher alone) and ``sweep_vs_ideal ratio=<best parallel wall / (8 W /
n + C)> aim=1.3``. Also checks that every sweep
wrote byte-identical deterministic run outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HFTLAB = str(Path(sys.executable).with_name("hftlab"))
GRID = ["strategy.params.half_spread=0.1,0.2,0.3,0.4", "strategy.params.skew=0.0,0.5"]
LAUNCHERS = {"serial": [], "parallel": ["hydra/launcher=parallel"], "forked": ["hydra/launcher=forked"]}
PROGRESS = re.compile(r"sweep \S+: \d+/\d+ finished")
DAYS = 0.25
ROWS_PER_MARKET_EVENT = 1.85  # fed rows per synthetic market event (depth levels + trades)


def hftlab(project: Path, env: dict[str, str], *args: str) -> tuple[float, list[float]]:
    """Run one hftlab command in ``project``: its wall seconds from spawn to exit, and the seconds since
    spawn at which each run of a sweep finished (the sweep's ``k/N finished`` progress lines)."""
    t0 = time.perf_counter()
    finished: list[float] = []
    proc = subprocess.Popen([HFTLAB, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    err = []
    for line in proc.stderr:
        err.append(line)
        if PROGRESS.match(line):
            finished.append(time.perf_counter() - t0)
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"hftlab {' '.join(args)} exited {proc.returncode}:\n{out}\n{''.join(err)}")
    return time.perf_counter() - t0, finished


def environment(project: Path, tmp: Path) -> dict[str, str]:
    """The environment of the benchmark's hftlab commands: its project, its own numba cache."""
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "HFTLAB_PROJECT": str(project),
        "NUMBA_CACHE_DIR": str(tmp / "numba-cache"),
    }


def make_project(path: Path, env: dict[str, str], events: int) -> None:
    path.mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "conf", path / "conf")
    shutil.copytree(PROJECT_ROOT / "strategies", path / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    rate = events / ROWS_PER_MARKET_EVENT / (DAYS * 86_400)
    synth = ["data", "synth", "--id", "synthetic", "--seed", "11", "--days", str(DAYS), "--events-per-second", f"{rate:.3f}"]  # fmt: skip
    hftlab(path, env, "--root", str(path / "data" / "canonical"), *synth)


def outputs(project: Path, experiment: str) -> dict[str, str]:
    """sha256 of every deterministic file of every run (telemetry and logs excluded), by relative path."""
    from hftlab.run.results import deterministic_files

    runs = project / "results" / experiment / "runs"
    return {
        f"{d.name}/{rel}": hashlib.sha256((d / rel).read_bytes()).hexdigest()
        for d in sorted(runs.iterdir())
        if d.is_dir()
        for rel in deterministic_files(d)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="target fed events per run (default 2M)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three sweeps, alternated (median)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    walls: dict[str, list[float]] = {case: [] for case in LAUNCHERS}
    finished: dict[str, list[list[float]]] = {case: [] for case in LAUNCHERS}
    hashes: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="hftlab-bench-sweep-") as tmp:
        project = Path(tmp) / "project"
        env = environment(project, Path(tmp))
        make_project(project, env, args.events)
        warm, _ = hftlab(project, env, "run", "experiment_name=warmup")
        print(f"numba cache filled by a single run: {warm:.1f} s", flush=True)
        for i in range(args.repeats):
            for case, launcher in LAUNCHERS.items():
                name = f"{case}{i}"
                wall, times = hftlab(project, env, "run", "-m", f"experiment_name={name}", *GRID, *launcher)
                walls[case].append(wall)
                finished[case].append(times)
                hashes[case] = outputs(project, name)
                print(f"  {case:8}: {wall:.1f} s", flush=True)
        events = json.loads(next((project / "results" / "serial0" / "runs").glob("*/telemetry.json")).read_text())[
            "events"
        ]

    def per_run(times: list[float]) -> float:
        """Seconds per run after the first one finished."""
        return (times[-1] - times[0]) / (len(times) - 1)

    runs = len(finished["serial"][0])
    warm_run = statistics.median(per_run(t) for t in finished["serial"])
    compile_s = statistics.median(t[0] for t in finished["serial"]) - warm_run
    ideal = runs * warm_run / cores + compile_s
    wall = {case: statistics.median(w) for case, w in walls.items()}
    best = min(("parallel", "forked"), key=wall.__getitem__)
    print()
    print(
        f"{runs} runs x {events:,} fed events, {cores} cores; warm run W = {warm_run:.2f} s, first run beyond W (C) = {compile_s:.2f} s"
    )
    print(f"{'case':9} {'wall s':>7} {'1st run done s':>14} {'then s/run':>10} {'Mevents/s':>9} {'vs serial':>9}")
    for case in LAUNCHERS:
        first = statistics.median(t[0] for t in finished[case])
        then = statistics.median(per_run(t) for t in finished[case])
        print(
            f"{case:9} {wall[case]:>7.1f} {first:>14.1f} {then:>10.2f} {runs * events / wall[case] / 1e6:>9.2f} "
            f"{wall['serial'] / wall[case]:>9.2f}"
        )
    print(f"{'ideal':9} {ideal:>7.1f}   (8 W / {cores} + C; serial / ideal = {wall['serial'] / ideal:.2f})")
    same = hashes["serial"] == hashes["parallel"] == hashes["forked"] and len(hashes["serial"]) > 0
    print(f"identical deterministic outputs, serial vs parallel vs forked: {same}")
    print(f"sweep_parallel ratio={wall['serial'] / wall['parallel']:.2f} aim=1.8 (joblib/loky launcher)")
    print(f"sweep_vs_ideal ratio={wall[best] / ideal:.2f} aim=1.3 ({best} launcher)")
    print(f"sweep ratio={wall['serial'] / wall[best]:.2f} aim=1.8 ({best} launcher)")


if __name__ == "__main__":
    main()
