"""The synthetic market generator: determinism, validity in Canonical Storage, and book realism."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hftlab.errors import ConfigError
from hftlab.ingest.synthetic import GENERATOR_VERSION, SynthParams, generate, simulate
from hftlab.storage import Catalog, IngestResult, Kind, Side

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SMALL = SynthParams(seed=7, days=0.005)


def digest(result: IngestResult) -> str:
    """sha256 over every feed's name and the bytes of all its columns."""
    h = hashlib.sha256()
    for frame in result.feeds:
        h.update(frame.feed.encode())
        for column in (frame.exch_ts, frame.local_ts, frame.kind, frame.side, frame.price, frame.qty):
            h.update(f"{column.dtype.str}:{column.size};".encode())
            h.update(column.tobytes())
    return h.hexdigest()


def test_same_seed_same_arrays_and_version(tmp_path: Path) -> None:
    """The same params give identical arrays and dataset version; another seed gives another version."""
    first, second = generate(SMALL), generate(SMALL)
    assert digest(first) == digest(second)
    assert ["snapshot", "depth", "trades"] == [f.feed for f in first.feeds]
    version_a = Catalog(tmp_path / "a").promote(first, "syn")[0].version
    version_b = Catalog(tmp_path / "b").promote(second, "syn")[0].version
    assert version_a == version_b
    other = Catalog(tmp_path / "c").promote(generate(dataclasses.replace(SMALL, seed=8)), "syn")[0].version
    assert other != version_a


