"""Best by a metric: the one rule every chooser uses (sweep summaries, walk-forward folds, reports).

A metric spec is a metric name, ``-name`` when lower is better, ``+name`` when higher is. A bare name takes
the metric's own direction: lower is better for the metrics of :data:`LOWER_IS_BETTER` (drawdown, fees,
inventory, refusals...), higher for every other. Only finite numbers rank (not bools, None, NaN or
infinities: a run without a finite value is never the best); ties go to the first in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from hftlab.errors import ConfigError


class Goal(NamedTuple):
    """A parsed metric spec: the metric's name and whether lower is better."""

    metric: str
    lower: bool

    @property
    def word(self) -> str:
        """``min`` or ``max``, as written in summaries."""
        return "min" if self.lower else "max"


#: Metrics where a smaller value is the better one (a bare name ranks them lowest first).
LOWER_IS_BETTER = frozenset({
    "max_drawdown", "fees", "fees_paid", "order_to_trade", "risk_rejections", "throttled", "inventory_mean_abs",
    "inventory_max_abs", "inventory_time_weighted_abs", "quoted_spread", "quoted_spread_bps", "returns_kurtosis",
})  # fmt: skip


def goal(spec: str, option: str = "metric") -> Goal:
    """``net_pnl`` -> (net_pnl, higher is better); ``max_drawdown`` or ``-max_drawdown`` -> (max_drawdown,
    lower is better); ``+max_drawdown`` -> (max_drawdown, higher is better)."""
    sign, name = (spec[0], spec[1:]) if spec[:1] in ("-", "+") else ("", spec)
    if not name:
        raise ConfigError(f"{option} {spec!r}: give a metric name, e.g. net_pnl or -max_drawdown")
    return Goal(name, sign == "-" or (sign == "" and name in LOWER_IS_BETTER))


def rankable(x: Any) -> float | None:
    """A metric value that can be ranked: a finite int or float (not bool, not None), as a float."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float) and math.isfinite(x):
        return float(x)
    return None


def best_index(values: Sequence[Any], lower: bool) -> int | None:
    """Index of the best rankable value (``lower``: the smallest); ties: the first; None if none ranks."""
    best: int | None = None
    best_value = 0.0
    for i, raw in enumerate(values):
        v = rankable(raw)
        if v is not None and (best is None or (v < best_value if lower else v > best_value)):
            best, best_value = i, v
    return best


def ranked(values: Sequence[Any], lower: bool) -> list[int]:
    """Indexes of the rankable values, best first (ties keep their order); unrankable ones left out."""
    keyed = [(v, i) for i, raw in enumerate(values) if (v := rankable(raw)) is not None]
    keyed.sort(key=lambda t: (t[0] if lower else -t[0], t[1]))
    return [i for _, i in keyed]
