"""Metrics are versioned apart from the engine: a metric added later is computed for existing runs from
their stored records, without executing a backtest (in-process: real Hydra, hftbacktest, Parquet)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import hftlab.metrics
import hftlab.run.execute
from hftlab import compose_runs, execute, prepare
from hftlab.metrics import compute_metrics
from hftlab.metrics.marks import replay_mids
from hftlab.run.results import (
    METRICS_DEFINITION_FILE,
    METRICS_FILE,
    RECORDS_DIR,
    RUN_FILE,
    check_complete,
    read_records,
)
from tests.run.test_run_e2e import make_project


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_metric_is_computed_for_existing_runs_without_a_backtest(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    (config,) = compose_runs([["strategy=grid"]], project)
    first = execute(prepare(config, project))
    assert not first.cached
    run_dir = first.path
    before = json.loads((run_dir / METRICS_FILE).read_text())
    kept = {p.name: digest(p) for p in [run_dir / RUN_FILE, *sorted((run_dir / RECORDS_DIR).iterdir())]}

    # the same stored records (and the stream fed again, for markouts) recompute the same metrics: what
    # makes recomputing trustworthy
    prepared = prepare(config, project)
    mid_at = replay_mids(hftlab.run.execute._fed(prepared), prepared.venue)
    assert before == json.loads(json.dumps(compute_metrics(read_records(run_dir), config.metrics, mid_at=mid_at)))
    assert before["markout_1s_n"] > 0

    def with_fill_count(records, metrics_config, *, mid_at):
        return {**compute_metrics(records, metrics_config, mid_at=mid_at), "fill_count": len(records.tables["fills"])}

    def no_backtest(*args, **kwargs):
        raise AssertionError("a backtest was executed")

    monkeypatch.setattr(hftlab.run.execute, "compute_metrics", with_fill_count)
    monkeypatch.setattr(hftlab.metrics, "metrics_code_sha256", lambda: "a-new-metric")
    monkeypatch.setattr(hftlab.run.execute, "run_backtest", no_backtest)

    again = execute(prepare(config, project))
    assert (again.cached, again.metrics_recomputed, again.run_id) == (True, True, first.run_id)
    after = json.loads((run_dir / METRICS_FILE).read_text())
    assert {**before, "fill_count": before["trades"]} == after and after["fill_count"] > 0
    assert "a-new-metric" == json.loads((run_dir / METRICS_DEFINITION_FILE).read_text())["code_sha256"]
    assert kept == {p.name: digest(p) for p in [run_dir / RUN_FILE, *sorted((run_dir / RECORDS_DIR).iterdir())]}

    assert [] == check_complete(run_dir)  # content.json follows the recomputed metrics
    third = execute(prepare(config, project))  # now current: nothing to recompute
    assert (third.cached, third.metrics_recomputed) == (True, False)


def test_a_run_without_stored_account_is_executed_again(tmp_path, monkeypatch, capfd):
    """A run directory missing its account table is not complete (its content.json lists it): instead of
    failing to recompute its metrics, the run executes again, saying why, and gets the same bytes."""
    make_project(tmp_path / "p")
    monkeypatch.chdir(tmp_path)
    project = Path("p")  # relative, as a user types it
    (config,) = compose_runs([["strategy=grid"]], project)
    run_dir = execute(prepare(config, project)).path
    account = run_dir / RECORDS_DIR / "account.parquet"
    before = digest(account)
    account.unlink()
    monkeypatch.setattr(hftlab.metrics, "metrics_code_sha256", lambda: "other")
    capfd.readouterr()
    again = execute(prepare(config, project))
    assert not again.cached and again.path == run_dir
    assert f"run {run_dir.name}: records/account.parquet is missing: re-executing" in capfd.readouterr().err
    assert before == digest(account) and [] == check_complete(run_dir)
