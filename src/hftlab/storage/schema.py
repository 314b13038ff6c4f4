"""The canonical schema: venue-neutral, normalized order-book rows.

Every dataset in Canonical Storage is a set of *feeds*. A feed is one recorded channel of a venue
(incremental book updates, full book snapshots, trades, best bid/offer), so within a feed both the
exchange timestamps and the local (receive) timestamps never go backwards.

One canonical row has these columns (Parquet types in brackets):

- ``exch_ts`` [int64]: exchange timestamp, integer nanoseconds since the Unix epoch (UTC).
- ``local_ts`` [int64]: local receive timestamp, integer nanoseconds, after the dataset's recorded
  local-timestamp correction.
- ``kind`` [uint8]: :class:`Kind`.
- ``side`` [int8]: :class:`Side` (book side for book rows, initiator side for trades).
- ``price`` [float64]: for ``CLEAR`` rows, the price up to which that side is cleared.
- ``qty`` [float64]: level quantity (0 removes the level) or traded quantity.
- ``seq`` [int64]: the row's rank in the dataset's Processing Order (exchange time, then local time,
  then feed, then source order). Unique across all feeds of a dataset; it keeps ties stable and lets
  the Historical Input Feeder merge feeds without sorting.

The numeric codes of :class:`Kind` equal hftbacktest's event codes on purpose (fewer conversions on
the hot path); the schema itself does not depend on hftbacktest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from hftlab.errors import ConfigError, InvalidNameError

#: Version of the canonical schema; stored in every manifest and every Parquet file.
SCHEMA_VERSION = 1


class Kind(IntEnum):
    """What a canonical row describes."""

    #: A price level's quantity changed (quantity 0 removes the level).
    DEPTH = 1
    #: A trade printed; ``side`` is the initiator's side.
    TRADE = 2
    #: The book side is cleared from the best price up to ``price``; snapshot rows follow.
    CLEAR = 3
    #: One level of a full book snapshot.
    SNAPSHOT = 4
    #: Best bid (side BID) or best offer (side ASK) update.
    BBO = 5


class Side(IntEnum):
    """Book side of a level, or the initiator of a trade."""

    BID = 1  #: bid side of the book; for trades, a buy initiator
    ASK = -1  #: ask side of the book; for trades, a sell initiator
    NONE = 0  #: unknown initiator (some trade feeds do not say)


#: Feeds of the canonical schema and the row kinds each may hold, in Processing Order tie-break rank:
#: at equal timestamps a trade comes before the depth update that reflects it (hftbacktest's queue
#: models would otherwise advance our queue position twice), and a snapshot before both.
FEED_KINDS: dict[str, frozenset[int]] = {
    "snapshot": frozenset({Kind.CLEAR, Kind.SNAPSHOT}),
    "trades": frozenset({Kind.TRADE}),
    "depth": frozenset({Kind.DEPTH}),
    "bbo": frozenset({Kind.BBO}),
}
FEEDS: tuple[str, ...] = tuple(FEED_KINDS)
#: Order-by-order (L3) feeds: none in this schema version (L2 only), so nothing can feed an L3 queue model.
L3_FEEDS: frozenset[str] = frozenset()
#: Feeds a backtest uses unless the dataset reference says otherwise.
DEFAULT_FEEDS: tuple[str, ...] = ("snapshot", "depth", "trades")

#: Column name -> numpy dtype of a stored canonical row.
COLUMNS: dict[str, np.dtype[Any]] = {
    "exch_ts": np.dtype(np.int64),
    "local_ts": np.dtype(np.int64),
    "kind": np.dtype(np.uint8),
    "side": np.dtype(np.int8),
    "price": np.dtype(np.float64),
    "qty": np.dtype(np.float64),
    "seq": np.dtype(np.int64),
}

ARROW_SCHEMA = pa.schema(
    [pa.field(name, pa.from_numpy_dtype(dtype), nullable=False) for name, dtype in COLUMNS.items()],
    metadata={b"hftlab.schema_version": str(SCHEMA_VERSION).encode()},
)

ContractType = Literal["linear", "inverse"]


@dataclass(frozen=True)
class Instrument:
    """Instrument metadata stored with a dataset."""

    venue: str
    symbol: str
    tick_size: float
    lot_size: float
    contract_type: ContractType = "linear"
    contract_size: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size", "contract_size"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"instrument {name} must be a finite number > 0, got {value!r}")
        if self.contract_type not in ("linear", "inverse"):
            raise ConfigError(f"instrument contract_type must be 'linear' or 'inverse', got {self.contract_type!r}")
        for name in ("venue", "symbol"):
            check_name(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instrument:
        return cls(**data)


def check_name(key: str, value: str) -> str:
    """Refuse names that would escape a directory when used as a path component."""
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or any(ch in value for ch in "/\\\0")
        or value.startswith(".")
    ):
        raise InvalidNameError(
            f"{key} {value!r} is not a valid name: it becomes a path component, so it must be non-empty, "
            "must not start with '.', and must not contain '/', '\\' or NUL"
        )
    return value


@dataclass
class FeedFrame:
    """Rows of one feed as an importer parsed them, in source order, before a ``seq`` is assigned.

    ``source`` and ``line`` exist for error messages only: ``line[i]`` is the 1-based line (or row) of
    ``source`` that row ``i`` came from. They are not stored.
    """

    feed: str
    source: str
    exch_ts: np.ndarray
    local_ts: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    line: np.ndarray

    def __len__(self) -> int:
        return len(self.exch_ts)

    @classmethod
    def from_columns(cls, feed: str, source: str, **columns: Any) -> FeedFrame:
        """Build a frame, casting each column to its canonical dtype (``line`` defaults to 1..n)."""
        n = len(columns["exch_ts"])
        line = columns.pop("line", None)
        cast = {name: np.ascontiguousarray(columns[name], dtype=COLUMNS[name]) for name in COLUMNS if name != "seq"}
        line_arr = np.arange(1, n + 1, dtype=np.int64) if line is None else np.asarray(line, dtype=np.int64)
        return cls(feed=feed, source=source, line=line_arr, **cast)

    def take(self, index: np.ndarray) -> FeedFrame:
        """The rows at ``index`` (a boolean mask or integer positions)."""
        return FeedFrame(
            feed=self.feed,
            source=self.source,
            line=self.line[index],
            **{name: getattr(self, name)[index] for name in COLUMNS if name != "seq"},
        )


@dataclass
class IngestResult:
    """What an importer or generator hands to Canonical Storage: rows, instrument and lineage."""

    instrument: Instrument
    feeds: list[FeedFrame]
    #: Lineage: converter name and version, raw input hashes, generator seed and parameters.
    lineage: dict[str, Any] = field(default_factory=dict)
