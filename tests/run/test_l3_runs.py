"""The L3 FIFO queue model on order-by-order data, end to end.

- Our orders' queue place follows the real queue (hand-made L3 rows): a fill of an order queued behind
  ours fills ours, one of an order ahead does not, and a partial cancel ahead keeps its place.
- Real data: the Databento ESH4 sample and the LOBSTER GOOG day, imported with the CLI. A grid run with
  ``venue.queue.model=l3_fifo`` completes and makes exactly the fills of a plain hftbacktest L3 loop
  written here on the same fed events (built without the Simulated Venue); the same datasets run with an
  L2 queue model on the derived L2 feeds; the report names the data level and queue model.
- A window that starts mid-day begins with the orders resting then, in queue priority (checked against
  a replay written here), and runs.
- Refusals before a run: an L2 queue model fed the orders feed, l3_fifo with partial fills or with an
  L2 book feed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hftlab import compose_runs, execute, prepare
from hftlab.analysis.report import report
from hftlab.errors import ConfigError
from hftlab.feed import DatasetRef, FeedData
from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.runner import run_backtest
from hftlab.runtime.strategy import load_strategy
from hftlab.storage import Catalog, IngestResult, Instrument
from hftlab.storage.schema import FeedFrame, Kind
from hftlab.venue.config import QueueConfig, QueueModel, VenueConfig
from hftlab.venue.reference import REFERENCE_FILL_DTYPE, plain_grid_loop
from tests.conftest import PROJECT_ROOT, SHARED_DATA

HFTLAB = str(Path(sys.executable).with_name("hftlab"))
DBN = SHARED_DATA / "databento" / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"
LOBSTER = SHARED_DATA / "lobster" / "GOOG" / "message.csv"
L3 = VenueConfig(queue=QueueConfig(model=QueueModel.l3_fifo), depth="hashmap")
INTERVAL = 100_000_000
T = 1_704_067_200 * 10**9
S = 10**9
A, C, F, CLR = Kind.ADD, Kind.CANCEL, Kind.FILL, Kind.CLEAR


# -- queue position on hand-made rows -------------------------------------------------------------------


def _hand_made(tmp_path: Path, later: list[tuple[int, int, int, float, float, int]]) -> FeedData:
    """A book image at T (bid 100 × 5 as order 1, ask 102 × 5 as order 2), ``later`` rows (t, kind, side,
    price, qty, id), and a far ask at T + 10 s that keeps the run going; tick 1, lot 1."""
    rows = [(T, CLR, 0, 1.0, 0.0, 0), (T, A, 1, 100.0, 5.0, 1), (T, A, -1, 102.0, 5.0, 2), *later]
    rows.append((T + 10 * S, A, -1, 110.0, 1.0, 99))
    frame = FeedFrame.from_rows(
        "orders", "hand-made", [(t, t + 1000, k, s, p, q, o, i + 1) for i, (t, k, s, p, q, o) in enumerate(rows)]
    )
    inst = Instrument("TEST", "Q", 1.0, 1.0)
    catalog = Catalog(tmp_path / "canonical")
    catalog.promote(IngestResult(inst, [frame], {"generator": "test"}), "q")
    return DatasetRef("q", feeds=("orders",)).load(catalog)


def _buy_fills(fed: FeedData) -> list[tuple[int, float]]:
    """Buy fills (exchange time, price) of a one-level grid quoting at the touch: bid 100, ask 102."""
    strategy = load_strategy("grid", PROJECT_ROOT / "strategies")
    params = strategy.params(
        {"grid_num": 1, "grid_interval": 1.0, "half_spread": 1.0, "order_qty": 1.0, "max_position": 5.0}
    )
    out = run_backtest(fed, strategy, params, venue=L3, runtime=RuntimeConfig(interval_ns=S))
    f = out.tables["fills"]
    return [(int(t), float(p)) for t, s, p in zip(f["exch_ts"], f["side"], f["price"], strict=True) if s > 0]


def test_a_fill_behind_our_order_fills_it(tmp_path: Path) -> None:
    """Order 3 joins the bid at 100 after ours (placed at the first evaluation, T + 1 s): its fill at
    T + 6 s means every order ahead of it, ours included, traded."""
    later = [(T + 5 * S, A, 1, 100.0, 5.0, 3), (T + 6 * S, F, 1, 100.0, 5.0, 3), (T + 6 * S, C, 1, 100.0, 0.0, 3)]
    assert _buy_fills(_hand_made(tmp_path, later)) == [(T + 6 * S, 100.0)]


def test_a_fill_ahead_of_our_order_does_not_fill_it(tmp_path: Path) -> None:
    """Order 1 was at 100 before ours: its fill (and its partial cancel before) leaves us waiting."""
    later = [
        (T + 5 * S, C, 1, 100.0, 3.0, 1),  # partial cancel: order 1 keeps its place ahead of ours
        (T + 6 * S, F, 1, 100.0, 3.0, 1),
        (T + 6 * S, C, 1, 100.0, 0.0, 1),
    ]
    assert _buy_fills(_hand_made(tmp_path, later)) == []


def test_a_partial_cancel_ahead_keeps_the_queue_order(tmp_path: Path) -> None:
    """Order 1 (ahead) partly cancelled, order 3 (behind us) trades: we trade, at its fill."""
    later = [
        (T + 5 * S, A, 1, 100.0, 5.0, 3),
        (T + 5 * S + 1, C, 1, 100.0, 2.0, 1),
        (T + 6 * S, F, 1, 100.0, 5.0, 3),
        (T + 6 * S, C, 1, 100.0, 0.0, 3),
    ]
    assert _buy_fills(_hand_made(tmp_path, later)) == [(T + 6 * S, 100.0)]


# -- real data ----------------------------------------------------------------------------------------


def _import(root: Path, *args: str) -> None:
    subprocess.run([HFTLAB, "--root", str(root), "data", "import", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """Both L3 samples imported as the README shows."""
    for path in (DBN, LOBSTER):
        if not path.is_file():
            pytest.skip(f"real market sample not found at {path} (a user's clone has no ../shared/data)")
    root = tmp_path_factory.mktemp("l3") / "canonical"
    _import(root, "databento", str(DBN))
    _import(root, "lobster", str(LOBSTER), "--symbol", "GOOG", "--date", "2012-06-21", "--sub-penny", "hidden")
    subprocess.run([HFTLAB, "--root", str(root), "data", "verify"], check=True, capture_output=True)
    return Catalog(root)


def plain_l3_fills(fed: FeedData, tick: float, lot: float, params: dict[str, float]) -> np.ndarray:
    """hftbacktest's own L3 FIFO backtest on the fed events (as its L3 example builds it), driven by the
    plain grid loop; its fills sorted by exchange time, side, price."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (
        BacktestAsset()
        .data(np.ascontiguousarray(fed.events))
        .linear_asset(1.0)
        .constant_order_latency(1_000_000, 1_000_000)
        .l3_fifo_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(-0.00005, 0.0007)
        .tick_size(tick)
        .lot_size(lot)
        .last_trades_capacity(1024)
    )
    hbt = HashMapMarketDepthBacktest([asset])
    log = np.zeros(1_000_000, dtype=REFERENCE_FILL_DTYPE)
    cancels = np.zeros(4 * int(params["grid_num"]) + 64, dtype=np.uint64)
    n = plain_grid_loop(
        hbt, INTERVAL, int(params["grid_num"]), params["grid_interval"], params["half_spread"], 0.0,
        params["order_qty"], params["max_position"], log, cancels,
    )  # fmt: skip
    hbt.close()
    fills = log[:n]
    return fills[np.lexsort((fills["price"], fills["side"], fills["exch_ts"]))]


