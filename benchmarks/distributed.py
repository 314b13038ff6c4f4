"""Benchmark: a 16-run sweep on one machine's 2 slots: serial vs the local ``parallel`` launcher vs Ray with
two nodes vs SLURM (when it can run here), the same grid, the same run.

Sets up a throwaway project (this repository's ``conf/`` and ``strategies/`` plus a synthetic dataset of
about ``--events`` fed events per run; short runs, so that what each launcher adds per run shows) and
times whole ``hftlab run -m`` commands, from spawn to exit:

- serial:   Hydra's basic launcher, every run in one process;
- parallel: ``hydra/launcher=parallel`` (joblib/loky: one fresh worker process per core);
- ray:      ``hydra/launcher=ray_cluster`` on a cluster of two nodes started here (``ray start --head`` and a
  second ``ray start --address`` on 127.0.0.1, one CPU each, separate temp folders), stopped by PID;
- slurm:    ``hydra/launcher=slurm`` on ``scripts/slurm-local`` (a single-node cluster, 2 CPUs; needs root and
  Debian's slurm-wlm, else the case is skipped, saying why).

Every case starts with a warm numba cache. The workers of every case share this machine's disk (the
project directory); what is measured is each launcher's cost per run against ``parallel`` on the same 2
slots: ``(wall - parallel wall) x 2 / runs`` seconds of a slot per run. Checks that every case wrote
byte-identical deterministic run outputs. Ends with ``distributed_overhead ratio=<slowest cluster wall /
parallel wall> aim=2.0``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep import environment, hftlab, make_project, outputs  # benchmarks/sweep.py: the same project set-up

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
GRID = ["strategy.params.half_spread=0.1,0.2,0.3,0.4", "strategy.params.skew=0.0,0.5", "strategy.params.grid_num=4,6"]
SLOTS = 2


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_two_nodes(tmp: Path, env: dict[str, str]):
    """A head and a second node on 127.0.0.1, one CPU each; its address. Stopped by the PIDs started."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    nodes = [
        [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
        [RAY, "start", f"--address=127.0.0.1:{port}", *common],
    ]
    try:
        for i, cmd in enumerate(nodes):
            temp = tmp / f"ray{i}"
            temp.mkdir()
            log = temp / "start.log"
            with log.open("w") as out:
                procs.append(subprocess.Popen([*cmd, f"--temp-dir={temp}"], stdout=out, stderr=subprocess.STDOUT,
                                              env=env, start_new_session=True))  # fmt: skip
            deadline = time.monotonic() + 120
            while "Ray runtime started" not in log.read_text():
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"ray start failed:\n{log.read_text()}")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            proc.terminate()  # `ray start --block` stops what it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def slurm_cluster(tmp: Path):
    """scripts/slurm-local's cluster: its SLURM_CONF, or None (with the reason printed) where it cannot run."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(b) is None]
    if missing or os.geteuid() != 0:
        print(f"slurm: skipped ({', '.join(missing) + ' not installed' if missing else 'needs root'})")
        yield None
        return
    folder = tmp / "slurm"
    script = str(PROJECT_ROOT / "scripts" / "slurm-local")
    subprocess.run([script, "start", str(folder), str(free_port()), str(free_port())], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        yield str(folder / "slurm.conf")
    finally:
        subprocess.run([script, "stop", str(folder)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="target fed events per run (default 200k)")
    args = parser.parse_args()
    walls: dict[str, float] = {}
    hashes: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="hftlab-bench-distributed-") as tmp:
        project = Path(tmp) / "project"
        env = {**environment(project, Path(tmp)), "RAY_USAGE_STATS_ENABLED": "0"}
        make_project(project, env, args.events)
        warm, _ = hftlab(project, env, "run", "experiment_name=warmup")
        print(f"numba cache filled by a single run: {warm:.1f} s", flush=True)

        def sweep(case: str, case_env: dict[str, str], *launcher: str) -> None:
            wall, _ = hftlab(project, case_env, "run", "-m", f"experiment_name={case}", *GRID, *launcher)
            walls[case] = wall
            hashes[case] = outputs(project, case)
            print(f"  {case:8}: {wall:.1f} s", flush=True)

        sweep("serial", env)
        sweep("parallel", env, "hydra/launcher=parallel", f"hydra.launcher.n_jobs={SLOTS}")
        with ray_two_nodes(Path(tmp), env) as address:
            sweep("ray", {**env, "RAY_ADDRESS": address}, "hydra/launcher=ray_cluster")
        with slurm_cluster(Path(tmp)) as conf:
            if conf is not None:
                sweep("slurm", {**env, "SLURM_CONF": conf}, "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                      "hydra.launcher.mem_gb=1", f"hydra.launcher.array_parallelism={SLOTS}")  # fmt: skip
    runs = len({key.split("/")[0] for key in hashes["serial"]})
    print()
    print(f"{runs} runs x ~{args.events:,} fed events, {SLOTS} slots")
    print(f"{'case':9} {'wall s':>7} {'runs/s':>7} {'vs parallel':>11} {'overhead s/run':>14}")
    for case, wall in walls.items():
        overhead = (wall - walls["parallel"]) * SLOTS / runs
        print(f"{case:9} {wall:>7.1f} {runs / wall:>7.2f} {wall / walls['parallel']:>11.2f} {overhead:>14.2f}")
    same = all(h == hashes["serial"] for h in hashes.values()) and len(hashes["serial"]) > 0
    print(f"identical deterministic outputs, {' vs '.join(hashes)}: {same}")
    clusters = [c for c in ("ray", "slurm") if c in walls]
    worst = max(clusters, key=walls.__getitem__)
    print(f"distributed_overhead ratio={walls[worst] / walls['parallel']:.2f} aim=2.0 ({worst} / parallel wall)")
    if not same:
        raise SystemExit("outputs differ between launchers")


if __name__ == "__main__":
    main()
