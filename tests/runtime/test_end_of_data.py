"""Nothing is lost at the end of the data: a fill the venue makes after the last evaluation point is
recorded by the run's final execution feedback, and the final position equals the venue's.

The data: book 99.0 / 101.0 (tick 0.5, lot 1), quantity changes away from our price until 2.5 s, then a
sell trade of 5 lots at 100.0 at 2.9 s, the last row. Evaluation every second: the strategy's buy of 2 lots
at 100.0 is sent at 1 s and rests; the next evaluation point would be 3 s, after the data ends. The trade
fills the order during the last stretch of data, so only the final feedback can see it.
"""

from __future__ import annotations

from pathlib import Path

from hftlab.feed import DatasetRef
from hftlab.runtime import records as R
from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.runner import run_backtest
from hftlab.runtime.strategy import load_strategy
from hftlab.storage import Catalog, Instrument
from hftlab.venue.config import VenueConfig
from tests.runtime.conftest import MS, T0, assert_accounting, promote_rows
from tests.runtime.test_partial_fills import ONE_BID

PRICE = 100.0
TRADE_TS = T0 + 2_900 * MS


def test_fill_after_the_last_evaluation_point_is_recorded(catalog: Catalog, tmp_path: Path):
    rows = [("snapshot", T0, 4, 1, 99.0, 5.0), ("snapshot", T0, 4, -1, 101.0, 5.0)]
    rows += [("depth", T0 + 250 * MS * k, 1, 1, 99.0, 5.0 + k % 2) for k in range(1, 11)]
    rows.append(("trades", TRADE_TS, 2, -1, PRICE, 5.0))
    promote_rows(catalog, "late", Instrument("test", "LATE", 0.5, 1.0), rows)
    (tmp_path / "one_bid.py").write_text(ONE_BID)
    strategy = load_strategy("one_bid", tmp_path)
    fed = DatasetRef("late").load(catalog)
    assert int(fed.events["local_ts"].max()) < T0 + 3_000 * MS  # no evaluation point after the trade
    out = run_backtest(
        fed, strategy, strategy.params({"price": PRICE, "qty": 2.0}), venue=VenueConfig(),
        runtime=RuntimeConfig(interval_ns=1_000 * MS),
    )  # fmt: skip
    assert_accounting(out)
    fills = out.tables["fills"]
    assert [TRADE_TS] == fills["exch_ts"].tolist() and [2.0] == fills["qty"].tolist()
    assert fills["local_ts"][0] < T0 + 3_000 * MS  # learned at the end of the data, not at a later point
    assert out.account["position"] == 2.0 == out.account["venue_position"]
    assert out.tables["state"]["position"][-1] == 2.0  # the final state row includes it
    events = out.tables["orders"]["event"].tolist()
    assert [R.SENT, R.ACKNOWLEDGED, R.FILLED] == events