def _key(fills: np.ndarray) -> list[tuple[int, int, float, float]]:
    f = fills[np.lexsort((fills["price"], fills["side"], fills["exch_ts"]))]
    return [
        (int(t), int(s), float(p), float(q))
        for t, s, p, q in zip(f["exch_ts"], f["side"], f["price"], f["qty"], strict=True)
    ]


CASES = {
    "GLBX.MDP3-ESH4": {
        "grid_num": 5,
        "grid_interval": 0.25,
        "half_spread": 0.25,
        "order_qty": 1.0,
        "max_position": 10.0,
    },
    "NASDAQ-GOOG": {"grid_num": 5, "grid_interval": 0.01, "half_spread": 0.01, "order_qty": 1.0, "max_position": 20.0},
}
#: Fewest fills for the comparison to mean something (the ESH4 sample is a start-of-day book only: no
#: order changes after it, so no fill is possible; the GOOG day trades all day).
MIN_FILLS = {"GLBX.MDP3-ESH4": 0, "NASDAQ-GOOG": 200}


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset_id", list(CASES))
def test_l3_fills_equal_a_plain_hftbacktest_l3_loop(real: Catalog, dataset_id: str) -> None:
    fed = DatasetRef(dataset_id, feeds=("orders", "trades")).load(real)
    inst = fed.dataset.manifest.instrument
    strategy = load_strategy("grid", PROJECT_ROOT / "strategies")
    params = strategy.params(CASES[dataset_id])
    theirs = _key(plain_l3_fills(fed, inst.tick_size, inst.lot_size, CASES[dataset_id]))
    for depth in ("hashmap", "roi_vector"):
        venue = VenueConfig(queue=QueueConfig(model=QueueModel.l3_fifo), depth=depth)
        out = run_backtest(fed, strategy, params, venue=venue, runtime=RuntimeConfig(interval_ns=INTERVAL))
        ours = _key(out.tables["fills"])
        assert len(ours) >= MIN_FILLS[dataset_id]
        assert len(ours) == len(theirs), f"{depth}: {len(ours)} fills, the plain loop {len(theirs)}"
        assert ours == theirs, f"{depth}: fills differ"


