"""A run that travels to a worker without the project's filesystem, and the run directory that comes back.

The launching side prepares the run against its project (:func:`hftlab.run.execute.prepare`: definition,
run id, run cache) and, for a run that must execute, builds a :class:`WorkOrder` (:func:`work_order`):
the checked run config, the run id and definition the worker must arrive at, the project files the run
reads besides its dataset (the strategy and the local modules it imports; an ``interpolated`` latency
table), and where its dataset version is on a DVC remote (:class:`~hftlab.storage.remote.RemoteVersion`).
The config's folders (``dataset.root``, ``output.results_dir``) go as their defaults: they are this
machine's, and a worker uses its own.

A worker :func:`perform` s the order in its node directory (:func:`node_dir`):

1. it refuses at once when its engine (hftlab's source hash, numba, Python...) is not the order's;
2. the dataset version is fetched from the remote into the node's Canonical Storage and verified against
   its manifest's hashes, or found there (:func:`hftlab.storage.remote.fetch`); runs read it through the
   node's event cache as any run does;
3. the project files are written into a project folder of the node's, one per set of files (so a
   strategy's compiled code is cached across runs, as on the launching machine), and the run is prepared
   there, in that folder as working directory, and refused unless it has the order's run id (other code
   or data on the worker would be another run; the message names what differs);
4. it executes under the run watchdog into a temporary results folder, and the run directory's files
   come back as a :class:`ReturnedRun`; a failing run comes back as its error.

Every temporary folder of a worker (a fetch, a project being written, a run) is named with its process
id and removed when that process has died, by the next worker of the node (a run Ray retries after its
worker died leaves nothing behind for long).

The launching side :func:`land` s a returned run: written beside its place, accepted only when complete
by its own ``content.json`` (every file's size and sha256) and named by the run id it was sent for, then
renamed into place atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hftlab import faults
from hftlab.errors import HftlabError
from hftlab.files import jsonable
from hftlab.run.definition import engine_versions, input_files, run_id
from hftlab.run.execute import PreparedRun, RunResult, execute, prepare
from hftlab.run.results import (
    METRICS_FILE,
    RUN_FILE,
    clean_partial,
    content_problems,
    move_into_place,
    new_run_dir,
)
from hftlab.run.schema import DatasetConfig, OutputConfig, run_config
from hftlab.runtime.strategy import local_modules
from hftlab.storage.remote import RemoteVersion, fetch

#: Environment variable naming a worker's node directory (its Canonical Storage, project folders and the
#: runs it is executing).
NODE_ENV = "HFTLAB_NODE_DIR"
STRATEGIES = "strategies"


def node_dir() -> Path:
    """``$HFTLAB_NODE_DIR``, else ``$XDG_CACHE_HOME/hftlab/node``, else ``~/.cache/hftlab/node``: local disk."""
    value = os.environ.get(NODE_ENV, "").strip()
    if value:
        return Path(value).expanduser().absolute()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").absolute() / "hftlab" / "node"


@dataclass(frozen=True)
class WorkOrder:
    """Everything a worker without the project's filesystem needs to execute one run (see the module)."""

    run_id: str
    definition: dict[str, Any]  #: the run definition the worker must arrive at
    config: dict[str, Any]  #: the checked run config, as plain values (its folders as their defaults)
    files: dict[str, bytes]  #: the project files the run reads, by path relative to the project
    dataset: RemoteVersion


@dataclass(frozen=True)
class ReturnedRun:
    """What a worker sends back: the run directory's files, or why the run failed."""

    run_id: str
    files: dict[str, bytes]
    error: str | None = None  #: ``Type: message`` of a failing run (then ``files`` is empty)


def work_order(prepared: PreparedRun, dataset: RemoteVersion) -> WorkOrder:
    """The order for a worker to execute ``prepared`` (its dataset version found at ``dataset``)."""
    strategy = prepared.strategy.path
    files = {f"{STRATEGIES}/{p.name}": p.read_bytes() for p in [strategy, *local_modules(strategy, strategy.parent)]}
    for key, path in input_files(prepared.venue).items():
        if path.is_absolute() or ".." in path.parts:
            raise HftlabError(f"{key}={path}: a worker without this filesystem gets the file only by a path "
                              "inside the working directory (relative, without '..')")  # fmt: skip
        files[path.as_posix()] = path.read_bytes()
    config = dataclasses.replace(
        prepared.config,
        dataset=dataclasses.replace(prepared.config.dataset, root=DatasetConfig.root),
        output=dataclasses.replace(prepared.config.output, results_dir=OutputConfig.results_dir),
    )
    return WorkOrder(prepared.run_id, prepared.definition, jsonable(config), files, dataset)


