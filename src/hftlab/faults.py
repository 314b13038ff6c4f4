"""Named fault points: ``HFTLAB_FAULT=<name>`` (or ``<name>@<n>``: the n-th time it is reached) makes the
process kill itself with SIGKILL at that point, so the fault-injection suite (``tests/faults/``) can put a
``kill -9`` exactly where it wants, in real processes, without mocks. Unset (always, outside that suite),
a point costs one environment lookup.

Points (:data:`POINTS`) name what the process is in the middle of when it dies.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "HFTLAB_FAULT"

#: Every fault point and what is under way there.
POINTS = {
    "import.staged": "an import wrote its staging directory, not yet renamed into place",
    "import.promoted": "an import renamed its version into place, before it reported",
    "feed.read": "the feeder is reading stored rows (first rows checked, none fed yet)",
    "feed.cache": "the event cache wrote pieces of an entry, not yet its index nor the rename",
    "run.loop": "the Core Runtime loop is running (at a progress return)",
    "run.write": "a run's result files are being written (temporary directory, before the rename)",
    "worker.fetched": "a cluster worker has the run's dataset version, and has not started the run",
    "sweep.between": "a sweep recorded one run done, the next one not started",
    "sweep.summary": "a sweep is writing its summary files",
}

_reached: dict[str, int] = {}


def point(name: str) -> None:
    """Die here (SIGKILL) when ``$HFTLAB_FAULT`` names this point (and this is the n-th time, if given)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    assert name in POINTS, name
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(nth or 1):
        from hftlab.watchdog import watched

        if watched():  # a kill -9 of the command: its watching parent goes too
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
