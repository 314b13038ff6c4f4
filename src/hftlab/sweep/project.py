"""The project directory every command works in, and where an experiment's results go in it.

Shared by the Hydra app, its sweep callback and the walk-forward command (none of them imports another).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

#: Environment variable naming the project directory (default: the working directory). ``hftlab run`` sets
#: it, so workers of parallel launchers find the project whatever their working directory.
PROJECT_ENV = "HFTLAB_PROJECT"


#: The experiment folder of ad-hoc runs (``conf/experiment/scratch.yaml``, the default): ignored by git and
#: DVC, left out of whole-folder reports and of the stale-results check.
SCRATCH = "scratch"


def project_dir() -> Path:
    """The project directory (``conf/``, ``strategies/``, ``data/``, ``results/``)."""
    return Path(os.environ.get(PROJECT_ENV) or ".").resolve()


def experiment_dir(cfg: Any) -> Path:
    """``<project>/<output.results_dir>/<experiment_name>`` of a run config (Hydra's or a RunConfig)."""
    return project_dir() / str(cfg.output.results_dir) / str(cfg.experiment_name)


def outside_note(cfg: Any) -> str | None:
    """A note when ``output.results_dir`` puts results outside the project (absolute, or ``..``): allowed,
    but neither git nor this project's DVC pipeline tracks them, and run definitions never record where
    results went (so a run id stays the same wherever its results are written)."""
    where = experiment_dir(cfg).resolve()
    if where.is_relative_to(project_dir()):
        return None
    return (f"hftlab: note: output.results_dir={cfg.output.results_dir} writes results outside the project, to "
            f"{where}: git and this project's DVC pipeline do not track them there")  # fmt: skip


#: Override keys (exact, or prefixes ending in '.' or '/') a DVC-managed experiment may be run with: none
#: that changes a result.
_NEUTRAL = ("experiment", "output.progress", "sweep.", "watchdog.", "hydra.", "hydra/")


def managed_experiments(project: Path) -> set[str]:
    """The experiments the DVC pipeline runs: the keys of ``experiments`` in the project's ``params.yaml``."""
    import yaml

    path = project / "params.yaml"
    if not path.is_file():
        return set()
    experiments = (yaml.safe_load(path.read_text()) or {}).get("experiments") or {}
    return {str(k) for k in experiments} if isinstance(experiments, dict) else set()


def check_managed(cfg: Any, overrides: list[str]) -> None:
    """Refuse overrides that would change the results of a DVC-managed experiment (its results must be
    what its config gives; ``dvc repro`` would otherwise replace them, or worse, keep them)."""
    from hftlab.errors import ConfigError

    name = str(cfg.experiment_name)
    if name not in managed_experiments(project_dir()):
        return
    keys = {o: o.lstrip("+~").partition("=")[0] for o in overrides}
    changing = [o for o, k in keys.items() if not any(k == n or (n[-1] in "./" and k.startswith(n)) for n in _NEUTRAL)]
    if changing:
        raise ConfigError(
            f"{' '.join(changing)}: results/{name} belongs to the DVC pipeline (params.yaml experiments) and "
            f"changes only through conf/experiment/{name}.yaml; to try a variant, leave out experiment= (results "
            "go to results/scratch) or give experiment_name=<another name>",
            key="experiment",
            rule="managed-experiment",
        )


def shown(path: Path) -> str:
    """``path`` as printed: relative to the project directory when inside it."""
    try:
        return str(path.relative_to(project_dir()))
    except ValueError:
        return str(path)


def sweep_progress(m: dict[str, Any]) -> None:
    """One stderr line with a sweep manifest's counts (unless ``HFTLAB_PROGRESS=off``)."""
    from hftlab.sweep.manifest import counts

    if os.environ.get("HFTLAB_PROGRESS") == "off":
        return
    c = counts(m)
    print(
        f"sweep {m['experiment']}: {c['done'] + c['cached'] + c['failed']}/{c['total']} finished "
        f"(done {c['done']}, cached {c['cached']}, failed {c['failed']}, running {c['running']}, pending {c['pending']})",
        file=sys.stderr,
    )
