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
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hftlab.errors import HftlabError

PROJECT_ENV = "HFTLAB_PROJECT"


def project_dir() -> Path:
    return Path(os.environ.get(PROJECT_ENV) or ".").resolve()


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The run config of a Hydra job as a plain dict (without the ``hydra`` node and ``project_dir``)."""
    data: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    data.pop("hydra", None)
    data.pop("project_dir", None)
    return data


def experiment_dir(cfg: DictConfig | dict[str, Any]) -> Path:
    results = str(cfg["output"]["results_dir"])
    return project_dir() / results / str(cfg["experiment_name"])


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(project_dir()))
    except ValueError:
        return str(path)


def _sweep_progress(m: dict[str, Any]) -> None:
    from hftlab.sweep.manifest import counts

    if os.environ.get("HFTLAB_PROGRESS") == "off":
        return
    c = counts(m)
    print(
        f"sweep {m['experiment']}: {c['done'] + c['cached'] + c['failed']}/{c['total']} finished "
        f"(done {c['done']}, cached {c['cached']}, failed {c['failed']}, running {c['running']}, pending {c['pending']})",
        file=sys.stderr,
    )


def run_job(cfg: DictConfig) -> Any:
    """Hydra's task: one run. In a multirun, failures are recorded in the manifest, not raised."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hftlab.run.execute import execute
    from hftlab.sweep import manifest

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = list(hc.overrides.task)
    exp_dir = experiment_dir(cfg)
    if multirun:
        manifest.set_status(exp_dir, overrides, "running")
    try:
        result = execute(job_config(cfg), project_dir())
    except Exception as exc:  # one failing run must not stop the sweep
        if not multirun:
            if isinstance(exc, HftlabError):
                print(f"hftlab: error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            raise
        message = f"{type(exc).__name__}: {exc}"
        m = manifest.set_status(exp_dir, overrides, "failed", error=message)
        print(f"run FAILED [{' '.join(overrides)}]: {message}", file=sys.stderr)
        _sweep_progress(m)
        return None
    status = "cached" if result.cached else "done"
    if multirun:
        m = manifest.set_status(exp_dir, overrides, status, run_id=result.run_id)
        _sweep_progress(m)
    detail = "cached (complete results exist)" if result.cached else "done"
    print(f"run {result.run_id}: {detail}: {_shown(result.path)}" + (f" [{' '.join(overrides)}]" if multirun else ""))
    return result.run_id


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
    from hftlab.sweep import callbacks

    callbacks.LAST_SWEEP.clear()
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    finally:
        sys.argv = saved
    return 1 if callbacks.LAST_SWEEP.get("failed") else 0


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

    import yaml
    from hydra import compose, initialize_config_dir

    from hftlab.run.execute import execute
    from hftlab.run.schema import register_configs

    project = project_dir()
    params = yaml.safe_load(params_file.read_text()) or {}
    overrides = [*params_overrides(params), f"experiment_name={experiment_name}"]
    register_configs(project / "strategies")
    with initialize_config_dir(config_dir=str(project / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    result = execute(job_config(cfg), project)
    state = "cached (complete results exist)" if result.cached else "done"
    print(f"run {result.run_id}: {state}: {_shown(result.path)} [{' '.join(overrides)}]")
    from hftlab.sweep import manifest

    manifest.prune_runs(result.path.parent.parent, {"runs": [{"run_id": result.run_id}]})
    if metrics_out is not None:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.metrics_path, metrics_out)
    return 0
