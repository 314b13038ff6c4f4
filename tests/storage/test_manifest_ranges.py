"""Tampered datasets are refused by `verify`, `verify --quick` and the feeder (and the event cache), naming
the file: an edited manifest (its seal), one edited with its seal recomputed (the files' own ranges and row
counts, and the full verify's content hash), a broken manifest, a partition replaced by a symbolic link.
Before, shifted ranks fed another stream under the same version, and a shift of 10^9 crashed the process in
a compiled kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hftlab.errors import StorageError
from hftlab.event_cache import EventCache
from hftlab.feed import Window, load_events
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.storage import Catalog
from hftlab.storage.manifest import MANIFEST_NAME
from tests.conftest import rewrite_manifest


def _promoted(tmp_path: Path) -> tuple[Catalog, Path]:
    catalog = Catalog(tmp_path / "canonical")
    dataset, _ = catalog.promote(generate(SynthParams(seed=3, days=0.01, events_per_second=20.0)), "syn")
    return catalog, dataset.path


def _edit(version_dir: Path, reseal: bool, **changes: int) -> str:
    """Shift fields of the depth partition in manifest.json; returns that partition's path."""
    victim: list[str] = []

    def change(data: dict) -> None:
        part = next(p for p in data["partitions"] if p["feed"] == "depth")
        for key, delta in changes.items():
            part[key] += delta
        victim.append(part["path"])

    rewrite_manifest(version_dir, change, reseal=reseal)
    return victim[0]


def _refused_everywhere(catalog: Catalog, events: Path, match: str, named: str) -> None:
    """`verify`, `verify --quick`, the feeder and the event cache each refuse, naming ``named``."""
    for full in (True, False):
        with pytest.raises(StorageError, match=match) as err:
            catalog.verify("syn", full=full)
        assert named in str(err.value)
    with pytest.raises(StorageError, match=match) as err:
        load_events(Catalog(catalog.root).resolve("syn"), Window())
    assert named in str(err.value)
    with pytest.raises(StorageError, match=match) as err:
        EventCache(events).feed(Catalog(catalog.root).resolve("syn"), Window())
    assert named in str(err.value)


RANGE_EDITS = pytest.mark.parametrize(
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


@RANGE_EDITS
def test_an_edited_manifest_is_refused_by_its_seal(tmp_path: Path, changes) -> None:
    catalog, version_dir = _promoted(tmp_path)
    _edit(version_dir, False, **changes)
    _refused_everywhere(catalog, tmp_path / "events", "edited manifest", str(version_dir / MANIFEST_NAME))


@RANGE_EDITS
def test_edited_ranges_with_a_recomputed_seal_are_refused_by_the_files_own_ranges(tmp_path: Path, changes) -> None:
    """Behind the seal: someone who recomputes it still cannot make the feeder use other ranks or times."""
    catalog, version_dir = _promoted(tmp_path)
    victim = _edit(version_dir, True, **changes)
    for full in (True, False):
        with pytest.raises(StorageError, match="edited manifest") as err:
            catalog.verify("syn", full=full)
        assert victim in str(err.value)
    with pytest.raises(StorageError, match="the manifest does not describe this file") as err:
        load_events(catalog.resolve("syn"), Window())
    assert victim in str(err.value)
    with pytest.raises(StorageError, match="the manifest does not describe this file"):
        EventCache(tmp_path / "events").feed(catalog.resolve("syn"), Window())


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(start_ns=d["start_ns"] - 1),
        lambda d: d.update(end_ns=d["end_ns"] + 10**9),
        lambda d: d["sources"][0].update(end_ns=d["sources"][0]["end_ns"] + 1),
        lambda d: d["sources"][0]["lineage"].update(converter="something-else"),
        lambda d: d.update(parent="0123456789abcdef"),
        lambda d: d.pop("sources"),
        lambda d: d["partitions"][0].pop("file_sha256"),
        lambda d: d.update(extra="field"),
    ],
    ids=["start", "end", "source-end", "lineage", "parent", "missing-sources", "missing-file-hash", "extra-key"],
)
def test_every_field_is_sealed(tmp_path: Path, change) -> None:
    """Time ranges and lineage (what users read), a missing or an extra key: the seal refuses each."""
    catalog, version_dir = _promoted(tmp_path)
    rewrite_manifest(version_dir, change, reseal=False)
    _refused_everywhere(catalog, tmp_path / "events", "edited manifest", str(version_dir / MANIFEST_NAME))


