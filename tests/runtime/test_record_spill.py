"""Records in bounded memory: tables written out while the loop runs give the same files, byte for byte,
as tables kept in memory and written at the end."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hftlab.runtime.config import RuntimeConfig
from hftlab.runtime.record_files import RecordWriter, StoredTables, write_table
from hftlab.runtime.runner import run_backtest
from hftlab.runtime.strategy import load_strategy
from hftlab.venue.config import VenueConfig
from tests.runtime.conftest import STRATEGIES, SYNTH_GRID, Synthetic


def test_writer_row_groups_do_not_depend_on_when_rows_were_spilled(tmp_path: Path):
    rng = np.random.default_rng(3)
    rows = np.zeros(10_000, dtype=[("ts", "i8"), ("px", "f8"), ("side", "i1")])
    rows["ts"] = np.arange(len(rows))
    rows["px"] = rng.normal(size=len(rows))
    rows["side"] = rng.integers(-1, 2, size=len(rows))
    write_table(tmp_path / "whole.parquet", rows, row_group=1_000)
    writer = RecordWriter(tmp_path / "spilled", row_group=1_000)
    cuts = [0, 7, 1_500, 1_501, 4_000, 9_990]
    for a, b in itertools.pairwise(cuts):
        writer.spill("t", rows[a:b])
    tables = writer.finish({"t": rows[cuts[-1] :], "never_spilled": rows[:10]})
    assert (tmp_path / "spilled" / "t.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    write_table(tmp_path / "small.parquet", rows[:10], row_group=1_000)
    assert (tmp_path / "spilled" / "never_spilled.parquet").read_bytes() == (tmp_path / "small.parquet").read_bytes()
    assert isinstance(tables, StoredTables) and len(tables["t"]) == 10_000
    assert np.array_equal(tables["t"]["px"], rows["px"])


def test_stored_columns_read_across_row_groups_keep_values_and_dtypes(tmp_path: Path):
    """A column read a row group at a time equals the column written, with its dtype; empty tables too."""
    rng = np.random.default_rng(5)
    rows = np.zeros(2_345, dtype=[("ts", "i8"), ("px", "f8"), ("side", "i1"), ("maker", "?"), ("id", "u8")])
    rows["ts"] = rng.integers(0, 1 << 62, size=len(rows))
    rows["px"] = rng.normal(size=len(rows))
    rows["side"] = rng.integers(-1, 2, size=len(rows))
    rows["maker"] = rng.integers(0, 2, size=len(rows)).astype(bool)
    rows["id"] = rng.integers(0, 1 << 63, size=len(rows), dtype=np.uint64)
    write_table(tmp_path / "t.parquet", rows, row_group=1_000)
    write_table(tmp_path / "empty.parquet", rows[:0], row_group=1_000)
    tables = StoredTables(tmp_path, ("t", "empty"))
    for name in rows.dtype.names or ():
        column = tables["t"][name]
        assert column.dtype == rows.dtype[name] and np.array_equal(column, rows[name])
        assert tables["empty"][name].dtype == rows.dtype[name] and len(tables["empty"][name]) == 0


def test_a_run_spilling_its_records_writes_the_records_of_a_run_in_memory(
    synthetic: Synthetic, tmp_path: Path, monkeypatch
):
    open_at_finish: list[str] = []
    finish = RecordWriter.finish

    def spy(self, tables):
        open_at_finish.extend(self._writers)  # files the loop already wrote row groups to
        return finish(self, tables)

    monkeypatch.setattr(RecordWriter, "finish", spy)
    strategy = load_strategy("grid", STRATEGIES)
    params = strategy.params(SYNTH_GRID)
    runtime = RuntimeConfig(interval_ns=100_000_000, initial_capacity=512)
    memory = run_backtest(synthetic.fed, strategy, params, venue=VenueConfig(), runtime=runtime)
    spilled = run_backtest(
        synthetic.fed, strategy, params, venue=VenueConfig(), runtime=runtime, records_dir=tmp_path / "records",
        spill_rows=1_024,
    )  # fmt: skip
    assert len(memory.tables["orders"]) > 20_000  # spilled many times over
    for name, rows in memory.tables.items():
        write_table(tmp_path / f"{name}.parquet", rows, row_group=1_024)
        assert (tmp_path / "records" / f"{name}.parquet").read_bytes() == (tmp_path / f"{name}.parquet").read_bytes()
    assert "orders" in open_at_finish  # written row group by row group while the loop ran
    assert pq.ParquetFile(tmp_path / "records" / "orders.parquet").metadata.num_row_groups > 20
    assert spilled.account == memory.account