def _run(catalog: Catalog, results: Path, dataset_id: str, model: str, *extra: str) -> Path:
    values = CASES[dataset_id]
    overrides = [f"dataset.id={dataset_id}", f"dataset.root={catalog.root}", f"output.results_dir={results}",
                 f"venue.queue.model={model}", f"experiment_name={dataset_id.lower()}-{model}",
                 *(f"strategy.params.{k}={v}" for k, v in values.items()), *extra]  # fmt: skip
    (config,) = compose_runs([overrides], PROJECT_ROOT)
    return execute(prepare(config, PROJECT_ROOT)).path


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("dataset_id", list(CASES))
def test_grid_runs_l3_and_l2_on_one_dataset_and_the_report_says_which(
    real: Catalog, tmp_path: Path, dataset_id: str
) -> None:
    for model, feeds, level in (
        ("l3_fifo", ["orders", "trades"], "L3"),
        ("risk_averse", ["snapshot", "depth", "trades"], "L2"),
    ):
        run_dir = _run(real, tmp_path / "results", dataset_id, model)
        definition = json.loads((run_dir / "run.json").read_text())
        assert definition["dataset"]["feeds"] == feeds
        assert definition["config"]["venue"]["queue"]["model"] == model
        assert (run_dir / "metrics.json").is_file()
        (page,) = report(run_dir.parent.parent, tmp_path / "reports")
        text = page.read_text()
        assert f"({level} (market by" in text and f"<dd><code>queue {model}, exchange" in text


@pytest.mark.shared_data
def test_runs_that_cannot_be_fed_are_refused_before_they_start(real: Catalog, tmp_path: Path) -> None:
    gid = "NASDAQ-GOOG"
    with pytest.raises(ConfigError, match="L2 queue model"):
        _run(real, tmp_path, gid, "risk_averse", "dataset.feeds=[orders,trades]")
    with pytest.raises(ConfigError, match="no_partial_fill"):
        _run(real, tmp_path, gid, "l3_fifo", "venue.exchange=partial_fill")
    with pytest.raises(ConfigError, match="no L2 book feed"):
        _run(real, tmp_path, gid, "l3_fifo", "dataset.feeds=[orders,depth]")
    assert not any(tmp_path.rglob("run.json")), "nothing ran"


def _queues_at(rows: dict[str, np.ndarray], start: int) -> list[tuple[int, float, int, float]]:
    """The resting orders at ``start`` as (side, price, id, qty), level by level in queue order: a plain
    replay of the stored canonical rows (an add or a move to another price or to more quantity goes to the
    back of its level; a partial cancel keeps the place)."""
    queue: dict[int, tuple[int, float, float]] = {}  # id -> (side, price, qty), in queue order
    for k, side, price, qty, oid, t in zip(
        rows["kind"], rows["side"], rows["price"], rows["qty"], rows["order_id"], rows["exch_ts"], strict=True
    ):
        if t >= start:
            break
        if k == Kind.CLEAR:
            queue = {o: v for o, v in queue.items() if side != 0 and v[0] != side}
        elif k == Kind.ADD:
            queue[int(oid)] = (int(side), float(price), float(qty))
        elif k == Kind.CANCEL and qty == 0:
            del queue[int(oid)]
        elif k == Kind.CANCEL:
            queue[int(oid)] = (*queue[int(oid)][:2], float(qty))
        elif k == Kind.MODIFY:
            old = queue[int(oid)]
            if old[1] != price or qty > old[2]:
                del queue[int(oid)]
            queue[int(oid)] = (int(side), float(price), float(qty))
    return sorted(((s, p, o, q) for o, (s, p, q) in queue.items()), key=lambda r: (r[0], r[1]))


