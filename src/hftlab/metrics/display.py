"""How metric values are shown (report, run headline, compare): percentages, seconds, thousands
separators, and lot multiples with the lot's decimals. Display only: stored values are never rounded."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_PERCENT = {"return", "maker_share", "fill_ratio", "quoting_uptime"}
#: Metrics that are whole multiples of the lot: shown with the lot's decimals (positions are stored on the
#: lot grid; volume, a float sum of fill quantities, is not: 10.740000000000002 is shown 10.740).
LOT_MULTIPLES = {"final_position", "volume", "inventory_max_abs"}


def decimals(step: float) -> int:
    """Decimals that write every multiple of ``step`` exactly: 0.1 -> 1, 0.25 -> 2, 1e-8 -> 8, 5 -> 0."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def shown(name: str, value: Any, lot: float | None = None) -> str:
    """``value`` of metric ``name`` as shown: "" for None or not finite, yes/no, lot multiples with the
    ``lot``'s decimals, fractions in %, durations in s, other numbers with 6 significant digits (2 decimals
    from 100,000 up), text as it is."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if lot and name in LOT_MULTIPLES:
        places = decimals(lot)
        return f"{round(value, places) + 0.0:,.{places}f}"  # + 0.0: no "-0.000"
    if name in _PERCENT:
        return f"{value * 100:.4g} %"
    if name == "sample_interval_ns":
        return f"{value / 1e9:g} s"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}" if abs(value) >= 1e5 else f"{value:,.6g}"
