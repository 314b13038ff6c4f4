"""Shared fixtures: the real market samples in ../shared/data, and an isolated storage root."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from hftlab.files import canonical_json
from hftlab.storage import Catalog, Instrument
from hftlab.storage.manifest import MANIFEST_NAME, SEAL

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# A Ray driver otherwise replaces builtins.print (ray.experimental.tqdm_ray) in the test process, after which
# numba cannot compile hftbacktest's converters that print (untyped global 'print') in the same process.
os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
# Runs (and the processes tests start) feed through an event cache of this session, not the user's.
_EVENT_CACHE = tempfile.mkdtemp(prefix="hftlab-test-event-cache-")
os.environ.setdefault("HFTLAB_EVENT_CACHE", _EVENT_CACHE)
atexit.register(shutil.rmtree, _EVENT_CACHE, True)


@pytest.fixture
def shared_data() -> Path:
    """The real samples folder; tests that need it skip (with the reason) where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real market samples not found at {SHARED_DATA} (a user's clone has no ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """An empty Canonical Storage root in a temporary directory."""
    return Catalog(tmp_path / "canonical")


def rewrite_manifest(version_dir: Path, change: Callable[[dict], None], *, reseal: bool = True) -> None:
    """Edit a promoted ``manifest.json`` in place, as a user or a tool would. With ``reseal`` its seal is
    recomputed too (someone who knows the format), so the checks behind the seal are what a test reaches;
    without, the seal is what refuses the edit."""
    path = version_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    seal = data.pop(SEAL)
    change(data)
    data[SEAL] = hashlib.sha256(canonical_json(data).encode()).hexdigest() if reseal else seal
    os.chmod(version_dir, 0o755)
    os.chmod(path, 0o644)
    path.write_text(json.dumps(data))


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: to assert that storage did not change."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def btc_sample(tmp_path_factory) -> tuple[Catalog, Path]:
    """The real BTCUSDT sample imported (auto local-ts correction) as dataset 'btc' in a fresh root."""
    path = SHARED_DATA / "binance-futures" / "btcusdt_20240808.gz"
    if not path.is_file():
        pytest.skip(f"real market sample not found at {path} (a user's clone has no ../shared/data)")
    from hftlab.ingest import binance_futures
    from hftlab.ingest.common import apply_local_ts_correction

    catalog = Catalog(tmp_path_factory.mktemp("canonical"))
    result = binance_futures.convert(
        path, Instrument(venue="binance-futures", symbol="BTCUSDT", tick_size=0.1, lot_size=0.001)
    )
    apply_local_ts_correction(result, "auto")
    catalog.promote(result, "btc")
    return catalog, path
