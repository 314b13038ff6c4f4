"""The Hydra app behind ``hftlab run``: one run, or a multirun sweep (``-m``) with Hydra's launchers.

The project directory (``conf/``, ``strategies/``, ``data/``, ``results/``) is the working directory,
or ``$HFTLAB_PROJECT``. Hydra writes none of its own files into results: single runs use the project
directory as Hydra's run dir with no ``.hydra`` output; multirun bookkeeping goes to
``.hydra/multirun/<experiment>`` (holding absolute paths, so it is never a tracked output).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from hftlab import faults
from hftlab.errors import ConfigError, HftlabError
from hftlab.sweep.project import (
    PROJECT_ENV,
    check_managed,
    experiment_dir,
    outside_note,
    project_dir,
    shown,
    sweep_progress,
)

if TYPE_CHECKING:
    from hftlab.run.execute import RunResult
    from hftlab.run.schema import RunConfig


def compose_runs(overrides: Sequence[Sequence[str]], project: Path | None = None) -> list[RunConfig]:
    """The checked run config of each list of command-line overrides, composed from the project's
    ``conf/`` as ``hftlab run <overrides>`` composes it (in this process: one Hydra initialization)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from hftlab.run.schema import composition_error, register_configs, run_config

    project = (project or project_dir()).resolve()
    conf = project / "conf"
    if not conf.is_dir():
        raise ConfigError(f"no conf/ in {project} (run from the project directory or set ${PROJECT_ENV})")
    register_configs(project / "strategies")
    configs = []
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for job in overrides:
            try:
                cfg = compose(config_name="config", overrides=list(job))
            except (HydraException, OmegaConfBaseException) as exc:
                err = composition_error(exc)
                raise ConfigError(f"{err.detail} [overrides: {' '.join(job)}]", key=err.key, rule=err.rule) from None
            configs.append(run_config(cfg, project / "strategies"))
    return configs


def execute_composed(cfg: DictConfig) -> RunResult:
    """Run (or find cached) the run a composed config describes: the one boundary from Hydra to a
    checked :class:`~hftlab.run.schema.RunConfig`, then :func:`~hftlab.run.execute.prepare` and
    :func:`~hftlab.run.execute.execute`."""
    from hftlab.run.execute import execute, prepare
    from hftlab.run.schema import run_config

    project = project_dir()
    return execute(prepare(run_config(cfg, project / "strategies"), project), watched=True)


def run_job(cfg: DictConfig) -> RunResult | None:
    """Hydra's task: one run; its :class:`~hftlab.run.execute.RunResult` is the job's return value. In a
    multirun, failures are recorded in the manifest (and the job returns None), not raised."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hftlab.sweep import manifest

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = list(hc.overrides.task)
    exp_dir = experiment_dir(cfg)
    if multirun:
        from hftlab.sweep.lifetime import follow_sweep

        follow_sweep()  # a worker of a parallel launcher dies with the sweep's main process
        manifest.set_status(exp_dir, overrides, "running")
    try:
        if not multirun:  # a sweep's callback checks these once for all its points
            check_managed(cfg, overrides)
            if note := outside_note(cfg):
                print(note, file=sys.stderr)
        result = execute_composed(cfg)
    except Exception as exc:  # one failing run must not stop the sweep
        if not multirun:
            if isinstance(exc, HftlabError):
                print(f"hftlab: error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            raise  # a bug: the command line shows it once, with its traceback (exit 3)
        record_failed(exp_dir, overrides, f"{type(exc).__name__}: {exc}")
        return None
    if multirun:
        record_finished(exp_dir, overrides, result)
        faults.point("sweep.between")
    else:
        print(f"run {result.run_id}: {_finished(result)}: {shown(result.path)}")
        print(headline(result.metrics_path))
    return result


def record_finished(exp_dir: Path, overrides: list[str], result: RunResult) -> None:
    """A sweep point's run is complete (executed or cached): the manifest says so, and the terminal."""
    from hftlab.sweep import manifest

    m = manifest.set_status(exp_dir, overrides, "cached" if result.cached else "done", run_id=result.run_id)
    sweep_progress(m)
    print(f"run {result.run_id}: {_finished(result)}: {shown(result.path)} [{' '.join(overrides)}]", flush=True)


