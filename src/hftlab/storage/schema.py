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

**Order-by-order (L3) rows** (schema version 2) live in the ``orders`` feed, whose files have one more
column, ``order_id`` [uint64] (after ``qty``). Each row states the order *after* the event:

- ``ADD``: a new resting order ``order_id`` on ``side`` at ``price`` for ``qty``;
- ``CANCEL``: the order lost quantity without trading; ``qty`` is what remains (0: it left the book),
  ``price`` its price. A partial cancel keeps the order's queue place;
- ``MODIFY``: the order now rests at ``price`` for ``qty`` (same price and less quantity keeps its
  queue place, anything else sends it to the back, as on CME and NASDAQ);
- ``FILL``: the resting order traded ``qty`` at ``price``; ``side`` is the resting order's side. It does
  not change the book by itself: the ``CANCEL`` (or ``MODIFY``) row that follows removes the traded
  quantity, as in Databento's MBO records and hftbacktest's L3 events;
- ``CLEAR``: every order of ``side`` (0: both sides) leaves the book; ``price`` is not used for a clear
  of both sides (importers write a price of the book image that follows).

The L3 rules (:mod:`hftlab.storage.l3`) hold within the feed: no ``CANCEL``/``MODIFY``/``FILL`` of an
order that is not in the book, no ``ADD`` of one that is, no ``CANCEL`` that leaves more than the order
had, no ``FILL`` larger than the order. L2 feeds of the same dataset (``snapshot`` and ``depth``) can be
derived from the ``orders`` feed (:func:`hftlab.storage.l3.derive_l2`), so L2 queue models run on it.

A dataset without an L3 feed is stored exactly as in schema version 1 (no ``order_id`` column, version 1
in its manifest and content hash), so datasets promoted before version 2 keep their versions.

The numeric codes of :class:`Kind` equal hftbacktest's event codes on purpose (fewer conversions on
the hot path); the schema itself does not depend on hftbacktest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from hftlab.errors import ConfigError, InvalidNameError

#: Version of the canonical schema this code reads and writes (2: order-by-order feeds); a dataset's
#: manifest records the version its layout needs (:func:`schema_version_for`).
SCHEMA_VERSION = 2
#: The version of a dataset without order-by-order (L3) feeds: its layout did not change in version 2.
L2_SCHEMA_VERSION = 1


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
    #: L3: a new resting order (``orders`` feed).
    ADD = 10
    #: L3: an order lost quantity without trading; ``qty`` is what remains (0: it left the book).
    CANCEL = 11
    #: L3: an order's new price and quantity.
    MODIFY = 12
    #: L3: a resting order traded ``qty``; the book changes with the CANCEL/MODIFY row that follows.
    FILL = 13


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
    #: Order-by-order rows (schema version 2).
    "orders": frozenset({Kind.CLEAR, Kind.ADD, Kind.CANCEL, Kind.MODIFY, Kind.FILL}),
    #: Executions of hidden (non-displayed) orders, kept apart from the visible ``trades`` (LOBSTER type 5):
    #: prices may lie off the tick grid (sub-penny); no queue model is fed them unless asked.
    "hidden": frozenset({Kind.TRADE}),
}
FEEDS: tuple[str, ...] = tuple(FEED_KINDS)
#: Order-by-order (L3) feeds: what hftbacktest's L3 FIFO queue model needs.
L3_FEEDS: frozenset[str] = frozenset({"orders"})
#: Feeds whose prices need not lie on the tick grid.
OFF_GRID_FEEDS: frozenset[str] = frozenset({"hidden"})
#: Feeds a backtest uses unless the dataset reference says otherwise.
DEFAULT_FEEDS: tuple[str, ...] = ("snapshot", "depth", "trades")
#: Feeds a backtest with the L3 FIFO queue model uses unless the dataset reference says otherwise.
L3_DEFAULT_FEEDS: tuple[str, ...] = ("orders", "trades")
#: L2 book feeds: never fed together with an L3 feed (hftbacktest's L3 venue would see two books).
L2_BOOK_FEEDS: frozenset[str] = frozenset({"snapshot", "depth", "bbo"})

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

#: Columns of an order-by-order (L3) feed's rows: :data:`COLUMNS` with ``order_id`` before ``seq``.
L3_COLUMNS: dict[str, np.dtype[Any]] = {
    **{k: v for k, v in COLUMNS.items() if k != "seq"},
    "order_id": np.dtype(np.uint64),
    "seq": np.dtype(np.int64),
}


def feed_columns(feed: str) -> dict[str, np.dtype[Any]]:
    """The stored columns of ``feed``'s rows (L3 feeds carry ``order_id``)."""
    return L3_COLUMNS if feed in L3_FEEDS else COLUMNS


