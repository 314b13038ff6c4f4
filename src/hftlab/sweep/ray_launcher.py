"""The ``ray_workers`` launcher (``hydra/launcher=ray_workers``): a sweep on a Ray cluster whose nodes do not
share the project's filesystem.

hydra-ray-launcher (``hydra/launcher=ray_cluster``) sends Hydra's task to the workers: each runs it in the
project directory, so code, ``data/canonical`` and ``results`` must be on a filesystem every node sees.
This launcher keeps the project on the launching machine instead:

- here, each grid point is composed and prepared against the project (its run definition and id); a run
  the run cache already holds is recorded ``cached`` and never leaves this machine;
- every other run goes to the cluster as a :class:`~hftlab.run.portable.WorkOrder` (one Ray task of
  ``num_cpus`` CPUs): its checked config, the strategy files, and where its dataset version is on the DVC
  remote (``remote``, default the project's default remote); a worker fetches that version into its own
  node directory (verified against the manifest's hashes), executes the run and returns the run directory's
  files (:func:`~hftlab.run.portable.perform`);
- here again, each returned run is checked complete (its ``content.json``) and renamed into
  ``results/<experiment>/runs/<run_id>``, and the manifest records it, as runs finish, in any order.

A run that fails on its worker is recorded ``failed`` with its error; a worker process or node that dies
is Ray's to retry (``max_retries`` times, on any node: a run is deterministic and only the launching
process writes its results, so a retry is safe; what the dead worker left in its node directory is
removed by the next one), then recorded ``failed`` with Ray's error. The cluster is an
existing one (``address``, default ``$RAY_ADDRESS``); its nodes need this hftlab installed with the same
engine versions and Python (a worker arriving at another run id refuses the run, naming the difference),
and the remote's credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class RayWorkersLauncher(Launcher):
    """Runs a sweep's runs on Ray workers that do not see the project's filesystem (see the module)."""

    def __init__(
        self,
        address: str | None = None,
        remote: str | None = None,
        num_cpus: float = 1,
        max_retries: int = 3,
        env_vars: dict[str, str] | None = None,
    ) -> None:
        self.address = address
        self.remote = remote
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.env_vars = {str(k): str(v) for k, v in (env_vars or {}).items()}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        from hftlab.run.portable import perform
        from hftlab.sweep.project import project_dir

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if ray.is_initialized():  # by the caller (Python API): its runtime_env stands
            log.warning("Ray is already initialized in this process: hydra.launcher.env_vars are not applied")
        else:
            ray.init(address=self.address, runtime_env={"env_vars": self.env_vars}, log_to_driver=True)
        task = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries)(perform)
        log.info(f"Ray workers launcher: {len(job_overrides)} jobs on {self.address}")
        project = project_dir()
        returns: dict[int, JobReturn] = {}
        running: dict[Any, tuple[int, Any, list[str], Path]] = {}
        datasets: dict[Path, Any] = {}
        for i, overrides in enumerate(job_overrides):
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = cfg.hydra.job.num = initial_job_idx + i
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(overrides))}")
            submitted = self._submit(cfg, project, datasets, task)
            if isinstance(submitted, JobReturn):
                returns[i] = submitted
            else:
                ref, *rest = submitted
                running[ref] = (i, *rest)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            i, prepared, overrides, exp_dir = running.pop(ready[0])
            returns[i] = _collect(ready[0], prepared, overrides, exp_dir)
        return [returns[i] for i in range(len(job_overrides))]

    def _submit(
        self, cfg: DictConfig, project: Path, datasets: dict[Path, Any], task: Any
    ) -> JobReturn | tuple[Any, Any, list[str], Path]:
        """Prepare one job here: its JobReturn when it is cached or cannot run, else its Ray task (with the
        prepared run, the job's overrides and its experiment folder)."""
        from hftlab.errors import StorageError
        from hftlab.run.execute import find_cached, prepare
        from hftlab.run.portable import work_order
        from hftlab.run.schema import run_config
        from hftlab.storage.remote import locate
        from hftlab.sweep import manifest
        from hftlab.sweep.app import record_failed, record_finished
        from hftlab.sweep.project import experiment_dir

        overrides = [str(o) for o in cfg.hydra.overrides.task]
        exp_dir = experiment_dir(cfg)
        manifest.set_status(exp_dir, overrides, "running")
        try:
            prepared = prepare(run_config(cfg, project / "strategies"), project)
            found = find_cached(prepared)
            if found is not None:
                record_finished(exp_dir, overrides, found)
                return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=found)
            where = prepared.dataset.path
            if where not in datasets:  # once per dataset version and sweep, its error too
                try:
                    datasets[where] = locate(project, prepared.dataset, self.remote)
                except StorageError as exc:
                    datasets[where] = exc
            if isinstance(datasets[where], StorageError):
                raise datasets[where]
            ref = task.remote(work_order(prepared, datasets[where]))
        except Exception as exc:
            record_failed(exp_dir, overrides, f"{type(exc).__name__}: {exc}")
            return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)
        return ref, prepared, overrides, exp_dir


def _collect(ref: Any, prepared: Any, overrides: list[str], exp_dir: Path) -> JobReturn:
    """One finished Ray task: its run landed in the project's results and recorded, or its failure."""
    import ray

    from hftlab.errors import HftlabError
    from hftlab.run.portable import land
    from hftlab.sweep.app import record_failed, record_finished

    try:
        result = land(ray.get(ref), prepared)
    except Exception as exc:  # the run's own error, one refused here, or Ray's (a worker died, retries spent)
        record_failed(exp_dir, overrides, str(exc) if isinstance(exc, HftlabError) else f"{type(exc).__name__}: {exc}")
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)
    record_finished(exp_dir, overrides, result)
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=result)
