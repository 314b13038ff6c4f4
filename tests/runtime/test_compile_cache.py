"""The compiled code is cached across processes and never stale.

- Two fresh processes share an empty cache folder: the first compiles hftlab's numba code (synthetic
  market, feeder, Core Runtime loop, strategy), the second compiles nothing of it (numba's compile
  events tell).
- A strategy edited between two runs runs as edited: other results, another run id, no cache cleared.
- ``runtime.debug=true`` runs the grid strategy end to end in plain Python with the same records.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.run.test_run_e2e import digests, hftlab, make_project, run_dir_of

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, tempfile
from numba.core import event
compiled = []

class Listener(event.Listener):
    def on_start(self, ev):
        fn = ev.data["dispatcher"].py_func
        compiled.append(f"{fn.__module__}.{fn.__qualname__}")
    def on_end(self, ev):
        pass

event.register("numba:compile", Listener())
from hftlab.feed import DatasetRef
from hftlab.ingest.synthetic import SynthParams, generate
from hftlab.runtime import ExecutionConfig, RiskConfig, RuntimeConfig, load_strategy, run_backtest
from hftlab.storage import Catalog
from hftlab.venue.config import VenueConfig

catalog = Catalog(tempfile.mkdtemp())
catalog.promote(generate(SynthParams(seed=3, days=0.005, events_per_second=20.0)), "syn")
fed = DatasetRef("syn").load(catalog)
grid = load_strategy("grid", sys.argv[1])
out = run_backtest(fed, grid, grid.params({}), venue=VenueConfig(), risk=RiskConfig(), execution=ExecutionConfig(),
                   runtime=RuntimeConfig())
print(json.dumps({"compiled": compiled, "fills": len(out.tables["fills"]), "telemetry": out.telemetry}))
"""


def _child(cache: Path) -> dict:
    env = {**os.environ, "HFTLAB_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(PROJECT_ROOT / "strategies")], env=env,
                         capture_output=True, text=True, cwd=PROJECT_ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A numba cache folder of this module's own, empty at its first use (a cold compile costs ~30 s: the
    tests after the first share what it compiled)."""
    return tmp_path_factory.mktemp("numba-cache")


def test_second_process_compiles_nothing(cache: Path):
    first = _child(cache)
    second = _child(cache)
    compiled = set(first["compiled"])
    for name in ("hftlab.runtime.loop.run_loop", "hftlab_strategy_grid.evaluate", "hftlab.feed_kernels.scatter_rows",
                 "hftlab.ingest.synthetic_kernels._simulate"):  # fmt: skip
        assert name in compiled, f"{name} not compiled in a cold process: {sorted(compiled)}"
    assert first["telemetry"]["compile_seconds"] > 0.0
    assert second["compiled"] == [], f"a warm process compiled {second['compiled']}"
    assert second["telemetry"]["compile_seconds"] == 0.0
    assert first["fills"] == second["fills"] > 0


def _fills(run_dir: Path) -> np.ndarray:
    return pq.read_table(run_dir / "records" / "fills.parquet").to_pandas().to_records(index=False)


def test_edited_strategy_runs_as_edited(tmp_path: Path, monkeypatch, cache: Path):
    """Edit grid.py between two runs (quotes twice as far apart): the second run compiles and uses the edit,
    with no cache cleared by hand; the original source, restored, is served from the cache again."""
    project = make_project(tmp_path / "p")
    monkeypatch.setenv("HFTLAB_CACHE_DIR", str(cache))
    first = hftlab(project, "run")
    before = run_dir_of(project, stdout=first.stdout)
    source = project / "strategies" / "grid.py"
    text = source.read_text()
    edited = text.replace("bid -= params.grid_interval", "bid -= 2 * params.grid_interval")
    edited = edited.replace("ask += params.grid_interval", "ask += 2 * params.grid_interval")
    assert edited.count("2 * params.grid_interval") == 2
    source.write_text(edited)
    second = hftlab(project, "run")
    assert "compiling the runtime" in second.stderr  # the edited strategy compiles, said before the wait
    after = run_dir_of(project, stdout=second.stdout)
    assert before.name != after.name  # another run id
    assert not np.array_equal(_fills(before)["price"], _fills(after)["price"])  # other fills
    definition = json.loads((after / "run.json").read_text())
    assert definition["strategy"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    source.write_text(text)  # back to the original: engine and strategy both cached
    third = hftlab(project, "run", "strategy.params.grid_num=4")
    assert "compiling the runtime" not in third.stderr


def test_debug_mode_gives_the_compiled_records(tmp_path: Path):
    """runtime.debug=true runs the loop and the grid strategy in plain Python: same records, own run id."""
    project = make_project(tmp_path / "p", ["data", "synth", "--id", "synthetic", "--seed", "4", "--days", "0.002",
                                            "--events-per-second", "40"])  # fmt: skip
    compiled = run_dir_of(project, stdout=hftlab(project, "run").stdout)
    debug = run_dir_of(project, "runtime.debug=true", stdout=hftlab(project, "run", "runtime.debug=true").stdout)
    assert compiled.name != debug.name
    a, b = digests(compiled), digests(debug)
    records = [k for k in a if k.startswith("records/")]
    assert records and all(a[k] == b[k] for k in records), {k: a[k] == b.get(k) for k in a}
    assert json.loads((debug / "run.json").read_text())["config"]["runtime"]["debug"] is True


def test_debug_mode_reports_the_strategy_error_of_its_child(tmp_path: Path):
    """A strategy raising in a debug run: the command fails with the child's StrategyError, nothing is written."""
    project = make_project(tmp_path / "p", ["data", "synth", "--id", "synthetic", "--seed", "4", "--days", "0.002",
                                            "--events-per-second", "40"])  # fmt: skip
    source = project / "strategies" / "grid.py"
    text = source.read_text()
    assert "    if not np.isfinite(view.mid):\n" in text
    source.write_text(
        text.replace("    if not np.isfinite(view.mid):\n", "    raise ValueError('boom')\n    if False:\n", 1)
    )
    out = hftlab(project, "run", "runtime.debug=true", check=False)
    assert out.returncode != 0
    assert "debug run (runtime.debug=true, plain Python)" in out.stderr
    assert "grid.py: [raised] at event time" in out.stderr and "ValueError: boom" in out.stderr
    assert not list((project / "results").rglob("run.json"))


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("HFTLAB_PROGRESS", "log")


def test_cache_folder_follows_the_environment_and_survives_an_unwritable_choice(tmp_path: Path, monkeypatch):
    """HFTLAB_CACHE_DIR, then NUMBA_CACHE_DIR, then XDG; a folder that cannot be created (a read-only
    install or home) falls back to the temp directory instead of failing."""
    from hftlab.jit import cache_root

    choose = cache_root.__wrapped__
    monkeypatch.delenv("HFTLAB_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert choose() == tmp_path / "xdg" / "hftlab" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert choose() == tmp_path / "numba" / "hftlab"
    monkeypatch.setenv("HFTLAB_CACHE_DIR", str(tmp_path / "ours"))
    assert choose() == tmp_path / "ours" / "numba"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HFTLAB_CACHE_DIR", str(blocker / "below"))
    fallback = choose()
    assert fallback.parent == Path(tempfile.gettempdir()) and fallback.name.startswith("hftlab-numba-")