def schema_version_for(feeds: Iterable[str]) -> int:
    """The schema version a dataset holding ``feeds`` is stored under: 2 with an L3 feed, else 1."""
    return SCHEMA_VERSION if L3_FEEDS & set(feeds) else L2_SCHEMA_VERSION


def arrow_schema(feed: str) -> pa.Schema:
    """The Parquet schema of ``feed``'s files (the schema version they need in their metadata)."""
    columns = feed_columns(feed)
    return pa.schema(
        [pa.field(name, pa.from_numpy_dtype(dtype), nullable=False) for name, dtype in columns.items()],
        metadata={b"hftlab.schema_version": str(schema_version_for([feed])).encode()},
    )


ARROW_SCHEMA = arrow_schema("depth")

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
    #: uint64 order ids: an L3 feed's rows only (None for every other feed).
    order_id: np.ndarray | None = None
    #: What ``line`` counts in messages (``line``, ``row``, ``record``); None: judged by the file name.
    unit: str | None = None

    def __len__(self) -> int:
        return len(self.exch_ts)

    @property
    def columns(self) -> tuple[str, ...]:
        """The stored columns this frame holds (``seq`` excluded: storage assigns it)."""
        return tuple(name for name in feed_columns(self.feed) if name != "seq")

    @classmethod
    def from_columns(cls, feed: str, source: str, **columns: Any) -> FeedFrame:
        """Build a frame, casting each column to its canonical dtype (``line`` defaults to 1..n; ``order_id``
        required for an L3 feed, refused for any other)."""
        n = len(columns["exch_ts"])
        line = columns.pop("line", None)
        if ("order_id" in columns) != (feed in L3_FEEDS):
            raise ConfigError(f"feed '{feed}': order_id is {'required' if feed in L3_FEEDS else 'an L3 column only'}")
        names = [name for name in feed_columns(feed) if name != "seq"]
        cast: dict[str, Any] = {name: np.ascontiguousarray(columns[name], dtype=L3_COLUMNS[name]) for name in names}
        line_arr = np.arange(1, n + 1, dtype=np.int64) if line is None else np.asarray(line, dtype=np.int64)
        return cls(feed=feed, source=source, line=line_arr, **cast)

    @classmethod
    def from_rows(cls, feed: str, source: str, rows: Sequence[tuple[Any, ...]]) -> FeedFrame:
        """Build a frame from row tuples ``(exch_ts, local_ts, kind, side, price, qty[, order_id], line)``
        (``order_id`` for an L3 feed only)."""
        dtypes = {**{n: t for n, t in feed_columns(feed).items() if n != "seq"}, "line": np.dtype(np.int64)}
        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [()] * len(dtypes)
        # each column straight to its dtype: inferred, a uint64 order id >= 2**63 beside smaller ones is float64
        arrays = {n: np.asarray(c, dtype=t) for (n, t), c in zip(dtypes.items(), columns, strict=True)}
        return cls.from_columns(feed, source, **arrays)

    def where(self, i: int) -> str:
        """Where row ``i`` came from, for messages: ``record N`` of a binary market-data file (DBN),
        ``row N`` of a numpy event file (``.npz``/``.npy``), else ``line N``."""
        name = self.source.lower()
        if self.unit is not None:
            word = self.unit
        elif name.endswith((".dbn", ".dbn.zst", ".zst")):
            word = "record"
        elif name.endswith((".npz", ".npy")):
            word = "row"
        else:
            word = "line"
        return f"{word} {int(self.line[i])}"

    def take(self, index: np.ndarray) -> FeedFrame:
        """The rows at ``index`` (a boolean mask or integer positions)."""
        return FeedFrame(
            feed=self.feed,
            source=self.source,
            unit=self.unit,
            line=self.line[index],
            **{name: getattr(self, name)[index] for name in self.columns},
        )


@dataclass
class IngestResult:
    """What an importer or generator hands to Canonical Storage: rows, instrument and lineage."""

    instrument: Instrument
    feeds: list[FeedFrame]
    #: Lineage: converter name and version, raw input hashes, generator seed and parameters.
    lineage: dict[str, Any] = field(default_factory=dict)


def processing_order(frames: Sequence[FeedFrame]) -> np.ndarray:
    """The Processing Order of the rows of ``frames`` taken together (indexes into their concatenation):
    by exchange time, local time, feed rank (:data:`FEEDS` order), then order within its feed."""
    rank = {name: i for i, name in enumerate(FEEDS)}
    exch = np.concatenate([f.exch_ts for f in frames])
    local = np.concatenate([f.local_ts for f in frames])
    feed_rank = np.concatenate([np.full(len(f), rank[f.feed], dtype=np.int8) for f in frames])
    within = np.concatenate([np.arange(len(f), dtype=np.int64) for f in frames])
    return np.lexsort((within, feed_rank, local, exch))
