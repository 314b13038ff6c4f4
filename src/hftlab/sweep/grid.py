"""A multirun's grid, expanded into every job's overrides the way Hydra's basic sweeper runs them.

Only Hydra's public override API is used (``OverridesParser``, ``Override``), so this does not depend on
the basic sweeper's private module; tests compare it with that sweeper, the reference, on many grids.

The rules (those of ``hydra/sweeper=basic``): the grid is ``hydra.sweeper.params`` (``key: values``) followed
by the command line's task overrides; each override becomes a list of ``key=value`` strings (one for a
plain value, one per value of a comma list, ``range()``, ``choice()`` or ``glob()``); a key given again
(same ``+``/``++``/``~`` prefix and ``@package``) replaces its values but keeps its first position; jobs are
the cartesian product of the lists, the last key varying fastest.
"""

from __future__ import annotations

import itertools
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override, RangeSweep, Transformer, ValueType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from hftlab.errors import ConfigError


def hydra_message(exc: BaseException) -> str:
    """The message of a Hydra or OmegaConf exception on one line, with its cause's where Hydra keeps the
    detail there."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        detail = str(cause).strip().splitlines()[0]
        if detail not in text:
            text = f"{text}: {detail}"
    return text


def grid_definition(config: DictConfig) -> list[str]:
    """``hydra.sweeper.params`` as ``key=values`` strings, then the command line's task overrides."""
    params = config.hydra.sweeper.get("params") or {}
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)  # as Hydra hands them to its sweeper
    assert isinstance(task, list)
    return [f"{k}={v}" for k, v in params.items()] + [str(o) for o in task]


def _choices(override: Override) -> list[str]:
    """Every ``key=value`` string ``override`` stands for, in the basic sweeper's order."""
    key = override.get_key_element()
    if not override.is_sweep_override():
        return [f"{key}={override.get_value_element_as_str()}"]
    if not override.is_discrete_sweep():
        kind = override.value_type.name if override.value_type is not None else "?"
        raise ConfigError(
            f"sweep override {override.input_line!r}: the basic sweeper cannot enumerate a {kind} sweep "
            "(interval() needs an optimizing sweeper such as Optuna or Nevergrad)"
        )
    if override.value_type == ValueType.GLOB_CHOICE_SWEEP and override.config_loader is None:
        raise ConfigError(
            f"sweep override {override.input_line!r}: glob() over a config group is unsupported here: "
            "listing the group's options needs Hydra's config loader (only available during a Hydra run)"
        )
    value = override.value()
    values: Any
    if isinstance(value, ChoiceSweep | RangeSweep) and value.shuffle:
        # Hydra shuffles again when it runs the sweep: only the set of points is knowable, not their order.
        values = map(Transformer.str, value.list if isinstance(value, ChoiceSweep) else value.range())
    else:
        values = override.sweep_string_iterator()
    return [f"{key}={v}" for v in values]


def parse(grid: list[str], config_loader: ConfigLoader | None = None, what: str = "sweep grid") -> list[Override]:
    """``grid`` (override strings as typed on a command line) parsed by Hydra; errors name ``what``."""
    try:
        return OverridesParser.create(config_loader=config_loader).parse_overrides(grid)
    except HydraException as exc:
        raise ConfigError(f"{what}: {hydra_message(exc)}") from None


def expand(grid: list[str], config_loader: ConfigLoader | None = None, what: str = "sweep grid") -> list[list[str]]:
    """Every job's overrides for the grid definition ``grid`` (strings as typed on a command line)."""
    overrides = parse(grid, config_loader, what)
    lists: dict[str, list[str]] = {}
    for override in overrides:
        lists[override.get_key_element()] = _choices(override)  # a repeated key keeps its first position
    return [list(job) for job in itertools.product(*lists.values())]


def sweep_points(config: DictConfig, config_loader: ConfigLoader | None = None) -> tuple[list[str], list[list[str]]]:
    """The grid definition of the multirun ``config`` and every job's overrides, in the order Hydra's basic
    sweeper launches them (``shuffle()`` sweeps: the same points, unshuffled).

    ``config_loader`` lists config groups for ``glob()``; by default, that of the running Hydra app, if any.
    """
    if config_loader is None and GlobalHydra.instance().is_initialized():
        config_loader = GlobalHydra.instance().config_loader()
    grid = grid_definition(config)
    return grid, expand(grid, config_loader)
