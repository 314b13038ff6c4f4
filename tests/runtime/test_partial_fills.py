"""Partial fills are not lost: with hftbacktest's partial-fill exchange, one resting buy of 10 lots is
filled 2, then 5, by two sell trades at its price, and the runtime's fills, position, cash and order
lifecycle show exactly that.

How the data makes the fills exactly 2 and 5 (hftbacktest's ``PartialFillExchange`` with the
risk-averse queue model): the order rests at 100.0 where the book shows no quantity, so its queue
ahead starts at 0. A sell trade at the order's price subtracts its quantity from the queue ahead
(0 - 2 = -2); the order may execute ``floor(-queue / lot) * lot`` = 2, capped by the trade quantity
and the leaves: 2 executes, leaves 10 -> 8. The second trade takes the queue to -7; the cap is its own
quantity 5: leaves 8 -> 3. No later trade reaches 100.0, so the run ends with 3 lots resting.

hftbacktest itself loses these fills (upstream issue #316): its ``position()`` and ``num_trades`` stay 0
because its local state only applies FILLED responses. The runtime derives fills from ``leaves_qty``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hftlab.feed import DatasetRef
from hftlab.runtime import records as R
from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.runner import run_backtest
from hftlab.runtime.strategy import load_strategy
from hftlab.storage import Catalog, Instrument
from hftlab.venue.config import FeeConfig, VenueConfig
from tests.runtime.conftest import MS, T0, assert_accounting, promote_rows

PRICE = 100.0
#: Binary fractions, so every fee and cash amount below is exact.
MAKER, TAKER = -(2.0**-10), 2.0**-9

ONE_BID = '''
"""Test strategy: one GTC buy order of ``qty`` at ``price`` whenever the book is two-sided."""
from typing import NamedTuple

import numpy as np
from numba import njit

SCRATCH_SIZE = 0


class Params(NamedTuple):
    price: float = 100.0
    qty: float = 10.0


def validate(p):
    pass


@njit(cache=True)
def evaluate(view, params, scratch, out):
    if not np.isfinite(view.mid):
        return 0
    out[0, 0] = 1.0
    out[0, 1] = params.price
    out[0, 2] = params.qty
    out[0, 3] = 0.0
    return 1
'''


@pytest.fixture
def partial(catalog: Catalog) -> Catalog:
    """Book 99.0 / 101.0 (tick 0.5, lot 1); sell trades at 100.0 of 2 (at 1 s) and 5 (at 2 s) lots."""
    rows = [("snapshot", T0, 4, 1, 99.0, 5.0), ("snapshot", T0, 4, -1, 101.0, 5.0)]
    for k in range(1, 13):  # quantity changes away from our price every 250 ms, until 3 s
        rows.append(("depth", T0 + 250 * MS * k, 1, 1, 99.0, 5.0 + k % 2))
    rows += [("trades", T0 + 1_000 * MS, 2, -1, PRICE, 2.0), ("trades", T0 + 2_000 * MS, 2, -1, PRICE, 5.0)]
    promote_rows(catalog, "partial", Instrument("test", "PF", 0.5, 1.0), rows)
    return catalog


def test_partial_fills_are_recorded_exactly(partial: Catalog, tmp_path: Path):
    """Fills 2 then 5, position 7 lots, cash -7 x price - fees, PARTIALLY_FILLED with leaves 8 then 3."""
    (tmp_path / "one_bid.py").write_text(ONE_BID)
    strategy = load_strategy("one_bid", tmp_path)
    fed = DatasetRef("partial").load(partial)
    venue = VenueConfig(exchange="partial_fill", fees=FeeConfig(maker=MAKER, taker=TAKER))
    out = run_backtest(
        fed, strategy, strategy.params({"price": PRICE, "qty": 10.0}), venue=venue,
        runtime=RuntimeConfig(evaluation="every_feed"),
    )  # fmt: skip
    assert_accounting(out)
    fills = out.tables["fills"]
    assert [2.0, 5.0] == fills["qty"].tolist()
    assert [PRICE, PRICE] == fills["price"].tolist()
    assert [T0 + 1_000 * MS, T0 + 2_000 * MS] == fills["exch_ts"].tolist()
    assert [1, 1] == fills["side"].tolist() and fills["maker"].all()
    assert [1, 1] == fills["order_id"].tolist()
    fees = MAKER * 2.0 * PRICE + MAKER * 5.0 * PRICE
    assert out.account["position"] == 7.0
    assert out.account["fees"] == fees
    assert out.account["cash"] == -7.0 * PRICE * out.venue.contract_size - fees
    assert out.tables["state"]["position"][-1] == 7.0

    orders = out.tables["orders"]
    partials = orders[orders["event"] == R.PARTIALLY_FILLED]
    assert [(2.0, 8.0), (7.0, 3.0)] == list(zip(partials["qty"].tolist(), partials["leaves"].tolist(), strict=True))
    assert [T0 + 1_000 * MS, T0 + 2_000 * MS] == partials["exch_ts"].tolist()
    events = orders["event"].tolist()
    assert [R.SENT, R.ACKNOWLEDGED, R.PARTIALLY_FILLED, R.PARTIALLY_FILLED] == events
    assert 1 == len(out.tables["dispatch"])  # the partly filled order still matches: never replaced
