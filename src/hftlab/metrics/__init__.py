"""Run metrics, computed from a run's execution records and versioned apart from the engine.

A run directory's records are pinned by its run definition (the run id); its metrics are a function of
those records, the :class:`MetricsConfig` and this package's code. :func:`metrics_definition` states
the last two; it is stored beside ``metrics.json``, and a cached run whose stored metrics definition
differs from the current one gets its metrics recomputed from the stored records, without running the
backtest again (a new metric, a fixed formula, another capital).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from hftlab.files import jsonable
from hftlab.metrics.compute import MetricsConfig, Records, compute_metrics

__all__ = ["METRICS_FORMAT", "MetricsConfig", "Records", "compute_metrics", "metrics_definition"]

METRICS_FORMAT = "hftlab.metrics/1"


@cache
def metrics_code_sha256() -> str:
    """sha256 over this package's Python sources (relative paths and bytes, in path order)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def metrics_definition(config: MetricsConfig) -> dict[str, Any]:
    """What decides a run's metrics besides its records: the format, this code's hash and the config."""
    return {"format": METRICS_FORMAT, "code_sha256": metrics_code_sha256(), "config": jsonable(config)}
