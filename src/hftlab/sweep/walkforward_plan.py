"""Walk-forward planning (:mod:`hftlab.sweep.walkforward`): the pure parts, no runs and no files.

Durations and times (parsing and canonical text), the grid points and the checks of the overrides (with
Hydra's override parser), the rolling folds, and the choice of the best in-sample value. The public names
are re-exported by :mod:`hftlab.sweep.walkforward`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

#: Nanoseconds per duration unit (longest suffixes first in the pattern below).
_UNITS_NS = {
    "d": 86_400_000_000_000,
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "ns": 1,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")

#: Keys the walk-forward sets itself (window and results folder): refused in --grid and overrides.
_RESERVED = ("dataset.start", "dataset.end", "experiment_name")
#: Keys that choose the dataset (the window is read from one dataset): refused in --grid.
_DATASET_KEYS = ("dataset", "dataset.id", "dataset.version", "dataset.root")


# --------------------------------------------------------------------------------------------- parsing


def parse_duration(text: str) -> int:
    """A duration like ``2h``, ``30m``, ``90s``, ``1h30m``, ``500ms`` as integer nanoseconds (> 0)."""
    s = str(text).strip().lower()
    pos = 0
    total = Decimal(0)
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        try:
            total += Decimal(match.group(1)) * _UNITS_NS[match.group(2)]
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimal numbers
            break
        pos = match.end()
    if not s or pos != len(s):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and a unit (d, h, m, s, ms, us, ns), e.g. 2h, 30m, 90s, 1h30m"
        )
    if total != total.to_integral_value():
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: not a whole number of nanoseconds")
    if total <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be > 0")
    return int(total)


def format_duration(ns: int) -> str:
    """The canonical text of a duration: ``1h30m``, ``20m``, ``1s500ms``."""
    parts = []
    rest = ns
    for unit, size in _UNITS_NS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_time(option: str, text: str) -> int:
    """``--start``/``--end``: ISO-8601 UTC, or integer nanoseconds since the epoch."""
    from hftlab.feed import to_ns

    s = text.strip()
    if re.fullmatch(r"-?\d{5,}", s):  # integer ns (a bare 4-digit number is a year in ISO-8601)
        return int(s)
    try:
        ns = to_ns(s)
    except ValueError:
        ns = None
    if ns is None:
        raise ValueError(f"{option} {text!r}: not an ISO-8601 UTC time (e.g. 2024-01-01T00:30) or integer ns")
    return ns


def iso(ns: int) -> str:
    """ISO-8601 UTC with the fraction of a second only where needed: ``2024-01-01T00:20:00Z``."""
    import numpy as np

    text = str(np.datetime64(int(ns), "ns"))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def _override_key(override: Any) -> str:
    return str(override.get_key_element()).lstrip("+~")


def grid_points(grid: Sequence[str]) -> list[list[str]]:
    """Every grid point's overrides (the Cartesian product, in Hydra's basic-sweeper order)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if not grid:
        return [[]]
    try:
        parsed = OverridesParser.create().parse_overrides(list(grid))
    except HydraException as exc:
        raise ValueError(f"--grid: {_first_lines(exc)}") from None
    seen: set[str] = set()
    for override, text in zip(parsed, grid, strict=True):
        key = _override_key(override)
        if key.startswith("hydra") or key in _RESERVED or key in _DATASET_KEYS:
            raise ValueError(
                f"--grid {text!r}: {key} cannot be swept in a walk-forward (one dataset; the window and results "
                "folder come from --start/--end/--train/--test/--step/--name)"
            )
        if key in seen:
            raise ValueError(f"--grid {text!r}: {key} is given twice")
        seen.add(key)
    try:
        batches = BasicSweeper.split_arguments(parsed, None)
    except HydraException as exc:
        raise ValueError(f"--grid: {_first_lines(exc)}") from None
    return [list(job) for batch in batches for job in batch]


def check_overrides(overrides: Sequence[str]) -> None:
    """Overrides applied to every run: plain values only (sweeps belong in --grid), no reserved keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ValueError(f"overrides: {_first_lines(exc)}") from None
    for override, text in zip(parsed, overrides, strict=True):
        key = _override_key(override)
        if override.is_sweep_override():
            raise ValueError(f"override {text!r} is a sweep: give swept parameters with --grid {text}")
        if key in _RESERVED:
            option = {"dataset.start": "--start", "dataset.end": "--end", "experiment_name": "--name"}[key]
            raise ValueError(f"override {text!r}: the walk-forward sets {key} itself; use {option}")
        if key.startswith("hydra"):
            raise ValueError(f"override {text!r}: Hydra's own settings do not apply to a walk-forward")


def _first_lines(exc: BaseException) -> str:
    """The message of an exception (one line), with its cause's where Hydra keeps the detail there."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        detail = str(cause).strip().splitlines()[0]
        if detail not in text:
            text = f"{text}: {detail}"
    return text


# --------------------------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def make_folds(start: int, end: int, train: int, test: int, step: int) -> list[Fold]:
    """Fold k: IS [start + k·step, + train), OOS [IS end, + test), while the OOS end <= end."""
    folds = []
    k = 0
    while start + k * step + train + test <= end:
        s = start + k * step
        folds.append(Fold(k, s, s + train, s + train, s + train + test))
        k += 1
    return folds


# --------------------------------------------------------------------------------------------- choosing


def choose(values: Sequence[float | None], lower: bool) -> int | None:
    """Index of the best value (``lower``: the smallest); ties: the first; None values never chosen."""
    best: int | None = None
    for i, v in enumerate(values):
        if v is None:
            continue
        if best is None:
            best = i
            continue
        b = values[best]
        assert b is not None
        if (v < b) if lower else (v > b):
            best = i
    return best
