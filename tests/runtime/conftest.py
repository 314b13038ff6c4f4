"""Runtime test fixtures: a ~1M-event synthetic dataset, hand-made datasets, and the accounting check.

``assert_accounting(out)`` recomputes a run's own state from its fills table and checks it against every
other record of the run: per-order executed quantities in the lifecycle table, the running position in
the fills table, the state series and the final account.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hftlab.feed import DatasetRef, FeedData
from hftlab.metrics.display import decimals
from hftlab.runtime import records as R
from hftlab.runtime.runner import RunOutput, contract_of
from hftlab.runtime.state import on_lot_value
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = PROJECT_ROOT / "strategies"
#: 2024-01-01T00:00:00Z: the epoch of the hand-made datasets.
T0 = 1_704_067_200 * 10**9
MS = 1_000_000
#: Parameters of the synthetic dataset: 0.25 days at 25 events/s, about 0.96M fed rows, ~1 s to build.
SYNTH = {"seed": 7, "days": 0.25, "events_per_second": 25.0}
#: Grid parameters of the runtime tests on the synthetic dataset (prices around 50,000, tick 0.1).
SYNTH_GRID = {"grid_num": 5, "grid_interval": 0.2, "half_spread": 0.2, "order_qty": 0.01, "max_position": 0.2}

#: Lifecycle events that report an order's executed quantity.
_EXEC_EVENTS = (R.FILLED, R.PARTIALLY_FILLED, R.CANCELLED)


@dataclass
class Synthetic:
    """The shared synthetic dataset: its storage root, id and fed Event stream."""

    catalog: Catalog
    dataset_id: str
    fed: FeedData


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    """About 1M fed events of the synthetic market (built once per session)."""
    from hftlab.ingest.synthetic import SynthParams, generate

    catalog = Catalog(tmp_path_factory.mktemp("runtime-canonical"))
    catalog.promote(generate(SynthParams(**SYNTH)), "syn")
    fed = DatasetRef("syn").load(catalog)
    assert 900_000 <= len(fed.events) <= 1_100_000
    return Synthetic(catalog, "syn", fed)


Row = tuple[str, int, int, int, float, float]  #: (feed, exch_ts, kind, side, price, qty)


def promote_rows(
    catalog: Catalog, dataset_id: str, instrument: Instrument, rows: Iterable[Row], feed_latency: int = MS
) -> None:
    """Promote hand-made rows (``local_ts = exch_ts + feed_latency``), one frame per feed, in given order."""
    by_feed: dict[str, list[Row]] = {}
    for row in rows:
        by_feed.setdefault(row[0], []).append(row)
    frames = []
    for feed, feed_rows in by_feed.items():
        cols = list(zip(*feed_rows, strict=True))
        local_ts = [t + feed_latency for t in cols[1]]
        frame = FeedFrame.from_columns(
            feed, f"hand-made-{feed}", exch_ts=cols[1], local_ts=local_ts, kind=cols[2], side=cols[3],
            price=cols[4], qty=cols[5],
        )  # fmt: skip
        frames.append(frame)
    catalog.promote(IngestResult(instrument, frames, {"generator": "tests.runtime"}), dataset_id)


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def assert_accounting(out: RunOutput) -> None:
    """Every record of ``out`` agrees with its fills table (see the module docstring).

    Exact where the runtime sums in fills-table order (position, cash, fees, each fee); to 1e-9 relative
    where per-order sums of executed quantities are formed in another order.
    """
    fills, orders, state = out.tables["fills"], out.tables["orders"], out.tables["state"]
    venue = out.venue
    cs = venue.contract_size
    inverse = venue.contract_type == "inverse"

    # Fills come in step order (local_ts) and, within a step, in canonical (exch_ts, order_id) order.
    lt, xt, oid = fills["local_ts"], fills["exch_ts"], fills["order_id"]
    assert np.all(lt[1:] >= lt[:-1]), "fills are not in step order"
    step = lt[1:] == lt[:-1]
    canonical = (xt[1:] > xt[:-1]) | ((xt[1:] == xt[:-1]) & (oid[1:] > oid[:-1]))
    bad = np.flatnonzero(step & ~canonical)
    assert bad.size == 0, f"fills not in (exch_ts, order_id) order within a step: {fills[bad[0] : bad[0] + 2]}"

    # Per order: the fills add up to the executed quantity of its last fill/cancel lifecycle row.
    rows = orders[np.isin(orders["event"], _EXEC_EVENTS)]
    executed: dict[int, float] = {}
    leaves: dict[int, float] = {}
    for r in rows:  # record order: later rows overwrite
        executed[int(r["order_id"])] = float(r["qty"])
        leaves[int(r["order_id"])] = float(r["leaves"])
    filled: dict[int, float] = {}
    order_qty: dict[int, float] = {}
    for f in fills:
        k = int(f["order_id"])
        filled[k] = filled.get(k, 0.0) + float(f["qty"])
        order_qty[k] = float(f["order_qty"])
        assert f["qty"] > 0.0, f"non-positive fill {f}"
    for k in sorted(set(executed) | set(filled)):
        assert k in executed, f"order {k} has fills but no filled/partially-filled/cancelled lifecycle row"
        assert _close(filled.get(k, 0.0), executed[k]), f"order {k}: fills sum {filled.get(k)} != {executed[k]}"
        if k in order_qty:
            assert _close(executed[k] + leaves[k], order_qty[k]), f"order {k}: executed + leaves != order qty"
    for r in orders[orders["event"] == R.FILLED]:
        assert r["leaves"] == 0.0, f"FILLED row with leaves: {r}"

    # Position, cash and fees recomputed from the fills, in fills-table order (exact).
    side = fills["side"].astype(np.float64)
    fee_model, maker, taker = venue.fees.model, venue.fees.maker, venue.fees.taker
    fee_list, dpos, dcash = [], [], []
    columns = (side.tolist(), fills["price"].tolist(), fills["qty"].tolist(), fills["maker"].tolist())
    for s, px, qty, is_maker in zip(*columns, strict=True):
        value = qty * cs / px if inverse else qty * px * cs
        rate = maker if is_maker else taker
        fee = rate * value if fee_model == "value" else (rate * qty if fee_model == "qty" else rate)
        fee_list.append(fee)
        dpos.append(s * qty)
        dcash.append(s * value - fee if inverse else -s * value - fee)
    assert fee_list == fills["fee"].tolist(), "fee column differs from rate x value"
    # The stored position is the running signed fill sum snapped to the lot grid (state.on_lot).
    contract = contract_of(venue)
    pos = [on_lot_value(contract, p) for p in itertools.accumulate(dpos)]
    cash = list(itertools.accumulate(dcash))
    fees = list(itertools.accumulate(fee_list))
    assert pos == fills["position"].tolist(), "fills.position is not the running signed fill sum, on lot"
    # ... which reads as a decimal of the lot's digits (0.19, not -0.19000000000000003; 0.0, not -3.5e-18)
    digits = decimals(venue.lot_size)
    for p in [*pos, *state["position"].tolist(), out.account["position"]]:
        assert p == float(f"{p:.{digits}f}") and (p != 0.0 or math.copysign(1.0, p) > 0), f"position {p!r} off lot"

    def upto(values: list[float], n: int) -> float:
        return values[n - 1] if n > 0 else 0.0

    n = len(fills)
    acct = out.account
    final = (upto(pos, n), upto(cash, n), upto(fees, n))
    assert (acct["position"], acct["cash"], acct["fees"]) == final, f"account {acct} != fills (pos, cash, fees) {final}"
    mid = acct["mid"]
    if math.isfinite(mid) and acct["position"] != 0.0:
        marked = -acct["position"] * cs / mid if inverse else acct["position"] * mid * cs
        assert acct["equity"] == acct["cash"] + marked, f"account equity {acct}"
    elif acct["position"] == 0.0:
        assert acct["equity"] == acct["cash"], f"account equity {acct}"

    # Every state row (and so the last one) equals the fills learned up to its time.
    assert len(state) > 0
    assert np.all(np.diff(state["local_ts"]) > 0)
    seen = np.searchsorted(lt, state["local_ts"], side="right")
    for row, k in zip(state, seen.tolist(), strict=True):
        got = (float(row["position"]), float(row["cash"]), float(row["fees"]))
        assert got == (upto(pos, k), upto(cash, k), upto(fees, k)), f"state row {row} != fills up to it"
        m = float(row["mid"])
        if math.isfinite(m) and got[0] != 0.0:
            marked = -got[0] * cs / m if inverse else got[0] * m * cs
            assert float(row["equity"]) == got[1] + marked, f"state row equity {row}"
        elif got[0] == 0.0:
            assert float(row["equity"]) == got[1], f"state row equity {row}"
    last = state[-1]
    if seen[-1] == n:  # no fill after the last sample: it equals the final account
        assert (float(last["position"]), float(last["cash"]), float(last["fees"])) == (
            acct["position"],
            acct["cash"],
            acct["fees"],
        )
