"""The typed run configuration: frozen dataclasses that are also the schemas Hydra's ConfigStore holds.

YAML files in ``conf/`` extend these schemas, so an unknown key or a value of the wrong type fails at
composition with the key's name. :func:`run_config` is the one boundary from Hydra to hftlab: it builds
the frozen :class:`RunConfig` and checks every range and invariant once (:func:`hftlab.checks.check`),
naming the key. Each strategy's parameters get a schema generated from its ``Params`` NamedTuple.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hftlab.checks import check, ranged
from hftlab.errors import ConfigError
from hftlab.metrics import MetricsConfig
from hftlab.runtime.config import ExecutionConfig, RiskConfig, RuntimeConfig
from hftlab.runtime.progress import ProgressMode
from hftlab.runtime.strategy import Strategy, load_strategy
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS, check_name
from hftlab.times import to_ns
from hftlab.venue.config import VenueConfig


@dataclass(frozen=True)
class DatasetConfig:
    """Dataset reference: which canonical dataset, version, feeds and exchange-time window."""

    id: str = "synthetic"
    version: str | None = None  #: None: the newest version; the run definition stores the resolved one
    feeds: list[str] = ranged(DEFAULT_FEEDS, choices=FEEDS)
    start: str | None = None  #: ISO-8601 UTC or integer ns as text; None = dataset start
    end: str | None = None
    root: str = "data/canonical"  #: Canonical Storage root (relative to the project directory)

    def check_invariants(self, prefix: str) -> None:
        check_name(f"{prefix}.id", self.id)
        start, end = self.window()
        if start is not None and end is not None and end <= start:
            raise ConfigError(f"{prefix}.end: {self.end!r} is not after {prefix}.start {self.start!r}")

    def window(self) -> tuple[int | None, int | None]:
        """The window ``[start, end)`` in ns (None: the dataset's own bound)."""
        return to_ns(self.start, "dataset.start"), to_ns(self.end, "dataset.end")


@dataclass(frozen=True)
class OutputConfig:
    """Where results go: ``<results_dir>/<experiment>/runs/<run_id>/``."""

    results_dir: str = "results"
    progress: ProgressMode = ProgressMode.auto


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class StrategyConfig:
    name: str = MISSING
    params: Any = MISSING


@dataclass(frozen=True)
class RunConfig:
    """Everything one run reads: built from Hydra's composed config by :func:`run_config`, checked once."""

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

    def check_invariants(self, prefix: str) -> None:
        check_name("experiment_name", self.experiment_name)


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
        frozen=True,
    )


def register_configs(strategies_dir: Path) -> list[str]:
    """Register the run schema and one ``strategy/<name>_schema`` node per strategy file."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=hydra_schema(RunConfig))
    names = []
    for path in sorted(strategies_dir.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        cs.store(
            group="strategy",
            name=f"{path.stem}_schema",
            node=hydra_schema(strategy_schema(load_strategy(path.stem, strategies_dir))),
        )
        names.append(path.stem)
    return names


def hydra_schema(schema: type) -> DictConfig:
    """The Hydra node of a frozen schema: the same dataclass, writable while Hydra composes and overrides
    (``OmegaConf.to_object`` still builds the frozen dataclass)."""
    node = OmegaConf.structured(schema)

    def thaw(cfg: DictConfig) -> None:
        OmegaConf.set_readonly(cfg, False)
        for key in cfg:
            child = cfg._get_node(key)
            if isinstance(child, DictConfig):
                thaw(child)

    thaw(node)
    return node


def run_config(composed: DictConfig | Mapping[str, Any], strategies_dir: Path) -> RunConfig:
    """The boundary: a composed config (Hydra's, without its ``hydra`` node, or a plain mapping) becomes
    a frozen, checked :class:`RunConfig`. Every error is a :class:`ConfigError` naming the key
    (``risk.max_position``, ``strategy.params.grid_num``, ...)."""
    # plain values (interpolations resolved): the composed node's schema classes are Hydra's registered ones
    if isinstance(composed, DictConfig):
        keep = [str(k) for k in composed if k != "hydra"]
        composed = OmegaConf.to_container(OmegaConf.masked_copy(composed, keep), resolve=True)  # type: ignore[assignment]
    data = OmegaConf.create({k: v for k, v in dict(composed).items() if k != "hydra"})
    strategy_name = OmegaConf.select(data, "strategy.name", default=None)
    if not isinstance(strategy_name, str):
        raise ConfigError("strategy.name: missing (choose one with strategy=<name>)")
    strategy = load_strategy(strategy_name, strategies_dir)
    base = hydra_schema(RunConfig)
    base.strategy = hydra_schema(strategy_schema(strategy))
    try:
        run: RunConfig = OmegaConf.to_object(OmegaConf.merge(base, data))  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None
    check(run)
    strategy.params(dataclasses.asdict(run.strategy.params))  # its types and its own invariants
    return run
