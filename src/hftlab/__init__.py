"""hftlab: deterministic, reproducible event-driven backtests on order-book data."""

__version__ = "0.1.0"

__all__ = ["__version__"]
