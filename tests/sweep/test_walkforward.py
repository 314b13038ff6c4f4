"""`hftlab walkforward` end to end on a synthetic dataset in a temporary project copy, plus its pure parts."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hftlab.sweep.walkforward import Fold, format_duration, make_folds, parse_duration
from hftlab.times import iso
from tests.run.test_run_e2e import SYNTH, hftlab, make_project

TRAIN, TEST = 20 * 60 * 10**9, 10 * 60 * 10**9
GRID = ["strategy.params.half_spread=0.1", "strategy.params.half_spread=0.4"]
ARGS = ("walkforward", "--train", "20m", "--test", "10m", "--grid", "strategy.params.half_spread=0.1,0.4")


def ns(text: str | int) -> int:
    """ISO text (walk-forward files) or integer ns (run definitions store resolved times)."""
    if isinstance(text, int):
        return text
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """A project with a 0.05-day dataset at 40 events/s, walked forward once (20m in-sample, 10m out-of-sample)."""
    project = make_project(
        tmp_path_factory.mktemp("walkforward") / "p", [*SYNTH[:-4], "--days", "0.05", "--events-per-second", "40"]
    )
    out = hftlab(project, *ARGS, "--metric", "net_pnl")
    return project, out


def result_of(project: Path) -> dict:
    return json.loads((project / "results" / "walkforward" / "walkforward.json").read_text())


def run_dir(project: Path, run_id: str) -> Path:
    return project / "results" / "walkforward" / "runs" / run_id


def net_pnl(project: Path, run_id: str) -> float:
    return json.loads((run_dir(project, run_id) / "metrics.json").read_text())["net_pnl"]


def test_fold_count_and_windows_follow_the_dataset_range(walked):
    """Folds cover the dataset's whole range: as many as fit; OOS follows IS exactly; folds step by --test."""
    project, _ = walked
    (dataset,) = json.loads(hftlab(project, "data", "list", "--json").stdout)
    start, end = dataset["start_ns"], dataset["end_ns"] + 1
    expected = (end - start - TRAIN - TEST) // TEST + 1
    result = result_of(project)
    folds = result["folds"]
    assert expected == len(folds) == result["summary"]["folds"]
    assert expected > 1
    for k, fold in enumerate(folds):
        assert k == fold["fold"]
        assert start + k * TEST == ns(fold["is_start"])
        assert TRAIN == ns(fold["is_end"]) - ns(fold["is_start"])
        assert fold["oos_start"] == fold["is_end"]
        assert TEST == ns(fold["oos_end"]) - ns(fold["oos_start"])
        assert ns(fold["oos_end"]) <= end
    assert ns(folds[-1]["oos_end"]) + TEST > end  # one more fold would not fit


def test_chosen_point_is_the_in_sample_argmax_and_oos_metric_is_the_oos_run(walked):
    """Per fold, from the run directories alone: the chosen point is the IS argmax of net_pnl (first on ties),
    each run used its point's parameters on its fold's window, and the reported metrics are the runs'."""
    project, _ = walked
    for fold in result_of(project)["folds"]:
        ids = [r["run_id"] for r in fold["is_results"]]
        assert GRID == [" ".join(r["overrides"]) for r in fold["is_results"]]
        values = [net_pnl(project, rid) for rid in ids]
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        assert best == fold["chosen"]["index"]
        assert [GRID[best]] == fold["chosen"]["overrides"]
        assert ids[best] == fold["is_run_id"]
        assert values[best] == fold["is_metric"]
        assert net_pnl(project, fold["oos_run_id"]) == fold["oos_metric"]
        for rid, half_spread, (start, end) in [
            *((rid, v, ("is_start", "is_end")) for rid, v in zip(ids, (0.1, 0.4), strict=True)),
            (fold["oos_run_id"], (0.1, 0.4)[best], ("oos_start", "oos_end")),
        ]:
            definition = json.loads((run_dir(project, rid) / "run.json").read_text())
            assert half_spread == definition["strategy"]["params"]["half_spread"]
            assert (ns(fold[start]), ns(fold[end])) == (
                ns(definition["dataset"]["start"]),
                ns(definition["dataset"]["end"]),
            )


