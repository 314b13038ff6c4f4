"""The slurm launcher (hydra-submitit-launcher) against a real SLURM scheduler: a single-node cluster on
this machine (slurmctld + slurmd + munged on 127.0.0.1, Debian's slurm-wlm), started for this module by
``scripts/slurm-local`` and stopped by its PIDs: a sweep byte-identical to serial, a run failing in its
job, and a job SLURM ends without a result (its batch script killed), each recorded in the manifest.

It needs root and the packages; without them the tests skip saying so, unless ``HFTLAB_REQUIRE_SLURM=1``
(``.ci/run`` installs the packages, runs as root and sets it), where they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import free_port
from tests.conftest import PROJECT_ROOT
from tests.run.test_run_e2e import hftlab, make_project
from tests.sweep.test_sweep_e2e import manifest, run_dirs

pytestmark = pytest.mark.slow
SCRIPT = PROJECT_ROOT / "scripts" / "slurm-local"
MISSING = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(b) is None]
CANNOT = (
    f"{', '.join(MISSING)} not installed (apt-get install slurm-wlm)"
    if MISSING
    else ("slurmd and munged need root" if os.geteuid() != 0 else "")
)
#: 2 x 2 points, a grid_num of their own (the run cache is global to a results folder).
GRID = ("strategy.params.half_spread=0.1,0.3", "strategy.params.skew=0,0.5", "strategy.params.grid_num=4")
SLURM = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=1",
         "hydra.launcher.timeout_min=10")  # fmt: skip


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[Path]:
    """The cluster's SLURM_CONF, set in this process's environment (inherited by hftlab and its jobs)."""
    if CANNOT:
        if os.environ.get("HFTLAB_REQUIRE_SLURM") == "1":
            pytest.fail(f"HFTLAB_REQUIRE_SLURM=1 but SLURM cannot run here: {CANNOT}")
        pytest.skip(f"no single-node SLURM cluster here: {CANNOT}")
    folder = tmp_path_factory.mktemp("slurm")
    ports = (str(free_port()), str(free_port()))
    started = subprocess.run([str(SCRIPT), "start", str(folder), *ports], capture_output=True, text=True)
    assert started.returncode == 0, f"slurm-local start: {started.stdout}{started.stderr}"
    conf = folder / "slurm.conf"
    assert f"SLURM_CONF={conf}" in started.stdout
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(conf))
        try:
            yield conf
        finally:
            subprocess.run([str(SCRIPT), "stop", str(folder)], check=True)


def jobs(project: Path, experiment: str) -> set[tuple[str, str]]:
    """(SLURM job id, array index) of every job submitit ran for ``experiment`` (its submission files)."""
    folder = project / ".hydra" / "submitit" / experiment
    return {
        m.groups() for p in folder.glob("*_submitted.pkl") if (m := re.fullmatch(r"(\d+)_(\d+)_submitted\.pkl", p.name))
    }


def test_a_sweep_on_slurm_gives_the_same_bytes_as_serial(slurm: Path, tmp_path: Path):
    """Four points as one SLURM job array: every run directory and summary file byte-identical to the same
    grid run serially in another project copy."""
    serial = make_project(tmp_path / "serial")
    hftlab(serial, "run", "-m", "experiment_name=four", *GRID)
    cluster = make_project(tmp_path / "cluster")
    out = hftlab(cluster, "run", "-m", "experiment_name=four", *GRID, *SLURM)
    assert "4 runs: 4 executed, 0 cached, 0 failed" in out.stdout, out.stdout + out.stderr
    ran = jobs(cluster, "four")
    assert len(ran) == 4 and len({job for job, _ in ran}) == 1, ran  # one array of four tasks
    assert run_dirs(serial, "four") == run_dirs(cluster, "four") and len(run_dirs(serial, "four")) == 4
    for name in ("summary.csv", "summary.json", "summary.parquet"):
        assert (serial / "results" / "four" / name).read_bytes() == (cluster / "results" / "four" / name).read_bytes()


def test_a_failing_run_on_slurm_is_recorded_and_the_others_complete(slurm: Path, tmp_path: Path):
    """One point's run fails inside its job (an invalid parameter): the manifest records it failed with its
    error, the three others are done, and the sweep exits non-zero naming it."""
    project = make_project(tmp_path / "p")
    out = hftlab(
        project, "run", "-m", "experiment_name=one_bad", "strategy.params.order_qty=0.01,-1,0.02,0.03",
        "strategy.params.grid_num=3", *SLURM, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "4 runs: 3 executed, 0 cached, 1 failed" in out.stdout, out.stdout + out.stderr
    runs = {tuple(r["overrides"]): r for r in manifest(project, "one_bad")["runs"]}
    statuses = sorted(r["status"] for r in runs.values())
    assert statuses == ["done", "done", "done", "failed"]
    (bad,) = [r for r in runs.values() if r["status"] == "failed"]
    assert "strategy.params.order_qty=-1" in bad["overrides"]
    assert "strategy.params.order_qty" in bad["error"] and "> 0" in bad["error"]
    assert len(jobs(project, "one_bad")) == 4


def test_a_job_slurm_ends_without_a_result_is_recorded_failed_and_the_others_complete(slurm: Path, tmp_path: Path):
    """The batch script of one array task kills itself (SIGKILL), as SLURM's end of a job does (time limit,
    out of memory, scancel): no result, and no accounting here to say so. The launcher sees the job leave
    SLURM's queue, records the point failed in the manifest naming the job and its log, and collects the
    other jobs; the sweep exits 1."""
    project = make_project(tmp_path / "p")
    kill_task_1 = 'if [ "$SLURM_ARRAY_TASK_ID" = 1 ]; then kill -9 $$; fi'
    setup = f"++hydra.launcher.setup=['export HFTLAB_PROJECT={project}','{kill_task_1}']"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HFTLAB_SLURM_GRACE_S", "2")
        out = hftlab(
            project, "run", "-m", "experiment_name=killed", "strategy.params.half_spread=0.1,0.2,0.3",
            "strategy.params.grid_num=2", *SLURM, setup, check=False,
        )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "3 runs: 2 executed, 0 cached, 1 failed, 0 not finished" in out.stdout
    runs = manifest(project, "killed")["runs"]
    (bad,) = [r for r in runs if r["status"] == "failed"]
    assert "strategy.params.half_spread=0.2" in bad["overrides"]  # the grid's second point: array task 1
    job = next(j for j, task in jobs(project, "killed") if task == "1")
    assert bad["error"].startswith(f"SLURM job {job}_1 ended without a result (SLURM state UNKNOWN")
    assert f"{job}_1_0_log.err" in bad["error"]
    assert sorted(r["status"] for r in runs) == ["done", "done", "failed"]


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [("slurm_load_jobs error: Invalid job id specified", set()), ("slurm_load_jobs error: Socket timed out", None)],
)
def test_squeue_errors_read_as_gone_or_as_still_queued(tmp_path: Path, monkeypatch, stderr: str, expected):
    """The launcher's reading of a failing squeue, without a cluster (a stand-in ``squeue`` that fails as
    SLURM's does): "Invalid job id" means every asked job has left the queue; any other failure (the
    controller restarting) takes every job as still queued, so none is recorded failed for it."""
    from hftlab.sweep.slurm_launcher import _in_queue

    fake = tmp_path / "squeue"
    fake.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    ids = ["7_0", "7_1"]
    assert _in_queue(ids) == (set(ids) if expected is None else expected)
