"""Canonical Storage: promotion, immutability, content versions, verification."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from hftlab.errors import ConfigError, StorageError
from hftlab.storage import Catalog, IngestResult, Instrument
from hftlab.storage.manifest import MANIFEST_NAME, Manifest
from tests.conftest import rewrite_manifest, tree_snapshot
from tests.storage.test_validation import INSTRUMENT, good_depth, good_trades


def result(**depth_override) -> IngestResult:
    return IngestResult(INSTRUMENT, [good_depth(**depth_override), good_trades()], {"converter": "test"})


def test_promoted_layout_is_partitioned_and_read_only(catalog: Catalog):
    """Files sit under venue/symbol/feed/date, are read-only, and the manifest lists them all."""
    dataset, new = catalog.promote(result(), "ds")
    assert new
    paths = sorted(p.relative_to(dataset.path).as_posix() for p in dataset.path.rglob("*.parquet"))
    assert [
        "venue=test/symbol=ABC/feed=depth/date=1970-01-01/part-0.parquet",
        "venue=test/symbol=ABC/feed=trades/date=1970-01-01/part-0.parquet",
    ] == paths
    for p in dataset.path.rglob("*.parquet"):
        assert 0 == p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert paths == [p.path for p in dataset.manifest.partitions]
    assert not list((catalog.root / ".staging").iterdir())


def test_seq_is_processing_order_across_feeds(catalog: Catalog):
    """seq ranks rows across feeds by exchange time (depth 100, trade 150, depth 200, trade 250, ...)."""
    dataset, _ = catalog.promote(result(), "ds")
    by_feed = {p.feed: (p.seq_min, p.seq_max) for p in dataset.manifest.partitions}
    assert {"depth": (0, 5), "trades": (1, 3)} == by_feed


def test_same_content_same_version_and_lineage_does_not_change_it(tmp_path):
    """The version is a content hash: equal rows give equal versions whatever the lineage or root."""
    a, _ = Catalog(tmp_path / "a").promote(result(), "ds")
    other = IngestResult(INSTRUMENT, [good_depth(), good_trades()], {"converter": "another"})
    b, _ = Catalog(tmp_path / "b").promote(other, "ds")
    c, _ = Catalog(tmp_path / "c").promote(result(qty=[1.0, 2.0, 0.0, 4.0]), "ds")
    assert a.version == b.version
    assert a.version != c.version
    tick = IngestResult(Instrument("test", "ABC", 0.25, 1.0), [good_depth(), good_trades()], {})
    d, _ = Catalog(tmp_path / "d").promote(tick, "ds")
    assert a.version != d.version


def test_promoting_identical_content_again_is_a_no_op(catalog: Catalog):
    """Re-promotion of the same rows returns the existing version and rewrites nothing."""
    first, _ = catalog.promote(result(), "ds")
    before = tree_snapshot(catalog.root)
    mtimes = {p: p.stat().st_mtime_ns for p in first.path.rglob("*")}
    again, new = catalog.promote(result(), "ds")
    assert not new
    assert first.version == again.version
    assert before == tree_snapshot(catalog.root)
    assert mtimes == {p: p.stat().st_mtime_ns for p in first.path.rglob("*")}


def test_different_content_under_existing_version_is_refused(catalog: Catalog):
    """If a stored version's manifest disagrees with the content being promoted, promotion is refused."""
    first, _ = catalog.promote(result(), "ds")
    for reseal, message in ((False, "edited manifest"), (True, "does not hash to version")):
        rewrite_manifest(first.path, lambda d: d.update(content_hash="0" * 64), reseal=reseal)
        before = tree_snapshot(catalog.root)
        with pytest.raises(StorageError, match=message):
            catalog.promote(result(), "ds")
        assert before == tree_snapshot(catalog.root)


def test_verify_names_a_file_with_one_flipped_byte(catalog: Catalog):
    """Flipping one byte of a promoted Parquet file is caught by quick and full verification."""
    dataset, _ = catalog.promote(result(), "ds")
    victim = dataset.path / dataset.manifest.partitions[0].path
    os.chmod(victim, 0o644)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    for full in (False, True):
        with pytest.raises(StorageError) as err:
            catalog.verify("ds", full=full)
        assert str(victim) in str(err.value) and "sha256 mismatch" in str(err.value)


