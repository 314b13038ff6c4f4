"""Structured configuration of one run: the dataclass schemas Hydra's ConfigStore holds.

YAML files in ``conf/`` extend these schemas, so an unknown key or a value of the wrong type fails at
composition with the key's name; ranges and invariants are checked by :func:`validate_config` before
anything runs. Each strategy's parameters get a schema generated from its ``Params`` NamedTuple.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hftlab.errors import ConfigError
from hftlab.runtime.config import ExecutionConfig, RiskConfig, RuntimeConfig
from hftlab.runtime.strategy import Strategy, load_strategy
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS, check_name
from hftlab.venue.config import VenueConfig


@dataclass
class DatasetConfig:
    """Dataset reference: which canonical dataset, version, feeds and exchange-time window."""

    id: str = "synthetic"
    version: str | None = None  #: None: the only version stored; the run definition stores the resolved one
    feeds: list[str] = field(default_factory=lambda: list(DEFAULT_FEEDS))
    start: str | None = None  #: ISO-8601 UTC or integer ns as text; None = dataset start
    end: str | None = None
    root: str = "data/canonical"  #: Canonical Storage root (relative to the project directory)


@dataclass
class MetricsConfig:
    """How metrics are computed (stored in the run definition: they change outputs)."""

    capital: float = 10_000.0  #: capital for return and turnover, in the account currency
    sample_interval_ns: int = 60_000_000_000  #: equity sampling for Sharpe/Sortino
    markout_horizons_ns: list[int] = field(default_factory=lambda: [1_000_000_000, 10_000_000_000, 60_000_000_000])


@dataclass
class OutputConfig:
    """Where results go: ``<results_dir>/<experiment>/runs/<run_id>/``."""

    results_dir: str = "results"
    #: progress display: auto (a live line on a terminal, log lines otherwise), terminal, log, off
    progress: str = "auto"


@dataclass
class SweepConfig:
    """Sweep bookkeeping (not part of any run definition)."""

    #: Metrics whose best run summary.json names; a leading '-' means lower is better.
    best_by: list[str] = field(default_factory=lambda: ["net_pnl", "sharpe_annualized", "-max_drawdown"])
    #: After a sweep, delete run directories of this experiment that are not in its grid (DVC stages
    #: set it, so a tracked results folder holds exactly the current grid's runs).
    prune: bool = False
    #: Serve a Prometheus endpoint (runs by status, events/s) on this port while the sweep runs (None: off).
    prometheus_port: int | None = None
    #: Address the endpoint binds to (127.0.0.1: this machine only; 0.0.0.0: every interface).
    prometheus_addr: str = "127.0.0.1"


@dataclass
class StrategyConfig:
    name: str = MISSING
    params: Any = MISSING


@dataclass
class RunConfig:
    """Everything one run reads."""

    experiment_name: str = "default"  #: names results/<experiment_name>; set by conf/experiment/<name>.yaml
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    venue: VenueConfig = field(default_factory=VenueConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    #: Project directory (code, conf/, strategies/, data/); relative paths resolve against it.
    project_dir: str = "."


def params_schema(strategy: Strategy) -> type:
    """A dataclass mirroring a strategy's ``Params`` NamedTuple (names, types, defaults)."""
    hints = typing.get_type_hints(strategy.Params)
    defaults = strategy.Params._field_defaults
    fields = []
    for name in strategy.Params._fields:
        if name not in defaults:
            fields.append((name, hints[name], MISSING))
        else:
            fields.append((name, hints[name], field(default=defaults[name])))
    return dataclasses.make_dataclass(f"{strategy.name.title().replace('_', '')}Params", fields)


def strategy_schema(strategy: Strategy) -> type:
    """The ``strategy`` node schema of one strategy: its name and its typed parameters."""
    params = params_schema(strategy)
    return dataclasses.make_dataclass(
        f"{strategy.name.title().replace('_', '')}StrategyConfig",
        [("name", str, field(default=strategy.name)), ("params", params, field(default_factory=params))],
        bases=(StrategyConfig,),
    )


def register_configs(strategies_dir: Path) -> list[str]:
    """Register the run schema and one ``strategy/<name>_schema`` node per strategy file."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    names = []
    for path in sorted(strategies_dir.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        cs.store(
            group="strategy", name=f"{path.stem}_schema", node=strategy_schema(load_strategy(path.stem, strategies_dir))
        )
        names.append(path.stem)
    return names


def typed_config(data: dict[str, Any], strategies_dir: Path) -> tuple[RunConfig, Strategy, Any]:
    """Check a plain run config against the schemas and every range and invariant.

    Returns the typed :class:`RunConfig`, the strategy and its typed parameters. Errors are
    :class:`ConfigError` naming the key (``risk.max_position``, ``strategy.params.grid_num``, ...).
    """
    try:
        strategy_name = str(data["strategy"]["name"])
    except (KeyError, TypeError):
        raise ConfigError("strategy.name: missing (choose one with strategy=<name>)") from None
    strategy = load_strategy(strategy_name, strategies_dir)
    base = OmegaConf.structured(RunConfig)
    base.strategy = OmegaConf.structured(strategy_schema(strategy))
    try:
        run: RunConfig = OmegaConf.to_object(OmegaConf.merge(base, data))  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None
    for key, value in (("experiment_name", run.experiment_name), ("dataset.id", run.dataset.id)):
        try:
            check_name(key, value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    unknown = [f for f in run.dataset.feeds if f not in FEEDS]
    if unknown or not run.dataset.feeds:
        raise ConfigError(f"dataset.feeds: unknown feeds {unknown}; known: {list(FEEDS)}")
    params = strategy.params(dataclasses.asdict(run.strategy.params))
    run.venue.validate()
    run.risk.validate()
    run.execution.validate()
    run.runtime.validate()
    m = run.metrics
    if not (math.isfinite(m.capital) and m.capital > 0):
        raise ConfigError(f"metrics.capital: must be a finite number > 0, got {m.capital!r}")
    if m.sample_interval_ns <= 0:
        raise ConfigError(f"metrics.sample_interval_ns: must be > 0, got {m.sample_interval_ns!r}")
    if not m.markout_horizons_ns or any(h <= 0 for h in m.markout_horizons_ns):
        raise ConfigError(
            f"metrics.markout_horizons_ns: must be a non-empty list of ns > 0, got {m.markout_horizons_ns!r}"
        )
    return run, strategy, params
