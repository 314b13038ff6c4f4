"""A run that travels to a worker without the project's filesystem, and the run directory that comes back.

The launching side prepares the run against its project (:func:`hftlab.run.execute.prepare`: definition,
run id, run cache) and, for a run that must execute, builds a :class:`WorkOrder` (:func:`work_order`):
the checked run config, the run id and definition the worker must arrive at, the strategy's source files
(the files the definition hashes) and where its dataset version is on a DVC remote
(:class:`~hftlab.storage.remote.RemoteVersion`). Nothing in it is a path of the launching machine.

A worker :func:`perform` s the order in its node directory (:func:`node_dir`):

1. the dataset version is fetched from the remote into the node's Canonical Storage and verified against
   its manifest's hashes, or found there (:func:`hftlab.storage.remote.fetch`); runs read it through the
   node's event cache as any run does;
2. the strategy files are written into a project folder of the node's, one per set of sources (so a
   strategy's compiled code is cached across runs, as on the launching machine);
3. the run is prepared there and refused unless it has the order's run id: other code, another engine or
   other data on the worker would be another run, and the message names what differs;
4. it executes under the run watchdog into a temporary results folder, and its files come back as a
   :class:`ReturnedRun` (the temporary folder is removed).

The launching side :func:`land` s a returned run with :func:`~hftlab.run.results.write_received`: written
beside its place, accepted only when complete by its own ``content.json`` and named by its run id, renamed
into place atomically. A failing run comes back as its error (the worker process carries on).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sys
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hftlab.errors import HftlabError
from hftlab.files import jsonable
from hftlab.run.execute import PreparedRun, RunResult, execute, prepare
from hftlab.run.results import METRICS_FILE, write_received
from hftlab.run.schema import run_config
from hftlab.runtime.strategy import local_modules
from hftlab.storage.remote import RemoteVersion, fetch

#: Environment variable naming a worker's node directory (its Canonical Storage, strategy folders and the
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
    config: dict[str, Any]  #: the checked run config, as plain values
    sources: dict[str, bytes]  #: the strategy folder's files the run uses, by name
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
    sources = {p.name: p.read_bytes() for p in [strategy, *local_modules(strategy, strategy.parent)]}
    config = jsonable(prepared.config)
    return WorkOrder(prepared.run_id, prepared.definition, config, sources, dataset)


def perform(order: WorkOrder, node: Path | None = None) -> ReturnedRun:
    """Execute ``order`` on this machine (see the module); a failing run returns its error, never raises."""
    node = node or node_dir()
    results = node / "runs" / f"{order.run_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        prepared = _prepare_here(order, node, results)
        result = execute(prepared, watched=True)
        files = {p.relative_to(result.path).as_posix(): p.read_bytes() for p in sorted(result.path.rglob("*"))
                 if p.is_file()}  # fmt: skip
        return ReturnedRun(order.run_id, files)
    except Exception as exc:
        if not isinstance(exc, HftlabError):  # a bug: its traceback in the worker's log
            traceback.print_exc(file=sys.stderr)
        return ReturnedRun(order.run_id, {}, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(results, ignore_errors=True)


def _prepare_here(order: WorkOrder, node: Path, results: Path) -> PreparedRun:
    dataset = fetch(order.dataset, node / "canonical")
    project = _project(node, order.sources)
    config = run_config(order.config, project / STRATEGIES)
    config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, root=str(dataset.path.parents[1])))
    prepared = prepare(config, project, results_dir=results)
    if prepared.run_id != order.run_id:
        raise HftlabError(
            f"run {order.run_id}: this worker's run definition is another one ({prepared.run_id}): "
            f"{_differences(order.definition, prepared.definition)}; a worker needs the launching machine's "
            "hftlab, engine versions and Python"
        )
    return prepared


def _project(node: Path, sources: dict[str, bytes]) -> Path:
    """The node's project folder for this set of strategy sources, written once (atomically)."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    project = node / "projects" / digest.hexdigest()[:16]
    if not (project / STRATEGIES).is_dir():
        tmp = project.with_name(f".tmp-{project.name}-{uuid.uuid4().hex[:8]}")
        (tmp / STRATEGIES).mkdir(parents=True)
        for name, data in sources.items():
            if Path(name).name != name:
                raise HftlabError(f"strategy file {name!r} is not a file name of the strategy folder")
            (tmp / STRATEGIES / name).write_bytes(data)
        try:
            tmp.rename(project)
        except OSError:  # another worker of the node wrote the same sources first
            shutil.rmtree(tmp, ignore_errors=True)
    return project


def _differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> str:
    """The keys whose values differ between two run definitions: ``key: launcher X, worker Y``."""
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
        elif a != b:
            out.append(f"{key}: launcher {a!r}, worker {b!r}")

    walk(expected, found, prefix)
    return "; ".join(out[:5]) + (f" (and {len(out) - 5} more)" if len(out) > 5 else "") if out else "no key differs"


def land(returned: ReturnedRun, prepared: PreparedRun) -> RunResult:
    """Put a run a worker returned at its place in the launching project's results (see the module)."""
    if returned.error is not None:
        raise HftlabError(returned.error)
    try:
        write_received(prepared.run_dir, returned.files)
    except ValueError as exc:
        raise HftlabError(str(exc)) from None
    return RunResult(prepared.run_id, prepared.run_dir, False, prepared.run_dir / METRICS_FILE)
