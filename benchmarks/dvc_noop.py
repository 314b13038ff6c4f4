"""Benchmark: a no-op `dvc repro` of this project (aim: under 2 s) beside `dvc status`, DVC's own floor,
measured in the same run. Run from the project root after `dvc repro` has completed once.

Ends with ``dvc_noop ratio=<no-op repro seconds / 2 s budget> aim=1.0`` (ratio below 1 meets the aim);
the line above gives repro against `dvc status`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def timed(*cmd: str, repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        runs.append(time.perf_counter() - t0)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return statistics.median(runs)


def main() -> None:
    check = subprocess.run(["dvc", "status"], capture_output=True, text=True, env=ENV)
    if "up to date" not in check.stdout:
        raise SystemExit("the pipeline is not up to date: run `dvc repro` first\n" + check.stdout)
    status = timed("dvc", "status")
    repro = timed("dvc", "repro")
    print(f"{'command':24} {'median s':>9}")
    print(f"{'dvc status (baseline)':24} {status:>9.3f}")
    print(f"{'dvc repro (no-op)':24} {repro:>9.3f}")
    print(f"dvc_noop_vs_status ratio={repro / status:.2f}")
    print(f"dvc_noop ratio={repro / 2.0:.2f} aim=1.0")


if __name__ == "__main__":
    main()
