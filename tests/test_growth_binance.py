"""Acceptance on real data: the Binance sample as two raw files (cut by the collector's clock just before
midnight) imported into one dataset id, then a window across midnight run without naming a version.

Each file gets its own automatic local-time correction. Where the two corrections coincide with the one
of the concatenated file (forced here), the records are byte-identical to the run on the concatenated
import; with automatic corrections the second file's correction differs, and the fed stream differs
exactly by that difference on the second file's rows."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hftlab import compose_runs, execute, prepare
from hftlab.feed import Window, load_events
from hftlab.run.results import deterministic_files
from hftlab.storage import Catalog
from hftlab.times import to_ns
from tests.conftest import PROJECT_ROOT, SHARED_DATA

HFTLAB = str(Path(sys.executable).with_name("hftlab"))
#: The collector's clock (local time) runs ~1.27 s behind the exchange: a file cut at this local time
#: leaves the rows across midnight (exchange time) to the second file.
CUT_LOCAL = to_ns("2024-08-08T23:59:57.5")
START, END = "2024-08-08T23:59:30", "2024-08-09T00:00:01"
INSTRUMENT = ["--symbol", "BTCUSDT", "--tick-size", "0.1", "--lot-size", "0.001"]


def _import(root: Path, dataset_id: str, files: list[Path], correction: str) -> None:
    args = [HFTLAB, "--root", str(root), "data", "import", "binance-futures", *map(str, files), *INSTRUMENT]
    subprocess.run([*args, "--id", dataset_id, "--local-ts-correction", correction], check=True, capture_output=True)


@pytest.fixture(scope="module")
def imports(tmp_path_factory) -> Catalog:
    whole = SHARED_DATA / "binance-futures" / "btcusdt_20240808.gz"
    if not whole.is_file():
        pytest.skip(f"real market sample not found at {whole} (a user's clone has no ../shared/data)")
    tmp = tmp_path_factory.mktemp("two-files")
    parts: list[list[bytes]] = [[], []]
    with gzip.open(whole, "rb") as fh:
        for line in fh:
            parts[int(line.split(b" ", 1)[0]) >= CUT_LOCAL].append(line)
    files = [tmp / "btcusdt_day1.gz", tmp / "btcusdt_day2.gz"]
    for path, lines in zip(files, parts, strict=True):
        with gzip.open(path, "wb") as fh:
            fh.writelines(lines)
    root = tmp / "canonical"
    _import(root, "whole", [whole], "auto")
    _import(root, "days", files, "auto")
    catalog = Catalog(root)
    forced = catalog.resolve("whole").manifest.lineage["local_ts_correction_ns"]
    _import(root, "days-forced", [tmp / "btcusdt_day*.gz"], str(forced))  # a glob, as a shell would not expand it
    return catalog


def _run(catalog: Catalog, results: Path, dataset_id: str) -> Path:
    overrides = [f"dataset.id={dataset_id}", f"dataset.root={catalog.root}", f"dataset.start={START}",
                 f"dataset.end={END}", f"output.results_dir={results}", "strategy.params.grid_interval=0.1",
                 "strategy.params.half_spread=0.1"]  # fmt: skip
    (config,) = compose_runs([overrides], PROJECT_ROOT)
    return execute(prepare(config, PROJECT_ROOT)).path


def _digests(run_dir: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((run_dir / rel).read_bytes()).hexdigest() for rel in deterministic_files(run_dir)}


def test_two_files_grow_one_dataset_with_a_correction_each(imports: Catalog):
    days = imports.resolve("days").manifest
    assert [s.lineage["raw_inputs"][0]["name"] for s in days.sources] == ["btcusdt_day1.gz", "btcusdt_day2.gz"]
    assert days.sources[0].end_ns < to_ns("2024-08-09") <= days.sources[1].end_ns
    first, second = (s.lineage["local_ts_correction_ns"] for s in days.sources)
    assert first == imports.resolve("whole").manifest.lineage["local_ts_correction_ns"]
    assert second != first  # the real corrections differ per file


def test_a_window_across_midnight_equals_the_concatenated_import_where_corrections_coincide(
    imports: Catalog, tmp_path: Path
):
    whole = _run(imports, tmp_path / "whole", "whole")
    forced = _run(imports, tmp_path / "forced", "days-forced")
    definition = json.loads((forced / "run.json").read_text())
    assert definition["dataset"]["version"] == imports.resolve("days-forced").version
    fills = json.loads((whole / "metrics.json").read_text())
    assert fills["trades"] > 10, fills
    a, b = _digests(forced), _digests(whole)
    assert a.pop("run.json") != b.pop("run.json")  # it names another dataset id and version
    assert a.pop("content.json") != b.pop("content.json")  # it lists run.json's hash
    assert "records/fills.parquet" in a and a == b


def test_with_a_correction_per_file_the_second_files_rows_move_by_the_difference(imports: Catalog):
    """Why the automatic per-file runs differ: the second file's rows are fed with its own correction."""
    days, whole = imports.resolve("days"), imports.resolve("whole")
    window = Window(start=to_ns(START), end=to_ns(END))
    a, b = load_events(days, window).events, load_events(whole, window).events
    exch = (1 << 31) | (1 << 30)
    a, b = a[(a["ev"] & exch) != 0], b[(b["ev"] & exch) != 0]
    a, b = a[np.lexsort((a["local_ts"], a["exch_ts"]))], b[np.lexsort((b["local_ts"], b["exch_ts"]))]
    second = days.manifest.sources[1]
    shift = second.lineage["local_ts_correction_ns"] - days.manifest.sources[0].lineage["local_ts_correction_ns"]
    late = a["exch_ts"] >= second.start_ns
    assert late.any() and (~late).any() and len(a) == len(b)
    assert np.array_equal(a["exch_ts"], b["exch_ts"]) and np.array_equal(a["px"], b["px"])
    assert np.array_equal(a["local_ts"][~late], b["local_ts"][~late])
    assert set((a["local_ts"][late] - b["local_ts"][late]).tolist()) == {shift}
