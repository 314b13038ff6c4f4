"""Walk-forward evaluation: ``hftlab walkforward``.

The dataset window ``[start, end)`` is split into rolling folds: fold ``k`` has the in-sample (IS) period
``[start + k·step, + train)`` and the out-of-sample (OOS) period ``[IS end, + test)``, for every ``k``
whose OOS end is at or before ``end``, plus a last fold cut at ``end`` and marked ``partial`` when at least
half its OOS period is there (:func:`make_folds`). In each fold every grid point runs on the IS period, the best by
the chosen metric is picked (``-name``: lower is better; ties: the first in grid order; a run without a
finite value of the metric is never picked), and the picked parameters run on the OOS period.

Every run goes through :func:`hftlab.run.execute.execute` into ``results/<name>/runs/<run_id>/``, so runs
are content-addressed and cached: running the same walk-forward again executes nothing. Configurations
are composed in-process with Hydra's compose API (one process: imports and cache loads paid once).

Outputs, deterministic for a given set of results (sorted keys, no wall-clock time, no absolute path):
``results/<name>/walkforward.json`` (every fold: windows, chosen overrides, IS and OOS metric and run
ids, every IS grid result) and ``walkforward.csv`` (one row per fold). A side-by-side table is printed.

IS and OOS periods differ in length (2 h against 1 h, or a partial last fold), so each fold also has
the metric per hour of its period (``is_per_hour``, ``oos_per_hour``): comparable for metrics that add up
over time (PnL, trades, volume; not for ratios such as Sharpe), and the summary's walk-forward
efficiency ``wfe`` = mean OOS per hour / mean IS per hour (Pardo: above ~0.5 the in-sample choice
carries over out of sample).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hftlab.errors import ConfigError
from hftlab.files import atomic_write, write_json
from hftlab.ranking import Goal, best_index, goal, rankable
from hftlab.sweep.project import project_dir, shown
from hftlab.sweep.summary import override_value
from hftlab.sweep.walkforward_plan import (
    Fold,
    check_overrides,
    format_duration,
    grid_points,
    make_folds,
    parse_duration,
)
from hftlab.times import iso, to_ns

if TYPE_CHECKING:
    from hftlab.run.schema import RunConfig

__all__ = ["Fold", "build_parser", "format_duration", "main", "make_folds", "parse_duration", "windowed"]

RESULTS_JSON = "walkforward.json"
RESULTS_CSV = "walkforward.csv"
HOUR_NS = 3_600 * 10**9


# --------------------------------------------------------------------------------------------- parsing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hftlab walkforward",
        description="Rolling in-sample / out-of-sample evaluation: pick parameters in-sample by a metric, "
        "evaluate them out-of-sample, report both side by side.",
        epilog="example: hftlab walkforward --train 2h --test 30m --grid strategy.params.half_spread=0.1,0.2,0.4 "
        "--metric net_pnl strategy=grid",
    )
    p.add_argument("--name", default="walkforward", help="results folder results/<name> (default: walkforward)")
    p.add_argument("--start", help="window start, ISO-8601 UTC (default: the dataset's first event)")
    p.add_argument("--end", help="window end, exclusive, ISO-8601 UTC (default: just after the dataset's last event)")
    p.add_argument("--train", required=True, type=parse_duration, help="in-sample length, e.g. 2h, 30m, 90s")
    p.add_argument("--test", required=True, type=parse_duration, help="out-of-sample length, e.g. 30m")
    p.add_argument("--step", type=parse_duration, help="shift between folds (default: --test)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        help="a Hydra sweep override, e.g. strategy.params.half_spread=0.1,0.2,0.4 (repeat for more dimensions)",
    )
    p.add_argument(
        "--metric",
        default="net_pnl",
        help="metric choosing parameters in-sample; '-name' = lower is better (default: net_pnl)",
    )
    p.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run, e.g. strategy=obi risk=standard")
    return p


def _join_negative_metric(argv: Sequence[str]) -> list[str]:
    """``--metric -max_drawdown`` -> ``--metric=-max_drawdown`` (argparse would take it for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if (
            argv[i] == "--metric"
            and i + 1 < len(argv)
            and argv[i + 1].startswith("-")
            and not argv[i + 1].startswith("--")
        ):
            out.append(f"--metric={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


# --------------------------------------------------------------------------------------------- running


@dataclass
class _Run:
    run_id: str
    metric: float | None
    cached: bool


class _Runner:
    """Runs checked run configs on windows (:func:`~hftlab.run.execute.execute`) and reads the chosen metric."""

    def __init__(self, project: Path, metric: Goal, metric_spec: str) -> None:
        self.project = project
        self.metric = metric.metric
        self.metric_spec = metric_spec
        self.executed = 0
        self.cached = 0

    def run(self, config: RunConfig, start: int, end: int, label: str) -> _Run:
        from hftlab.run.execute import execute, prepare

        result = execute(prepare(windowed(config, start, end), self.project))
        if result.cached:
            self.cached += 1
        else:
            self.executed += 1
        detail = "cached (complete results exist)" if result.cached else "done"
        print(f"run {result.run_id}: {detail}: {shown(result.path)} [{label}]", flush=True)
        metrics = json.loads(result.metrics_path.read_text())
        if self.metric not in metrics:
            known = ", ".join(sorted(metrics))
            raise ConfigError(
                f"--metric {self.metric_spec}: no metric {self.metric!r} in the results (run {result.run_id}); "
                f"metrics: {known}"
            )
        return _Run(result.run_id, rankable(metrics[self.metric]), result.cached)


def windowed(config: RunConfig, start: int, end: int) -> RunConfig:
    """``config`` on the dataset window ``[start, end)``."""
    dataset = dataclasses.replace(config.dataset, start=iso(start), end=iso(end))
    return dataclasses.replace(config, dataset=dataset)


def _params(point: list[str]) -> dict[str, Any]:
    out = {}
    for override in point:
        key, _, value = override.partition("=")
        out[key.lstrip("+~")] = override_value(value)
    return out


@dataclass(frozen=True)
class _Plan:
    """What a walk-forward runs: every grid point's config, the folds and the metric that chooses."""

    args: argparse.Namespace
    project: Path
    points: list[list[str]]
    configs: list[RunConfig]
    start: int
    end: int
    step: int
    folds: list[Fold]
    goal: Goal

    @property
    def exp_dir(self) -> Path:
        return self.project / self.configs[0].output.results_dir / self.args.name


def _plan(args: argparse.Namespace) -> _Plan:
    """Check the arguments, compose and check every grid point's config, resolve the window, make folds."""
    from hftlab.storage.catalog import Catalog
    from hftlab.storage.schema import check_name
    from hftlab.sweep.app import compose_runs

    step = args.step if args.step is not None else args.test
    check_name("--name", args.name)
    metric = goal(str(args.metric), "--metric")
    check_overrides(args.overrides)
    points = grid_points(args.grid)
    project = project_dir()
    common = [*args.overrides, f"experiment_name={args.name}"]
    # Every grid point must be a valid run configuration before anything runs (errors name the key).
    base, *configs = compose_runs([common] + [[*args.overrides, *p, f"experiment_name={args.name}"] for p in points])
    # The window: --start/--end, else the dataset's whole range ([first event, last event + 1 ns)).
    ds = base.dataset
    dataset = Catalog(project / ds.root).resolve(ds.id, ds.version)
    start = to_ns(args.start, "--start") if args.start else dataset.manifest.start_ns
    end = to_ns(args.end, "--end") if args.end else dataset.manifest.end_ns + 1
    if end <= start:
        raise ConfigError(f"--end {iso(end)} is not after --start {iso(start)}")
    folds = make_folds(start, end, args.train, args.test, step)
    if not folds:
        raise ConfigError(
            f"window too short for one fold: --train {format_duration(args.train)} "
            f"+ --test {format_duration(args.test)} "
            f"= {format_duration(args.train + args.test)}, but the window --start {iso(start)} .. --end {iso(end)} "
            f"is {format_duration(end - start)} (a fold cut short by the end needs half of --test out of sample)"
        )
    return _Plan(args, project, points, configs, start, end, step, folds, metric)


def _run_fold(plan: _Plan, fold: Fold, runner: _Runner) -> dict[str, Any]:
    """Every grid point in-sample, then the best one out-of-sample: the fold's row of walkforward.json."""
    points = plan.points
    is_runs = [
        runner.run(cfg, fold.is_start, fold.is_end, f"fold {fold.index} in-sample: {' '.join(point) or '(defaults)'}")
        for cfg, point in zip(plan.configs, points, strict=True)
    ]
    best = best_index([r.metric for r in is_runs], plan.goal.lower)
    row: dict[str, Any] = {
        "fold": fold.index,
        "partial": fold.partial,
        "is_start": iso(fold.is_start),
        "is_end": iso(fold.is_end),
        "oos_start": iso(fold.oos_start),
        "oos_end": iso(fold.oos_end),
        "is_hours": (fold.is_end - fold.is_start) / HOUR_NS,
        "oos_hours": (fold.oos_end - fold.oos_start) / HOUR_NS,
        "is_results": [
            {"index": i, "overrides": point, "params": _params(point), "run_id": r.run_id, "metric": r.metric}
            for i, (point, r) in enumerate(zip(points, is_runs, strict=True))
        ],
        "chosen": None,
        "is_metric": None,
        "oos_metric": None,
        "is_per_hour": None,
        "oos_per_hour": None,
        "is_run_id": None,
        "oos_run_id": None,
    }
    if best is None:
        print(f"fold {fold.index}: no in-sample run has a finite {plan.goal.metric}: nothing chosen", file=sys.stderr)
        return row
    label = f"fold {fold.index} out-of-sample: {' '.join(points[best]) or '(defaults)'}"
    oos = runner.run(plan.configs[best], fold.oos_start, fold.oos_end, label)
    row.update(
        chosen={"index": best, "overrides": points[best], "params": _params(points[best])},
        is_metric=is_runs[best].metric,
        oos_metric=oos.metric,
        is_per_hour=_per_hour(is_runs[best].metric, row["is_hours"]),
        oos_per_hour=_per_hour(oos.metric, row["oos_hours"]),
        is_run_id=is_runs[best].run_id,
        oos_run_id=oos.run_id,
    )
    return row


def _result(plan: _Plan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of walkforward.json."""
    args = plan.args
    return {
        "experiment": args.name,
        "metric": plan.goal.metric,
        "goal": plan.goal.word,
        "window": {"start": iso(plan.start), "end": iso(plan.end)},
        "train": format_duration(args.train),
        "test": format_duration(args.test),
        "step": format_duration(plan.step),
        "train_ns": args.train,
        "test_ns": args.test,
        "step_ns": plan.step,
        "overrides": list(args.overrides),
        "grid": list(args.grid),
        "points": plan.points,
        "folds": rows,
        "summary": _summary(rows),
    }


def main(argv: list[str]) -> int:
    """``hftlab walkforward``: exit 0 when every fold has a chosen point, 1 when some has none, 2 on errors."""
    try:
        args = build_parser().parse_intermixed_args(_join_negative_metric(argv))
    except SystemExit as exc:  # argparse printed usage and the error (naming the option), or --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    plan = _plan(args)
    points, folds = plan.points, plan.folds
    print(
        f"walkforward {args.name}: {len(folds)} folds x ({len(points)} in-sample + 1 out-of-sample) = "
        f"{len(folds) * (len(points) + 1)} runs, window {iso(plan.start)} .. {iso(plan.end)}, "
        f"train {format_duration(args.train)}, test {format_duration(args.test)}, "
        f"step {format_duration(plan.step)}, metric {args.metric}",
        flush=True,
    )
    runner = _Runner(plan.project, plan.goal, str(args.metric))
    rows = [_run_fold(plan, fold, runner) for fold in folds]
    param_keys: list[str] = []
    for point in points:
        param_keys += [k for k in _params(point) if k not in param_keys]
    result = _result(plan, rows)
    exp_dir = plan.exp_dir
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_json(exp_dir / RESULTS_JSON, result)
    atomic_write(exp_dir / RESULTS_CSV, _csv(rows, param_keys, plan.goal.metric))
    print(_table(rows, str(args.metric), result["summary"]))
    print(
        f"walkforward {args.name}: {len(folds)} folds, {runner.executed + runner.cached} runs: "
        f"{runner.executed} executed, {runner.cached} cached; results in {shown(exp_dir / RESULTS_JSON)}, "
        f"{shown(exp_dir / RESULTS_CSV)}"
    )
    return 1 if any(r["chosen"] is None for r in rows) else 0


# --------------------------------------------------------------------------------------------- outputs


def _per_hour(value: float | None, hours: float) -> float | None:
    return None if value is None or hours <= 0 else value / hours


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key: str) -> dict[str, Any]:
        values = [r[key] for r in rows if r[key] is not None]
        return {
            "count": len(values),
            "mean": sum(values) / len(values) if values else None,
            "sum": sum(values) if values else None,
        }

    is_rate, oos_rate = stats("is_per_hour")["mean"], stats("oos_per_hour")["mean"]
    return {
        "folds": len(rows),
        "partial": sum(bool(r["partial"]) for r in rows),
        "chosen": sum(r["chosen"] is not None for r in rows),
        "is": stats("is_metric"),
        "oos": stats("oos_metric"),
        "is_per_hour": stats("is_per_hour"),
        "oos_per_hour": stats("oos_per_hour"),
        "wfe": oos_rate / is_rate if is_rate and oos_rate is not None else None,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv(rows: list[dict[str, Any]], param_keys: list[str], metric: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "fold",
            "partial",
            "is_start",
            "is_end",
            "oos_start",
            "oos_end",
            *param_keys,
            f"is_{metric}",
            f"oos_{metric}",
            f"is_{metric}_per_hour",
            f"oos_{metric}_per_hour",
            "is_run_id",
            "oos_run_id",
        ]
    )
    for r in rows:
        params = r["chosen"]["params"] if r["chosen"] else {}
        writer.writerow(
            [
                r["fold"], _cell(r["partial"]), r["is_start"], r["is_end"], r["oos_start"], r["oos_end"],
                *[_cell(params.get(k)) for k in param_keys],
                _cell(r["is_metric"]), _cell(r["oos_metric"]), _cell(r["is_per_hour"]), _cell(r["oos_per_hour"]),
                _cell(r["is_run_id"]), _cell(r["oos_run_id"]),
            ]
        )  # fmt: skip
    return buf.getvalue()


def _short(iso_text: str) -> str:
    return iso_text.replace("T", " ").removesuffix("Z")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def status(exp_dir: Path) -> tuple[str, bool]:
    """``hftlab status`` of a walk-forward folder: its fold table and whether it is whole (every fold has a
    chosen point, every run directory it names is complete)."""
    from hftlab.run.results import check_complete, runs_dir

    result = json.loads((exp_dir / RESULTS_JSON).read_text())
    spec = ("-" if result["goal"] == "min" else "") + result["metric"]
    runs = runs_dir(exp_dir.parent, exp_dir.name)
    ids = {
        rid
        for f in result["folds"]
        for rid in (f["is_run_id"], f["oos_run_id"], *(r["run_id"] for r in f["is_results"]))
        if rid
    }
    broken = sorted(rid for rid in ids if check_complete(runs / rid))
    s = result["summary"]
    lines = [f"walkforward {result['experiment']}: {s['folds']} folds ({s['partial']} partial), a point chosen in "
             f"{s['chosen']}; train {result['train']}, test {result['test']}, step {result['step']}, metric {spec}",
             _table(result["folds"], spec, s)]  # fmt: skip
    lines += [f"  incomplete run directory: {runs / rid} (hftlab check names why)" for rid in broken]
    return "\n".join(lines), not broken and s["chosen"] == s["folds"]


def _table(rows: list[dict[str, Any]], metric_spec: str, summary: dict[str, Any]) -> str:
    metric = metric_spec.lstrip("-")
    header = ["fold", "in-sample", "out-of-sample", "chosen", f"IS {metric}", f"OOS {metric}", "IS /h", "OOS /h"]
    body = []
    for r in rows:
        chosen = (" ".join(r["chosen"]["overrides"]) or "(defaults)") if r["chosen"] else "(none)"
        body.append(
            [
                str(r["fold"]) + (" partial" if r["partial"] else ""),
                f"{_short(r['is_start'])} .. {_short(r['is_end'])}",
                f"{_short(r['oos_start'])} .. {_short(r['oos_end'])}",
                chosen,
                _fmt(r["is_metric"]),
                _fmt(r["oos_metric"]),
                _fmt(r["is_per_hour"]),
                _fmt(r["oos_per_hour"]),
            ]
        )
    means = [_fmt(summary[k]["mean"]) for k in ("is", "oos", "is_per_hour", "oos_per_hour")]
    body.append(["mean", "", "", f"walk-forward efficiency (OOS/IS per hour): {_fmt(summary['wfe'])}", *means])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {0, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(b) for b in body)])
