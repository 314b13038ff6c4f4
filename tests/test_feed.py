"""Historical Input Feeder: Processing Order, windows across date partitions, determinism, integrity."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

from hftlab.errors import ConfigError, StorageError
from hftlab.feed import DatasetRef, Window
from hftlab.hftbacktest_types import EVENT_DTYPE
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument
from hftlab.times import to_ns

EXCH, LOCAL, BUY, SELL = 1 << 31, 1 << 30, 1 << 29, 1 << 28
DAY = 86_400 * 10**9


def test_event_dtype_is_hftbacktests():
    """The feeder's record layout is exactly hftbacktest's event_dtype."""
    from hftbacktest.types import event_dtype

    assert event_dtype == EVENT_DTYPE


@pytest.fixture
def tiny(catalog: Catalog) -> Catalog:
    """A hand-made dataset whose REST-style snapshot is stamped before the stream around it."""
    inst = Instrument("test", "ABC", 0.5, 1.0)
    snapshot = FeedFrame.from_columns(
        "snapshot", "snap", exch_ts=[1] * 4, local_ts=[5] * 4, kind=[3, 4, 3, 4], side=[1, 1, -1, -1],
        price=[9.5, 9.5, 10.5, 10.5], qty=[0, 1, 0, 2],
    )  # fmt: skip
    depth = FeedFrame.from_columns(
        "depth", "depth", exch_ts=[2, 3, 4], local_ts=[3, 6, 7], kind=[1, 1, 1], side=[1, -1, 1],
        price=[10, 10.5, 9.5], qty=[1, 2, 3],
    )  # fmt: skip
    trades = FeedFrame.from_columns(
        "trades", "trades", exch_ts=[2, 3], local_ts=[4, 6], kind=[2, 2], side=[1, 0], price=[10, 10.5], qty=[1, 2]
    )
    catalog.promote(IngestResult(inst, [snapshot, depth, trades], {}), "tiny")
    return catalog


def test_exact_processing_order_with_split_rows(tiny: Catalog):
    """Rows whose local order disagrees with exchange order are split into EXCH-only and LOCAL-only copies."""
    ev = DatasetRef("tiny").load(tiny).events
    got = [(int(e["ev"]), int(e["exch_ts"]), int(e["local_ts"]), float(e["px"])) for e in ev]
    snap = [(3 | BUY, 9.5), (4 | BUY, 9.5), (3 | SELL, 10.5), (4 | SELL, 10.5)]
    expected = (
        [(k | EXCH, 1, 5, px) for k, px in snap]  # snapshot: exchange copies first (exch_ts 1)
        + [(1 | BUY | EXCH | LOCAL, 2, 3, 10.0), (2 | BUY | EXCH | LOCAL, 2, 4, 10.0)]
        + [(k | LOCAL, 1, 5, px) for k, px in snap]  # then their local copies (local_ts 5)
        # at equal timestamps the trade comes before the depth update that reflects it
        + [(2 | EXCH | LOCAL, 3, 6, 10.5), (1 | SELL | EXCH | LOCAL, 3, 6, 10.5), (1 | BUY | EXCH | LOCAL, 4, 7, 9.5)]
    )
    assert expected == got


def test_feed_subset_merges_by_rank(tiny: Catalog):
    """Selecting only some feeds leaves gaps in seq; rows still come out in Processing Order."""
    ev = DatasetRef("tiny", feeds=("depth", "trades")).load(tiny).events
    assert [2, 2, 3, 3, 4] == ev["exch_ts"].tolist()
    assert [1, 2, 2, 1, 1] == (ev["ev"] & 0xFF).tolist()
    assert np.all((ev["ev"] & (EXCH | LOCAL)) == (EXCH | LOCAL))


def test_unknown_feed_and_bad_window_are_refused(tiny: Catalog):
    """A feed name that does not exist, or an empty window, fails before reading anything."""
    with pytest.raises(ConfigError, match="unknown"):
        Window(("depht",))
    with pytest.raises(ConfigError, match="unknown"):
        DatasetRef("tiny", feeds=("depht",)).load(tiny)
    with pytest.raises(ConfigError, match="not after start"):
        Window(start=5, end=5)
    with pytest.raises(ConfigError, match="not after start"):
        DatasetRef("tiny", start=5, end=5).load(tiny)
    with pytest.raises(ConfigError, match=r"dataset.start: \[time-format\] 'yesterday' is neither .* ISO-8601"):
        to_ns("yesterday", "dataset.start")
    with pytest.raises(ConfigError, match=r"dataset.start: \[time-format\] 'yesterday' is neither .* ISO-8601"):
        DatasetRef("tiny", start="yesterday").load(tiny)
    with pytest.raises(StorageError, match="holds symbol 'ABC'"):
        DatasetRef("tiny", symbol="XYZ").load(tiny)


def test_to_ns_parses_iso_utc():
    """ISO-8601 times are UTC; integers are nanoseconds."""
    assert DAY == to_ns("1970-01-02")
    assert DAY + 3_600 * 10**9 == to_ns("1970-01-02T01:00:00Z")
    assert 5 == to_ns(5)
    assert 1_704_067_800_000_000_000 == to_ns("1704067800000000000")  # integer ns as text (from config)
    assert to_ns("2024") == to_ns("2024-01-01")


@pytest.fixture(scope="module")
def two_days(tmp_path_factory) -> Catalog:
    """A synthetic dataset over two UTC dates."""
    from hftlab.ingest.synthetic import SynthParams, generate

    catalog = Catalog(tmp_path_factory.mktemp("canonical"))
    catalog.promote(generate(SynthParams(seed=3, start="2024-03-01", days=2.0, events_per_second=0.5)), "syn2")
    return catalog


def test_window_across_two_date_partitions(two_days: Catalog):
    """A window from noon to noon reads both dates, exactly the rows with exch_ts in [start, end)."""
    dataset = two_days.resolve("syn2")
    assert {"2024-03-01", "2024-03-02"} == {p.date for p in dataset.manifest.partitions}
    start, end = to_ns("2024-03-01T12:00"), to_ns("2024-03-02T12:00")
    fed = DatasetRef("syn2", start="2024-03-01T12:00", end="2024-03-02T12:00").load(two_days)
    files = [str(dataset.path / p.path) for p in dataset.manifest.partitions]
    table = pads.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(dataset.path)).to_table()
    exch = table.column("exch_ts").to_numpy()
    feed = table.column("feed").to_numpy(zero_copy_only=False)
    expected = int(np.sum((exch >= start) & (exch < end) & np.isin(feed, ["snapshot", "depth", "trades"])))
    exch_rows = fed.events[(fed.events["ev"] & EXCH) != 0]
    assert expected == len(exch_rows)
    assert int(exch_rows["exch_ts"].min()) >= start and int(exch_rows["exch_ts"].max()) < end
    assert np.any(exch_rows["exch_ts"] < to_ns("2024-03-02")) and np.any(exch_rows["exch_ts"] >= to_ns("2024-03-02"))
    assert np.all(np.diff(exch_rows["exch_ts"]) >= 0)
    assert len(fed.initial_snapshot) > 0


def test_concatenated_windows_equal_the_whole(two_days: Catalog):
    """Feeding [a, b) then [b, c) gives exactly the rows of feeding [a, c): no row lost or doubled."""
    whole = DatasetRef("syn2").load(two_days).events
    cut = to_ns("2024-03-02T00:00")
    first = DatasetRef("syn2", end=cut).load(two_days).events
    second = DatasetRef("syn2", start=cut).load(two_days).events
    assert whole.tobytes() == np.concatenate([first, second]).tobytes()


def _digest_in_subprocess(root: Path, dataset_id: str) -> str:
    code = (
        "import hashlib, sys; from hftlab.feed import DatasetRef; from hftlab.storage import Catalog; "
        f"f = DatasetRef({dataset_id!r}, start='2024-03-01T06:00').load(Catalog({str(root)!r})); "
        "print(hashlib.sha256(f.events.tobytes() + f.initial_snapshot.tobytes()).hexdigest())"
    )
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_feeder_output_is_identical_across_processes(two_days: Catalog):
    """sha256 of the fed arrays is the same in this process, on a second call, and in two other processes."""
    ref = DatasetRef("syn2", start="2024-03-01T06:00")
    digests = []
    for _ in range(2):
        fed = ref.load(two_days)
        digests.append(hashlib.sha256(fed.events.tobytes() + fed.initial_snapshot.tobytes()).hexdigest())
    digests += [_digest_in_subprocess(two_days.root, "syn2") for _ in range(2)]
    assert 1 == len(set(digests)), digests