def test_a_missing_key_under_a_recomputed_seal_is_named(tmp_path: Path) -> None:
    catalog, version_dir = _promoted(tmp_path)
    rewrite_manifest(version_dir, lambda d: d.pop("sources"))
    _refused_everywhere(catalog, tmp_path / "events", "lacks the key 'sources'", str(version_dir / MANIFEST_NAME))


@pytest.mark.parametrize(
    ("text", "match"),
    [("{not json", "not valid JSON"), ("[1, 2]", "a manifest is a JSON object"), ("{}", "no manifest_sha256")],
    ids=["invalid-json", "not-an-object", "no-seal"],
)
def test_a_broken_manifest_is_a_clear_error_naming_the_file(tmp_path: Path, text: str, match: str) -> None:
    catalog, version_dir = _promoted(tmp_path)
    path = version_dir / MANIFEST_NAME
    os.chmod(version_dir, 0o755)
    os.chmod(path, 0o644)
    path.write_text(text)
    _refused_everywhere(catalog, tmp_path / "events", match, str(path))


def test_rows_rewritten_with_the_file_hash_updated_are_refused(tmp_path: Path) -> None:
    """Other rows (same count) with the manifest's file hash and size updated: the seal refuses it
    everywhere; with the seal recomputed as well, the full verify re-hashes the rows into the version."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from hftlab.storage.manifest import file_sha256

    catalog, version_dir = _promoted(tmp_path)
    index, part = next((i, p) for i, p in enumerate(catalog.resolve("syn").manifest.partitions) if p.feed == "depth")
    victim = version_dir / part.path
    os.chmod(victim.parent, 0o755)
    os.chmod(victim, 0o644)
    table = pq.read_table(victim)
    qty = table.schema.get_field_index("qty")
    pq.write_table(table.set_column(qty, "qty", pc.add(table.column("qty"), 1.0)), victim)
    sha, size = file_sha256(victim), victim.stat().st_size

    def change(d: dict) -> None:
        d["partitions"][index].update(file_sha256=sha, file_bytes=size)

    rewrite_manifest(version_dir, change, reseal=False)
    _refused_everywhere(catalog, tmp_path / "events", "edited manifest", str(version_dir / MANIFEST_NAME))
    rewrite_manifest(version_dir, lambda d: None)  # the forger's seal
    with pytest.raises(StorageError, match="row content does not match") as err:
        catalog.verify("syn", full=True)
    assert str(victim) in str(err.value)


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_partition_replaced_by_a_symlink_is_refused(tmp_path: Path, where: str) -> None:
    """A link to an identical copy outside the storage root: every byte hash matches, yet the version
    would read a file it does not hold."""
    import shutil

    catalog, version_dir = _promoted(tmp_path)
    part = next(p for p in catalog.resolve("syn").manifest.partitions if p.feed == "depth")
    victim = version_dir / part.path
    target = victim if where == "file" else victim.parent
    outside = tmp_path / "outside" / target.name
    outside.parent.mkdir()
    os.chmod(target.parent, 0o755)
    (shutil.copytree if where == "folder" else shutil.copyfile)(target, outside)
    (shutil.rmtree if where == "folder" else os.remove)(target)
    target.symlink_to(outside)
    _refused_everywhere(catalog, tmp_path / "events", "symbolic link", str(target))


def test_an_unedited_dataset_passes_and_feeds(tmp_path: Path) -> None:
    catalog, _ = _promoted(tmp_path)
    catalog.verify("syn", full=True)
    catalog.verify("syn", full=False)
    assert len(load_events(catalog.resolve("syn"), Window()).events) > 1000


def test_a_file_with_other_rows_under_the_same_hash_is_refused_by_quick_verify(tmp_path: Path) -> None:
    """A file rewritten with fewer rows and its hash updated in the manifest, the seal recomputed: the row
    count the version binds no longer matches the file's footer."""
    import pyarrow.parquet as pq

    from hftlab.storage.manifest import file_sha256

    catalog, version_dir = _promoted(tmp_path)
    index, part = next((i, p) for i, p in enumerate(catalog.resolve("syn").manifest.partitions) if p.feed == "depth")
    victim = version_dir / part.path
    os.chmod(victim.parent, 0o755)
    os.chmod(victim, 0o644)
    pq.write_table(pq.read_table(victim).slice(0, part.rows - 1), victim)
    sha, size = file_sha256(victim), victim.stat().st_size
    rewrite_manifest(version_dir, lambda d: d["partitions"][index].update(file_sha256=sha, file_bytes=size))
    with pytest.raises(StorageError, match=f"{part.rows - 1} rows, the manifest says {part.rows}"):
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
