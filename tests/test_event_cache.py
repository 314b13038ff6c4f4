"""The event cache: pieces equal to the single-array feed, verified before use (a tampered piece is
refused and fed again), least-recently-used eviction under a size limit, and runs fed from cached
pieces with byte-identical records to runs fed one array."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hftlab import compose_runs, execute, prepare
from hftlab.errors import FeedError
from hftlab.event_cache import INDEX, EventCache
from hftlab.feed import Window, load_events
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.run.results import deterministic_files
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument
from hftlab.times import to_ns
from tests.conftest import PROJECT_ROOT

WINDOW = Window(start=to_ns("2024-03-01T07:00"), end=to_ns("2024-03-03T20:00"))


@pytest.fixture(scope="module")
def three_days(tmp_path_factory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("canonical"))
    catalog.promote(generate(SynthParams(seed=5, start="2024-03-01", days=3.0, events_per_second=0.2)), "syn3")
    return catalog


def _concat(fed) -> np.ndarray:
    return np.concatenate([np.asarray(p) for p in fed.pieces()])


def test_cached_pieces_equal_the_single_array_and_a_second_feed_hits(three_days: Catalog, tmp_path: Path):
    dataset = three_days.resolve("syn3")
    whole = load_events(dataset, WINDOW)
    cache = EventCache(tmp_path / "cache")
    filled = cache.feed(dataset, WINDOW, budget=20_000)
    assert filled.cache_hit is False and len(filled.files) > 3
    hit = cache.feed(dataset, WINDOW, budget=20_000)
    assert hit.cache_hit is True and hit.files == filled.files
    for fed in (filled, hit):
        assert _concat(fed).tobytes() == whole.events.tobytes()
        assert fed.initial_snapshot.tobytes() == whole.initial_snapshot.tobytes() and len(fed.initial_snapshot)
        assert fed.rows == len(whole.events) and fed.warnings == whole.warnings


def test_a_tampered_piece_is_refused_and_fed_again(three_days: Catalog, tmp_path: Path, capsys):
    dataset = three_days.resolve("syn3")
    cache = EventCache(tmp_path / "cache")
    first = cache.feed(dataset, WINDOW, budget=20_000)
    expected = _concat(first).tobytes()
    victim = first.files[1]
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    again = cache.feed(dataset, WINDOW, budget=20_000)
    assert f"{victim.name} does not match its recorded sha256: removed, feeding again" in capsys.readouterr().err
    assert again.cache_hit is False and _concat(again).tobytes() == expected


def test_least_recently_used_windows_are_evicted_beyond_the_limit(three_days: Catalog, tmp_path: Path):
    dataset = three_days.resolve("syn3")
    days = [Window(start=to_ns(f"2024-03-0{d}"), end=to_ns(f"2024-03-0{d + 1}")) for d in (1, 2, 3)]
    probe = EventCache(tmp_path / "probe")
    probe.feed(dataset, days[0])
    one = probe.entries()[0].bytes
    cache = EventCache(tmp_path / "cache", limit_bytes=int(2.5 * one))
    a = cache.feed(dataset, days[0])
    b = cache.feed(dataset, days[1])
    os.utime(a.files[0].parent / INDEX, (1, 1))  # a used long ago ...
    os.utime(b.files[0].parent / INDEX, (2, 2))  # ... b a little later
    cache.feed(dataset, days[0])  # a used again now: b is the least recently used
    c = cache.feed(dataset, days[2])
    left = {e.path for e in cache.entries()}
    assert left == {a.files[0].parent, c.files[0].parent}
    assert not b.files[0].parent.exists()
    assert sum(e.bytes for e in cache.entries()) <= cache.limit


def _run(catalog: Catalog, results: Path, *overrides: str) -> Path:
    (config,) = compose_runs(
        [[
            "dataset.id=syn3", f"dataset.root={catalog.root}", f"output.results_dir={results}",
            "dataset.start=2024-03-01T07:00", "dataset.end=2024-03-03T20:00", *overrides,
        ]],
        PROJECT_ROOT,
    )  # fmt: skip
    result = execute(prepare(config, PROJECT_ROOT))
    assert not result.cached
    return result.path


def test_a_run_fed_in_pieces_equals_a_run_fed_one_array(three_days: Catalog, tmp_path: Path, monkeypatch):
    """Three days, pieces of at most 5,000 rows through the cache vs one array in memory: every
    deterministic file of the two runs is byte-identical."""
    monkeypatch.setenv("HFTLAB_EVENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HFTLAB_FEED_CHUNK_ROWS", "5000")
    pieces = _run(three_days, tmp_path / "a")
    telemetry = json.loads((pieces / "telemetry.json").read_text())
    assert telemetry["event_cache"] == "filled" and telemetry["events"] > 50_000
    assert len(list((tmp_path / "cache").glob("*/*/chunk-*.npy"))) > 10
    monkeypatch.setenv("HFTLAB_EVENT_CACHE", "off")
    whole = _run(three_days, tmp_path / "b")
    assert json.loads((whole / "telemetry.json").read_text())["event_cache"] == "off"
    files = deterministic_files(pieces)
    assert "records/fills.parquet" in files and files == deterministic_files(whole)
    for rel in files:
        assert (
            hashlib.sha256((pieces / rel).read_bytes()).digest() == hashlib.sha256((whole / rel).read_bytes()).digest()
        ), rel
    assert json.loads((pieces / "warnings.json").read_text()) == []


def test_l3_queue_model_on_l2_data_is_refused_before_the_run(three_days: Catalog, tmp_path: Path):
    (config,) = compose_runs(
        [["dataset.id=syn3", f"dataset.root={three_days.root}", "venue.queue.model=l3_fifo"]], PROJECT_ROOT
    )
    with pytest.raises(FeedError, match=r"l3_fifo needs order-by-order \(L3\) rows; dataset 'syn3' .* L2 feeds only"):
        prepare(config, PROJECT_ROOT)


def test_a_window_without_a_book_snapshot_says_so(catalog: Catalog, tmp_path: Path):
    """Depth updates before the first snapshot: the feed warns (in memory and through the cache alike)."""
    inst = Instrument("test", "ABC", 0.5, 1.0)
    t = to_ns("2024-03-01T00:00")
    depth = FeedFrame.from_columns(
        "depth", "d", exch_ts=[t + 1, t + 2, t + 9], local_ts=[t + 5, t + 6, t + 13], kind=[1, 1, 1],
        side=[1, -1, 1], price=[10, 10.5, 9.5], qty=[1, 2, 3],
    )  # fmt: skip
    snapshot = FeedFrame.from_columns(
        "snapshot", "s", exch_ts=[t + 3_000_000_000] * 2, local_ts=[t + 3_000_000_005] * 2, kind=[4, 4],
        side=[1, -1], price=[9.5, 10.5], qty=[1, 2],
    )  # fmt: skip
    catalog.promote(IngestResult(inst, [snapshot, depth], {}), "nosnap")
    dataset = catalog.resolve("nosnap")
    for fed in (load_events(dataset), EventCache(tmp_path / "cache").feed(dataset)):
        (warning,) = fed.warnings
        assert (
            "no book snapshot before it" in warning
            and "first snapshot at 2024-03-01T00:00:03Z (3.000 s later)" in warning
        )
    later = load_events(dataset, Window(start=t + 3_000_000_000))
    assert later.warnings == ()


def test_the_warning_reaches_the_run_and_its_report(catalog: Catalog, tmp_path: Path, capsys):
    """The synthetic market from its start, minus its first snapshot: the run prints the warning, stores
    it in warnings.json, and the experiment report shows it."""
    from hftlab.analysis.report import experiment_report

    full = generate(SynthParams(seed=2, start="2024-03-01", days=0.02, events_per_second=5.0))
    first_snapshot = int(next(f for f in full.feeds if f.feed == "snapshot").exch_ts.min())
    for i, frame in enumerate(full.feeds):
        if frame.feed == "snapshot":
            full.feeds[i] = frame.take(frame.exch_ts > first_snapshot)
    catalog.promote(full, "late")
    (config,) = compose_runs(
        [["dataset.id=late", f"dataset.root={catalog.root}", f"output.results_dir={tmp_path}"]], PROJECT_ROOT
    )
    run = execute(prepare(config, PROJECT_ROOT)).path
    (warning,) = json.loads((run / "warnings.json").read_text())
    assert "has no book snapshot before it" in warning and warning in capsys.readouterr().err
    page = experiment_report(run.parent.parent, tmp_path / "report").read_text()
    assert "<h2>Warnings</h2>" in page and "has no book snapshot before it" in page and run.name in page
