"""Run definitions: the complete, resolved description of one run, and its id.

A run definition holds everything that can change a run's outputs and nothing else: the dataset
reference resolved to its content version, the strategy (name, source path relative to the project,
sha256 of its source and of every local module it imports), every configuration value (venue resolved
with the instrument's values, Risk, Execution Control, runtime, metrics), the sha256 of any other file it
reads (``inputs``: an ``interpolated`` latency table), and the engine versions
(hftlab's version and a hash of its source, hftbacktest, numba, numpy, pyarrow, Python). No wall-clock
time, hostname or absolute path. The run id is the sha256 of its canonical JSON (first 16 hex digits).
Non-finite floats (``inf`` limits) are written as the strings ``"inf"``/``"-inf"``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from functools import cache
from pathlib import Path
from typing import Any

from hftlab import __version__
from hftlab.errors import ConfigError
from hftlab.files import canonical_json, jsonable
from hftlab.run.schema import RunConfig
from hftlab.runtime.strategy import Strategy, local_imports
from hftlab.storage.catalog import Dataset
from hftlab.storage.manifest import file_sha256
from hftlab.times import to_ns
from hftlab.venue.config import LatencyModel, VenueConfig

FORMAT = "hftlab.run/1"
RUN_ID_LENGTH = 16
_ENGINE_PACKAGES = ("hftbacktest", "numba", "numpy", "pyarrow")


#: The parts of hftlab whose code decides a run's outputs (read, simulate, record, measure, write).
#: Orchestration, CLI, importers (their output is pinned by the dataset's content hash) are left out,
#: so editing them does not invalidate every cached run.
#: Metrics are not here: they are versioned apart (:mod:`hftlab.metrics`) and recomputed from the records.
ENGINE_SOURCES = (
    "storage",
    "feed.py",
    "feed_read.py",
    "feed_kernels.py",
    "hftbacktest_types.py",
    "files.py",
    "times.py",
    "jit.py",
    "venue",
    "runtime",
    "run/definition.py",
    "run/execute.py",
    "run/results.py",
)
#: Files inside ENGINE_SOURCES' folders that are orchestration all the same: fetching a dataset version for
#: a worker (what arrives is verified against the manifest the definition pins).
NOT_ENGINE = ("storage/remote.py",)


def engine_files() -> list[Path]:
    """The engine's Python source files (ENGINE_SOURCES but NOT_ENGINE), in path order."""
    root = Path(__file__).resolve().parents[1]
    return sorted(
        p
        for entry in ENGINE_SOURCES
        for p in ([root / entry] if entry.endswith(".py") else (root / entry).rglob("*.py"))
        if p.relative_to(root).as_posix() not in NOT_ENGINE
    )


@cache
def engine_source_sha256() -> str:
    """sha256 over :func:`engine_files` (relative paths and bytes)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in engine_files():
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def engine_versions() -> dict[str, str]:
    versions = {name: importlib.metadata.version(name) for name in _ENGINE_PACKAGES}
    versions.update(hftlab=__version__, hftlab_source_sha256=engine_source_sha256(), python=platform.python_version())
    return dict(sorted(versions.items()))


def strategy_reference(strategy: Strategy, params: Any, project_dir: Path) -> dict[str, Any]:
    """Name, project-relative source path, source sha256 (+ local imports) and parameters."""
    try:
        source = strategy.path.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        source = strategy.path.name
    return {
        "name": strategy.name,
        "source": source,
        "sha256": file_sha256(strategy.path),
        "local_imports": local_imports(strategy.path, strategy.path.parent),
        "params": jsonable(params._asdict()),
    }


def build_definition(
    run: RunConfig, strategy: Strategy, params: Any, dataset: Dataset, venue: VenueConfig, project_dir: Path
) -> dict[str, Any]:
    """The run definition of a validated run config on a resolved dataset (venue resolved too)."""
    m = dataset.manifest
    definition = {
        "format": FORMAT,
        "dataset": {
            "id": m.dataset_id,
            "version": m.version,
            "content_hash": m.content_hash,
            "feeds": list(run.dataset.feeds),
            # resolved to ns: one instant written two ways is one run
            "start": to_ns(run.dataset.start, "dataset.start"),
            "end": to_ns(run.dataset.end, "dataset.end"),
            "instrument": m.instrument.to_dict(),
        },
        "strategy": strategy_reference(strategy, params, project_dir),
        "config": jsonable(
            {
                "venue": venue,
                "risk": run.risk,
                "execution": run.execution,
                "runtime": run.runtime,
                "metrics": run.metrics,
            }
        ),
        "engine": engine_versions(),
    }
    files = input_files(venue)
    if files:  # only where a run reads a file besides its dataset: other runs keep their ids
        definition["inputs"] = {key: file_sha256(path) for key, path in files.items()}
    return definition


def input_files(venue: VenueConfig) -> dict[str, Path]:
    """Files a run reads besides its dataset and strategy, by config key: the order-latency table of
    ``interpolated`` latency (read relative to the working directory). The definition pins their sha256, so
    an edited file is another run."""
    if venue.latency.model != LatencyModel.interpolated:
        return {}
    path = Path(venue.latency.path)
    if not path.is_file():
        raise ConfigError(f"venue.latency.path: no file {path} (relative to the working directory {Path.cwd()})")
    return {"venue.latency.path": path}


def run_id(definition: dict[str, Any]) -> str:
    """The run id: sha256 of the definition's canonical JSON, first 16 hex digits."""
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()[:RUN_ID_LENGTH]


def config_from_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """A plain run config that re-creates the run a definition describes (for reproduce)."""
    cfg = definition["config"]
    return {
        "dataset": {
            "id": definition["dataset"]["id"],
            "version": definition["dataset"]["version"],
            "feeds": definition["dataset"]["feeds"],
            "start": definition["dataset"]["start"],
            "end": definition["dataset"]["end"],
        },
        "strategy": {"name": definition["strategy"]["name"], "params": definition["strategy"]["params"]},
        "venue": cfg["venue"],
        "risk": cfg["risk"],
        "execution": cfg["execution"],
        "runtime": cfg["runtime"],
        "metrics": cfg["metrics"],
    }
