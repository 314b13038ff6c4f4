"""The hftbacktest .npz/.npy importer: kinds to feeds, split-row dedup, a real round trip, bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hftbacktest.types import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    event_dtype,
)

from hftlab.errors import DataError
from hftlab.ingest.common import apply_local_ts_correction
from hftlab.ingest.npz import CONVERTER_VERSION, convert
from hftlab.storage import Catalog, IngestResult, Instrument, Kind, Side

SPEC = Instrument(symbol="ABC", tick_size=0.5, lot_size=1.0, venue="test")
BOTH = EXCH_EVENT | LOCAL_EVENT


def events(rows: list[tuple[int, int, int, float, float]]) -> np.ndarray:
    """An event array from (ev, exch_ts, local_ts, px, qty) tuples."""
    arr = np.zeros(len(rows), dtype=event_dtype)
    for i, (ev, exch, local, px, qty) in enumerate(rows):
        arr[i]["ev"], arr[i]["exch_ts"], arr[i]["local_ts"], arr[i]["px"], arr[i]["qty"] = ev, exch, local, px, qty
    return arr


def save(tmp_path: Path, arr: np.ndarray, name: str = "events.npz") -> Path:
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, data=arr)
    else:
        np.save(path, arr)
    return path


def feeds_of(result: IngestResult) -> dict[str, Any]:
    return {f.feed: f for f in result.feeds}


def columns(frame: Any) -> list[tuple[Any, ...]]:
    """Rows of a frame as plain tuples (exch_ts, local_ts, kind, side, price, qty, line)."""
    return [
        (int(e), int(lo), int(k), int(s), float(p), float(q), int(n))
        for e, lo, k, s, p, q, n in zip(
            frame.exch_ts, frame.local_ts, frame.kind, frame.side, frame.price, frame.qty, frame.line, strict=True
        )
    ]


# A trade (exch 30, local 60) arrives locally after a depth update (exch 40, local 50), so hftbacktest's
# event-order correction splits it: an EXCH-only row in exchange order, a LOCAL-only copy in local order.
SMALL = [
    (DEPTH_CLEAR_EVENT | BOTH | BUY_EVENT, 10, 20, 98.0, 0.0),  # row 1
    (DEPTH_SNAPSHOT_EVENT | BOTH | BUY_EVENT, 10, 20, 99.0, 2.0),  # 2
    (DEPTH_SNAPSHOT_EVENT | BOTH | SELL_EVENT, 10, 20, 100.0, 3.0),  # 3
    (TRADE_EVENT | EXCH_EVENT | SELL_EVENT, 30, 60, 99.0, 1.0),  # 4: EXCH-only half of the split pair
    (DEPTH_EVENT | BOTH | SELL_EVENT, 40, 50, 100.5, 4.0),  # 5
    (TRADE_EVENT | LOCAL_EVENT | SELL_EVENT, 30, 60, 99.0, 1.0),  # 6: its LOCAL-only copy
    (TRADE_EVENT | BOTH, 70, 80, 99.5, 0.5),  # 7: trade without a side
    (DEPTH_BBO_EVENT | BOTH | BUY_EVENT, 90, 95, 99.0, 5.0),  # 8
    (DEPTH_BBO_EVENT | BOTH | SELL_EVENT, 90, 95, 100.0, 6.0),  # 9
]


def test_kinds_sides_and_split_pair_dedup(tmp_path: Path) -> None:
    """Protects the mapping kind -> feed, flags -> side, and that a split EXCH/LOCAL pair becomes one row."""
    path = save(tmp_path, events(SMALL))
    result = convert(path, SPEC)

    feeds = feeds_of(result)
    assert ["snapshot", "trades", "depth", "bbo"] == [f.feed for f in result.feeds]
    b, a, n = int(Side.BID), int(Side.ASK), int(Side.NONE)
    assert [
        (10, 20, int(Kind.CLEAR), b, 98.0, 0.0, 1),
        (10, 20, int(Kind.SNAPSHOT), b, 99.0, 2.0, 2),
        (10, 20, int(Kind.SNAPSHOT), a, 100.0, 3.0, 3),
    ] == columns(feeds["snapshot"])
    assert [(40, 50, int(Kind.DEPTH), a, 100.5, 4.0, 5)] == columns(feeds["depth"])
    assert [
        (30, 60, int(Kind.TRADE), a, 99.0, 1.0, 4),
        (70, 80, int(Kind.TRADE), n, 99.5, 0.5, 7),
    ] == columns(feeds["trades"])
    assert [
        (90, 95, int(Kind.BBO), b, 99.0, 5.0, 8),
        (90, 95, int(Kind.BBO), a, 100.0, 6.0, 9),
    ] == columns(feeds["bbo"])
    assert str(path) == feeds["trades"].source
    assert "hftbacktest-npz" == result.lineage["converter"]
    assert CONVERTER_VERSION == result.lineage["converter_version"]
    assert [path.name] == [r["name"] for r in result.lineage["raw_inputs"]]
    assert {"rows_in_file": 9, "rows_dropped": 1} == result.lineage["params"]


def test_unflagged_rows_are_all_kept_and_npy_works(tmp_path: Path) -> None:
    """Protects files without EXCH/LOCAL flags (all rows kept) and the .npy format."""
    arr = events([(ev & ~BOTH, e, lo, p, q) for ev, e, lo, p, q in SMALL])
    result = convert(save(tmp_path, arr, "events.npy"), SPEC)

    assert {"snapshot": 3, "depth": 1, "bbo": 2, "trades": 3} == {f.feed: len(f) for f in result.feeds}
    assert [4, 6, 7] == feeds_of(result)["trades"].line.tolist()


def test_small_file_promotes(tmp_path: Path, catalog: Catalog) -> None:
    """Protects the pipeline: a deduplicated hftbacktest array passes validation and is stored."""
    result = convert(save(tmp_path, events(SMALL)), SPEC)
    apply_local_ts_correction(result, 0)

    dataset, new = catalog.promote(result, "x")

    assert new
    assert 8 == sum(p.rows for p in dataset.manifest.partitions)


@pytest.mark.shared_data
def test_round_trip_of_a_real_hftbacktest_conversion(shared_data: Path, tmp_path: Path, catalog: Catalog) -> None:
    """Protects dedup on real data: rows per feed equal hftbacktest's EXCH-flagged events per kind."""
    from hftbacktest.data.utils import binancefutures

    raw = shared_data / "binance-futures" / "btcusdt_20240808.gz"
    if not raw.is_file():
        pytest.skip(f"sample {raw} not found")
    arr = binancefutures.convert(str(raw), combined_stream=True, buffer_size=1_000_000)
    path = tmp_path / "btcusdt.npz"
    np.savez(path, data=arr)

    result = convert(path, Instrument(symbol="BTCUSDT", tick_size=0.1, lot_size=0.001, venue="binance-futures"))

    exch_kind = arr["ev"][(arr["ev"] & EXCH_EVENT) != 0] & 0xFF
    expected = {
        "snapshot": int(np.isin(exch_kind, [DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT]).sum()),
        "depth": int((exch_kind == DEPTH_EVENT).sum()),
        "trades": int((exch_kind == TRADE_EVENT).sum()),
    }
    assert expected == {f.feed: len(f) for f in result.feeds}
    assert len(arr) - sum(expected.values()) == result.lineage["params"]["rows_dropped"]
    # hftbacktest's converter already corrected the local timestamps, so no further correction is needed.
    apply_local_ts_correction(result, 0)
    dataset, _ = catalog.promote(result, "x")
    assert sum(expected.values()) == sum(p.rows for p in dataset.manifest.partitions)


