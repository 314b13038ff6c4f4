"""Core Runtime: Events -> State -> Strategy -> Risk -> Execution Control -> Order lifecycle, on the Simulated Venue."""

from hftlab.runtime.config import ExecutionConfig, RiskConfig, RuntimeConfig
from hftlab.runtime.contract import View
from hftlab.runtime.runner import RunOutput, run_backtest
from hftlab.runtime.strategy import Strategy, load_strategy

__all__ = [
    "ExecutionConfig",
    "RiskConfig",
    "RunOutput",
    "RuntimeConfig",
    "Strategy",
    "View",
    "load_strategy",
    "run_backtest",
]
