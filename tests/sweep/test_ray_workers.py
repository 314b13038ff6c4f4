"""Ray workers without a shared filesystem (``hydra/launcher=ray_workers``), for real.

A Ray cluster of two nodes on 127.0.0.1 (``ray start --head`` and a second ``ray start``, one CPU each,
separate temp folders), each node with its own node directory and event cache, and the remote's
credentials in its environment; the project's ``data/canonical`` tracked by DVC and pushed to an S3 remote
(moto's server, :mod:`tests.s3_server`). Workers are never told where the project is: they fetch the
dataset version from the bucket, and their runs come back to the launching process, which writes
``results``. Everything started here is stopped by its PID.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster import dvc_push, dvc_track, ray_nodes
from tests.pipeline.test_s3_remote import run
from tests.run.test_run_e2e import SYNTH, hftlab, make_project, synth_version
from tests.s3_server import aws_env, moto_s3, s3_client
from tests.sweep.test_sweep_e2e import manifest, run_dirs

pytestmark = pytest.mark.slow
GRID = ("-m", "experiment_name=four", "strategy.params.half_spread=0.1,0.2", "strategy.params.skew=0.0,0.5")
WORKERS = "hydra/launcher=ray_workers"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(S3 endpoint, Ray address, the two nodes' directories)."""
    base = tmp_path_factory.mktemp("rw")
    nodes = [base / "node0", base / "node1"]
    with moto_s3(base) as endpoint:
        env = [{**aws_env(base), "HFTLAB_NODE_DIR": str(n), "HFTLAB_EVENT_CACHE": str(n / "events")} for n in nodes]
        with ray_nodes(env) as address:
            yield endpoint, address, nodes


@pytest.fixture(scope="module")
def project(cluster, tmp_path_factory) -> tuple[Path, str]:
    """A git + DVC project whose ``data/canonical`` is pushed to the S3 remote ``team``; its dataset version."""
    endpoint, _, _ = cluster
    path = make_project(tmp_path_factory.mktemp("rwp") / "p")
    s3_client(endpoint).create_bucket(Bucket="team")
    env = aws_env(path.parent)
    dvc_track(path, env)
    dvc_push(path, env, "team", "s3://team/hftlab", endpointurl=endpoint, verify="true")
    (version,) = [p.name for p in (path / "data" / "canonical" / "synthetic").iterdir() if not p.name.startswith(".")]
    return path, version


def test_a_sweep_on_two_nodes_without_the_project_gives_the_bytes_of_a_serial_sweep(cluster, project, tmp_path,
                                                                                    monkeypatch):  # fmt: skip
    """4 runs executed by Ray workers on both nodes, each node fetching the dataset version from the bucket
    once; the run directories and summaries written here are byte-identical to a serial sweep's. Run
    again, the sweep finds every run cached and sends nothing to the cluster."""
    _, address, nodes = cluster
    project, version = project
    grid = (*GRID, f"dataset.version={version}")  # whatever the other test adds to the project
    serial = make_project(tmp_path / "serial")
    hftlab(serial, "run", *grid)
    monkeypatch.setenv("RAY_ADDRESS", address)
    out = hftlab(project, "run", *grid, WORKERS)
    log = out.stdout + out.stderr
    assert "(perform pid=" in log  # the runs executed in Ray worker processes
    assert "4 runs: 4 executed, 0 cached, 0 failed" in out.stdout
    assert all(r["status"] == "done" for r in manifest(project, "four")["runs"])
    assert 4 == len(run_dirs(serial, "four"))
    assert run_dirs(serial, "four") == run_dirs(project, "four")
    for name in ("summary.csv", "summary.json", "summary.parquet"):
        assert (serial / "results" / "four" / name).read_bytes() == (project / "results" / "four" / name).read_bytes()
    for node in nodes:  # both nodes ran runs: each fetched the version into its own storage, and kept nothing else
        fetched = node / "canonical" / "synthetic" / version
        assert (fetched / "manifest.json").read_bytes() == (
            project / "data" / "canonical" / "synthetic" / version / "manifest.json"
        ).read_bytes()
        assert [] == list((node / "runs").iterdir())
        assert [p.name for p in (node / "projects").glob("*/strategies/*")] == ["grid.py"]
    again = hftlab(project, "run", *grid, WORKERS)
    assert "4 runs: 0 executed, 4 cached, 0 failed" in again.stdout
    assert "(perform pid=" not in again.stdout + again.stderr


def test_a_version_not_pushed_fails_its_run_naming_the_push_and_the_others_complete(cluster, project, monkeypatch):
    """The dataset grows by a day (a second version, committed to DVC's cache but not pushed): its run fails
    on the worker, recorded in the manifest with what to do; the first version's run completes; exit 1."""
    _, address, _ = cluster
    project, first = project
    grown = hftlab(project, "--root", "data/canonical", *SYNTH, "--start", "2024-01-02")
    second = synth_version(grown.stdout)
    assert second != first
    run(project, "dvc", "add", "-q", "data/canonical")
    monkeypatch.setenv("RAY_ADDRESS", address)
    out = hftlab(project, "run", "-m", "experiment_name=versions", f"dataset.version={first},{second}", WORKERS,
                 check=False)  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    rows = {next(o for o in r["overrides"] if o.startswith("dataset.version=")): r
            for r in manifest(project, "versions")["runs"]}  # fmt: skip
    assert rows[f"dataset.version={first}"]["status"] in ("done", "cached")
    failed = rows[f"dataset.version={second}"]
    assert failed["status"] == "failed"
    assert f"dataset 'synthetic' version {second}: could not fetch it from DVC remote 'team'" in failed["error"]
    assert "dvc push data/canonical" in failed["error"]


def test_a_worker_that_dies_is_retried_then_its_run_is_recorded_failed(cluster, project, monkeypatch):
    """Every worker process that takes the run is killed (SIGKILL, fault point ``worker.fetched``), its
    retry too (``max_retries=1``): the run is recorded failed with Ray's error and the sweep exits 1. The
    killed workers' temporary run folders stay until the next runs on those nodes remove them (a retry on
    the same node removes the first attempt's, so one or two are left; how many is Ray's placement)."""
    _, address, nodes = cluster
    project, version = project
    monkeypatch.setenv("RAY_ADDRESS", address)
    point = ("-m", "experiment_name=dies", f"dataset.version={version}", "strategy.params.grid_num=9")
    out = hftlab(project, "run", *point, WORKERS, "hydra.launcher.max_retries=1",
                 "+hydra.launcher.env_vars.HFTLAB_FAULT=worker.fetched", check=False)  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    (row,) = manifest(project, "dies")["runs"]
    assert row["status"] == "failed"
    assert row["error"].startswith("WorkerCrashedError: The worker died unexpectedly while executing this task")
    left = [p.name for n in nodes if (n / "runs").is_dir() for p in (n / "runs").iterdir()]
    assert left and all(name.startswith(".tmp-") for name in left), left  # .tmp-<run id>-<pid>-<tag>
    again = hftlab(project, "run", "-m", "experiment_name=lives", f"dataset.version={version}",
                   "strategy.params.grid_num=8,10", WORKERS)  # fmt: skip
    assert "2 runs: 2 executed" in again.stdout
    assert [] == [p for n in nodes if (n / "runs").is_dir() for p in (n / "runs").iterdir()]
