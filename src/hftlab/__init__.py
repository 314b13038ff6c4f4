"""hftlab: deterministic, reproducible event-driven backtests on order-book data.

The user-facing API, importable from here (each name is loaded on first use, so ``import hftlab`` stays
cheap and the command line does not pay for numba or Hydra it does not need)::

    from hftlab import Catalog, DatasetRef, RiskConfig, load_strategy, run_backtest

    fed = DatasetRef("synthetic").load(Catalog("data/canonical"))
    grid = load_strategy("grid", "strategies")
    out = run_backtest(fed, grid, grid.params({"half_spread": 0.3}), risk=RiskConfig(max_position=5.0))

or a whole run as ``hftlab run`` does it, cached by run id::

    from hftlab import compose_runs, execute, prepare

    (config,) = compose_runs([["strategy=obi"]])
    result = execute(prepare(config, project_dir))
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    # Canonical Storage and the feeder
    "Catalog": "hftlab.storage.catalog",
    "Dataset": "hftlab.storage.catalog",
    "DatasetRef": "hftlab.feed",
    "Window": "hftlab.feed",
    "FeedData": "hftlab.feed",
    "load_events": "hftlab.feed",
    # the Core Runtime on the Simulated Venue
    "Strategy": "hftlab.runtime.strategy",
    "load_strategy": "hftlab.runtime.strategy",
    "run_backtest": "hftlab.runtime.runner",
    "RunOutput": "hftlab.runtime.runner",
    "VenueConfig": "hftlab.venue.config",
    "RiskConfig": "hftlab.runtime.config",
    "ExecutionConfig": "hftlab.runtime.config",
    "RuntimeConfig": "hftlab.runtime.config",
    # metrics
    "MetricsConfig": "hftlab.metrics",
    "compute_metrics": "hftlab.metrics",
    # runs
    "RunConfig": "hftlab.run.schema",
    "run_config": "hftlab.run.schema",
    "PreparedRun": "hftlab.run.execute",
    "RunResult": "hftlab.run.execute",
    "prepare": "hftlab.run.execute",
    "execute": "hftlab.run.execute",
    "compose_runs": "hftlab.sweep.app",
    "reproduce": "hftlab.run.reproduce",
    # errors
    "HftlabError": "hftlab.errors",
    "ConfigError": "hftlab.errors",
    "InvalidNameError": "hftlab.errors",
    "DataError": "hftlab.errors",
    "StorageError": "hftlab.errors",
    "StrategyError": "hftlab.errors",
    "VenueError": "hftlab.errors",
    "ReproduceError": "hftlab.errors",
}

__all__ = [
    "Catalog",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetRef",
    "ExecutionConfig",
    "FeedData",
    "HftlabError",
    "InvalidNameError",
    "MetricsConfig",
    "PreparedRun",
    "ReproduceError",
    "RiskConfig",
    "RunConfig",
    "RunOutput",
    "RunResult",
    "RuntimeConfig",
    "StorageError",
    "Strategy",
    "StrategyError",
    "VenueConfig",
    "VenueError",
    "Window",
    "__version__",
    "compose_runs",
    "compute_metrics",
    "execute",
    "load_events",
    "load_strategy",
    "prepare",
    "reproduce",
    "run_backtest",
    "run_config",
]

if _typing.TYPE_CHECKING:
    from hftlab.errors import (
        ConfigError,
        DataError,
        HftlabError,
        InvalidNameError,
        ReproduceError,
        StorageError,
        StrategyError,
        VenueError,
    )
    from hftlab.feed import DatasetRef, FeedData, Window, load_events
    from hftlab.metrics import MetricsConfig, compute_metrics
    from hftlab.run.execute import PreparedRun, RunResult, execute, prepare
    from hftlab.run.reproduce import reproduce
    from hftlab.run.schema import RunConfig, run_config
    from hftlab.runtime.config import ExecutionConfig, RiskConfig, RuntimeConfig
    from hftlab.runtime.runner import RunOutput, run_backtest
    from hftlab.runtime.strategy import Strategy, load_strategy
    from hftlab.storage.catalog import Catalog, Dataset
    from hftlab.sweep.app import compose_runs
    from hftlab.venue.config import VenueConfig


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hftlab' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
