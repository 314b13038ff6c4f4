"""Venue Adapter and Simulated Venue: the only bridge to hftbacktest's backtest API."""

from hftlab.venue.config import FeeConfig, LatencyConfig, QueueConfig, VenueConfig
from hftlab.venue.simulated import SimulatedVenue

__all__ = ["FeeConfig", "LatencyConfig", "QueueConfig", "SimulatedVenue", "VenueConfig"]
