"""Simulated Venue configuration: every hftbacktest model choice, typed and checked before a run.

Frozen dataclasses, also the Hydra structured-config schemas of the ``venue`` group: model choices are
enums (written as their values), ranges are stated on each field (:mod:`hftlab.checks`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from hftlab.checks import ranged
from hftlab.errors import ConfigError
from hftlab.storage.schema import Instrument


class LatencyModel(enum.StrEnum):
    """How order latency is modelled (:class:`LatencyConfig`)."""

    constant = "constant"
    interpolated = "interpolated"
    feed_derived = "feed_derived"


class QueueModel(enum.StrEnum):
    """Where a resting order stands in the queue at its price level."""

    risk_averse = "risk_averse"
    power_prob = "power_prob"
    log_prob = "log_prob"
    l3_fifo = "l3_fifo"


class ExchangeModel(enum.StrEnum):
    """Whether a resting order can fill partly."""

    no_partial_fill = "no_partial_fill"
    partial_fill = "partial_fill"


class FeeModel(enum.StrEnum):
    """What fees are charged on: traded value, quantity, or a flat amount per fill."""

    value = "value"
    qty = "qty"
    flat = "flat"


class DepthImplementation(enum.StrEnum):
    """hftbacktest's market-depth structure."""

    hashmap = "hashmap"
    roi_vector = "roi_vector"


@dataclass(frozen=True)
class LatencyConfig:
    """Order latency. ``constant``: fixed entry/response ns. ``interpolated``: hftbacktest's
    IntpOrderLatency over a ``.npz`` of (req_ts, exch_ts, resp_ts). ``feed_derived``: entry =
    entry_mul × feed latency + entry_ns (response likewise), the feed latency resampled every
    ``resample_ns`` from the fed events (hftbacktest's ``generate_order_latency`` model)."""

    model: LatencyModel = LatencyModel.constant
    entry_ns: int = ranged(1_000_000, ge=0)
    response_ns: int = ranged(1_000_000, ge=0)
    entry_mul: float = ranged(1.0, ge=0)
    response_mul: float = ranged(1.0, ge=0)
    resample_ns: int = ranged(1_000_000_000, gt=0)
    path: str = ""  #: order-latency .npz for ``interpolated`` (relative to the working directory)

    def check_invariants(self, prefix: str) -> None:
        if self.model == LatencyModel.interpolated and not self.path:
            raise ConfigError(f"{prefix}.path: required when {prefix}.model is 'interpolated'")


@dataclass(frozen=True)
class QueueConfig:
    """Queue position model: ``risk_averse``, ``power_prob`` (with ``exponent``), ``log_prob``, ``l3_fifo``."""

    model: QueueModel = QueueModel.risk_averse
    exponent: float = ranged(2.0, gt=0)


@dataclass(frozen=True)
class FeeConfig:
    """Fees: ``value`` (rate × traded value), ``qty`` (rate × quantity) or ``flat`` (per trade).
    Negative = rebate."""

    model: FeeModel = FeeModel.value
    maker: float = ranged(-0.00005)
    taker: float = ranged(0.0007)


@dataclass(frozen=True)
class VenueConfig:
    """The Simulated Venue. ``tick_size``/``lot_size``/``contract_*`` of 0/"" take the dataset's
    instrument values; the run definition stores the resolved values."""

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    exchange: ExchangeModel = ExchangeModel.no_partial_fill
    fees: FeeConfig = field(default_factory=FeeConfig)
    depth: DepthImplementation = DepthImplementation.roi_vector
    #: ROI vector bounds around the data's price range, as a fraction of that range's mid price.
    roi_margin: float = ranged(0.05, ge=0)
    tick_size: float = ranged(0.0, ge=0)
    lot_size: float = ranged(0.0, ge=0)
    contract_type: str = ranged("", choices=("", "linear", "inverse"))
    contract_size: float = ranged(0.0, ge=0)
    last_trades_capacity: int = ranged(1024, ge=1)

    @property
    def is_resolved(self) -> bool:
        """Whether every instrument-dependent field holds a value."""
        return bool(self.tick_size and self.lot_size and self.contract_type and self.contract_size)

    def resolve(self, instrument: Instrument) -> VenueConfig:
        """This config with the instrument-dependent fields left at 0/"" taken from the dataset's instrument
        (itself when nothing is left to fill)."""
        if self.is_resolved:
            return self
        return replace(
            self,
            tick_size=self.tick_size or instrument.tick_size,
            lot_size=self.lot_size or instrument.lot_size,
            contract_type=self.contract_type or instrument.contract_type,
            contract_size=self.contract_size or instrument.contract_size,
        )
