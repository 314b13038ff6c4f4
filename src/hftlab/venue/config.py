"""Simulated Venue configuration: every hftbacktest model choice, typed and checked before a run.

These dataclasses are also the Hydra structured-config schemas of the ``venue`` group, so plain
types only (str/int/float/bool); allowed string values are listed and checked in ``validate()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hftlab.errors import ConfigError

LATENCY_MODELS = ("constant", "interpolated", "feed_derived")
QUEUE_MODELS = ("risk_averse", "power_prob", "log_prob", "l3_fifo")
EXCHANGE_MODELS = ("no_partial_fill", "partial_fill")
FEE_MODELS = ("value", "qty", "flat")
DEPTH_IMPLEMENTATIONS = ("hashmap", "roi_vector")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}")


def _number(key: str, value: Any, *, minimum: float | None = None, exclusive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        raise ConfigError(f"{key}: must be {'>' if exclusive else '>='} {minimum}, got {value!r}")


@dataclass
class LatencyConfig:
    """Order latency. ``constant``: fixed entry/response ns. ``interpolated``: hftbacktest's
    IntpOrderLatency over a ``.npz`` of (req_ts, exch_ts, resp_ts). ``feed_derived``: entry =
    entry_mul × feed latency + entry_ns (response likewise), the feed latency resampled every
    ``resample_ns`` from the fed events (hftbacktest's ``generate_order_latency`` model)."""

    model: str = "constant"
    entry_ns: int = 1_000_000
    response_ns: int = 1_000_000
    entry_mul: float = 1.0
    response_mul: float = 1.0
    resample_ns: int = 1_000_000_000
    path: str = ""  #: order-latency .npz for ``interpolated`` (relative to the working directory)

    def validate(self, prefix: str = "venue.latency") -> None:
        _choice(f"{prefix}.model", self.model, LATENCY_MODELS)
        for name in ("entry_ns", "response_ns", "entry_mul", "response_mul"):
            _number(f"{prefix}.{name}", getattr(self, name), minimum=0)
        _number(f"{prefix}.resample_ns", self.resample_ns, minimum=0, exclusive=True)
        if self.model == "interpolated" and not self.path:
            raise ConfigError(f"{prefix}.path: required when {prefix}.model is 'interpolated'")


@dataclass
class QueueConfig:
    """Queue position model: ``risk_averse``, ``power_prob`` (with ``exponent``), ``log_prob``, ``l3_fifo``."""

    model: str = "risk_averse"
    exponent: float = 2.0

    def validate(self, prefix: str = "venue.queue") -> None:
        _choice(f"{prefix}.model", self.model, QUEUE_MODELS)
        _number(f"{prefix}.exponent", self.exponent, minimum=0, exclusive=True)


@dataclass
class FeeConfig:
    """Fees: ``value`` (rate × traded value), ``qty`` (rate × quantity) or ``flat`` (per trade).
    Negative = rebate."""

    model: str = "value"
    maker: float = -0.00005
    taker: float = 0.0007

    def validate(self, prefix: str = "venue.fees") -> None:
        _choice(f"{prefix}.model", self.model, FEE_MODELS)
        _number(f"{prefix}.maker", self.maker)
        _number(f"{prefix}.taker", self.taker)


@dataclass
class VenueConfig:
    """The Simulated Venue. ``tick_size``/``lot_size``/``contract_*`` of 0/"" take the dataset's
    instrument values; the run definition stores the resolved values."""

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    exchange: str = "no_partial_fill"
    fees: FeeConfig = field(default_factory=FeeConfig)
    depth: str = "roi_vector"
    #: ROI vector bounds around the data's price range, as a fraction of that range's mid price.
    roi_margin: float = 0.05
    tick_size: float = 0.0
    lot_size: float = 0.0
    contract_type: str = ""
    contract_size: float = 0.0
    last_trades_capacity: int = 1024

    def validate(self, prefix: str = "venue") -> None:
        self.latency.validate(f"{prefix}.latency")
        self.queue.validate(f"{prefix}.queue")
        self.fees.validate(f"{prefix}.fees")
        _choice(f"{prefix}.exchange", self.exchange, EXCHANGE_MODELS)
        _choice(f"{prefix}.depth", self.depth, DEPTH_IMPLEMENTATIONS)
        _number(f"{prefix}.roi_margin", self.roi_margin, minimum=0)
        for name in ("tick_size", "lot_size", "contract_size"):
            _number(f"{prefix}.{name}", getattr(self, name), minimum=0)
        if self.contract_type:
            _choice(f"{prefix}.contract_type", self.contract_type, ("linear", "inverse"))
        _number(f"{prefix}.last_trades_capacity", self.last_trades_capacity, minimum=1)