def perform(order: WorkOrder, node: Path | None = None) -> ReturnedRun:
    """Execute ``order`` on this machine (see the module); a failing run returns its error, never raises."""
    node = node or node_dir()
    runs = node / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        clean_partial(runs)
        results = new_run_dir(runs / order.run_id)
        try:
            with _prepared_here(order, node, results) as prepared:
                result = execute(prepared, watched=True)
            files = {p.relative_to(result.path).as_posix(): p.read_bytes() for p in sorted(result.path.rglob("*"))
                     if p.is_file()}  # fmt: skip
            return ReturnedRun(order.run_id, files)
        finally:
            shutil.rmtree(results, ignore_errors=True)
    except Exception as exc:
        if not isinstance(exc, HftlabError):  # a bug: its traceback in the worker's log
            traceback.print_exc(file=sys.stderr)
        return ReturnedRun(order.run_id, {}, f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _prepared_here(order: WorkOrder, node: Path, results: Path) -> Iterator[PreparedRun]:
    """The order's run prepared in the node's project folder, the working directory while it lasts."""
    here = engine_versions()
    if here != order.definition["engine"]:
        raise HftlabError(f"run {order.run_id}: this worker's engine is not the launching machine's: "
                          f"{_differences({'engine': order.definition['engine']}, {'engine': here})}; "
                          "install the same hftlab (the same commit, `./dev setup`) on every node")  # fmt: skip
    dataset = fetch(order.dataset, node / "canonical")
    faults.point("worker.fetched")
    project = _project(node, order.files)
    config = run_config(order.config, project / STRATEGIES)
    config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, root=str(dataset.path.parents[1])))
    cwd = Path.cwd()
    os.chdir(project)  # where the run reads its input files from, as the launching process does
    try:
        prepared = prepare(config, project, results_dir=results)
        if prepared.run_id != order.run_id:
            raise HftlabError(f"run {order.run_id}: this worker's run definition is another one ({prepared.run_id}): "
                              f"{_differences(order.definition, prepared.definition)}")  # fmt: skip
        yield prepared
    finally:
        os.chdir(cwd)


def _project(node: Path, files: Mapping[str, bytes]) -> Path:
    """The node's project folder holding ``files``, written once (atomically) per set of files."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    projects = node / "projects"
    project = projects / digest.hexdigest()[:16]
    if (project / STRATEGIES).is_dir():
        return project
    projects.mkdir(parents=True, exist_ok=True)
    clean_partial(projects)
    tmp = new_run_dir(project)  # a temporary folder beside it, named with this process's id
    try:
        _write_files(tmp, files)
        with contextlib.suppress(OSError):  # another worker of the node wrote the same files first
            tmp.rename(project)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return project


def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (relative paths) under ``folder``; a path that would leave it is an error."""
    for name, data in sorted(files.items()):
        path = Path(name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise HftlabError(f"{name!r}: a file of a run must be a relative path inside its folder")
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """The keys whose values differ between two run definitions: ``key: launcher X, worker Y``."""
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
        elif a != b:
            out.append(f"{key}: launcher {a!r}, worker {b!r}")

    walk(expected, found, "")
    return "; ".join(out[:5]) + (f" (and {len(out) - 5} more)" if len(out) > 5 else "") if out else "no key differs"


def land(returned: ReturnedRun, prepared: PreparedRun) -> RunResult:
    """Put a run a worker returned at its place in the launching project's results (see the module):
    raises :class:`HftlabError` with the worker's error, or saying what is wrong with what came back."""
    if returned.error is not None:
        raise HftlabError(returned.error)
    target = prepared.run_dir
    if returned.run_id != prepared.run_id:
        raise HftlabError(f"run {prepared.run_id}: the worker returned run {returned.run_id}")
    tmp = new_run_dir(target)
    try:
        _write_files(tmp, returned.files)
        problems = content_problems(tmp)
        if problems:
            raise HftlabError(f"run {target.name} as returned is not complete: {'; '.join(problems)}")
        received = run_id(json.loads((tmp / RUN_FILE).read_text()))
        if received != target.name:
            raise HftlabError(f"run {target.name}: the run definition returned is run {received}")
        move_into_place(tmp, target)  # False: a complete run of this id was there first (the same bytes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RunResult(prepared.run_id, target, False, target / METRICS_FILE)
