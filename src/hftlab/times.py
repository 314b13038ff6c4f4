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
    """A timestamp as integer ns since the epoch (None stays None); ``key`` names it in the error."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d{5,}", text):
        return int(text)
    try:
        return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))
    except ValueError:
        raise ConfigError(
            f"{key}: {value!r} is neither integer nanoseconds nor an ISO-8601 UTC time (e.g. 2024-01-01T00:30)"
        ) from None


def iso(ns: int) -> str:
    """ISO-8601 UTC with the fraction of a second only where needed: ``2024-01-01T00:20:00Z``."""
    text = str(np.datetime64(int(ns), "ns"))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def utc_date(ns: int) -> str:
    """The UTC calendar date of a timestamp: ``2024-03-01``."""
    return str(np.datetime64(int(ns) // NS_PER_DAY, "D"))
