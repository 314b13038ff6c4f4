"""The slurm launcher (``hydra/launcher=slurm``): hydra-submitit-launcher's, collecting each job itself.

hydra-submitit-launcher 1.2.0 waits on its jobs in order with ``job.results()``: the first job that ended
without a result (SLURM killed it: time limit, out of memory, node failure, ``scancel``; or its process
died) raises and stops the sweep, leaving every point after it unrecorded; and on a cluster without an
accounting database (no ``sacct``) submitit never learns that such a job ended, so the sweep waits
forever. This launcher submits the same job array, then watches each job by its result file and
SLURM's queue (``squeue``, which works without accounting): a job that left the queue without a result
is recorded ``failed`` in the manifest, with SLURM's state where ``sacct`` knows it and the end of the
job's log, and the sweep goes on collecting the others (a run that fails inside its job is recorded by
the job itself, as with every launcher).

The submission is hydra-submitit-launcher's ``launch`` up to its ``map_array`` call, repeated here: the
plugin offers no hook between submitting and waiting.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

#: Seconds between two looks at the jobs.
POLL_S = 1.0
#: After a job left SLURM's queue, how long (s) its result file may take to appear (a shared filesystem's
#: lag) before the job is recorded failed; ``HFTLAB_SLURM_GRACE_S`` sets another.
GRACE_S = 30.0
GRACE_ENV = "HFTLAB_SLURM_GRACE_S"


class SlurmLauncher(SubmititSlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher that records a job ended without a result (see module)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        jobs = self._submit(job_overrides, initial_job_idx)
        return self._collect(jobs, [list(o) for o in job_overrides])

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """hydra-submitit-launcher 1.2.0's ``launch`` without its final wait: the submitted jobs."""
        import submitit

        assert self.config is not None
        params = self.params
        init_params = {"folder": params["submitit_folder"]}
        specific_init_keys = {"max_num_timeout"}
        init_params.update(**{f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x in specific_init_keys})
        init_keys = specific_init_keys | {"submitit_folder"}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{x if x in baseparams else f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x not in init_keys}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params: list[Any] = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        return list(executor.map_array(self, *zip(*job_params, strict=True)))

    def _collect(self, jobs: list[Any], overrides: list[list[str]]) -> list[JobReturn]:
        """Each job's return, in order; a job that left the queue without a result is recorded failed."""
        returns: dict[int, JobReturn] = {}
        gone_since: dict[int, float] = {}
        grace = float(os.environ.get(GRACE_ENV) or GRACE_S)
        while len(returns) < len(jobs):
            waiting = [i for i in range(len(jobs)) if i not in returns]
            queued = _in_queue([jobs[i].job_id for i in waiting])
            for i in waiting:
                job = jobs[i]
                if job.paths.result_pickle.exists():
                    returns[i] = job.results()[0]
                elif job.job_id in queued:
                    gone_since.pop(i, None)
                elif time.monotonic() - gone_since.setdefault(i, time.monotonic()) > grace:
                    returns[i] = self._ended_without_result(job, overrides[i])
            if len(returns) < len(jobs):
                time.sleep(POLL_S)
        return [returns[i] for i in range(len(jobs))]

    def _ended_without_result(self, job: Any, overrides: list[str]) -> JobReturn:
        """Record the point failed in the manifest (as a failing run is); the job's return is None."""
        from hftlab.sweep.app import record_failed
        from hftlab.sweep.project import experiment_dir

        assert self.config is not None
        state = job.state  # sacct's word; submitit says UNKNOWN where sacct fails (no accounting database)
        message = (
            f"SLURM job {job.job_id} ended without a result (SLURM state {state}: a time limit, out of memory, "
            f"a node failure, scancel, or a killed process); its log: {job.paths.stderr}{_tail(job.paths.stderr)}"
        )
        record_failed(experiment_dir(self.config), overrides, message)
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)


def _in_queue(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` that SLURM's queue still holds (pending, running, completing...)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0 and "Invalid job id" not in out.stderr:  # squeue says so when every id has gone
        log.warning(f"squeue failed ({out.returncode}): {out.stderr.strip()}; the jobs are taken as queued")
        return set(job_ids)  # the controller restarting, say: wait, do not record anything failed
    return {line.strip() for line in out.stdout.splitlines()}


def _tail(path: Path, lines: int = 3) -> str:
    """The last lines of a job's log, for the manifest's error."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (": " + " | ".join(text)) if text else ""
