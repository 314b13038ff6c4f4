"""Walk-forward planning (:mod:`hftlab.sweep.walkforward`): the pure parts, no runs and no files.

Durations (parsing and canonical text), the grid points and the checks of the overrides (with Hydra's
override parser) and the rolling folds. The public names are re-exported by :mod:`hftlab.sweep.walkforward`;
the in-sample choice is :func:`hftlab.ranking.best_index`, the rule every chooser uses.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hftlab.errors import ConfigError
from hftlab.sweep.grid import expand, parse

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


def _override_key(override: Any) -> str:
    return str(override.get_key_element()).lstrip("+~")


def grid_points(grid: Sequence[str]) -> list[list[str]]:
    """Every grid point's overrides (the Cartesian product, in Hydra's basic-sweeper order)."""
    if not grid:
        return [[]]
    parsed = parse(list(grid), what="--grid")
    seen: set[str] = set()
    for override, text in zip(parsed, grid, strict=True):
        key = _override_key(override)
        if key.startswith("hydra") or key in _RESERVED or key in _DATASET_KEYS:
            raise ConfigError(
                f"--grid {text!r}: {key} cannot be swept in a walk-forward (one dataset; the window and results "
                "folder come from --start/--end/--train/--test/--step/--name)"
            )
        if key in seen:
            raise ConfigError(f"--grid {text!r}: {key} is given twice")
        seen.add(key)
    return expand(list(grid), what="--grid")


def check_overrides(overrides: Sequence[str]) -> None:
    """Overrides applied to every run: plain values only (sweeps belong in --grid), no reserved keys."""
    parsed = parse(list(overrides), what="overrides")
    for override, text in zip(parsed, overrides, strict=True):
        key = _override_key(override)
        if override.is_sweep_override():
            raise ConfigError(f"override {text!r} is a sweep: give swept parameters with --grid {text}")
        if key in _RESERVED:
            option = {"dataset.start": "--start", "dataset.end": "--end", "experiment_name": "--name"}[key]
            raise ConfigError(f"override {text!r}: the walk-forward sets {key} itself; use {option}")
        if key.startswith("hydra"):
            raise ConfigError(f"override {text!r}: Hydra's own settings do not apply to a walk-forward")


# --------------------------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int
    partial: bool = False  #: its out-of-sample period is cut short by the end of the window


def make_folds(start: int, end: int, train: int, test: int, step: int) -> list[Fold]:
    """Fold k: IS [start + k·step, + train), OOS [IS end, + test), while the OOS end <= end. Then a last
    fold whose OOS would pass ``end`` is kept, its OOS cut at ``end`` and marked partial, when at least
    half of its OOS period is there (the data often ends a few ms short of a round window: dropping that
    fold would drop most of a period; a shorter remainder is not a fold)."""
    folds = []
    k = 0
    while start + k * step + train + test <= end:
        s = start + k * step
        folds.append(Fold(k, s, s + train, s + train, s + train + test))
        k += 1
    s = start + k * step
    if s + train < end and (end - (s + train)) * 2 >= test and (not folds or folds[-1].oos_end < end):
        folds.append(Fold(k, s, s + train, s + train, end, partial=True))
    return folds