def record_failed(exp_dir: Path, overrides: list[str], message: str) -> None:
    """A sweep point's run failed (``message``: ``Type: what``): the manifest says so, and stderr."""
    from hftlab.sweep import manifest

    m = manifest.set_status(exp_dir, overrides, "failed", error=message)
    print(f"run FAILED [{' '.join(overrides)}]: {message}", file=sys.stderr, flush=True)
    sweep_progress(m)


def _finished(result: RunResult) -> str:
    return "cached (complete results exist)" if result.cached else "done"


#: The metrics a single run prints when it ends (all of them are in its metrics.json).
HEADLINE = ("net_pnl", "gross_pnl", "rebates", "max_drawdown", "trades", "final_position", "sharpe", "returns_n")


def headline(metrics_path: Path) -> str:
    """One line of a run's headline metrics (:data:`HEADLINE`), 6 significant digits; positions with the
    lot's decimals (the run definition beside says the lot)."""
    import json

    from hftlab.metrics.display import LOT_MULTIPLES, shown

    values = json.loads(metrics_path.read_text())
    run_file = metrics_path.with_name("run.json")
    lot = json.loads(run_file.read_text())["dataset"]["instrument"]["lot_size"] if run_file.is_file() else None
    cells = [f"{k} {shown(k, values[k], lot) if k in LOT_MULTIPLES else format(values[k], '.6g')}"
             if isinstance(values.get(k), int | float) else f"{k} -" for k in HEADLINE]  # fmt: skip
    return "  " + "  ".join(cells)


def hydra_entry(argv: Sequence[str], task: Callable[[DictConfig], Any] | None = None) -> int:
    """Run Hydra's main with ``argv`` (Hydra's own command-line grammar: overrides, -m, --cfg, --help)."""
    import hydra

    from hftlab.run.schema import register_configs

    project = project_dir()
    conf = project / "conf"
    if not conf.is_dir():
        print(
            f"hftlab: error: no conf/ in {project} (run from the project directory or set ${PROJECT_ENV})",
            file=sys.stderr,
        )
        return 2
    register_configs(project / "strategies")
    os.environ[PROJECT_ENV] = str(project)  # parallel launchers' workers inherit it
    main = hydra.main(config_path=str(conf), config_name="config", version_base="1.3")(task or run_job)
    saved = sys.argv
    sys.argv = ["hftlab run", *argv]
    try:
        main()  # a sweep with failed runs ends in SystemExit(1) from its callback
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    finally:
        sys.argv = saved
    return 0


#: Sections of a DVC params file that are run configuration (the rest, like ``experiments``, is not).
PARAM_SECTIONS = ("dataset", "strategy", "venue", "risk", "execution", "runtime", "metrics")


def params_overrides(params: dict[str, Any]) -> list[str]:
    """Hydra overrides from the run-config sections of a DVC params file (``strategy.name`` picks the group)."""
    out: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k in sorted(value):
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        elif prefix == "strategy.name":
            out.insert(0, f"strategy={value}")
        else:
            text = (
                "null"
                if value is None
                else ("[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value))
            )
            out.append(f"{prefix}={text}")

    for section in PARAM_SECTIONS:
        if section in params:
            walk(section, params[section])
    return out


def run_from_params(params_file: Path, experiment_name: str, metrics_out: Path | None) -> int:
    """One run: conf/ composed with the overrides in ``params_file`` (what ``dvc exp run -S`` edits)."""
    import shutil
    import time

    import yaml

    from hftlab.run.execute import execute, prepare
    from hftlab.run.results import pruned_dir

    project = project_dir()
    params = yaml.safe_load(params_file.read_text()) or {}
    overrides = [*params_overrides(params), f"experiment_name={experiment_name}"]
    (config,) = compose_runs([overrides], project)
    started = time.time()
    result = execute(prepare(config, project))
    state = "cached (complete results exist)" if result.cached else "done"
    print(f"run {result.run_id}: {state}: {shown(result.path)} [{' '.join(overrides)}]")
    from hftlab.sweep import manifest

    moved = manifest.prune_runs(result.path.parent.parent, {result.run_id}, started)
    if moved:
        print(f"moved {len(moved)} other run directories aside to {shown(pruned_dir(result.path.parent.parent))}")
    if metrics_out is not None:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.metrics_path, metrics_out)
    return 0
