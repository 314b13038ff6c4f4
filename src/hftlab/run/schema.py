"""The typed run configuration: frozen dataclasses that are also the schemas Hydra's ConfigStore holds.

YAML files in ``conf/`` extend these schemas, so an unknown key or a value of the wrong type fails at
composition with the key's name. :func:`run_config` is the one boundary from Hydra to hftlab: it builds
the frozen :class:`RunConfig` and checks every range and invariant once (:func:`hftlab.checks.check`),
naming the key. Each strategy's parameters get a schema generated from its ``Params`` NamedTuple.

Every config error reads ``<key>: [<rule>] <message>`` (:class:`~hftlab.errors.ConfigError`), before
anything is allocated or run: ``invalid-choice`` (each option of :data:`CHOICES`), ``integer-out-of-range``
(beyond int64), ``invalid-value`` (a field's range or an invariant), ``invalid-name``, ``time-format`` /
``time-out-of-range`` / ``empty-window`` (the dataset window), ``resource-limit`` / ``memory-limit``
(:data:`RESOURCE_LIMITS`, :func:`check_resources`), and Hydra's own refusals as :func:`composition_error`
names them (``unknown-key``, ``wrong-type``, ``unknown-option``, ``override-syntax``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import os
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hftlab.checks import check, ranged
from hftlab.errors import ConfigError, InvalidNameError
from hftlab.metrics import MetricsConfig
from hftlab.runtime.config import Evaluation, ExecutionConfig, RiskConfig, RuntimeConfig
from hftlab.runtime.progress import PROGRESS_ENV, ProgressMode
from hftlab.runtime.strategy import Strategy, load_strategy
from hftlab.storage.schema import DEFAULT_FEEDS, FEEDS, check_name
from hftlab.times import to_ns
from hftlab.venue.config import (
    DepthImplementation,
    ExchangeModel,
    FeeModel,
    LatencyModel,
    QueueModel,
    VenueConfig,
)
from hftlab.watchdog import WatchdogConfig


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
        name_of(f"{prefix}.id", self.id)
        if self.version is not None:
            name_of(f"{prefix}.version", self.version)
        start, end = self.window()
        if start is not None and end is not None and end <= start:
            raise ConfigError(
                f"{self.end!r} is not after {prefix}.start {self.start!r} (the window is [start, end))",
                key=f"{prefix}.end",
                rule="empty-window",
            )

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

    #: Metrics whose best run summary.json names; '-name' lower is better, '+name' higher, a bare name the
    #: metric's own direction (hftlab.ranking.LOWER_IS_BETTER).
    best_by: list[str] = field(default_factory=lambda: ["net_pnl", "sharpe", "-max_drawdown"])
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
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)  #: not part of the run definition

    def check_invariants(self, prefix: str) -> None:
        name_of("experiment_name", self.experiment_name)
        check_resources(self)


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


#: Prefix of the name under which each strategy file's schema is stored: a primary config, not an option of
#: the ``strategy`` group, so that ``--help`` lists only strategies (a YAML extends it with
#: ``defaults: [/strategy_schema_<name>@_here_]``).
SCHEMA_PREFIX = "strategy_schema_"


def register_configs(strategies_dir: Path) -> list[str]:
    """Register the run schema and, for the project around ``strategies_dir``, the config group options
    that need no YAML file: ``strategy_schema_<name>`` (:data:`SCHEMA_PREFIX`) per strategy file, ``strategy/<name>`` (its
    parameters' defaults) where ``conf/strategy/<name>.yaml`` does not exist, and ``dataset/<id>`` per
    dataset id in the default Canonical Storage root (``data/canonical``) without a ``conf/dataset/<id>.yaml``.
    The strategy names, in order."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=hydra_schema(RunConfig))
    project = strategies_dir.parent
    names = []
    for path in sorted(strategies_dir.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        node = hydra_schema(strategy_schema(load_strategy(path.stem, strategies_dir)))
        cs.store(name=f"{SCHEMA_PREFIX}{path.stem}", node=node)
        if not (project / "conf" / "strategy" / f"{path.stem}.yaml").is_file():
            cs.store(group="strategy", name=path.stem, node=node)
        names.append(path.stem)
    root = project / DatasetConfig.root
    for id_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if (
            id_dir.is_dir()
            and not id_dir.name.startswith(".")
            and not (project / "conf" / "dataset" / f"{id_dir.name}.yaml").is_file()
        ):
            cs.store(group="dataset", name=id_dir.name, node={"id": id_dir.name})
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
        raise ConfigError("missing (choose one with strategy=<name>)", key="strategy.name", rule="missing")
    strategy = load_strategy(strategy_name, strategies_dir)
    base = hydra_schema(RunConfig)
    base.strategy = hydra_schema(strategy_schema(strategy))
    try:
        run: RunConfig = OmegaConf.to_object(OmegaConf.merge(base, data))  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise composition_error(exc) from None
    check_choices(run)
    check_int64(run)
    with _ruled("invalid-value"):
        check(run)
        strategy.params(dataclasses.asdict(run.strategy.params))  # its types and its own invariants
    return run


@contextlib.contextmanager
def _ruled(rule: str) -> Iterator[None]:
    """Give a ConfigError of the older ``<key>: <message>`` form (field ranges, invariants, strategy
    parameters) the rule, so that every config error reads ``<key>: [<rule>] <message>``."""
    try:
        yield
    except ConfigError as exc:
        match = re.fullmatch(r"([\w.\[\]]+): (.*)", str(exc), re.DOTALL)
        if exc.rule is not None or match is None:
            raise
        raise type(exc)(match.group(2), key=match.group(1), rule=rule) from None


# -- checks beyond each field's own range: names, choices, int64, resources ------------------------------


def name_of(key: str, value: str) -> str:
    """``value`` if it can be a path component (:func:`~hftlab.storage.schema.check_name`), else
    :class:`~hftlab.errors.InvalidNameError` ``<key>: [invalid-name] ...``."""
    try:
        return check_name(key, value)
    except InvalidNameError as exc:
        raise InvalidNameError(str(exc).removeprefix(f"{key} "), key=key, rule="invalid-name") from None


#: Every option that takes one of a fixed set of values, with that set: :func:`check_choices` refuses
#: anything else (``invalid-choice``), naming the key and the allowed values. Hydra refuses the enum
#: fields already when it composes (the CLI reports that with the same rule); this also covers configs
#: built in Python, list items and the plain-text choices. A test keeps the table complete.
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset.feeds": tuple(FEEDS),
    "venue.latency.model": tuple(m.value for m in LatencyModel),
    "venue.queue.model": tuple(m.value for m in QueueModel),
    "venue.exchange": tuple(m.value for m in ExchangeModel),
    "venue.fees.model": tuple(m.value for m in FeeModel),
    "venue.depth": tuple(m.value for m in DepthImplementation),
    "venue.contract_type": ("", "linear", "inverse"),
    "runtime.evaluation": tuple(m.value for m in Evaluation),
    "output.progress": tuple(m.value for m in ProgressMode),
}


def config_value(config: Any, key: str) -> Any:
    """The value at a dotted ``key`` of a config dataclass tree."""
    for part in key.split("."):
        config = getattr(config, part)
    return config


def check_choices(run: RunConfig) -> None:
    """Refuse (``invalid-choice``) a value outside its set in :data:`CHOICES`, and a bad ``$HFTLAB_PROGRESS``
    (which overrides ``output.progress``)."""
    given = [(key, config_value(run, key)) for key in CHOICES]
    env = os.environ.get(PROGRESS_ENV)
    if env is not None:
        given.append((PROGRESS_ENV, env))
    for key, value in given:
        allowed = CHOICES.get(key, CHOICES["output.progress"])
        items = list(value) if isinstance(value, list | tuple) else [value]
        plain = [v.value if isinstance(v, enum.Enum) else v for v in items]
        if not items or any(v not in allowed for v in plain):
            what = "a non-empty list of values" if isinstance(value, list | tuple) else "a value"
            shown = plain if isinstance(value, list | tuple) else plain[0]
            raise ConfigError(f"{shown!r} is not {what} from {list(allowed)}", key=key, rule="invalid-choice")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_int64(config: Any, prefix: str = "") -> None:
    """Refuse (``integer-out-of-range``) an integer anywhere in a config dataclass tree (strategy
    parameters and list items included) that int64 cannot hold: the compiled engine reads every integer
    as int64, and a larger one failed deep inside a run."""
    for f in dataclasses.fields(config):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_int64(value, key)
            continue
        items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for i, item in items:
            if isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= INT64_MAX:
                raise ConfigError(
                    f"{item} does not fit a 64-bit integer ({INT64_MIN} .. {INT64_MAX})",
                    key=key if i is None else f"{key}[{i}]",
                    rule="integer-out-of-range",
                )


#: Options that size what a run allocates, with the most each may ask for on any machine (``inf``, where a
#: field allows it, means "no limit" and allocates nothing). Beyond these, :func:`check_resources` also
#: refuses a run whose buffers would need more than :data:`MEMORY_SHARE` of this machine's memory.
RESOURCE_LIMITS: dict[str, tuple[float, str]] = {
    "runtime.max_orders": (1_000_000, "orders a strategy may want at once, and 4x as many live orders"),
    "runtime.trade_buffer": (100_000_000, "recent trades in the strategy's view"),
    "runtime.book_levels": (1_000_000, "book levels per side in the strategy's view"),
    "runtime.initial_capacity": (1_000_000_000, "rows per record table before growing"),
    "execution.max_actions_per_second": (1_000_000_000, "request times kept for a 1 s window; inf means no limit"),
    "venue.last_trades_capacity": (100_000_000, "trades hftbacktest keeps per step"),
    "venue.roi_margin": (1.0, "hftbacktest's price vector padded by this fraction of the mid price per side"),
}
#: Most of the machine's memory one run's buffers may take.
MEMORY_SHARE = 0.5


def machine_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup (container) limit;
    None where neither can be read."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def resource_bytes(run: RunConfig) -> dict[str, int]:
    """Estimated bytes a run allocates for each option of :data:`RESOURCE_LIMITS` that sizes memory
    (an upper bound: record tables at twice what one evaluation step may append)."""
    from hftlab.runtime.lifecycle import LIVE_DTYPE, PLAN_DTYPE
    from hftlab.runtime.records import FILL_DTYPE, TABLES

    rt = run.runtime
    record_row = sum(dtype.itemsize for dtype in TABLES.values())
    # new_orders: live, step fills and visible x4; plan x5; wanted, accepted, rules, order_idx
    per_order = 4 * (LIVE_DTYPE.itemsize + FILL_DTYPE.itemsize + 24) + 5 * PLAN_DTYPE.itemsize + 50
    rows_per_step = 19 * rt.max_orders + 8  # lifecycle.rows_per_step: 4 x live + 3 x wanted + 8
    rate = run.execution.max_actions_per_second
    return {
        "runtime.max_orders": rt.max_orders * per_order + 2 * rows_per_step * record_row,
        "runtime.initial_capacity": rt.initial_capacity * record_row,
        "runtime.trade_buffer": 2 * 32 * rt.trade_buffer,  # the loop's view and the strategy's
        "runtime.book_levels": 2 * 32 * rt.book_levels,
        "execution.max_actions_per_second": 0 if math.isinf(rate) else 8 * int(rate),
        "venue.last_trades_capacity": 64 * run.venue.last_trades_capacity,  # hftbacktest's 64-byte events
    }


def check_resources(run: RunConfig) -> None:
    """Refuse, before anything is allocated, an option of :data:`RESOURCE_LIMITS` above its limit
    (``resource-limit``) or a run whose buffers would take more than :data:`MEMORY_SHARE` of
    :func:`machine_memory` (``memory-limit``, naming the option that asks for the most)."""
    for key, (limit, what) in RESOURCE_LIMITS.items():
        value = config_value(run, key)
        if value > limit and not (math.isinf(value) and key == "execution.max_actions_per_second"):
            raise ConfigError(f"{value:,} is above the limit {limit:,.0f}: {what}", key=key, rule="resource-limit")
    memory = machine_memory()
    if memory is None:
        return
    need = resource_bytes(run)
    total = sum(need.values())
    if total > MEMORY_SHARE * memory:
        key = max(need, key=need.__getitem__)
        raise ConfigError(
            f"{config_value(run, key)!r} makes the run's buffers need ~{_gib(total)} ({_gib(need[key])} for "
            f"this option), more than {MEMORY_SHARE:.0%} of this machine's {_gib(memory)} of memory",
            key=key,
            rule="memory-limit",
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def composition_error(exc: BaseException) -> ConfigError:
    """A Hydra or OmegaConf error (unknown key, wrong type, value outside an enum, unknown config group
    option, override syntax) as one :class:`ConfigError` ``<key>: [<rule>] <message>``."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    key = str(getattr(cause, "full_key", None) or getattr(exc, "full_key", None) or "")
    lines = [_first_line(e) for e in (cause, exc) if e is not None and _first_line(e)]
    detail = lines[0] if lines else type(exc).__name__
    if len(lines) > 1 and lines[1] != detail:
        detail += f" ({lines[1]})"
    if isinstance(exc, OverrideParseException):
        return ConfigError(detail, key=key or "overrides", rule="override-syntax")
    if isinstance(exc, MissingConfigException):
        group = (exc.missing_cfg_file or "").rpartition("/")[0]
        options = f"; available: {', '.join(exc.options)}" if exc.options else ""
        return ConfigError(detail + options, key=group or "defaults", rule="unknown-option")
    if isinstance(cause, ConfigKeyError | ConfigAttributeError):
        return ConfigError(detail, key=key or "overrides", rule="unknown-key")
    if "expected one of" in detail:
        return ConfigError(detail, key=key, rule="invalid-choice")
    return ConfigError(detail, key=key or "config", rule="wrong-type" if key else "invalid-config")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else ""
