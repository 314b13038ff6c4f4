"""The run watchdog: a run started from the command line executes in a forked child process while its
parent watches it, so a run that stops making progress (a strategy that loops forever, a stuck venue) or
exceeds its wall-clock budget is stopped, recorded as failed with the reason, and the sweep goes on.

Compiled code cannot be interrupted from inside its own process (it holds the interpreter; Ctrl-C waits
for it), so the watchdog is the parent: it kills the child (SIGKILL) and removes its partial output. The
child *beats* (:func:`beat`) wherever work advances: each piece of stored rows read, each return of the
Core Runtime loop (about every half second), each result file written. Beats are rate-limited bytes on a
pipe, nothing when no watchdog listens.

Limits (``watchdog.stall_s``, ``watchdog.timeout_s``, see :class:`WatchdogConfig`) do not change a run's
outputs, so they are not part of the run definition. The parent loads the compiled code before it forks
(:func:`hftlab.runtime.runner.warm`), so children inherit it and a run costs a fork, not a reload.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from hftlab.checks import ranged
from hftlab.errors import HftlabError

_BEAT_EVERY_S = 0.2
_PR_SET_PDEATHSIG = 1
_beat_fd: int | None = None
_last_beat = 0.0


@dataclass(frozen=True)
class WatchdogConfig:
    """Limits of one run (``watchdog.*``); 0 turns a limit off. Not part of the run definition."""

    #: Seconds without progress (no rows read, no loop return) before the run is stopped (0: never).
    stall_s: float = ranged(60.0, ge=0)
    #: Wall-clock seconds the whole run may take (0: no limit).
    timeout_s: float = ranged(0.0, ge=0)


class RunStopped(HftlabError):
    """The watchdog stopped a run (``rule``: ``stalled`` or ``timeout``)."""

    def __init__(self, label: str, rule: str, detail: str) -> None:
        self.rule = rule
        super().__init__(f"{label}: [{rule}] {detail}; stopped by the watchdog, its partial output removed")


def die_with_parent(expected_parent: int) -> bool:
    """Have the kernel SIGKILL this process when its parent exits; exit at once if the parent is no longer
    ``expected_parent`` (it died before). False where this cannot be done (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != expected_parent:  # the parent exited before the request: the signal will never come
        os._exit(1)
    return True


def watched() -> bool:
    """Whether this process is a watched run's child."""
    return _beat_fd is not None


def beat() -> None:
    """Tell the watching parent that work advances (a no-op without one; at most every 0.2 s)."""
    global _last_beat
    if _beat_fd is None:
        return
    now = time.monotonic()
    if now - _last_beat >= _BEAT_EVERY_S:
        _last_beat = now
        with contextlib.suppress(OSError):  # the parent is gone: nothing to tell
            os.write(_beat_fd, b".")


def supervised(work: Callable[[], None], label: str, limits: WatchdogConfig, cleanup: Callable[[], object]) -> None:
    """Run ``work`` in a forked child under ``limits``; return when it succeeded. An :class:`HftlabError`
    of the child is raised here with its message; any other failure (its traceback printed by the child)
    as a ``RuntimeError``. When a limit is hit (or on Ctrl-C) the child is killed, ``cleanup`` removes its
    partial output and :class:`RunStopped` (or ``KeyboardInterrupt``) is raised."""
    beats_r, beats_w = os.pipe()
    errors_r, errors_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(beats_r)
        os.close(errors_r)
        _child(work, parent, beats_w, errors_w)
    os.close(beats_w)
    os.close(errors_w)
    try:
        stopped = _watch(pid, beats_r, limits)
    except BaseException:  # Ctrl-C (or anything) in the parent: the child goes too
        _kill(pid)
        cleanup()
        raise
    finally:
        os.close(beats_r)
    with os.fdopen(errors_r, "rb") as fh:
        error = fh.read().decode(errors="replace")
    if stopped is not None:
        cleanup()
        raise RunStopped(label, *stopped)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return
    if code == 2 and error:
        raise HftlabError(error)
    raise RuntimeError(f"{label}: the run's process failed (exit code {code}){': ' + error if error else ''}")


def _child(work: Callable[[], None], parent: int, beats: int, errors: int) -> None:
    global _beat_fd
    _beat_fd = beats
    code = 0
    try:
        die_with_parent(parent)  # a parent killed by kill -9 takes the run with it
        work()
    except HftlabError as exc:
        os.write(errors, str(exc).encode())
        code = 2
    except BaseException:
        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no atexit handlers, no Hydra teardown: those belong to the parent


def _watch(pid: int, beats: int, limits: WatchdogConfig) -> tuple[str, str] | None:
    """Wait until the child closes its end (it ended) or a limit is hit: then (rule, detail)."""
    start = last = time.monotonic()
    while True:
        now = time.monotonic()
        waits = []
        if limits.stall_s > 0:
            waits.append(last + limits.stall_s - now)
        if limits.timeout_s > 0:
            waits.append(start + limits.timeout_s - now)
        ready, _, _ = select.select([beats], [], [], max(0.0, min(waits)) if waits else None)
        now = time.monotonic()
        if ready:
            if not os.read(beats, 4096):
                return None  # the child ended
            last = now
            continue
        _kill(pid)
        if limits.timeout_s > 0 and now - start >= limits.timeout_s:
            return "timeout", f"ran {now - start:.0f} s, over watchdog.timeout_s={limits.timeout_s:g}"
        return "stalled", f"no progress for {now - last:.0f} s (watchdog.stall_s={limits.stall_s:g})"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
