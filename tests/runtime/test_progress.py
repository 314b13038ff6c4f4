"""Progress reporting: a live line on a terminal (pseudo-terminal), plain lines otherwise, nothing when off."""

from __future__ import annotations

import io
import os
import pty

import pytest

from hftlab.runtime.progress import RunProgress

S = 1_000_000_000


def test_log_lines_when_not_a_terminal():
    """Not a terminal: one plain line per period with fraction, events, rate and ETA; a final line."""
    out = io.StringIO()
    p = RunProgress("run x", 1_000, 0, 100 * S, stream=out, log_every_s=0.0)
    assert "log" == p.mode
    p(25 * S)
    p(50 * S)
    p.finish()
    lines = out.getvalue().splitlines()
    assert 3 == len(lines)
    assert lines[0].startswith("run x:  25.0% 250/1,000 events, ")
    assert lines[1].startswith("run x:  50.0% 500/1,000 events, ")
    assert lines[2].startswith("run x: 100.0% 1,000/1,000 events, ") and "ETA 0 s" in lines[2]
    assert "\r" not in out.getvalue()


def test_live_line_on_a_pseudo_terminal():
    """On a terminal the line is rewritten in place (carriage return, erase to end of line)."""
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as stream:
        p = RunProgress("run y", 10, 0, 10 * S, stream=stream)
        assert "terminal" == p.mode
        p(5 * S)
        p.finish()
    written = os.read(master, 4096).decode()
    os.close(master)
    assert written.startswith("\rrun y:  50.0% 5/10 events")
    assert "\x1b[K" in written and "100.0% 10/10 events" in written


def test_off_prints_nothing(monkeypatch):
    """--quiet (HFTLAB_PROGRESS=off) silences every line."""
    monkeypatch.setenv("HFTLAB_PROGRESS", "off")
    out = io.StringIO()
    p = RunProgress("run z", 10, 0, 10 * S, mode="log", stream=out, log_every_s=0.0)
    p(5 * S)
    p.finish()
    assert "" == out.getvalue()


def test_an_unknown_progress_mode_names_where_it_came_from(monkeypatch):
    from hftlab.errors import ConfigError

    monkeypatch.delenv("HFTLAB_PROGRESS", raising=False)

    with pytest.raises(ConfigError, match=r"output.progress='loud': expected one of auto, terminal, log, off"):
        RunProgress("run x", 1, 0, 1, "loud", stream=io.StringIO())
    monkeypatch.setenv("HFTLAB_PROGRESS", "silent")
    with pytest.raises(ConfigError, match=r"HFTLAB_PROGRESS='silent'"):
        RunProgress("run x", 1, 0, 1, "auto", stream=io.StringIO())
