"""Benchmark: a 16-run sweep on one machine's 2 slots: serial vs the local ``parallel`` launcher vs Ray with
two nodes vs SLURM (when it can run here), the same grid, the same run.

Sets up a throwaway project (this repository's ``conf/`` and ``strategies/`` plus a synthetic dataset of
about ``--events`` fed events per run; short runs, so that what each launcher adds per run shows) and
times whole ``hftlab run -m`` commands, from spawn to exit:

- serial:   Hydra's basic launcher, every run in one process;
- parallel: ``hydra/launcher=parallel`` (joblib/loky: one fresh worker process per core);
- ray:      ``hydra/launcher=ray_cluster`` on a cluster of two nodes started here (``ray start --head`` and a
  second ``ray start --address`` on 127.0.0.1, one CPU each, separate temp folders), stopped by PID; the
  workers run in the project directory (a shared filesystem);
- ray_workers: ``hydra/launcher=ray_workers`` on another such cluster whose nodes are not told where the
  project is: each fetches the dataset version from the project's DVC remote (a local folder here) into
  its own node directory, fills its own event cache, and sends each run directory back;
- slurm:    ``hydra/launcher=slurm`` on ``scripts/slurm-local`` (a single-node cluster, 2 CPUs; needs root and
  Debian's slurm-wlm, else the case is skipped, saying why).

Every case starts with a warm numba cache (ray_workers' nodes with cold node directories and event
caches: a fresh cluster's first sweep); what is measured is each launcher's cost per run against ``parallel`` on the same 2
slots: ``(wall - parallel wall) x 2 / runs`` seconds of a slot per run. Checks that every case wrote
byte-identical deterministic run outputs. Ends with ``distributed_overhead ratio=<slowest cluster wall /
parallel wall> aim=2.0``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import dvc_push, dvc_track, free_port, ray_nodes  # the tests' local Ray clusters

from sweep import environment, hftlab, make_project, outputs  # benchmarks/sweep.py: the same project set-up

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
GRID = ["strategy.params.half_spread=0.1,0.2,0.3,0.4", "strategy.params.skew=0.0,0.5", "strategy.params.grid_num=4,6"]
SLOTS = 2


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
    with tempfile.TemporaryDirectory(prefix="hftlab-bench-dist-") as tmp:
        project = Path(tmp) / "project"
        env = {**environment(project, Path(tmp)), "RAY_USAGE_STATS_ENABLED": "0"}
        make_project(project, env, args.events)
        warm, _ = hftlab(project, env, "run", "experiment_name=warmup")
        print(f"numba cache filled by a single run: {warm:.1f} s", flush=True)

        def sweep(case: str, case_env: dict[str, str], *launcher: str) -> None:
            wall, _ = hftlab(project, case_env, "run", "-m", f"experiment_name={case}", *GRID, *launcher)
            walls[case] = wall
            hashes[case] = outputs(project, case)
            print(f"  {case:11}: {wall:.1f} s", flush=True)

        sweep("serial", env)
        sweep("parallel", env, "hydra/launcher=parallel", f"hydra.launcher.n_jobs={SLOTS}")
        with ray_nodes([env, env]) as address:
            sweep("ray", {**env, "RAY_ADDRESS": address}, "hydra/launcher=ray_cluster")
        dvc_track(project, env)
        dvc_push(project, env, "store", str(Path(tmp) / "dvc-remote"))
        node_env = {k: v for k, v in env.items() if k != "HFTLAB_PROJECT"}  # the nodes are not told where it is
        nodes = [{**node_env, "HFTLAB_NODE_DIR": str(Path(tmp) / f"node{i}"),
                  "HFTLAB_EVENT_CACHE": str(Path(tmp) / f"node{i}" / "events")} for i in range(2)]  # fmt: skip
        with ray_nodes(nodes) as address:
            sweep("ray_workers", {**env, "RAY_ADDRESS": address}, "hydra/launcher=ray_workers")
        with slurm_cluster(Path(tmp)) as conf:
            if conf is not None:
                sweep("slurm", {**env, "SLURM_CONF": conf}, "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                      "hydra.launcher.mem_gb=1", f"hydra.launcher.array_parallelism={SLOTS}")  # fmt: skip
    runs = len({key.split("/")[0] for key in hashes["serial"]})
    print()
    print(f"{runs} runs x ~{args.events:,} fed events, {SLOTS} slots")
    print(f"{'case':11} {'wall s':>7} {'runs/s':>7} {'vs parallel':>11} {'overhead s/run':>14}")
    for case, wall in walls.items():
        overhead = (wall - walls["parallel"]) * SLOTS / runs
        print(f"{case:11} {wall:>7.1f} {runs / wall:>7.2f} {wall / walls['parallel']:>11.2f} {overhead:>14.2f}")
    same = all(h == hashes["serial"] for h in hashes.values()) and len(hashes["serial"]) > 0
    print(f"identical deterministic outputs, {' vs '.join(hashes)}: {same}")
    clusters = [c for c in ("ray", "ray_workers", "slurm") if c in walls]
    worst = max(clusters, key=walls.__getitem__)
    print(f"distributed_overhead ratio={walls[worst] / walls['parallel']:.2f} aim=2.0 ({worst} / parallel wall)")
    if not same:
        raise SystemExit("outputs differ between launchers")


if __name__ == "__main__":
    main()
