"""Time values in one place: event time is integer nanoseconds since the Unix epoch, UTC.

People give times as ISO-8601 UTC text (``2024-03-01T12:00``, a trailing ``Z`` allowed) or as integer
nanoseconds (text of five or more digits, so that ``2024`` stays a year); hftlab shows them as ISO-8601
UTC with the fraction of a second only where needed.
"""

from __future__ import annotations

import re
from typing import overload

import numpy as np

from hftlab.errors import ConfigError

NS_PER_DAY = 86_400 * 1_000_000_000


@overload
def to_ns(value: int | str, key: str = ...) -> int: ...
@overload
def to_ns(value: None, key: str = ...) -> None: ...
@overload
def to_ns(value: int | str | None, key: str = ...) -> int | None: ...


def to_ns(value: int | str | None, key: str = "time") -> int | None:
    """A timestamp as integer ns since the epoch (None stays None); ``key`` names it in the error.

    Refused (:class:`ConfigError` naming ``key``): text that is neither integer ns nor ISO-8601
    (``time-format``), and a time that int64 nanoseconds cannot hold, i.e. outside
    1677-09-21 .. 2262-04-11 (``time-out-of-range``; numpy would wrap it around silently).
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return _in_range(value, value, key)
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d{5,}", text):
        return _in_range(int(text), value, key)
    try:
        parsed = np.datetime64(text.rstrip("Z"))
    except ValueError:
        parsed = np.datetime64("NaT")
    if np.isnat(parsed):
        raise ConfigError(
            f"{value!r} is neither integer nanoseconds nor an ISO-8601 UTC time (e.g. 2024-01-01T00:30)",
            key=key,
            rule="time-format",
        )
    if np.datetime_data(parsed.dtype)[0] in ("ps", "fs", "as"):  # digits beyond ns: numpy's ps wraps around
        parsed = np.datetime64(text.rstrip("Z"), "ns")
    return _in_range(_exact_ns(parsed), value, key)


_INT64 = np.iinfo(np.int64)
#: Nanoseconds per unit numpy may parse a time in (exact Python ints: no wrap-around).
_UNIT_NS = {"D": NS_PER_DAY, "h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _exact_ns(parsed: np.datetime64) -> int:
    """A parsed time as exact integer ns (a Python int, possibly beyond int64)."""
    unit, count = np.datetime_data(parsed.dtype)
    if unit in ("Y", "M", "W"):  # years and months have no fixed length in ns
        parsed, unit, count = parsed.astype("datetime64[D]"), "D", 1
    return int(parsed.astype(np.int64)) * count * _UNIT_NS[unit]


def _in_range(ns: int, given: object, key: str) -> int:
    """``ns`` if int64 holds it (its minimum is numpy's NaT, so it is refused too)."""
    if not int(_INT64.min) < ns <= int(_INT64.max):
        raise ConfigError(
            f"{given!r} is outside the times int64 nanoseconds can hold (1677-09-21T00:12:43.145224193 .. "
            "2262-04-11T23:47:16.854775807 UTC)",
            key=key,
            rule="time-out-of-range",
        )
    return ns


def iso(ns: int) -> str:
    """ISO-8601 UTC with the fraction of a second only where needed: ``2024-01-01T00:20:00Z``."""
    text = str(np.datetime64(int(ns), "ns"))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def utc_date(ns: int) -> str:
    """The UTC calendar date of a timestamp: ``2024-03-01``."""
    return str(np.datetime64(int(ns) // NS_PER_DAY, "D"))