def test_same_output_in_another_process() -> None:
    """A fresh process generates byte-identical columns (no process-dependent state in the generator)."""
    code = (
        "from hftlab.ingest.synthetic import generate\n"
        "from tests.ingest.test_synthetic import SMALL, digest\n"
        "print(digest(generate(SMALL)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert digest(generate(SMALL)) == proc.stdout.strip()


def test_multi_day_run_promotes_with_a_partition_per_date(catalog: Catalog) -> None:
    """A run crossing midnight passes validation and is partitioned by UTC date in every feed."""
    params = SynthParams(seed=3, start="2024-02-28", days=1.2, events_per_second=0.05)
    dataset, created = catalog.promote(generate(params), "syn")
    assert created
    dates: dict[str, set[str]] = {}
    for part in dataset.manifest.partitions:
        dates.setdefault(part.feed, set()).add(part.date)
    both = {"2024-02-28", "2024-02-29"}
    # the snapshot is taken once, at the start
    assert {"snapshot": {"2024-02-28"}, "depth": both, "trades": both} == dates
    lineage = dataset.manifest.lineage
    assert ("synthetic", GENERATOR_VERSION, []) == (
        lineage["converter"],
        lineage["converter_version"],
        lineage["raw_inputs"],
    )
    assert dataclasses.asdict(params) == lineage["params"]
    catalog.verify("syn", dataset.version)


def test_rows_outgrowing_the_preallocation_are_all_returned(catalog: Catalog) -> None:
    """Market orders sweeping many levels (far more rows than estimated) still give complete, valid data."""
    params = SynthParams(
        seed=2, days=0.002, levels=5, trade_p=0.35, trade_lots_median=5000, level_lots_median=10, size_sigma=0.2
    )
    sim = simulate(params)
    depth = sim.result.feeds[1]
    # the generator first preallocates 1.5 depth rows per expected event + 4096: this run needs more
    assert True is (len(depth) > 1.5 * sim.events + 4096)
    assert digest(sim.result) == digest(generate(params))
    catalog.promote(sim.result, "sweeps")


def replay(params: SynthParams) -> dict[str, np.ndarray]:
    """Replay snapshot + depth rows into a book, checking it after every row, and each market order's trades.

    Returns per event (distinct exchange timestamp of the depth feed): exch_ts, mid, spread in ticks.
    """
    sim = simulate(params)
    snapshot, depth, trades = sim.result.feeds
    tick = params.tick_size
    assert [Kind.CLEAR, Kind.CLEAR] == snapshot.kind[:2].tolist()
    assert [Side.BID, Side.ASK] == snapshot.side[:2].tolist()
    book: dict[int, dict[float, float]] = {Side.BID: {}, Side.ASK: {}}
    for kind, side, price, qty in zip(
        snapshot.kind[2:], snapshot.side[2:], snapshot.price[2:], snapshot.qty[2:], strict=True
    ):
        assert Kind.SNAPSHOT == kind
        book[int(side)][float(price)] = float(qty)
    assert [params.levels, params.levels] == [len(book[Side.BID]), len(book[Side.ASK])]
    assert [min(book[Side.BID]), max(book[Side.ASK])] == snapshot.price[:2].tolist()

    trade_start = np.searchsorted(trades.exch_ts, depth.exch_ts, side="left")
    trade_end = np.searchsorted(trades.exch_ts, depth.exch_ts, side="right")
    assert set(trades.exch_ts.tolist()) <= set(depth.exch_ts.tolist())  # a trade always changes the book
    out_ts, out_mid, out_spread = [], [], []
    counts_ok = crossed = 0
    for i in range(len(depth)):
        ts = depth.exch_ts[i]
        if i == 0 or depth.exch_ts[i - 1] != ts:
            # a new event: its trades hit the best opposite levels (as they were before it), in order
            lo, hi = trade_start[i], trade_end[i]
            if hi > lo:
                initiator = int(trades.side[lo])
                assert {initiator} == set(trades.side[lo:hi].tolist())
                hit = book[Side.ASK] if initiator == Side.BID else book[Side.BID]
                levels = sorted(hit, reverse=initiator == Side.ASK)[: hi - lo]
                assert levels == trades.price[lo:hi].tolist()
                full = [hit[p] for p in levels[:-1]]
                assert full == trades.qty[lo : hi - 1].tolist()
                assert True is bool(trades.qty[hi - 1] <= hit[levels[-1]])
        side = book[int(depth.side[i])]
        if depth.qty[i] == 0:
            del side[float(depth.price[i])]
        else:
            side[float(depth.price[i])] = float(depth.qty[i])
        counts_ok += 1 <= len(book[Side.BID]) <= params.levels and 1 <= len(book[Side.ASK]) <= params.levels
        best_bid, best_ask = max(book[Side.BID]), min(book[Side.ASK])
        crossed += best_bid >= best_ask
        if i + 1 == len(depth) or depth.exch_ts[i + 1] != ts:
            out_ts.append(ts)
            out_mid.append((best_bid + best_ask) / 2)
            out_spread.append(round((best_ask - best_bid) / tick))
    assert (len(depth), 0) == (counts_ok, crossed)
    ts_arr = np.array(out_ts)
    return {
        "exch_ts": ts_arr,
        "mid": np.array(out_mid),
        "spread": np.array(out_spread),
        "volatile": sim.regimes.at(ts_arr),
    }


REALISM = SynthParams(seed=5, days=0.02, calm_mean_s=120.0, volatile_mean_s=60.0)


@pytest.fixture(scope="module")
def realism_book() -> dict[str, np.ndarray]:
    """The checked replay of a 29-minute run with short regimes (both regimes occur)."""
    return replay(REALISM)


def test_book_replay_is_never_crossed_and_trades_hit_the_best_levels(realism_book: dict[str, np.ndarray]) -> None:
    """Replaying the rows keeps 1..levels levels per side, never crosses, and trades walk the book from the top."""
    book = realism_book
    assert True is bool(len(book["exch_ts"]) > 10_000)
    spreads = set(book["spread"].tolist())
    assert True is ({1, 2, 3} <= spreads)  # the spread varies: mostly one tick, wider after sweeps


def test_mid_moves_more_in_the_volatile_regime(realism_book: dict[str, np.ndarray]) -> None:
    """The mid is a random walk whose per-event moves are larger in the volatile regime than in the calm one."""
    book = realism_book
    moves = np.abs(np.diff(book["mid"]))
    volatile = book["volatile"][1:]
    assert True is bool(np.std(np.diff(book["mid"])) > 0)
    assert (True, True) == (bool(volatile.any()), bool((~volatile).any()))
    calm_move, volatile_move = moves[~volatile].mean(), moves[volatile].mean()
    assert True is bool(volatile_move > 2 * calm_move), (calm_move, volatile_move)


def test_rows_are_on_the_grids_and_timestamps_ordered() -> None:
    """Prices on the tick grid, quantities on the lot grid, events strictly later, feed latency >= its base."""
    params = dataclasses.replace(SMALL, tick_size=0.5, lot_size=0.01, initial_price=1000.0)
    result = generate(params)
    for frame in result.feeds:
        ticks, lots = frame.price / params.tick_size, frame.qty / params.lot_size
        off_grid = max(np.abs(ticks - np.rint(ticks)).max(), np.abs(lots - np.rint(lots)).max())
        assert True is bool(off_grid < 1e-9)
        assert True is bool((frame.local_ts - frame.exch_ts >= params.latency_base_ns).all())
        assert True is bool((np.diff(frame.local_ts) >= 0).all())
    depth, trades = result.feeds[1], result.feeds[2]
    assert True is bool((trades.qty > 0).all())
    events = np.unique(np.concatenate([depth.exch_ts, trades.exch_ts]))
    assert True is bool((np.diff(events) > 0).all() and events[0] > params.start_ns)


def test_prices_and_quantities_are_the_doubles_nearest_their_decimals() -> None:
    """With tick 0.1 and lot 0.001, a price reads 50000.1 (not 50000.100000000006) and a quantity 0.021."""
    for frame in generate(SMALL).feeds:
        assert frame.price.tolist() == np.round(frame.price, 1).tolist()
        assert frame.qty.tolist() == np.round(frame.qty, 3).tolist()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("seed", 2**32),
        ("start", "2024-13-01"),
        ("start", "1970-01-01"),
        ("days", 0.0),
        ("days", math.nan),
        ("events_per_second", -1.0),
        ("tick_size", 0.0),
        ("lot_size", -0.001),
        ("levels", 1),
        ("levels", 2.5),
        ("initial_price", 1.0),
        ("symbol", "a/b"),
        ("trade_p", 1.0),
        ("volatile_trade_mult", 20.0),
        ("book_sparsity", 0.99),
        ("size_sigma", -0.1),
        ("latency_base_ns", 0),
        ("latency_jitter_ns", -1),
        ("calm_mean_s", 0.0),
    ],
)
def test_invalid_params_name_the_field(field: str, value: object) -> None:
    """A bad parameter is refused with a ConfigError naming the field."""
    with pytest.raises(ConfigError, match=r"^synthetic param (\w+) ") as excinfo:
        SynthParams(**{field: value})  # type: ignore[arg-type]
    match = re.match(r"^synthetic param (\w+) ", str(excinfo.value))
    assert match is not None
    assert field == match.group(1)


def test_whole_numbers_for_float_params_give_the_same_lineage() -> None:
    """days=2 and days=2.0 are one parameter set, recorded alike (float) in the lineage."""
    assert dataclasses.asdict(SynthParams(days=2.0, levels=5)) == dataclasses.asdict(SynthParams(days=2, levels=5))
    assert "float" == type(SynthParams(days=2).days).__name__
