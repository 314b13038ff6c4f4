"""Concurrent writers, in real processes: two imports of the same data (one promotes, the other reports
identical content), two sweeps of different experiments whose runs share run ids (both complete, same
bytes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hftlab.storage import Catalog
from tests.run.test_run_e2e import HFTLAB, SYNTH, digests, make_project
from tests.sweep.test_sweep_e2e import GRID


def together(project: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once, then wait for all."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    procs = [
        subprocess.Popen([HFTLAB, *c], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    outs = []
    for c, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=600)
        outs.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return outs


def test_two_concurrent_imports_of_the_same_data_promote_one_version(tmp_path):
    root = tmp_path / "canonical"
    outs = together(tmp_path, *[["--root", str(root), *SYNTH] for _ in range(2)])
    assert [0, 0] == [o.returncode for o in outs], [o.stderr for o in outs]
    states = sorted("already promoted (identical content)" in o.stdout for o in outs)
    assert [False, True] == states, [o.stdout for o in outs]
    (dataset,) = Catalog(root).versions("synthetic")
    Catalog(root).verify("synthetic", dataset.version, full=True)
    assert not list((root / ".staging").iterdir())


def test_two_concurrent_sweeps_of_different_experiments_sharing_run_ids(tmp_path):
    project = make_project(tmp_path / "p")
    grid = [a for a in GRID if a != "-m"]
    outs = together(
        project, ["run", "-m", *grid, "experiment_name=left"], ["run", "-m", *grid, "experiment_name=right"]
    )
    assert [0, 0] == [o.returncode for o in outs], [o.stdout + o.stderr for o in outs]
    left, right = (sorted((project / "results" / e / "runs").iterdir()) for e in ("left", "right"))
    assert 6 == len(left) and [p.name for p in left] == [p.name for p in right]  # the same run ids
    assert [digests(p) for p in left] == [digests(p) for p in right]
