"""Progress of a run for people: a live line on a terminal, periodic plain log lines elsewhere.

Events processed are estimated from event time (the loop's clock) over the fed window; events/s and the
ETA follow. Nothing here touches results; ``off`` prints nothing.
"""

from __future__ import annotations

import enum
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from numba.core import event as numba_event

from hftlab.errors import ConfigError

#: Overrides ``output.progress`` for every run of the process (``--quiet`` sets it to ``off``).
PROGRESS_ENV = "HFTLAB_PROGRESS"


class ProgressMode(enum.StrEnum):
    """How a run shows progress: a live line on a terminal, log lines, either by where output goes, none."""

    auto = "auto"
    terminal = "terminal"
    log = "log"
    off = "off"


class RunProgress:
    """Callable given to ``run_backtest(progress=...)``; ``finish()`` prints the last line."""

    def __init__(self, label: str, events: int, start_ns: int, end_ns: int, mode: str | None = None,
                 stream: TextIO | None = None, log_every_s: float = 10.0) -> None:  # fmt: skip
        self.stream = stream or sys.stderr
        env = os.environ.get(PROGRESS_ENV)
        mode = env or mode or "auto"  # the environment (--quiet) wins
        if mode not in list(ProgressMode):
            where = PROGRESS_ENV if env else "output.progress"
            raise ConfigError(f"{where}={mode!r}: expected one of {', '.join(ProgressMode)}")
        if mode == "auto":
            mode = "terminal" if self.stream.isatty() else "log"
        self.mode, self.label, self.events = mode, label, events
        self.start_ns, self.span = start_ns, max(1, end_ns - start_ns)
        self.t0 = time.monotonic()
        self.log_every_s = log_every_s
        self.last_print = self.t0

    def window(self, events: int, start_ns: int, end_ns: int) -> None:
        """The run's events and event-time span (known once the data is fed)."""
        self.events, self.start_ns, self.span = events, start_ns, max(1, end_ns - start_ns)

    def start(self) -> None:
        """The loop starts now: events/s and the ETA count from here (compilation is not processing)."""
        self.t0 = time.monotonic()
        self.last_print = self.t0

    def say(self, text: str) -> None:
        """A one-off line (``compiling the runtime…``), unless progress is off."""
        if self.mode != "off":
            self.stream.write(text + "\n")
            self.stream.flush()

    def line(self, now_ns: int) -> str:
        frac = min(1.0, max(0.0, (now_ns - self.start_ns) / self.span))
        done = int(frac * self.events)
        elapsed = time.monotonic() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.events - done) / rate if rate > 0 else float("nan")
        return f"{self.label}: {frac:6.1%} {done:,}/{self.events:,} events, {rate / 1e6:.2f}M events/s, ETA {eta:.0f} s"

    def __call__(self, now_ns: int) -> None:
        if self.mode == "off":
            return
        t = time.monotonic()
        if self.mode == "terminal":
            self.stream.write("\r" + self.line(now_ns) + "\x1b[K")
            self.stream.flush()
        elif t - self.last_print >= self.log_every_s:
            self.stream.write(self.line(now_ns) + "\n")
            self.stream.flush()
            self.last_print = t

    def finish(self) -> None:
        if self.mode == "off":
            return
        end = self.start_ns + self.span
        self.stream.write(
            ("\r" if self.mode == "terminal" else "")
            + self.line(end)
            + ("\x1b[K\n" if self.mode == "terminal" else "\n")
        )
        self.stream.flush()


class CompileNotice(numba_event.Listener):
    """Calls ``say`` once, when numba starts compiling (a cold cache): people see why nothing moves yet."""

    def __init__(self, say: Callable[[], None]) -> None:
        self.said = False
        self._say = say

    def on_start(self, event: Any) -> None:
        if not self.said:
            self.said = True
            self._say()

    def on_end(self, event: Any) -> None:
        pass
