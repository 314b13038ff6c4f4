"""Every error hftlab raises for bad input: each names the file, the row or key, and the rule broken.

The tree::

    HftlabError            bad input the user can act on (the CLI prints it as one line, exit code 2)
    ├── ConfigError        a configuration value is missing, unknown, of the wrong type or out of range
    │   └── InvalidNameError   a name (dataset id, venue, symbol) that cannot be a path component
    ├── DataError          input data breaks a rule of the canonical schema or of an importer
    ├── StorageError       Canonical Storage refuses an operation
    │   └── FeedError      a stored dataset cannot be fed as asked (window, queue model, stream order)
    ├── StrategyError      a strategy broke its output contract or raised
    ├── VenueError         hftbacktest returned an error code
    ├── ReproduceError     a stored run cannot be re-executed as it was
    └── WriteError         the filesystem refused a write: full, read-only, no permission (see :func:`writing`)

Anything else that escapes is a bug in hftlab: the CLI shows its traceback (exit code 3).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar


class HftlabError(Exception):
    """Base class: an error the user can act on (printed without a traceback by the CLI)."""


class DataError(HftlabError):
    """Input data breaks a rule of the canonical schema or of an importer.

    Rules of the canonical schema are listed in :mod:`hftlab.storage.validate`. Importers add:
    ``unreadable-input`` (missing, truncated or undecodable file), ``malformed-record`` /
    ``malformed-row`` (a line that does not parse), ``wrong-type`` (missing key/column or a value of the
    wrong type), ``symbol-mismatch``, ``unsupported-kind`` (an event kind the schema cannot hold).

    ``source`` is the file (or feed) concerned, ``location`` the row/line ("line 12") or key,
    ``rule`` a short stable name of the rule (tests and tools match on it).
    """

    def __init__(self, rule: str, source: str, location: str | None, detail: str) -> None:
        self.rule = rule
        self.source = source
        self.location = location
        self.detail = detail
        where = f"{source}, {location}" if location else source
        super().__init__(f"{where}: [{rule}] {detail}")


class StorageError(HftlabError):
    """Canonical Storage refuses an operation (unknown dataset, tampered file, immutability)."""


class FeedError(StorageError):
    """The Historical Input Feeder cannot feed a stored dataset as asked (an L3 queue model on L2 data,
    local-time disorder longer than a piece of the stream)."""


class ConfigError(HftlabError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    With ``key`` and ``rule`` the message reads ``<key>: [<rule>] <detail>``, the form every config
    error converges on: ``key`` is the full config key (``runtime.max_orders``) or command-line option
    (``--local-ts-correction``), ``rule`` a short stable name (``resource-limit``, ``time-format``,
    ``invalid-choice``, ...). A bare message is still accepted (it already names its key).
    """

    def __init__(self, detail: str, *, key: str | None = None, rule: str | None = None) -> None:
        self.key = key
        self.rule = rule
        self.detail = detail
        message = f"[{rule}] {detail}" if rule else detail
        super().__init__(f"{key}: {message}" if key else message)

    def __reduce__(self) -> tuple[object, tuple[str]]:  # key and rule survive a trip to another process
        return functools.partial(type(self), key=self.key, rule=self.rule), (self.detail,)


class InvalidNameError(ConfigError):
    """A name (dataset id, venue, symbol) that cannot be a path component."""


class StrategyError(HftlabError):
    """A strategy broke its output contract or raised: names the strategy file, the rule, the event time
    and (for output rules) the offending row of ``out``. ``rule`` is a name of
    :data:`hftlab.runtime.records.RULES`, or ``raised``."""

    def __init__(self, path: object, rule: str, event_time_ns: int, row: int | None, detail: str) -> None:
        self.path = path
        self.rule = rule
        self.event_time_ns = event_time_ns
        self.row = row
        self.detail = detail
        where = f", row {row}" if row is not None else ""
        super().__init__(f"strategy {path}: [{rule}] at event time {event_time_ns} ns{where}: {detail}")


class VenueError(HftlabError):
    """hftbacktest returned an error code."""


class ReproduceError(HftlabError):
    """A stored run cannot be re-executed as it was (missing data, changed strategy source)."""


class WriteError(HftlabError):
    """The filesystem refused a write (``rule``: ``no-space``, ``read-only``, ``permission``); ``path`` is
    where hftlab was writing. Whoever raises it has removed what it had written there."""

    RULES: ClassVar[dict[int, str]] = {errno.ENOSPC: "no-space", errno.EDQUOT: "no-space", errno.EROFS: "read-only",
             errno.EACCES: "permission", errno.EPERM: "permission"}  # fmt: skip

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path, self.rule = path, self.RULES[exc.errno or 0]
        reason = exc.strerror or str(exc)
        super().__init__(f"{path}: [{self.rule}] {reason} while writing there; nothing partial was kept")


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a full, read-only or forbidden filesystem under ``path`` into a :class:`WriteError` naming it
    (pyarrow's errors do not name their file); other OS errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WriteError.RULES:
            raise
        raise WriteError(path, exc) from exc
