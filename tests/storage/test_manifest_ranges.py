"""A manifest edited after promotion (its partitions' rank or time ranges, which the content hash does not
cover) is refused by `verify`, `verify --quick` and the feeder, naming the file: before, shifted ranks fed
another stream under the same version, and a shift of 10^9 crashed the process in a compiled kernel."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hftlab.errors import StorageError
from hftlab.event_cache import EventCache
from hftlab.feed import Window, load_events
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.storage import Catalog
from hftlab.storage.manifest import MANIFEST_NAME


def _promoted(tmp_path: Path) -> tuple[Catalog, Path]:
    catalog = Catalog(tmp_path / "canonical")
    dataset, _ = catalog.promote(generate(SynthParams(seed=3, days=0.01, events_per_second=20.0)), "syn")
    return catalog, dataset.path


def _edit(version_dir: Path, **changes: int) -> str:
    """Shift fields of the depth partition in manifest.json; returns that partition's path."""
    path = version_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    part = next(p for p in data["partitions"] if p["feed"] == "depth")
    for key, delta in changes.items():
        part[key] += delta
    os.chmod(version_dir, 0o755)
    os.chmod(path, 0o644)
    path.write_text(json.dumps(data))
    return str(part["path"])


@pytest.mark.parametrize(
    "changes",
    [
        {"seq_min": 1, "seq_max": 1},
        {"seq_min": 5, "seq_max": 5},
        {"seq_min": 10**9, "seq_max": 10**9},
        {"seq_min": -1},
        {"exch_ts_min": 1},
        {"exch_ts_max": -1},
        {"local_ts_max": 1000},
    ],
    ids=["seq+1", "seq+5", "seq+1e9", "seq_min-1", "exch_min", "exch_max", "local_max"],
)
def test_edited_ranges_are_refused_by_verify_quick_verify_and_the_feeder(tmp_path: Path, changes) -> None:
    catalog, version_dir = _promoted(tmp_path)
    victim = _edit(version_dir, **changes)
    for full in (True, False):
        with pytest.raises(StorageError, match="edited manifest") as err:
            catalog.verify("syn", full=full)
        assert victim in str(err.value)
    with pytest.raises(StorageError, match="the manifest does not describe this file") as err:
        load_events(catalog.resolve("syn"), Window())
    assert victim in str(err.value)
    with pytest.raises(StorageError, match="the manifest does not describe this file"):
        EventCache(tmp_path / "events").feed(catalog.resolve("syn"), Window())


def test_an_unedited_dataset_passes_and_feeds(tmp_path: Path) -> None:
    catalog, _ = _promoted(tmp_path)
    catalog.verify("syn", full=True)
    catalog.verify("syn", full=False)
    assert len(load_events(catalog.resolve("syn"), Window()).events) > 1000


def test_a_file_with_other_rows_under_the_same_hash_is_refused_by_quick_verify(tmp_path: Path) -> None:
    """A file rewritten with fewer rows and its hash updated in the manifest: the row count the version
    binds no longer matches the file's footer."""
    import pyarrow.parquet as pq

    from hftlab.storage.manifest import file_sha256

    catalog, version_dir = _promoted(tmp_path)
    data = json.loads((version_dir / MANIFEST_NAME).read_text())
    index, part = next((i, p) for i, p in enumerate(data["partitions"]) if p["feed"] == "depth")
    victim = version_dir / part["path"]
    os.chmod(victim.parent, 0o755)
    os.chmod(victim, 0o644)
    pq.write_table(pq.read_table(victim).slice(0, part["rows"] - 1), victim)
    data["partitions"][index].update(file_sha256=file_sha256(victim), file_bytes=victim.stat().st_size)
    os.chmod(version_dir, 0o755)
    os.chmod(version_dir / MANIFEST_NAME, 0o644)
    (version_dir / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(StorageError, match=f"{part['rows'] - 1} rows, the manifest says {part['rows']}"):
        catalog.verify("syn", full=False)


def test_the_feeder_kernels_never_write_outside_their_array() -> None:
    import numpy as np

    from hftlab import feed_kernels as K
    from hftlab.hftbacktest_types import EVENT_DTYPE

    out = np.zeros(2, EVENT_DTYPE)
    one = {k: np.ones(1, dtype=t) for k, t in (("e", np.int64), ("k", np.uint8), ("s", np.int8), ("p", np.float64))}
    cols = (one["e"], one["e"], one["k"], one["s"], one["p"], one["p"], np.zeros(1, np.uint64))
    for pos in (2, -1, 10**9):
        with pytest.raises(IndexError):
            K.scatter_rows(out, np.array([pos], dtype=np.int64), *cols)
    with pytest.raises(IndexError):
        K.rank_positions(np.array([5], dtype=np.int64), 0, 3)
