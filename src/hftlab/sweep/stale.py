"""Stale results: committed sweep results that the current code, config and data would not reproduce.

A sweep's ``summary.json`` records the command line it ran with (``overrides``, e.g. ``experiment=grid_sweep
sweep.prune=true``) and ``summary.csv`` the run id of each of its points. :func:`stale_results` composes
that command line again from the project's *current* ``conf/`` (the experiment's grid included),
resolves each point's run definition against the current strategy files, engine and datasets, and
compares the run ids: an experiment is fresh only when they are exactly the committed ones. Otherwise it
names what changed: grid points added or removed, and for a point whose run id changed, the keys of its
run definition that differ from the committed run's ``run.json`` (``strategy.params.grid_num``,
``strategy.sha256`` for an edited strategy file, ``engine.hftlab_source_sha256`` for engine code,
``dataset.version``...), when that run directory is in the workspace (``dvc pull`` brings it).

Only sweep experiments are judged (a folder with ``summary.json``; not the scratch area of ad-hoc runs);
their runs are not executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hftlab.errors import HftlabError
from hftlab.run.results import RUN_FILE, runs_dir
from hftlab.sweep.manifest import FINISHED, point_key
from hftlab.sweep.project import SCRATCH
from hftlab.sweep.summary import committed_manifest

SUMMARY_JSON = "summary.json"
#: How many changed keys of one run are named (the rest are counted).
_SHOWN_KEYS = 6


@dataclass(frozen=True)
class Staleness:
    """One experiment's verdict: ``problems`` is empty when its committed results are current."""

    experiment: str
    points: int
    problems: list[str]


def stale_results(results: Path, project: Path) -> list[Staleness]:
    """The verdict of every sweep experiment under ``results`` (sorted by name)."""
    if not results.is_dir():
        return []
    exps = sorted(p for p in results.iterdir() if (p / SUMMARY_JSON).is_file() and p.name != SCRATCH)
    return [judge(exp, project) for exp in exps]


def judge(exp: Path, project: Path) -> Staleness:
    """The verdict of one sweep experiment folder ``exp`` (holding ``summary.json``)."""
    if not (project / "conf").is_dir():
        return Staleness(exp.name, 0, [f"cannot recompute its runs: no conf/ in {project}"])
    try:
        return _judge(exp, project)
    except HftlabError as exc:  # a config that no longer composes, a dataset that is gone
        return Staleness(exp.name, 0, [f"cannot recompute its runs: {exc}"])


def _judge(exp: Path, project: Path) -> Staleness:
    summary = json.loads((exp / SUMMARY_JSON).read_text())
    overrides = summary.get("overrides")
    if overrides is None:
        return Staleness(exp.name, 0, ["summary.json does not record its command line (written before hftlab "
                                       "did): run the sweep again"])  # fmt: skip
    committed = _committed_ids(exp)
    current = _current_points(list(overrides), project, exp)
    stored = _stored_definitions(exp, committed)
    definitions = [d for _, d in current.values()]
    varying = {k for d in definitions[1:] for k in _diff(definitions[0], d)}  # the grid's own keys
    problems, matched = [], set()
    for key, (rid, definition) in sorted(current.items()):
        if rid in committed:
            matched.add(rid)
            continue
        nearest = min(((len(_diff(old, definition)), r) for r, old in stored.items()), default=None)
        if nearest is not None and not set(_diff(stored[nearest[1]], definition)) <= varying:
            old_id = nearest[1]
            matched.add(old_id)
            problems.append(f"[{key}]: run id {old_id} -> {rid}: changed {_changes(stored[old_id], definition)}")
        elif len(stored) == len(committed):
            problems.append(f"[{key}]: a new grid point (no committed run differs from it in other than grid values)")
        else:
            problems.append(f"[{key}]: run {rid} is not among the committed results (a new grid point, or its "
                            "committed run directory is not in the workspace: dvc pull names the change)")  # fmt: skip
    for rid in sorted(set(committed) - matched):
        params = _params(stored[rid]) if rid in stored else None
        problems.append(f"committed run {rid}{f' {params}' if params else ''}: no current grid point gives it")
    return Staleness(exp.name, len(current), problems)


def _params(definition: dict[str, Any]) -> Any:
    return definition.get("strategy", {}).get("params")


def _stored_definitions(exp: Path, committed: set[str]) -> dict[str, dict[str, Any]]:
    """The run definitions of the committed runs whose directories are in the workspace."""
    out = {}
    for rid in committed:
        path = runs_dir(exp.parent, exp.name) / rid / RUN_FILE
        if path.is_file():
            out[rid] = json.loads(path.read_text())
    return out


def _committed_ids(exp: Path) -> set[str]:
    """The run ids of the committed summary's finished points (their directories are ``hftlab check``'s
    other part: not hashed again here)."""
    m = committed_manifest(exp, verify=False)
    return {r["run_id"] for r in m["runs"] if r["status"] in FINISHED and r["run_id"]} if m else set()


def _current_points(overrides: list[str], project: Path, exp: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each current grid point's key -> (run id, run definition), composed as ``hftlab run -m <overrides>``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from hftlab.run.execute import prepare
    from hftlab.run.schema import composition_error, register_configs
    from hftlab.sweep.app import compose_runs
    from hftlab.sweep.grid import expand, parse

    register_configs(project / "strategies")
    with initialize_config_dir(config_dir=str(project / "conf"), version_base="1.3"):
        plain = [
            str(o.input_line) for o in parse(overrides, what="summary.json overrides") if not o.is_sweep_override()
        ]
        try:  # composed without the sweep overrides (a,b): the experiment's own grid comes from its config
            cfg = compose(config_name="config", overrides=plain, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as exc:
            raise composition_error(exc) from None
        params = cfg.hydra.sweeper.get("params") or {}
        loader = GlobalHydra.instance().config_loader()
        points = expand([f"{k}={v}" for k, v in params.items()] + overrides, loader)  # as sweep.grid.grid_definition
    out = {}
    for point, config in zip(points, compose_runs(points, project), strict=True):
        prepared = prepare(config, project, results_dir=exp.parent)
        out[point_key(point)] = (prepared.run_id, prepared.definition)
    return out


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two run definitions."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)]
    return [] if old == new else [prefix]


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = _diff(old, new)
    shown = [f"{k} ({_value(old, k)!r} -> {_value(new, k)!r})" for k in keys[:_SHOWN_KEYS]]
    more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(shown) + more


def _value(definition: dict[str, Any], key: str) -> Any:
    value: Any = definition
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "..."  # hashes: enough to tell them apart
    return value
