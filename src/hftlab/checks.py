"""The one declarative way configuration ranges are stated and checked.

A config dataclass states a field's rule where it declares the field::

    interval_ns: int = ranged(100_000_000, gt=0)
    max_drawdown: float = ranged(INF, ge=0, allow_inf=True)

and :func:`check` walks a whole config tree once, naming each key by its full path
(``runtime.interval_ns``) in the :class:`~hftlab.errors.ConfigError` it raises. Rules that tie several
fields together live in an optional ``check_invariants(prefix)`` method of the dataclass, which
:func:`check` calls after the fields. Choice sets are enums (Hydra refuses other values at composition;
:func:`check` refuses them for configs built in Python).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hftlab.errors import ConfigError

_RULE = "hftlab.range"


@dataclass(frozen=True)
class Range:
    """A number rule: ``> gt``, ``>= ge``, finite unless ``allow_inf``; or membership in ``choices``."""

    gt: float | None = None
    ge: float | None = None
    allow_inf: bool = False
    choices: tuple[str, ...] | None = None  #: for text fields (and each item of a list of text)

    def check(self, key: str, value: Any) -> None:
        if self.choices is not None:
            items = value if isinstance(value, list | tuple) else [value]
            bad = [v for v in items if v not in self.choices]
            if bad or (isinstance(value, list | tuple) and not value):
                raise ConfigError(f"{key}: {value!r} is not {'a non-empty list of ' if items is value else ''}"
                                  f"one of {list(self.choices)}")  # fmt: skip
            return
        if isinstance(value, list | tuple):
            if not value:
                raise ConfigError(f"{key}: must be a non-empty list, got {value!r}")
            for i, item in enumerate(value):
                self.check(f"{key}[{i}]", item)
            return
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
        if math.isnan(number) or (math.isinf(number) and not self.allow_inf):
            raise ConfigError(f"{key}: must be a {'' if self.allow_inf else 'finite '}number, got {value!r}")
        if self.gt is not None and not number > self.gt:
            raise ConfigError(f"{key}: must be > {self.gt:g}, got {value!r}")
        if self.ge is not None and not number >= self.ge:
            raise ConfigError(f"{key}: must be >= {self.ge:g}, got {value!r}")


def ranged(
    default: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    allow_inf: bool = False,
    choices: Sequence[str] | None = None,
) -> Any:
    """A dataclass field with a default and the rule its values must follow (a list or tuple default
    becomes a new list per instance)."""
    meta = {_RULE: Range(gt, ge, allow_inf, None if choices is None else tuple(choices))}
    if isinstance(default, list | tuple):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check(config: Any, prefix: str = "") -> None:
    """Check every rule of a config dataclass tree; errors name the full key (``prefix.field``)."""
    for f in dataclasses.fields(config):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check(value, key)
            continue
        rule = f.metadata.get(_RULE)
        if rule is not None:
            rule.check(key, value)
        elif isinstance(f.default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        elif isinstance(f.default, enum.Enum) and value not in {m.value for m in type(f.default)}:
            raise ConfigError(f"{key}: {value!r} is not one of {[m.value for m in type(f.default)]}")
    invariants = getattr(config, "check_invariants", None)
    if invariants is not None:
        invariants(prefix)