# -- bad inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [10, 13, 100])
def test_unsupported_kind_names_the_row(tmp_path: Path, kind: int) -> None:
    """Protects against silently dropping L3 or custom events: the first such row and its kind are named."""
    rows = list(SMALL)
    rows[4] = (kind | BOTH | BUY_EVENT, 40, 50, 100.5, 4.0)
    path = save(tmp_path, events(rows))

    with pytest.raises(DataError) as info:
        convert(path, SPEC)

    assert "unsupported-kind" == info.value.rule
    assert str(path) == info.value.source
    assert "row 5" == info.value.location
    assert f"event kind {kind} " in str(info.value)


def test_both_side_flags_are_refused(tmp_path: Path) -> None:
    """Protects side mapping: a row flagged both BUY and SELL is an error naming the row."""
    rows = list(SMALL)
    rows[1] = (DEPTH_SNAPSHOT_EVENT | BOTH | BUY_EVENT | SELL_EVENT, 10, 20, 99.0, 2.0)
    path = save(tmp_path, events(rows))

    with pytest.raises(DataError) as info:
        convert(path, SPEC)

    assert ("invalid-side", "row 2") == (info.value.rule, info.value.location)


def float_matrix(tmp_path: Path) -> Path:
    """A float64 (N, 8) array: hftbacktest itself would accept it and read garbage."""
    return save(tmp_path, np.zeros((3, 8)), "events.npz")


def wrong_member(tmp_path: Path) -> Path:
    path = tmp_path / "events.npz"
    np.savez(path, events=events(SMALL))
    return path


def two_dimensional(tmp_path: Path) -> Path:
    return save(tmp_path, events(SMALL).reshape(3, 3), "events.npy")


def missing_field(tmp_path: Path) -> Path:
    arr = np.zeros(3, dtype=[("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8")])
    return save(tmp_path, arr, "events.npz")


def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.npz"
    path.write_text("exchange,symbol,timestamp\n")
    return path


def corrupt_npz(tmp_path: Path) -> Path:
    path = save(tmp_path, events(SMALL))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (float_matrix, "wrong-type"),
        (wrong_member, "wrong-type"),
        (two_dimensional, "wrong-type"),
        (missing_field, "wrong-type"),
        (text_file, "unreadable-input"),
        (corrupt_npz, "unreadable-input"),
        (lambda tmp: tmp / "absent.npz", "unreadable-input"),
    ],
    ids=["float-matrix", "no-data-member", "2-d", "missing-field", "text-file", "truncated-npz", "missing"],
)
def test_bad_files_name_the_file_and_rule(tmp_path: Path, make: Any, rule: str) -> None:
    """Protects input checks: wrong dtype/shape/member is wrong-type, a non-numpy file unreadable-input."""
    path = make(tmp_path)

    with pytest.raises(DataError) as info:
        convert(path, SPEC)

    assert rule == info.value.rule
    assert str(path) == info.value.source
    assert path.name in str(info.value)


def test_only_local_rows_is_empty_input(tmp_path: Path) -> None:
    """Protects empty-input: a file whose rows are all LOCAL-only copies has no events to import."""
    path = save(tmp_path, events([(TRADE_EVENT | LOCAL_EVENT | BUY_EVENT, 1, 2, 99.0, 1.0)]))

    with pytest.raises(DataError) as info:
        convert(path, SPEC)

    assert "empty-input" == info.value.rule
