"""Hydra launcher ``forked`` (``hydra/launcher=forked``): run sweep jobs in the launching process until the
Core Runtime loop is loaded, then fork worker processes that inherit it and every import.

Why: the compiled code is cached per machine, but each fresh process still pays its start (imports of
Hydra, numba, pyarrow, hftbacktest and the cache loads, about 2.7 s here, more when two start at once on
two cores). Hydra's joblib launcher (``hydra/launcher=parallel``) starts fresh worker processes; forking
after the first run pays the start once per sweep, and workers start in milliseconds (measured, 8 runs x
2M events on 2 cores: 8.2 s against 9.6 s for joblib, 11.0 s serial). Workers are reused for all
remaining jobs.

Linux only (``fork`` start method). Workers die with the launching process, even after its ``kill -9``
(:mod:`hftlab.sweep.lifetime`). Jobs that run a strategy the parent has not loaded load it in the
worker, once per worker. The sweep's results are the same bytes whatever the launcher: each job is run
exactly as Hydra's basic launcher runs it (:func:`run_one`: the job's sweep config, ``hydra.job.id`` and
``hydra.job.num`` set to the job's index, then Hydra's public ``run_job``), in the parent or in a worker
that inherited the parent's state (Hydra's singletons, resolvers, imports) by the fork.

Config (``conf/hydra/launcher/forked.yaml``): ``n_jobs`` worker processes (-1: one per usable core);
``warmup``, what runs in the launching process before it forks (:data:`WARMUPS`): ``loop`` (the default:
jobs until one has loaded the Core Runtime loop; a sweep whose runs are all cached loads nothing and never
forks), ``first`` (the first job only: for any Hydra app, whose workers then inherit what that job
imported) or ``none`` (every job in a forked worker).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hftlab.errors import ConfigError
from hftlab.sweep.lifetime import die_with_parent

log = logging.getLogger(__name__)

#: ``warmup`` values: what runs in the launching process before it forks its workers.
WARMUPS = {
    "loop": "jobs until one has loaded the Core Runtime loop",
    "first": "the first job",
    "none": "nothing",
}

# The launcher forked workers run jobs for, set in the parent right before the fork and inherited (never pickled).
_INHERITED: dict[str, Any] = {}


def run_one(
    hydra_context: HydraContext, config: DictConfig, task_function: TaskFunction, idx: int, overrides: Sequence[str]
) -> JobReturn:
    """Job ``idx`` of the sweep ``config``, run as Hydra's basic launcher runs it (in this process)."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def _run_in_worker(job: tuple[int, Sequence[str]]) -> JobReturn:
    """One job in a forked worker, its configs made plain so the result pickles back to the parent
    (structured configs are dataclasses created at run time or in modules Hydra re-executes: pickle cannot
    find them)."""
    launcher: ForkLauncher = _INHERITED["launcher"]
    assert launcher.config is not None and launcher.task_function is not None and launcher.hydra_context is not None
    setup_globals()
    ret = run_one(launcher.hydra_context, launcher.config, launcher.task_function, *job)
    for name in ("cfg", "hydra_cfg"):
        value = getattr(ret, name)
        if isinstance(value, DictConfig):
            setattr(ret, name, OmegaConf.create(OmegaConf.to_container(value)))
    return ret


def _loop_compiled() -> bool:
    """Whether this process has the Core Runtime loop (compiled or loaded from the cache) yet."""
    from hftlab.runtime.loop import run_loop

    return bool(run_loop.overloads)


def worker_count(n_jobs: int) -> int:
    """``n_jobs`` if positive, else the number of cores this process may use."""
    if n_jobs > 0:
        return n_jobs
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ForkLauncher(Launcher):
    """Runs jobs in-process until ``warmup`` is done (by default: the runtime loop is loaded), then in
    ``n_jobs`` forked, reused workers."""

    def __init__(self, n_jobs: int = -1, warmup: str = "loop") -> None:
        if warmup not in WARMUPS:
            raise ConfigError(f"hydra.launcher.warmup={warmup!r}: expected one of {', '.join(WARMUPS)}")
        self.n_jobs = int(n_jobs)
        self.warmup = warmup
        self.jobs_in_parent = 0
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def warmed_up(self) -> bool:
        """Whether the remaining jobs go to forked workers (kept across the sweep's batches)."""
        if self.warmup == "loop":
            return _loop_compiled()
        return self.warmup == "none" or self.jobs_in_parent > 0

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        for idx, overrides in jobs:
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        returns: list[JobReturn] = []
        while jobs and not self.warmed_up():  # warmup=loop: cached runs load nothing, so go on until one did
            returns.append(run_one(self.hydra_context, self.config, self.task_function, *jobs.pop(0)))
            self.jobs_in_parent += 1
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if jobs:
            returns.extend(self._fork(jobs))
        return returns

    def _fork(self, jobs: list[tuple[int, list[str]]]) -> list[JobReturn]:
        workers = min(worker_count(self.n_jobs), len(jobs))
        log.info(f"forking {workers} workers for {len(jobs)} jobs")
        _INHERITED["launcher"] = self
        try:
            context = multiprocessing.get_context("fork")
            # each worker dies with this process (kill -9 of the sweep included), see hftlab.sweep.lifetime
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
            ) as pool:  # a dead worker raises, never hangs
                return list(pool.map(_run_in_worker, jobs))
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "a forked worker process died (killed or crashed), so the sweep stops; complete runs are "
                "kept: run the same command again to execute the rest"
            ) from exc
        finally:
            _INHERITED.clear()
