"""The event cache: pieces equal to the single-array feed, verified before use (a tampered piece is
refused and fed again), least-recently-used eviction under a size limit, and runs fed from cached
pieces with byte-identical records to runs fed one array."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hftlab import compose_runs, execute, prepare
from hftlab.errors import ConfigError, FeedError, StorageError
from hftlab.event_cache import INDEX, EventCache, chunk_rows, default_dir
from hftlab.feed import Window, load_events
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.run.results import deterministic_files
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument
from hftlab.times import to_ns
from tests.conftest import PROJECT_ROOT, rewrite_manifest

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
    del first  # in use, a damaged entry is not removed (the run using it verified it when it began)
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    again = cache.feed(dataset, WINDOW, budget=20_000)
    assert f"{victim.name} does not match its recorded sha256: removed, feeding again" in capsys.readouterr().err
    assert again.cache_hit is False and _concat(again).tobytes() == expected


def test_a_damaged_entry_in_use_is_not_removed_under_its_reader(three_days: Catalog, tmp_path: Path):
    """A damaged piece found while another reader holds the entry: refused with what to do, files kept."""
    dataset = three_days.resolve("syn3")
    cache = EventCache(tmp_path / "cache")
    reader = cache.feed(dataset, WINDOW, budget=20_000)
    victim = reader.files[1]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:-8] + b"\xff" * 8)
    with pytest.raises(StorageError, match="does not match its recorded sha256, and another process is using it"):
        cache.feed(dataset, WINDOW, budget=20_000)
    assert all(f.is_file() for f in reader.files)


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
    b_dir = b.files[0].parent
    os.utime(b_dir / INDEX, (2, 2))  # ... b a little later
    cache.feed(dataset, days[0])  # a used again now: b is the least recently used
    del b  # no longer in use (a window in use is never removed: see the next test)
    c = cache.feed(dataset, days[2])
    left = {e.path for e in cache.entries()}
    assert left == {a.files[0].parent, c.files[0].parent}
    assert not b_dir.exists()
    assert sum(e.bytes for e in cache.entries()) <= cache.limit


def test_a_window_in_use_is_not_removed_by_another_process_trimming(three_days: Catalog, tmp_path: Path):
    """A run's fed data holds a shared lock on its entry: a trim (here by a second cache object, its own
    lock) skips it while it is used, and removes it once released."""
    dataset = three_days.resolve("syn3")
    days = [Window(start=to_ns(f"2024-03-0{d}"), end=to_ns(f"2024-03-0{d + 1}")) for d in (1, 2)]
    in_use = EventCache(tmp_path / "cache").feed(dataset, days[0])
    other = EventCache(tmp_path / "cache", limit_bytes=1)  # room for nothing
    other.feed(dataset, days[1])
    assert all(f.is_file() for f in in_use.files)  # kept: in use
    assert _concat(in_use).tobytes() == load_events(dataset, days[0]).events.tobytes()
    kept = in_use.files[0].parent
    del in_use
    assert kept in {e.path for e in other.trim()} and other.entries() == []
    held = other.feed(dataset, days[0])
    assert (0, 1) == other.clear() and held.files[0].is_file()  # clear keeps it too
    del held
    freed, busy = other.clear()
    assert freed > 0 and busy == 0 and other.entries() == []


def test_unfinished_writes_of_dead_processes_are_removed_live_ones_counted(three_days: Catalog, tmp_path: Path):
    cache = EventCache(tmp_path / "cache", limit_bytes=1 << 40)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for pid in (int(dead.stdout), os.getpid()):
        staging = tmp_path / "cache" / ".staging" / f"{'0' * 64}-{pid}-{'ab' * 16}"
        staging.mkdir(parents=True)
        (staging / "chunk-00000.npy").write_bytes(b"x" * 1000)
    assert (1000, 1) == cache.staging()
    assert [p.name.split("-")[1] for p in (tmp_path / "cache" / ".staging").iterdir()] == [str(os.getpid())]


def test_a_hit_refuses_a_damaged_dataset_version(tmp_path: Path):
    """The cache answers only for the dataset version it was fed from: an edited manifest or a missing
    partition file is refused as the in-memory feeder refuses it."""
    catalog = Catalog(tmp_path / "canonical")
    catalog.promote(generate(SynthParams(seed=5, start="2024-03-01", days=0.3, events_per_second=0.2)), "syn")
    dataset = catalog.resolve("syn")
    cache = EventCache(tmp_path / "cache")
    cache.feed(dataset)
    part = dataset.path / dataset.manifest.partitions[-1].path
    part.chmod(0o644)
    part.unlink()
    with pytest.raises(StorageError, match="partition file is missing"):
        cache.feed(dataset)
    rewrite_manifest(dataset.path, lambda d: d.update(partitions=d["partitions"][:-1]))
    with pytest.raises(StorageError, match="manifest does not hash to version"):
        cache.feed(Catalog(tmp_path / "canonical").resolve("syn"))


def test_an_index_that_lists_fewer_pieces_is_refused_and_fed_again(three_days: Catalog, tmp_path: Path, capsys):
    dataset = three_days.resolve("syn3")
    cache = EventCache(tmp_path / "cache")
    first = cache.feed(dataset, WINDOW, budget=20_000)
    expected = _concat(first).tobytes()
    index_path = first.files[0].parent / INDEX
    del first
    index = json.loads(index_path.read_text())
    index["chunks"] = index["chunks"][:-1]
    index_path.chmod(0o644)
    index_path.write_text(json.dumps(index))
    again = cache.feed(dataset, WINDOW, budget=20_000)
    assert "index.json lists pieces" in capsys.readouterr().err
    assert again.cache_hit is False and _concat(again).tobytes() == expected


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("HFTLAB_EVENT_CACHE_GB", "inf", "finite number"),
        ("HFTLAB_EVENT_CACHE_GB", "-1", "finite number >= 0"),
        ("HFTLAB_FEED_CHUNK_ROWS", "2500.9", "whole number"),
        ("HFTLAB_FEED_CHUNK_ROWS", "inf", "whole number"),
        ("HFTLAB_FEED_CHUNK_ROWS", "10", ">= 1000"),
        ("HFTLAB_EVENT_CACHE", "false", "or 'off'"),
    ],
)
def test_bad_cache_settings_are_refused_naming_the_variable(
    monkeypatch, tmp_path: Path, name: str, value: str, rule: str
):
    read = {
        "HFTLAB_EVENT_CACHE_GB": lambda: EventCache(tmp_path),
        "HFTLAB_FEED_CHUNK_ROWS": chunk_rows,
        "HFTLAB_EVENT_CACHE": default_dir,
    }[name]
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"\${name}=.*{re.escape(rule)}"):
        read()


def test_cache_location_off_in_any_case_and_relative_paths_made_absolute(monkeypatch, tmp_path: Path):
    for off in ("off", " OFF ", "Off"):
        monkeypatch.setenv("HFTLAB_EVENT_CACHE", off)
        assert default_dir() is None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HFTLAB_EVENT_CACHE", "rel/cache")
    assert default_dir() == tmp_path / "rel" / "cache"


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


def test_cache_info_lists_windows_and_clear_keeps_a_window_in_use(
    three_days: Catalog, tmp_path: Path, monkeypatch, capsys
):
    from hftlab.cli import main

    monkeypatch.setenv("HFTLAB_EVENT_CACHE", str(tmp_path / "cache"))
    dataset = three_days.resolve("syn3")
    held = EventCache().feed(dataset, WINDOW, budget=20_000)
    EventCache().feed(dataset, Window(start=to_ns("2024-03-01"), end=to_ns("2024-03-02")))
    assert 0 == main(["cache", "info"])
    out = capsys.readouterr().out
    assert "2 window(s)" in out and f"syn3 {dataset.version} snapshot,depth,trades" in out
    assert f"{len(held.files)} piece(s)" in out
    assert 0 == main(["cache", "clear"])
    assert "1 window(s) in use by a running process kept" in capsys.readouterr().out
    assert all(f.is_file() for f in held.files)
    del held
    assert 0 == main(["cache", "clear"])
    assert "in use" not in capsys.readouterr().out and EventCache().entries() == []
