"""The Simulated Venue: hftbacktest built from a :class:`VenueConfig` and a fed Event stream.

This module builds the backtest object; :mod:`hftlab.venue.abi` (the compiled side of the Venue Adapter)
drives it through hftbacktest's C functions. It owns every array hftbacktest reads through a raw pointer
(events, initial snapshot, order latencies) for the whole life of the backtest, and closes the backtest
exactly once, also when the run fails (hftbacktest leaks ~500 MiB per 10M events without it and aborts
on a second call).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from hftlab.errors import ConfigError, FeedError
from hftlab.feed import FeedData
from hftlab.feed_kernels import book_px_range
from hftlab.hftbacktest_types import EVENT_DTYPE, EXCH_EVENT, LOCAL_EVENT
from hftlab.storage.catalog import Dataset
from hftlab.storage.schema import DEFAULT_FEEDS, L2_BOOK_FEEDS, L3_DEFAULT_FEEDS, L3_FEEDS
from hftlab.venue import abi
from hftlab.venue.abi import Backtest
from hftlab.venue.config import ExchangeModel, FeeModel, LatencyModel, QueueModel, VenueConfig

#: hftbacktest's order-latency record (hftbacktest.data.utils.feed_order_latency.order_latency_dtype).
ORDER_LATENCY_DTYPE = np.dtype([("req_ts", "i8"), ("exch_ts", "i8"), ("resp_ts", "i8"), ("_padding", "i8")], align=True)
EXCH_LOCAL = EXCH_EVENT | LOCAL_EVENT


def _last_per_interval(rows: np.ndarray, resample_ns: int) -> np.ndarray:
    bucket = rows["local_ts"] // resample_ns
    return rows[np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])]


def feed_derived_latency(events: np.ndarray | Iterable[np.ndarray], config: VenueConfig) -> np.ndarray:
    """Order latencies from feed latency, resampled: the last EXCH|LOCAL row of each interval.

    Same model as hftbacktest's ``generate_order_latency`` (which needs a file and polars); this one
    works on the fed stream, one array or its pieces in order (the last row of an interval that a piece
    boundary cuts is the later piece's, as on the whole).
    """
    lat = config.latency
    pieces = [events] if isinstance(events, np.ndarray) else events
    kept = [_last_per_interval(p[(p["ev"] & EXCH_LOCAL) == EXCH_LOCAL], lat.resample_ns) for p in pieces]
    rows = _last_per_interval(np.concatenate(kept), lat.resample_ns) if kept else np.empty(0, EVENT_DTYPE)
    if len(rows) == 0:
        raise ConfigError("venue.latency.model=feed_derived: the fed events hold no rows to derive latency from")
    feed = (rows["local_ts"] - rows["exch_ts"]).astype(np.float64)
    out = np.zeros(len(rows), dtype=ORDER_LATENCY_DTYPE)
    out["req_ts"] = rows["local_ts"]
    out["exch_ts"] = out["req_ts"] + np.rint(lat.entry_mul * feed + lat.entry_ns).astype(np.int64)
    out["resp_ts"] = out["exch_ts"] + np.rint(lat.response_mul * feed + lat.response_ns).astype(np.int64)
    return out


def roi_bounds(fed: FeedData, margin: float) -> tuple[float, float]:
    """ROI vector bounds covering every book price fed (stream and initial snapshot), widened by
    ``margin`` × mid."""
    if fed.book_px is not None:
        lo, hi = fed.book_px
    else:
        lo, hi = np.inf, -np.inf
        for piece in (*fed.pieces(), fed.initial_snapshot):
            lo, hi = book_px_range(piece, lo, hi)
    if not lo <= hi:
        raise ConfigError("venue.depth=roi_vector: the fed events hold no book prices to derive ROI bounds from")
    pad = margin * (lo + hi) / 2.0
    return max(lo - pad, 0.0), hi + pad


def fed_feeds(config: VenueConfig, dataset: Dataset, feeds: Sequence[str]) -> tuple[str, ...]:
    """The feeds a run of ``config`` on ``dataset`` is fed: ``feeds`` as given, except that with the L3 FIFO
    queue model the default L2 feeds become :data:`L3_DEFAULT_FEEDS` (the order-by-order rows and trades).
    Refuses, before any run, what cannot be fed (:class:`FeedError`, :class:`ConfigError`):

    - ``l3_fifo`` on a dataset without order-by-order rows (hftbacktest would run with a frozen book and
      no fills), or with L2 book feeds among its feeds (the L3 venue would see two books), or with
      ``venue.exchange=partial_fill`` (hftbacktest has no L3 partial-fill exchange);
    - an L2 queue model fed an L3 feed (it reads only L2 rows: use the derived ``snapshot``/``depth``).
    """
    held = set(dataset.manifest.feeds)
    if config.queue.model != QueueModel.l3_fifo:
        l3 = sorted(L3_FEEDS & set(feeds))
        if l3:
            raise ConfigError(
                f"dataset.feeds {list(feeds)}: venue.queue.model={config.queue.model} is an L2 queue model and reads no "
                f"order-by-order feed ({', '.join(l3)}); feed snapshot, depth and trades (derived from the orders "
                "when the dataset is L3), or choose venue.queue.model=l3_fifo"
            )
        return tuple(feeds)
    if not L3_FEEDS & held:
        raise FeedError(
            f"venue.queue.model=l3_fifo needs order-by-order (L3) rows; dataset '{dataset.id}' {dataset.version} "
            f"holds L2 feeds only ({', '.join(dataset.manifest.feeds)}): choose risk_averse, power_prob or log_prob"
        )
    if config.exchange != ExchangeModel.no_partial_fill:
        raise ConfigError(
            "venue.queue.model=l3_fifo needs venue.exchange=no_partial_fill (hftbacktest's L3 exchange fills an "
            "order whole when the queue ahead of it trades or the price crosses it)"
        )
    chosen = L3_DEFAULT_FEEDS if tuple(feeds) == DEFAULT_FEEDS else tuple(feeds)
    l2 = sorted(L2_BOOK_FEEDS & set(chosen))
    if l2 or not L3_FEEDS & set(chosen):
        raise ConfigError(
            f"dataset.feeds {list(chosen)}: venue.queue.model=l3_fifo is fed the order-by-order feed "
            f"({', '.join(sorted(L3_FEEDS))}) and trades, no L2 book feed" + (f" ({', '.join(l2)})" if l2 else "")
        )
    return chosen


@dataclass
class VenueArrays:
    """Every array hftbacktest holds a raw pointer to; kept alive for the backtest's whole life."""

    events: np.ndarray
    initial_snapshot: np.ndarray
    order_latency: np.ndarray | None


class SimulatedVenue:
    """Context manager owning one hftbacktest backtest: ``with SimulatedVenue(fed, cfg) as bt: ...`` gives
    a :class:`~hftlab.venue.abi.Backtest` handle for the compiled runtime (``jitclass()`` wraps the same
    object in hftbacktest's own API, for the plain reference loop)."""

    def __init__(self, fed: FeedData, config: VenueConfig) -> None:
        self.config = config.resolve(fed.dataset.manifest.instrument)
        chosen = fed_feeds(self.config, fed.dataset, fed.feeds)
        if tuple(chosen) != tuple(fed.feeds):
            raise ConfigError(
                f"venue.queue.model={self.config.queue.model} reads the feeds {list(chosen)}, but the events were fed "
                f"from {list(fed.feeds)} (hftbacktest's L3 venue ignores L2 rows: it would run with a frozen book); "
                f"load the dataset with feeds={tuple(chosen)}"
            )
        self.fed = fed
        self.arrays = VenueArrays(
            events=np.ascontiguousarray(fed.events, dtype=EVENT_DTYPE),
            initial_snapshot=np.ascontiguousarray(fed.initial_snapshot, dtype=EVENT_DTYPE),
            order_latency=None,
        )
        if fed.rows == 0:
            raise ConfigError("dataset window holds no events: nothing to backtest")
        self.backtest: Backtest | None = None
        self._closed = False

    def _asset(self) -> Any:
        """hftbacktest's asset for the resolved config (its model choices, each an enum value)."""
        from hftbacktest import BacktestAsset

        cfg, arrays = self.config, self.arrays
        if self.fed.files:  # cached pieces: hftbacktest holds the one it reads and the next one only
            asset = BacktestAsset().data([str(f) for f in self.fed.files]).parallel_load(True)
        else:
            asset = BacktestAsset().data(arrays.events)
        if len(arrays.initial_snapshot):
            asset = asset.initial_snapshot(arrays.initial_snapshot)
        if cfg.contract_type == "inverse":
            asset = asset.inverse_asset(cfg.contract_size)
        else:
            asset = asset.linear_asset(cfg.contract_size)
        lat = cfg.latency
        match _choice(LatencyModel, lat.model, "venue.latency.model"):
            case LatencyModel.constant:
                asset = asset.constant_order_latency(lat.entry_ns, lat.response_ns)
            case LatencyModel.interpolated:
                arrays.order_latency = _load_order_latency(Path(lat.path))
                asset = asset.intp_order_latency(arrays.order_latency)
            case LatencyModel.feed_derived:
                arrays.order_latency = feed_derived_latency(self.fed.pieces(), cfg)
                asset = asset.intp_order_latency(arrays.order_latency)
        q = cfg.queue
        match _choice(QueueModel, q.model, "venue.queue.model"):
            case QueueModel.risk_averse:
                asset = asset.risk_adverse_queue_model()
            case QueueModel.power_prob:
                asset = asset.power_prob_queue_model(q.exponent)
            case QueueModel.log_prob:
                asset = asset.log_prob_queue_model()
            case QueueModel.l3_fifo:
                asset = asset.l3_fifo_queue_model()
        match _choice(ExchangeModel, cfg.exchange, "venue.exchange"):
            case ExchangeModel.partial_fill:
                asset = asset.partial_fill_exchange()
            case ExchangeModel.no_partial_fill:
                asset = asset.no_partial_fill_exchange()
        f = cfg.fees
        match _choice(FeeModel, f.model, "venue.fees.model"):
            case FeeModel.value:
                asset = asset.trading_value_fee_model(f.maker, f.taker)
            case FeeModel.qty:
                asset = asset.trading_qty_fee_model(f.maker, f.taker)
            case FeeModel.flat:
                asset = asset.flat_per_trade_fee_model(f.maker, f.taker)
        asset = asset.tick_size(cfg.tick_size).lot_size(cfg.lot_size).last_trades_capacity(cfg.last_trades_capacity)
        if cfg.depth == "roi_vector":
            lo, hi = roi_bounds(self.fed, cfg.roi_margin)
            asset = asset.roi_lb(lo).roi_ub(hi)
        return asset

    def __enter__(self) -> Backtest:
        from hftbacktest import build_hashmap_backtest, build_roivec_backtest

        hashmap = self.config.depth == "hashmap"
        ptr = (build_hashmap_backtest if hashmap else build_roivec_backtest)([self._asset()])
        self.backtest = Backtest(int(ptr), hashmap)
        return self.backtest

    def jitclass(self) -> Any:
        """The open backtest in hftbacktest's own jitclass API (what hftbacktest's examples use)."""
        from hftbacktest.binding import HashMapMarketDepthBacktest_, ROIVectorMarketDepthBacktest_

        assert self.backtest is not None, "enter the SimulatedVenue first"
        wrap = HashMapMarketDepthBacktest_ if self.backtest.hashmap else ROIVectorMarketDepthBacktest_
        return wrap(self.backtest.ptr)

    def close(self) -> None:
        """Close the backtest once; later calls do nothing (a second hftbacktest close aborts)."""
        if self.backtest is not None and not self._closed:
            self._closed = True
            abi.close(self.backtest)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


E = TypeVar("E", bound=enum.StrEnum)


def _choice(kind: type[E], value: str, key: str) -> E:
    """``value`` as a member of ``kind``; a config built in Python without :func:`hftlab.checks.check` may
    hold any string, so an unknown one is refused here rather than taken for another model."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(kind)}") from None


def _load_order_latency(path: Path) -> np.ndarray:
    try:
        with np.load(path) as npz:
            data = npz["data"]
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"venue.latency.path {path}: cannot read an order-latency .npz (member 'data'): {exc}"
        ) from exc
    if data.dtype.names is None or not {"req_ts", "exch_ts", "resp_ts"} <= set(data.dtype.names):
        raise ConfigError(f"venue.latency.path {path}: 'data' must have fields req_ts, exch_ts, resp_ts")
    out = np.zeros(len(data), dtype=ORDER_LATENCY_DTYPE)
    for name in ("req_ts", "exch_ts", "resp_ts"):
        out[name] = data[name]
    return out
