"""Venue Adapter and Simulated Venue: the only bridge to hftbacktest's backtest API."""

from typing import Any

from hftlab.venue.config import FeeConfig, LatencyConfig, QueueConfig, VenueConfig

__all__ = ["FeeConfig", "LatencyConfig", "QueueConfig", "SimulatedVenue", "VenueConfig"]


def __getattr__(name: str) -> Any:
    # imported on first use: the feeder imports hftlab.venue.constants, and the Simulated Venue imports the feeder
    if name == "SimulatedVenue":
        from hftlab.venue.simulated import SimulatedVenue

        return SimulatedVenue
    raise AttributeError(name)