def test_full_verify_catches_a_manifest_edited_to_match_a_changed_file(catalog: Catalog):
    """Changing rows and the manifest's file hash together passes the quick check but not the full one."""
    dataset, _ = catalog.promote(result(), "ds")
    other, _ = Catalog(catalog.root.parent / "other").promote(result(qty=[1.0, 2.0, 0.0, 9.0]), "ds")
    part = dataset.manifest.partitions[0]
    victim = dataset.path / part.path
    os.chmod(victim, 0o644)
    victim.write_bytes((other.path / part.path).read_bytes())
    replacement = other.manifest.partitions[0]
    rewrite_manifest(
        dataset.path,
        lambda d: d["partitions"][0].update(file_sha256=replacement.file_sha256, file_bytes=replacement.file_bytes),
    )  # resealed: only re-hashing the rows finds it
    catalog.verify("ds", full=False)
    with pytest.raises(StorageError, match="row content does not match"):
        catalog.verify("ds", full=True)


def test_verify_catches_missing_truncated_and_unlisted_files(catalog: Catalog):
    """A deleted partition, a truncated one and a stray file are each reported with their path."""
    dataset, _ = catalog.promote(result(), "ds")
    stray = dataset.path / "venue=test" / "stray.parquet"
    stray.write_bytes(b"x")
    with pytest.raises(StorageError, match="not listed in the manifest"):
        catalog.verify("ds")
    stray.unlink()
    victim = dataset.path / dataset.manifest.partitions[1].path
    os.chmod(victim, 0o644)
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(StorageError, match="truncated or modified"):
        catalog.verify("ds")
    victim.unlink()
    with pytest.raises(StorageError, match="partition file is missing"):
        catalog.verify("ds")


def test_resolve_requires_a_version_when_several_heads_exist(tmp_path):
    """Versions not grown from one another (separate imports, as before datasets could grow) are
    ambiguous without a version: the error lists them; naming one resolves it."""
    roots = [Catalog(tmp_path / "a"), Catalog(tmp_path / "b")]
    a, _ = roots[0].promote(result(), "ds")
    b, _ = roots[1].promote(result(qty=[1.0, 2.0, 0.0, 4.0]), "ds")
    shutil.copytree(b.path, roots[0].root / "ds" / b.version)
    with pytest.raises(StorageError, match="give a version") as err:
        roots[0].resolve("ds")
    assert a.version in str(err.value) and b.version in str(err.value)
    assert b.version == roots[0].resolve("ds", b.version).version
    with pytest.raises(StorageError, match="is not in Canonical Storage"):
        roots[0].resolve("ds", "0123456789abcdef")
    before = tree_snapshot(roots[0].root / "ds")
    with pytest.raises(StorageError, match=r"give a version .*An import grows the newest version: import under a new"):
        roots[0].promote(result(qty=[3.0, 2.0, 0.0, 4.0]), "ds")
    assert tree_snapshot(roots[0].root / "ds") == before


def test_resolve_of_an_absent_dataset_says_how_to_get_it(catalog: Catalog):
    """A dataset id with no version (a fresh clone before `./dev run`) names the id, the storage root, the
    datasets there, and how to build one, with or without a version given."""
    catalog.promote(result(), "other")
    for version in (None, "0123456789abcdef"):
        with pytest.raises(
            StorageError, match=r"no dataset 'synthetic' in Canonical Storage at .*'other'.*hftlab data"
        ):
            catalog.resolve("synthetic", version)


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", ".."])
def test_dataset_ids_that_would_escape_the_root_are_refused(catalog: Catalog, name: str):
    """Dataset ids become directory names: separators, '..' and leading dots are refused."""
    with pytest.raises(ConfigError, match="not a valid name"):
        catalog.promote(result(), name)


def test_manifest_round_trips_and_records_lineage(catalog: Catalog):
    """The manifest stores schema version, instrument, lineage and per-file facts, and reads back equal."""
    dataset, _ = catalog.promote(result(), "ds")
    again = Manifest.read(dataset.path / MANIFEST_NAME)
    assert dataset.manifest == again
    assert 1 == again.schema_version
    assert {"converter": "test"} == again.lineage
    assert 6 == again.rows and 100 == again.start_ns and 400 == again.end_ns