@pytest.mark.shared_data
def test_an_l3_window_starting_mid_day_begins_with_the_resting_orders(real: Catalog, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from hftlab import hftbacktest_types as HB
    from hftlab.times import to_ns

    start = to_ns("2012-06-21T15:00:00")
    d = real.resolve("NASDAQ-GOOG")
    (part,) = [p for p in d.manifest.partitions if p.feed == "orders"]
    table = pq.read_table(d.path / part.path)
    rows = {c: table.column(c).to_numpy() for c in table.column_names}
    fed = DatasetRef("NASDAQ-GOOG", feeds=("orders", "trades"), start=start).load(real)
    ev = fed.events
    n = int(np.argmax(ev["exch_ts"] > start)) if (ev["exch_ts"] > start).any() else len(ev)
    head = ev[:n]
    prefix = ev[: 1 + int(np.sum((head["exch_ts"] == start) & ((head["ev"] & HB.KIND_MASK) == HB.ADD_ORDER_EVENT)))]
    assert (prefix["ev"][0] & HB.KIND_MASK) == HB.DEPTH_CLEAR_EVENT and len(fed.initial_snapshot) == 0
    side = np.where((prefix["ev"][1:] & HB.BUY_EVENT) != 0, 1, -1)
    got = [
        (int(s), float(p), int(o), float(q))
        for s, p, o, q in zip(side, prefix["px"][1:], prefix["order_id"][1:], prefix["qty"][1:], strict=True)
    ]
    # queue order within a level is the order of the ADD rows; levels may interleave
    got = sorted(got, key=lambda r: (r[0], r[1]))
    want = _queues_at(rows, start)
    assert len(want) > 100, "the comparison would mean little"
    assert got == want
    run_dir = _run(real, tmp_path / "results", "NASDAQ-GOOG", "l3_fifo", f"dataset.start={start}")
    assert json.loads((run_dir / "run.json").read_text())["dataset"]["start"] == start
    fills = pq.read_table(run_dir / "records" / "fills.parquet").column("exch_ts").to_numpy()
    assert len(fills) > 50 and fills.min() > start


@pytest.mark.shared_data
def test_the_venue_refuses_l2_events_for_the_l3_model(real: Catalog) -> None:
    """Through the Python API (no run definition to resolve the feeds): events fed from the L2 feeds
    would leave hftbacktest's L3 venue with a frozen book and no fills; refused, naming the feeds."""
    fed = DatasetRef("NASDAQ-GOOG").load(real)
    strategy = load_strategy("grid", PROJECT_ROOT / "strategies")
    params = strategy.params(CASES["NASDAQ-GOOG"])
    with pytest.raises(ConfigError, match=r"feeds=\('orders', 'trades'\)"):
        run_backtest(fed, strategy, params, venue=L3)


def test_an_order_resting_before_a_lobster_file_stays_ahead_of_ours(tmp_path: Path) -> None:
    """LOBSTER names order 7 only when it trades (it rested before the file started, inside the 300 the
    orderbook shows at 100): the importer places it where that level first shows, so its fill does not
    fill our bid, which joined the level later (behind all 300)."""
    folder = tmp_path / "lobster"
    folder.mkdir()
    (folder / "message.csv").write_text("34200,1,1,100,1020000,-1\n34205,4,7,50,1000000,1\n34210,1,9,1,1100000,-1\n")
    (folder / "orderbook.csv").write_text("1020000,100,1000000,300\n1020000,100,1000000,250\n1020000,100,1000000,250\n")
    root = tmp_path / "canonical"
    _import(root, "lobster", str(folder / "message.csv"), "--symbol", "Q", "--date", "2024-01-02", "--tick-size", "1")
    fed = DatasetRef("NASDAQ-Q", feeds=("orders", "trades")).load(Catalog(root))
    assert _buy_fills(fed) == []
