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


def _single_job(cfg: DictConfig) -> Any:
    from hftlab.run.execute import execute

    project = project_dir()
    try:
        result = execute(job_config(cfg), project)
    except HftlabError as exc:
        print(f"hftlab: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    state = "cached (complete results exist)" if result.cached else "done"
    try:
        shown = result.path.relative_to(project)
    except ValueError:
        shown = result.path
    print(f"run {result.run_id}: {state}: {shown}")
    return result


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
    main = hydra.main(config_path=str(conf), config_name="config", version_base="1.3")(task or _single_job)
    saved = sys.argv
    sys.argv = ["hftlab run", *argv]
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    finally:
        sys.argv = saved
    return 0
