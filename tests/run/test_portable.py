"""A run that travels (:mod:`hftlab.run.portable`, :mod:`hftlab.storage.remote`), without a cluster: a work
order built against a git + DVC project whose data is pushed to a local-folder DVC remote, performed in this
process in a node directory that has never seen the project, and landed in another results folder.

What Ray adds (remote processes, two nodes, an S3 remote) is tested in ``tests/sweep/test_ray_workers.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hftlab.errors import ConfigError, HftlabError, StorageError
from hftlab.run.execute import execute, prepare
from hftlab.run.portable import ReturnedRun, land, perform, work_order
from hftlab.run.results import check_complete
from hftlab.storage.remote import locate
from hftlab.sweep.app import compose_runs
from hftlab.venue.simulated import ORDER_LATENCY_DTYPE
from tests.cluster import dvc_push, dvc_track
from tests.pipeline.test_s3_remote import run
from tests.run.test_run_e2e import SYNTH, digests, hftlab, make_project, synth_version

pytestmark = pytest.mark.slow
ENV = {"DVC_NO_ANALYTICS": "1"}


@contextlib.contextmanager
def inside(project: Path) -> Iterator[None]:
    """``project`` as the working directory (as ``hftlab run`` runs: input files are read from there)."""
    cwd = Path.cwd()
    os.chdir(project)
    try:
        yield
    finally:
        os.chdir(cwd)


def prepared(project: Path, *overrides: str, results: Path | None = None):
    with inside(project):
        (config,) = compose_runs([list(overrides)], project)
        return prepare(config, project, results_dir=results)


def order_for(project: Path, run):
    with inside(project):
        return work_order(run, locate(project, run.dataset))


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> tuple[Path, Path]:
    """A project with two versions of its dataset (a day, then grown by a second), tracked and pushed."""
    base = tmp_path_factory.mktemp("portable")
    project = make_project(base / "p")
    hftlab(project, "--root", "data/canonical", *SYNTH, "--start", "2024-01-02")
    dvc_track(project, ENV)
    dvc_push(project, ENV, "store", str(base / "remote"))
    return project, base / "remote"


def test_a_performed_order_lands_the_bytes_of_a_local_run(pushed, tmp_path):
    """The order holds no path of this machine and survives pickling (what Ray does to it); the node
    fetches the run's version only; the run comes back and lands complete, byte-identical to the same run
    executed in the project; a second order on the node reads the fetched version, with the remote gone."""
    project, remote = pushed
    here = prepared(project, "strategy.params.grid_num=3", results=tmp_path / "local")
    execute(here)
    elsewhere = str(tmp_path / "elsewhere")
    there = prepared(project, "strategy.params.grid_num=3", f"output.results_dir={elsewhere}",
                     f"dataset.root={project / 'data' / 'canonical'}", results=tmp_path / "landed")  # fmt: skip
    assert there.run_id == here.run_id  # where results and data are is not part of a run
    order = order_for(project, there)
    without_remote = dataclasses.replace(order, files={}, dataset=dataclasses.replace(order.dataset, remote={}))
    assert str(project.parent) not in repr(without_remote) and elsewhere not in repr(without_remote)
    assert pickle.loads(pickle.dumps(order)) == order
    node = tmp_path / "node"
    returned = perform(order, node)
    assert returned.error is None
    result = land(returned, there)
    assert result.path == there.run_dir and not check_complete(result.path)
    assert digests(result.path) == digests(here.run_dir)
    versions = [p.name for p in (project / "data" / "canonical" / "synthetic").iterdir() if not p.name.startswith(".")]
    assert len(versions) == 2 and there.dataset.version in versions
    fetched = [p.name for p in (node / "canonical" / "synthetic").iterdir() if not p.name.startswith(".")]
    assert fetched == [there.dataset.version]  # a granular pull: the other version was not downloaded
    assert [] == list((node / "runs").iterdir()) and [] == list((node / "canonical" / ".staging").iterdir())
    moved = remote.with_name("remote-away")
    remote.rename(moved)
    try:
        other = prepared(project, "strategy.params.grid_num=4", results=tmp_path / "landed")
        again = perform(order_for(project, other), node)
        assert again.error is None and not check_complete(land(again, other).path)
    finally:
        moved.rename(remote)


def test_an_interpolated_latency_table_is_pinned_and_travels_with_the_order(pushed, tmp_path):
    """The table's sha256 is in the definition (an edited table is another run); the worker gets the file
    with the order and gives the bytes of a local run; an absolute path cannot travel."""
    project, _ = pushed
    table = np.zeros(2, ORDER_LATENCY_DTYPE)
    table["req_ts"] = [0, 2**62]
    table["exch_ts"] = table["req_ts"] + 3_000_000
    table["resp_ts"] = table["req_ts"] + 5_000_000
    (project / "latency").mkdir(exist_ok=True)
    np.savez(project / "latency" / "slow.npz", data=table)
    overrides = ("venue.latency.model=interpolated", "venue.latency.path=latency/slow.npz")
    here = prepared(project, *overrides, results=tmp_path / "local")
    assert here.definition["inputs"] == {"venue.latency.path": hashlib.sha256(table_bytes(project)).hexdigest()}
    with inside(project):
        execute(here)
    there = prepared(project, *overrides, results=tmp_path / "landed")
    order = order_for(project, there)
    assert order.files["latency/slow.npz"] == table_bytes(project)
    result = land(perform(order, tmp_path / "node"), there)
    assert digests(result.path) == digests(here.run_dir)
    table["resp_ts"] += 1
    np.savez(project / "latency" / "slow.npz", data=table)
    assert prepared(project, *overrides).run_id != here.run_id
    with pytest.raises(ConfigError, match="^venue.latency.path: no file latency/none.npz"):
        prepared(project, "venue.latency.model=interpolated", "venue.latency.path=latency/none.npz")
    absolute = prepared(project, "venue.latency.model=interpolated", f"venue.latency.path={project}/latency/slow.npz")
    with pytest.raises(HftlabError, match="gets the file only by a path inside the working directory"):
        order_for(project, absolute)


def table_bytes(project: Path) -> bytes:
    return (project / "latency" / "slow.npz").read_bytes()


def test_a_version_whose_files_differ_from_its_manifest_is_refused_by_the_worker(tmp_path):
    """A partition file changed and tracked again (so DVC's hashes agree with the bytes): the worker's
    fetch checks the version against its manifest's sha256 and refuses it, naming the file; nothing is
    kept in the node's storage."""
    project = make_project(tmp_path / "p")
    run_ = prepared(project)
    part = next(p for p in sorted(run_.dataset.path.rglob("*.parquet")))
    part.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = part.read_bytes()
    part.write_bytes(data[:-9] + bytes([data[-9] ^ 1]) + data[-8:])  # one byte of the footer's metadata length
    dvc_track(project, ENV)
    dvc_push(project, ENV, "store", str(tmp_path / "remote"))
    node = tmp_path / "node"
    returned = perform(order_for(project, run_), node)
    assert returned.error is not None and returned.files == {}
    assert f"dataset 'synthetic' version {run_.dataset.version} as fetched from DVC remote 'store'" in returned.error
    assert "refusing it" in returned.error and part.name in returned.error and "sha256 mismatch" in returned.error
    assert not (node / "canonical" / "synthetic" / run_.dataset.version).exists()
    assert [] == list((node / "canonical" / ".staging").iterdir())


def test_a_worker_with_another_engine_refuses_the_run_before_fetching(pushed, tmp_path):
    project, _ = pushed
    run_ = prepared(project, "strategy.params.grid_num=5")
    order = order_for(project, run_)
    engine = {**order.definition["engine"], "numba": "0.1"}
    forged = dataclasses.replace(order, definition={**order.definition, "engine": engine})
    node = tmp_path / "node"
    returned = perform(forged, node)
    assert returned.error == (
        f"HftlabError: run {run_.run_id}: this worker's engine is not the launching machine's: engine.numba: "
        f"launcher '0.1', worker {order.definition['engine']['numba']!r}; install the same hftlab (the same "
        "commit, `./dev setup`) on every node"
    )
    assert not (node / "canonical" / "synthetic").exists()  # refused before anything was downloaded
    other = dataclasses.replace(order, run_id="0" * 16)  # the same engine, but not the run it names
    assert perform(other, node).error == (
        f"HftlabError: run {'0' * 16}: this worker's run definition is another one ({run_.run_id}): no key differs"
    )


def test_a_version_the_committed_output_does_not_hold_is_refused_by_the_worker(pushed, tmp_path):
    """The order names a version the tracked output, as committed and pushed, does not hold: DVC pulls
    nothing, and the worker says so instead of running on nothing."""
    project, _ = pushed
    run_ = prepared(project, "strategy.params.grid_num=3")
    order = order_for(project, run_)
    missing = dataclasses.replace(order.dataset, inside="synthetic/0000000000000000", version="0000000000000000")
    returned = perform(dataclasses.replace(order, dataset=missing), tmp_path / "node")
    assert returned.error == (
        "StorageError: dataset 'synthetic' version 0000000000000000: not in data/canonical as committed "
        f"({order.dataset.output_md5}) on remote 'store'"
    )


def test_land_refuses_what_is_not_the_run_it_sent(pushed, tmp_path):
    """A failed run, a changed file, a file outside the run directory, another run's files, another run id:
    each refused, nothing at the run's place."""
    project, _ = pushed
    run_ = prepared(project, "strategy.params.grid_num=3", results=tmp_path / "r")
    other = prepared(project, "strategy.params.grid_num=7", results=tmp_path / "r")
    with pytest.raises(HftlabError, match="^StorageError: boom$"):
        land(ReturnedRun(run_.run_id, {}, "StorageError: boom"), run_)
    returned = perform(order_for(project, run_), tmp_path / "node")
    changed = {**returned.files, "metrics.json": returned.files["metrics.json"].replace(b"0", b"1", 1)}
    with pytest.raises(HftlabError, match=r"as returned is not complete: metrics\.json does not match its recorded"):
        land(ReturnedRun(run_.run_id, changed), run_)
    with pytest.raises(HftlabError, match=r"'\.\./escape': a file of a run must be a relative path inside its folder"):
        land(ReturnedRun(run_.run_id, {**returned.files, "../escape": b"x"}), run_)
    with pytest.raises(HftlabError, match=f"run {other.run_id}: the run definition returned is run {run_.run_id}"):
        land(ReturnedRun(other.run_id, returned.files), other)
    with pytest.raises(HftlabError, match=f"run {other.run_id}: the worker returned run {run_.run_id}"):
        land(returned, other)
    runs = run_.run_dir.parent
    assert not run_.run_dir.exists() and not other.run_dir.exists() and [] == list(runs.iterdir())
    assert not (tmp_path / "escape").exists() and not (runs / "escape").exists()


def test_locate_says_what_to_do_when_no_worker_could_fetch_the_version(tmp_path):
    """Not a DVC repository; data not tracked; no remote; a version not committed. Credentials and the
    launching machine's credential files stay here; a path with ~ goes as written."""
    bare = make_project(tmp_path / "bare")
    run_ = prepared(bare)
    with pytest.raises(StorageError, match="is not a DVC repository: a worker without the project's filesystem"):
        locate(bare, run_.dataset)
    run(bare, "git", "init", "-q")
    run(bare, "dvc", "init", "-q")
    with pytest.raises(StorageError, match=f"version {run_.dataset.version} is not tracked by DVC, so no worker"):
        locate(bare, run_.dataset)
    run(bare, "dvc", "add", "-q", "data/canonical")
    with pytest.raises(StorageError, match="no DVC remote configured to fetch dataset 'synthetic'"):
        locate(bare, run_.dataset)
    run(bare, "dvc", "remote", "add", "-d", "team", "s3://bucket/prefix")
    run(bare, "dvc", "remote", "modify", "team", "endpointurl", "http://127.0.0.1:9")
    run(bare, "dvc", "remote", "modify", "team", "profile", "research")
    for key, value in (("access_key_id", "AKIA"), ("secret_access_key", "hunter2"), ("credentialpath", "/home/me/c")):
        run(bare, "dvc", "remote", "modify", "--local", "team", key, value)
    found = locate(bare, run_.dataset)
    assert (found.output, found.inside, found.remote_name, found.output_md5.endswith(".dir")) == (
        "data/canonical", f"synthetic/{run_.dataset.version}", "team", True,
    )  # fmt: skip
    assert (found.remote["url"], found.remote["endpointurl"], found.remote["profile"]) == (
        "s3://bucket/prefix", "http://127.0.0.1:9", "research",
    )  # fmt: skip
    assert not {"access_key_id", "secret_access_key", "credentialpath"} & set(found.remote)
    assert "hunter2" not in repr(found) and "/home/me" not in repr(found)
    run(bare, "dvc", "remote", "add", "web", "https://me:hunter2@store.example:8443/dvc")
    assert locate(bare, run_.dataset, "web").remote["url"] == "https://me@store.example:8443/dvc"
    run(bare, "dvc", "remote", "add", "mine", "~/dvc-remote")  # DVC reads it as a path object expanded here
    mine = locate(bare, run_.dataset, "mine")
    assert mine.remote["url"] == "~/dvc-remote" and type(mine.remote["url"]) is str  # each node's own ~
    assert pickle.loads(pickle.dumps(mine)) == mine
    tracked = (bare / "data" / "canonical.dvc").read_text()
    (bare / "data" / "canonical.dvc").write_text(tracked.replace("  hash: md5\n", ""))  # as DVC 2 wrote it
    with pytest.raises(StorageError, match=r"^data/canonical: tracked with DVC 2's hash \(md5-dos2unix\)"):
        locate(bare, run_.dataset)
    (bare / "data" / "canonical.dvc").write_text(tracked)
    grown = hftlab(bare, "--root", "data/canonical", *SYNTH, "--start", "2024-01-02").stdout
    newer = prepared(bare, f"dataset.version={synth_version(grown)}")
    with pytest.raises(StorageError, match=r"data/canonical: its committed state \(\w+\.dir\) does not hold dataset"):
        locate(bare, newer.dataset)  # on disk, but not committed to DVC (`dvc add` / `dvc repro` not run)


def test_locate_finds_a_version_inside_a_pipeline_stage_output(tmp_path):
    """As in this repository's own pipeline: ``data/canonical/<id>`` is a stage's output, its hash in
    ``dvc.lock``; the version's folder is found inside it."""
    project = make_project(tmp_path / "p")
    run(project, "git", "init", "-q")
    run(project, "dvc", "init", "-q")
    run_ = prepared(project)
    stage = "stages:\n  data:\n    cmd: 'true'\n    outs:\n      - data/canonical/synthetic\n"
    (project / "dvc.yaml").write_text(stage.replace("      - data", "      [data"))  # not YAML DVC reads
    with pytest.raises(StorageError, match=r": DVC could not read the project \("):
        locate(project, run_.dataset)
    (project / "dvc.yaml").write_text(stage)
    with pytest.raises(StorageError, match="^data/canonical/synthetic: the DVC output holding dataset 'synthetic' "
                       f"version {run_.dataset.version} has no committed directory hash"):  # fmt: skip
        locate(project, run_.dataset)  # the stage never ran: no dvc.lock
    run(project, "dvc", "commit", "-q", "-f")
    run(project, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    found = locate(project, run_.dataset)
    assert (found.output, found.inside) == ("data/canonical/synthetic", run_.dataset.version)
    assert found.output_md5 in (project / "dvc.lock").read_text()


def test_the_fetch_code_is_not_engine_source():
    """Editing how workers fetch data must not change every run id: what arrives is verified against the
    manifest the definition pins (the rest of Canonical Storage's code is engine source)."""
    from hftlab.run.definition import engine_files

    names = {p.relative_to(p.parents[1]).as_posix() for p in engine_files() if p.parent.name == "storage"}
    assert "storage/catalog.py" in names and "storage/manifest.py" in names
    assert "storage/remote.py" not in names
