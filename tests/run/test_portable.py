"""A run that travels (:mod:`hftlab.run.portable`, :mod:`hftlab.storage.remote`), without a cluster: a work
order built against a git + DVC project whose data is pushed to a local-folder DVC remote, performed in this
process in a node directory that has never seen the project, and landed in another results folder.

What Ray adds (remote processes, two nodes, an S3 remote) is tested in ``tests/sweep/test_ray_workers.py``.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import stat
import subprocess
from pathlib import Path

import pytest

from hftlab.errors import HftlabError, StorageError
from hftlab.run.execute import execute, prepare
from hftlab.run.portable import ReturnedRun, land, perform, work_order
from hftlab.run.results import check_complete
from hftlab.storage.remote import locate
from hftlab.sweep.app import compose_runs
from tests.run.test_run_e2e import SYNTH, digests, hftlab, make_project

pytestmark = pytest.mark.slow


def sh(cwd: Path, *cmd: str) -> None:
    out = subprocess.run(
        list(cmd), cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"}
    )
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stdout}\n{out.stderr}"


def tracked(path: Path, remote: Path | None) -> Path:
    """A project whose data/canonical is tracked by DVC (``dvc add``) and, with ``remote``, pushed there."""
    project = make_project(path)
    sh(project, "git", "init", "-q")
    sh(project, "dvc", "init", "-q")
    sh(project, "dvc", "add", "-q", "data/canonical")
    if remote is not None:
        sh(project, "dvc", "remote", "add", "-d", "store", str(remote))
        sh(project, "dvc", "push", "-q")
    return project


def prepared(project: Path, *overrides: str, results: Path | None = None):
    (config,) = compose_runs([list(overrides)], project)
    return prepare(config, project, results_dir=results)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("portable")
    return tracked(base / "p", base / "remote"), base / "remote"


def test_a_performed_order_lands_the_bytes_of_a_local_run(pushed, tmp_path):
    """The node fetches the version (only it), the run comes back, lands complete, byte-identical to the
    same run executed in the project; a second order on the node reads the fetched version, with the remote
    gone."""
    project, remote = pushed
    here = prepared(project, "strategy.params.grid_num=3", results=tmp_path / "local")
    execute(here)
    there = prepared(project, "strategy.params.grid_num=3", results=tmp_path / "landed")
    order = work_order(there, locate(project, there.dataset))
    assert str(project) not in repr(dataclasses.replace(order, sources={}))  # no path of the launching machine
    assert pickle.loads(pickle.dumps(order)) == order  # what Ray does to it, with plain classes only
    node = tmp_path / "node"
    returned = perform(order, node)
    assert returned.error is None
    result = land(returned, there)
    assert result.path == there.run_dir and not check_complete(result.path)
    assert digests(result.path) == digests(here.run_dir)
    version = there.dataset.version
    assert [p.name for p in (node / "canonical" / "synthetic").iterdir() if not p.name.startswith(".")] == [version]
    assert [] == list((node / "runs").iterdir())
    moved = remote.with_name("remote-away")
    remote.rename(moved)
    try:
        other = prepared(project, "strategy.params.grid_num=4", results=tmp_path / "landed")
        again = perform(work_order(other, locate(project, other.dataset)), node)
        assert again.error is None and not check_complete(land(again, other).path)
    finally:
        moved.rename(remote)


def test_a_version_whose_files_differ_from_its_manifest_is_refused_by_the_worker(tmp_path):
    """A partition file changed and tracked again (so DVC's hashes agree with the bytes): the worker's
    fetch checks the version against its manifest's sha256 and refuses it, naming the file; nothing is
    kept in the node's storage."""
    project = tracked(tmp_path / "p", None)
    run = prepared(project)
    part = next(p for p in sorted(run.dataset.path.rglob("*.parquet")))
    part.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = part.read_bytes()
    part.write_bytes(data[:-9] + bytes([data[-9] ^ 1]) + data[-8:])  # one byte of the footer's metadata length
    sh(project, "dvc", "add", "-q", "data/canonical")
    sh(project, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    sh(project, "dvc", "push", "-q")
    node = tmp_path / "node"
    returned = perform(work_order(run, locate(project, run.dataset)), node)
    assert returned.error is not None and returned.files == {}
    assert f"dataset 'synthetic' version {run.dataset.version} as fetched from DVC remote 'store'" in returned.error
    assert "refusing it" in returned.error and part.name in returned.error and "sha256 mismatch" in returned.error
    assert not (node / "canonical" / "synthetic" / run.dataset.version).exists()


def test_a_worker_with_another_engine_refuses_the_run_naming_what_differs(pushed, tmp_path):
    project, _ = pushed
    run = prepared(project, "strategy.params.grid_num=5")
    order = work_order(run, locate(project, run.dataset))
    engine = {**order.definition["engine"], "numba": "0.1"}
    forged = dataclasses.replace(order, run_id="0" * 16, definition={**order.definition, "engine": engine})
    returned = perform(forged, tmp_path / "node")
    assert returned.error == (
        f"HftlabError: run {'0' * 16}: this worker's run definition is another one ({run.run_id}): engine.numba: "
        f"launcher '0.1', worker {order.definition['engine']['numba']!r}; a worker needs the launching machine's "
        "hftlab, engine versions and Python"
    )


def test_a_failed_order_lands_nothing_and_a_changed_file_is_refused(pushed, tmp_path):
    project, _ = pushed
    run = prepared(project, "strategy.params.grid_num=3", results=tmp_path / "r")
    with pytest.raises(HftlabError, match="^StorageError: boom$"):
        land(ReturnedRun(run.run_id, {}, "StorageError: boom"), run)
    returned = perform(work_order(run, locate(project, run.dataset)), tmp_path / "node")
    files = dict(returned.files)
    files["metrics.json"] = files["metrics.json"].replace(b"0", b"1", 1)
    with pytest.raises(HftlabError, match=r"as received is not complete: metrics\.json does not match its recorded"):
        land(ReturnedRun(run.run_id, files), run)
    assert not run.run_dir.exists() and [] == list(run.run_dir.parent.iterdir())


def test_locate_says_what_to_do_when_no_worker_could_fetch_the_version(tmp_path):
    """Not a DVC repository; data not tracked; no remote."""
    bare = make_project(tmp_path / "bare")
    run = prepared(bare)
    with pytest.raises(StorageError, match="is not a DVC repository: a worker without the project's filesystem"):
        locate(bare, run.dataset)
    sh(bare, "git", "init", "-q")
    sh(bare, "dvc", "init", "-q")
    with pytest.raises(StorageError, match=f"version {run.dataset.version} is not tracked by DVC, so no worker"):
        locate(bare, run.dataset)
    sh(bare, "dvc", "add", "-q", "data/canonical")
    with pytest.raises(StorageError, match="no DVC remote configured to fetch dataset 'synthetic'"):
        locate(bare, run.dataset)
    sh(bare, "dvc", "remote", "add", "-d", "team", "s3://bucket/prefix")
    sh(bare, "dvc", "remote", "modify", "team", "endpointurl", "http://127.0.0.1:9")
    sh(bare, "dvc", "remote", "modify", "--local", "team", "access_key_id", "AKIA")  # credentials stay here
    sh(bare, "dvc", "remote", "modify", "--local", "team", "secret_access_key", "hunter2")
    found = locate(bare, run.dataset)
    assert (found.output, found.inside, found.remote_name, found.output_md5.endswith(".dir")) == (
        "data/canonical", f"synthetic/{run.dataset.version}", "team", True,
    )  # fmt: skip
    assert (found.remote["url"], found.remote["endpointurl"]) == ("s3://bucket/prefix", "http://127.0.0.1:9")
    assert not {"access_key_id", "secret_access_key"} & set(found.remote) and "hunter2" not in repr(found)
    sh(bare, "dvc", "remote", "add", "mine", "~/dvc-remote")  # DVC reads it as a path object expanded here
    mine = locate(bare, run.dataset, "mine")
    assert mine.remote["url"] == "~/dvc-remote" and type(mine.remote["url"]) is str  # each node's own ~
    assert pickle.loads(pickle.dumps(mine)) == mine
    grown = hftlab(bare, "--root", "data/canonical", *SYNTH, "--start", "2024-01-02").stdout
    newer = prepared(bare, f"dataset.version={grown.split(' version ')[1].split(':')[0].split(',')[0]}")
    with pytest.raises(StorageError, match=r"data/canonical: its committed state \(\w+\.dir\) does not hold dataset"):
        locate(bare, newer.dataset)  # on disk, but not committed to DVC (`dvc add` / `dvc repro` not run)


def test_the_fetch_code_is_not_engine_source():
    """Editing how workers fetch data must not change every run id: what arrives is verified against the
    manifest the definition pins (the rest of Canonical Storage's code is engine source)."""
    from hftlab.run.definition import engine_files

    names = {p.relative_to(p.parents[1]).as_posix() for p in engine_files() if p.parent.name == "storage"}
    assert "storage/catalog.py" in names and "storage/manifest.py" in names
    assert "storage/remote.py" not in names


def test_locate_finds_a_version_inside_a_pipeline_stage_output(tmp_path):
    """As in this repository's own pipeline: ``data/canonical/<id>`` is a stage's output, its hash in
    ``dvc.lock``; the version's folder is found inside it."""
    project = make_project(tmp_path / "p")
    sh(project, "git", "init", "-q")
    sh(project, "dvc", "init", "-q")
    (project / "dvc.yaml").write_text(
        "stages:\n  data:\n    cmd: 'true'\n    outs:\n      - data/canonical/synthetic\n"
    )
    sh(project, "dvc", "commit", "-q", "-f")
    run = prepared(project)
    sh(project, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    found = locate(project, run.dataset)
    assert (found.output, found.inside) == ("data/canonical/synthetic", run.dataset.version)
    assert found.output_md5 in (project / "dvc.lock").read_text()