def test_csv_has_one_row_per_fold_and_the_table_is_printed(walked):
    project, out = walked
    result = result_of(project)
    with (project / "results" / "walkforward" / "walkforward.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(result["folds"]) == len(rows)
    for row, fold in zip(rows, result["folds"], strict=True):
        assert str(fold["fold"]) == row["fold"]
        for key in ("is_start", "is_end", "oos_start", "oos_end", "is_run_id", "oos_run_id"):
            assert fold[key] == row[key]
        assert fold["chosen"]["params"]["strategy.params.half_spread"] == float(row["strategy.params.half_spread"])
        assert fold["is_metric"] == float(row["is_net_pnl"])
        assert fold["oos_metric"] == float(row["oos_net_pnl"])
    assert "IS net_pnl" in out.stdout and "OOS net_pnl" in out.stdout
    n = len(result["folds"]) * 3
    assert f"{n} runs: {n} executed, 0 cached" in out.stdout


def test_second_invocation_executes_nothing_and_writes_identical_results(walked):
    """Everything is in the run cache: nothing executes, run directories are untouched, outputs are byte-identical."""
    project, _ = walked
    exp = project / "results" / "walkforward"
    before = (exp / "walkforward.json").read_bytes(), (exp / "walkforward.csv").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (exp / "runs").iterdir()}
    out = hftlab(project, *ARGS, "--metric", "net_pnl")
    n = len(result_of(project)["folds"]) * 3
    assert f"{n} runs: 0 executed, {n} cached" in out.stdout
    assert ": done:" not in out.stdout
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (exp / "runs").iterdir()}
    assert before == ((exp / "walkforward.json").read_bytes(), (exp / "walkforward.csv").read_bytes())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--train", "0h", "--test", "10m"), "--train"),
        (("--train", "20m", "--test", "ten"), "--test"),
        # the dataset's 72 minutes hold no 90-minute fold, nor half of a last fold's 30-minute OOS
        (("--train", "1h", "--test", "30m"), "--train"),
        (("--train", "20m", "--test", "10m", "--start", "2024-01-01T00:30", "--end", "2024-01-01T00:54"), "--train"),
        (("--train", "20m", "--test", "10m", "--start", "soon"), "--start"),
        (("--train", "20m", "--test", "10m", "strategy.params.half_spread=0.1,0.4"), "--grid"),
        (("--train", "20m", "--test", "10m", "dataset.end=2024-01-01T00:30"), "--end"),
        (("--train", "20m", "--test", "10m", "risk.foo=1"), "risk.foo"),
        (("--train", "20m", "--test", "10m", "--grid", "strategy.params.order_qty=-1,1"), "strategy.params.order_qty"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option_and_run_nothing(walked, args, named):
    project, _ = walked
    runs = project / "results" / "walkforward" / "runs"
    before = sorted(p.name for p in runs.iterdir())
    out = hftlab(project, "walkforward", *args, check=False)
    assert 2 == out.returncode, out.stdout + out.stderr
    assert named in out.stderr
    assert before == sorted(p.name for p in runs.iterdir())


def test_unknown_metric_exits_2_naming_it(walked):
    """The metric is checked against the first run's metrics (cached here): exit 2, the name in the message."""
    project, _ = walked
    out = hftlab(project, *ARGS, "--metric", "-no_such_metric", check=False)
    assert 2 == out.returncode
    assert "'no_such_metric'" in out.stderr and "--metric" in out.stderr and "net_pnl" in out.stderr


def test_parse_and_format_durations():
    assert 2 * 3600 * 10**9 == parse_duration("2h")
    assert 90 * 10**9 == parse_duration("90s")
    assert 5400 * 10**9 == parse_duration("1h30m") == parse_duration("1.5h")
    assert 500 * 10**6 == parse_duration("500ms")
    assert "1h30m" == format_duration(parse_duration("90m"))
    for bad in ("0h", "", "2", "h", "2x", "-1h", "1.5ns"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


def test_folds_and_time_text():
    folds = make_folds(0, 100, 30, 10, 20)
    assert [(0, 30, 30, 40), (20, 50, 50, 60), (40, 70, 70, 80), (60, 90, 90, 100)] == [
        (f.is_start, f.is_end, f.oos_start, f.oos_end) for f in folds
    ]
    assert not any(f.partial for f in folds)
    # the window ends short of the last out-of-sample period: that fold is kept, cut and marked partial,
    # when at least half of its period is there
    assert [Fold(0, 0, 30, 30, 39, partial=True)] == make_folds(0, 39, 30, 10, 10)
    assert [] == make_folds(0, 34, 30, 10, 10)
    hour, ms = 3_600 * 10**9, 10**6
    short = make_folds(0, 5 * hour - 12 * ms, 2 * hour, hour, hour)  # the data ends 12 ms early
    assert [False, False, True] == [f.partial for f in short] and 5 * hour - 12 * ms == short[-1].oos_end
    assert "2024-01-01T00:20:00Z" == iso(1704068400 * 10**9)
    assert "2024-01-01T00:20:00.5Z" == iso(1704068400 * 10**9 + 500_000_000)


def test_a_window_ending_short_keeps_a_partial_last_fold_normalised_per_hour_with_status_and_report(walked, tmp_path):
    """--end cuts fold 1's out-of-sample period to 8 of its 10 minutes: the fold is kept and marked partial;
    every fold's metric per hour is its metric over its period's hours; the walk-forward efficiency is mean
    OOS per hour over mean IS per hour; `hftlab status` and `hftlab report` show the folds."""
    project, _ = walked
    (dataset,) = json.loads(hftlab(project, "data", "list", "--json").stdout)
    end = iso(dataset["start_ns"] + TRAIN + TEST + TEST * 8 // 10)
    out = hftlab(project, *ARGS, "--name", "wf_partial", "--end", end)
    result = json.loads((project / "results" / "wf_partial" / "walkforward.json").read_text())
    folds = result["folds"]
    assert [False, True] == [f["partial"] for f in folds] and end == folds[-1]["oos_end"]
    assert [1 / 6, 8 / 60] == [f["oos_hours"] for f in folds] and [1 / 3, 1 / 3] == [f["is_hours"] for f in folds]
    for f in folds:
        assert (
            f["is_metric"] / f["is_hours"] == f["is_per_hour"] and f["oos_metric"] / f["oos_hours"] == f["oos_per_hour"]
        )
    s = result["summary"]
    mean = lambda key: sum(f[key] for f in folds) / len(folds)  # noqa: E731
    assert (2, 1) == (s["folds"], s["partial"]) and mean("oos_per_hour") / mean("is_per_hour") == s["wfe"]
    assert "1 partial" in out.stdout and "walk-forward efficiency (OOS/IS per hour)" in out.stdout
    status = hftlab(project, "status", "results/wf_partial")
    assert "walkforward wf_partial: 2 folds (1 partial), a point chosen in 2" in status.stdout
    assert status.stdout.endswith("complete\n") and "NOT" not in status.stdout
    hftlab(project, "report", "results/wf_partial", "--out", str(tmp_path))
    page = (tmp_path / "wf_partial" / "index.html").read_text()
    assert "<h2>Walk-forward</h2>" in page and "2 folds (1 partial)" in page and "walk-forward efficiency" in page
    assert (tmp_path / "wf_partial" / "walkforward.png").is_file()
