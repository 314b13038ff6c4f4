"""A killed sweep takes its workers with it.

A worker of a local parallel launcher (``forked``: a ``ProcessPoolExecutor`` with fork; ``parallel``:
joblib/loky) waits for its next job from the sweep's main process and does not notice that process's
death: after ``kill -9`` of the sweep it would go on (loky's idle workers linger for minutes, a forked one
forever). On Linux a worker asks the kernel to SIGKILL it when its parent exits (``PR_SET_PDEATHSIG``),
then checks that the parent is still the sweep's main process (it may have died before the request).

The forked launcher does it in each worker's initializer; for any other launcher, the first job a process
runs does it (:func:`follow_sweep`), knowing the sweep's main process from ``$HFTLAB_SWEEP_PROCESS``
(:func:`mark_sweep_process`, set by the sweep callback before workers start). A job on another machine
(Ray, SLURM) or whose parent is not the sweep's process is left alone. Elsewhere than Linux, nothing.
"""

from __future__ import annotations

import json
import os

from hftlab.files import boot_id, process_token, token_alive
from hftlab.watchdog import die_with_parent

#: The sweep's main process (:func:`~hftlab.files.process_token` as JSON), inherited by its workers.
SWEEP_ENV = "HFTLAB_SWEEP_PROCESS"
_following = False


def mark_sweep_process() -> None:
    """Record this process (the sweep's main process) in the environment its workers inherit."""
    os.environ[SWEEP_ENV] = json.dumps(process_token())


def follow_sweep() -> None:
    """In a sweep's job: if this process is a worker the sweep's main process started on this machine,
    die with it (:func:`die_with_parent`); if that process has already died, exit now. Once per process."""
    global _following
    text = os.environ.get(SWEEP_ENV)
    if _following or not text:
        return
    _following = True
    sweep = json.loads(text)
    pid = int(sweep["pid"])
    if pid == os.getpid() or sweep.get("boot") != boot_id():
        return
    if os.getppid() == pid:
        die_with_parent(pid)
    elif not token_alive(sweep):  # started by the sweep, which died before this job began
        os._exit(1)
