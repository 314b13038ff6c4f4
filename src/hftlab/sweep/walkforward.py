"""Walk-forward evaluation: ``hftlab walkforward``.

The dataset window ``[start, end)`` is split into rolling folds: fold ``k`` has the in-sample (IS) period
``[start + k·step, + train)`` and the out-of-sample (OOS) period ``[IS end, + test)``, for every ``k``
whose OOS end is at or before ``end``. In each fold every grid point runs on the IS period, the best by
the chosen metric is picked (``-name``: lower is better; ties: the first in grid order; a run without a
finite value of the metric is never picked), and the picked parameters run on the OOS period.

Every run goes through :func:`hftlab.run.execute.execute` into ``results/<name>/runs/<run_id>/``, so runs
are content-addressed and cached: running the same walk-forward again executes nothing. Configurations
are composed in-process with Hydra's compose API (one numba compile per process).

Outputs, deterministic for a given set of results (sorted keys, no wall-clock time, no absolute path):
``results/<name>/walkforward.json`` (every fold: windows, chosen overrides, IS and OOS metric and run
ids, every IS grid result) and ``walkforward.csv`` (one row per fold). A side-by-side table is printed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hftlab.errors import ConfigError

#: Nanoseconds per duration unit (longest suffixes first in the pattern below).
_UNITS_NS = {
    "d": 86_400_000_000_000,
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "ns": 1,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")

#: Keys the walk-forward sets itself (window and results folder): refused in --grid and overrides.
_RESERVED = ("dataset.start", "dataset.end", "experiment_name")
#: Keys that choose the dataset (the window is read from one dataset): refused in --grid.
_DATASET_KEYS = ("dataset", "dataset.id", "dataset.version", "dataset.root")

RESULTS_JSON = "walkforward.json"
RESULTS_CSV = "walkforward.csv"


# --------------------------------------------------------------------------------------------- parsing


def parse_duration(text: str) -> int:
    """A duration like ``2h``, ``30m``, ``90s``, ``1h30m``, ``500ms`` as integer nanoseconds (> 0)."""
    s = str(text).strip().lower()
    pos = 0
    total = Decimal(0)
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        try:
            total += Decimal(match.group(1)) * _UNITS_NS[match.group(2)]
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimal numbers
            break
        pos = match.end()
    if not s or pos != len(s):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and a unit (d, h, m, s, ms, us, ns), e.g. 2h, 30m, 90s, 1h30m"
        )
    if total != total.to_integral_value():
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: not a whole number of nanoseconds")
    if total <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be > 0")
    return int(total)


def format_duration(ns: int) -> str:
    """The canonical text of a duration: ``1h30m``, ``20m``, ``1s500ms``."""
    parts = []
    rest = ns
    for unit, size in _UNITS_NS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_time(option: str, text: str) -> int:
    """``--start``/``--end``: ISO-8601 UTC, or integer nanoseconds since the epoch."""
    from hftlab.feed import to_ns

    s = text.strip()
    if re.fullmatch(r"-?\d{5,}", s):  # integer ns (a bare 4-digit number is a year in ISO-8601)
        return int(s)
    try:
        ns = to_ns(s)
    except ValueError:
        ns = None
    if ns is None:
        raise ValueError(f"{option} {text!r}: not an ISO-8601 UTC time (e.g. 2024-01-01T00:30) or integer ns")
    return ns


def iso(ns: int) -> str:
    """ISO-8601 UTC with the fraction of a second only where needed: ``2024-01-01T00:20:00Z``."""
    import numpy as np

    text = str(np.datetime64(int(ns), "ns"))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def _value(text: str) -> Any:
    """An override's value as a number where it is one (as summary tables show parameters)."""
    text = re.sub(r"\\(.)", r"\1", text)  # Hydra's escapes
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _number(x: Any) -> float | None:
    """A metric value that can be ranked: a finite int or float (not bool, not None)."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float) and math.isfinite(x):
        return float(x)
    return None


def _override_key(override: Any) -> str:
    return str(override.get_key_element()).lstrip("+~")


def grid_points(grid: Sequence[str]) -> list[list[str]]:
    """Every grid point's overrides (the Cartesian product, in Hydra's basic-sweeper order)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if not grid:
        return [[]]
    try:
        parsed = OverridesParser.create().parse_overrides(list(grid))
    except HydraException as exc:
        raise ValueError(f"--grid: {_first_lines(exc)}") from None
    seen: set[str] = set()
    for override, text in zip(parsed, grid, strict=True):
        key = _override_key(override)
        if key.startswith("hydra") or key in _RESERVED or key in _DATASET_KEYS:
            raise ValueError(
                f"--grid {text!r}: {key} cannot be swept in a walk-forward (one dataset; the window and results "
                "folder come from --start/--end/--train/--test/--step/--name)"
            )
        if key in seen:
            raise ValueError(f"--grid {text!r}: {key} is given twice")
        seen.add(key)
    try:
        batches = BasicSweeper.split_arguments(parsed, None)
    except HydraException as exc:
        raise ValueError(f"--grid: {_first_lines(exc)}") from None
    return [list(job) for batch in batches for job in batch]


def check_overrides(overrides: Sequence[str]) -> None:
    """Overrides applied to every run: plain values only (sweeps belong in --grid), no reserved keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ValueError(f"overrides: {_first_lines(exc)}") from None
    for override, text in zip(parsed, overrides, strict=True):
        key = _override_key(override)
        if override.is_sweep_override():
            raise ValueError(f"override {text!r} is a sweep: give swept parameters with --grid {text}")
        if key in _RESERVED:
            option = {"dataset.start": "--start", "dataset.end": "--end", "experiment_name": "--name"}[key]
            raise ValueError(f"override {text!r}: the walk-forward sets {key} itself; use {option}")
        if key.startswith("hydra"):
            raise ValueError(f"override {text!r}: Hydra's own settings do not apply to a walk-forward")


def _first_lines(exc: BaseException) -> str:
    """The message of an exception (one line), with its cause's where Hydra keeps the detail there."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        detail = str(cause).strip().splitlines()[0]
        if detail not in text:
            text = f"{text}: {detail}"
    return text


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


# --------------------------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def make_folds(start: int, end: int, train: int, test: int, step: int) -> list[Fold]:
    """Fold k: IS [start + k·step, + train), OOS [IS end, + test), while the OOS end <= end."""
    folds = []
    k = 0
    while start + k * step + train + test <= end:
        s = start + k * step
        folds.append(Fold(k, s, s + train, s + train, s + train + test))
        k += 1
    return folds


# --------------------------------------------------------------------------------------------- running


@dataclass
class _Run:
    run_id: str
    metric: float | None
    cached: bool


class _Runner:
    """Runs composed configs on windows through ``execute`` and reads the chosen metric."""

    def __init__(self, project: Path, metric: str, metric_spec: str) -> None:
        self.project = project
        self.metric = metric
        self.metric_spec = metric_spec
        self.executed = 0
        self.cached = 0

    def run(self, cfg: DictConfig, start: int, end: int, label: str) -> _Run:
        from hftlab.run.execute import execute
        from hftlab.sweep.app import _shown, job_config

        windowed = copy.deepcopy(cfg)
        OmegaConf.update(windowed, "dataset.start", iso(start), merge=False)
        OmegaConf.update(windowed, "dataset.end", iso(end), merge=False)
        result = execute(job_config(windowed), self.project)
        if result.cached:
            self.cached += 1
        else:
            self.executed += 1
        detail = "cached (complete results exist)" if result.cached else "done"
        print(f"run {result.run_id}: {detail}: {_shown(result.path)} [{label}]", flush=True)
        metrics = json.loads(result.metrics_path.read_text())
        if self.metric not in metrics:
            known = ", ".join(sorted(metrics))
            raise ValueError(
                f"--metric {self.metric_spec}: no metric {self.metric!r} in the results (run {result.run_id}); "
                f"metrics: {known}"
            )
        return _Run(result.run_id, _number(metrics[self.metric]), result.cached)


def choose(values: Sequence[float | None], lower: bool) -> int | None:
    """Index of the best value (``lower``: the smallest); ties: the first; None values never chosen."""
    best: int | None = None
    for i, v in enumerate(values):
        if v is None:
            continue
        if best is None:
            best = i
            continue
        b = values[best]
        assert b is not None
        if (v < b) if lower else (v > b):
            best = i
    return best


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{_first_lines(exc)} [overrides: {' '.join(overrides)}]") from None


def _params(point: list[str]) -> dict[str, Any]:
    out = {}
    for override in point:
        key, _, value = override.partition("=")
        out[key.lstrip("+~")] = _value(value)
    return out


def main(argv: list[str]) -> int:
    """``hftlab walkforward``: exit 0 when every fold has a chosen point, 1 when some has none, 2 on errors."""
    from hydra import initialize_config_dir

    from hftlab.run.results import dumps
    from hftlab.run.schema import register_configs, typed_config
    from hftlab.storage.catalog import Catalog
    from hftlab.storage.schema import check_name
    from hftlab.sweep.app import PROJECT_ENV, _shown, job_config, project_dir

    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(_join_negative_metric(argv))
    except SystemExit as exc:  # argparse printed usage and the error (naming the option), or --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    step = args.step if args.step is not None else args.test
    check_name("--name", args.name)
    metric_spec = str(args.metric)
    lower = metric_spec.startswith("-")
    metric = metric_spec[1:] if lower else metric_spec
    if not metric:
        raise ValueError(f"--metric {metric_spec!r}: give a metric name, e.g. net_pnl or -max_drawdown")
    check_overrides(args.overrides)
    points = grid_points(args.grid)

    project = project_dir()
    conf = project / "conf"
    if not conf.is_dir():
        raise ConfigError(f"no conf/ in {project} (run from the project directory or set ${PROJECT_ENV})")
    register_configs(project / "strategies")
    common = [*args.overrides, f"experiment_name={args.name}"]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        base = _compose(common)
        configs = [_compose([*args.overrides, *point, f"experiment_name={args.name}"]) for point in points]

    # The window: --start/--end, else the dataset's whole range ([first event, last event + 1 ns)).
    ds = base.dataset
    dataset = Catalog(project / str(ds.root)).resolve(str(ds.id), None if ds.version is None else str(ds.version))
    start = parse_time("--start", args.start) if args.start else dataset.manifest.start_ns
    end = parse_time("--end", args.end) if args.end else dataset.manifest.end_ns + 1
    if end <= start:
        raise ValueError(f"--end {iso(end)} is not after --start {iso(start)}")
    folds = make_folds(start, end, args.train, args.test, step)
    if not folds:
        raise ValueError(
            f"window too short for one fold: --train {format_duration(args.train)} "
            f"+ --test {format_duration(args.test)} "
            f"= {format_duration(args.train + args.test)}, but the window --start {iso(start)} .. --end {iso(end)} "
            f"is {format_duration(end - start)}"
        )
    # Every grid point must be a valid run configuration before anything runs (errors name the key).
    for cfg in configs:
        windowed = copy.deepcopy(cfg)
        OmegaConf.update(windowed, "dataset.start", iso(folds[0].is_start), merge=False)
        OmegaConf.update(windowed, "dataset.end", iso(folds[0].is_end), merge=False)
        typed_config(job_config(windowed), project / "strategies")

    exp_dir = project / str(base.output.results_dir) / args.name
    total = len(folds) * (len(points) + 1)
    print(
        f"walkforward {args.name}: {len(folds)} folds x ({len(points)} in-sample + 1 out-of-sample) = {total} runs, "
        f"window {iso(start)} .. {iso(end)}, train {format_duration(args.train)}, test {format_duration(args.test)}, "
        f"step {format_duration(step)}, metric {metric_spec}",
        flush=True,
    )
    runner = _Runner(project, metric, metric_spec)
    fold_rows: list[dict[str, Any]] = []
    for fold in folds:
        is_runs = [
            runner.run(
                cfg, fold.is_start, fold.is_end, f"fold {fold.index} in-sample: {' '.join(point) or '(defaults)'}"
            )
            for cfg, point in zip(configs, points, strict=True)
        ]
        best = choose([r.metric for r in is_runs], lower)
        row: dict[str, Any] = {
            "fold": fold.index,
            "is_start": iso(fold.is_start),
            "is_end": iso(fold.is_end),
            "oos_start": iso(fold.oos_start),
            "oos_end": iso(fold.oos_end),
            "is_results": [
                {"index": i, "overrides": point, "params": _params(point), "run_id": r.run_id, "metric": r.metric}
                for i, (point, r) in enumerate(zip(points, is_runs, strict=True))
            ],
            "chosen": None,
            "is_metric": None,
            "oos_metric": None,
            "is_run_id": None,
            "oos_run_id": None,
        }
        if best is None:
            print(f"fold {fold.index}: no in-sample run has a finite {metric}: nothing chosen", file=sys.stderr)
        else:
            label = f"fold {fold.index} out-of-sample: {' '.join(points[best]) or '(defaults)'}"
            oos = runner.run(configs[best], fold.oos_start, fold.oos_end, label)
            row.update(
                chosen={"index": best, "overrides": points[best], "params": _params(points[best])},
                is_metric=is_runs[best].metric,
                oos_metric=oos.metric,
                is_run_id=is_runs[best].run_id,
                oos_run_id=oos.run_id,
            )
        fold_rows.append(row)

    param_keys: list[str] = []
    for point in points:
        param_keys += [k for k in _params(point) if k not in param_keys]
    result = {
        "experiment": args.name,
        "metric": metric,
        "goal": "min" if lower else "max",
        "window": {"start": iso(start), "end": iso(end)},
        "train": format_duration(args.train),
        "test": format_duration(args.test),
        "step": format_duration(step),
        "train_ns": args.train,
        "test_ns": args.test,
        "step_ns": step,
        "overrides": list(args.overrides),
        "grid": list(args.grid),
        "points": points,
        "folds": fold_rows,
        "summary": _summary(fold_rows),
    }
    exp_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(exp_dir / RESULTS_JSON, dumps(result))
    _write_atomic(exp_dir / RESULTS_CSV, _csv(fold_rows, param_keys, metric))
    print(_table(fold_rows, metric_spec, result["summary"]))
    print(
        f"walkforward {args.name}: {len(folds)} folds, {runner.executed + runner.cached} runs: "
        f"{runner.executed} executed, {runner.cached} cached; results in {_shown(exp_dir / RESULTS_JSON)}, "
        f"{_shown(exp_dir / RESULTS_CSV)}"
    )
    return 1 if any(r["chosen"] is None for r in fold_rows) else 0


# --------------------------------------------------------------------------------------------- outputs


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key: str) -> dict[str, Any]:
        values = [r[key] for r in rows if r[key] is not None]
        return {
            "count": len(values),
            "mean": sum(values) / len(values) if values else None,
            "sum": sum(values) if values else None,
        }

    return {
        "folds": len(rows),
        "chosen": sum(r["chosen"] is not None for r in rows),
        "is": stats("is_metric"),
        "oos": stats("oos_metric"),
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
            "is_start",
            "is_end",
            "oos_start",
            "oos_end",
            *param_keys,
            f"is_{metric}",
            f"oos_{metric}",
            "is_run_id",
            "oos_run_id",
        ]
    )
    for r in rows:
        params = r["chosen"]["params"] if r["chosen"] else {}
        writer.writerow(
            [
                r["fold"], r["is_start"], r["is_end"], r["oos_start"], r["oos_end"],
                *[_cell(params.get(k)) for k in param_keys],
                _cell(r["is_metric"]), _cell(r["oos_metric"]), _cell(r["is_run_id"]), _cell(r["oos_run_id"]),
            ]
        )  # fmt: skip
    return buf.getvalue()


def _short(iso_text: str) -> str:
    return iso_text.replace("T", " ").removesuffix("Z")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _table(rows: list[dict[str, Any]], metric_spec: str, summary: dict[str, Any]) -> str:
    metric = metric_spec.lstrip("-")
    header = ["fold", "in-sample", "out-of-sample", "chosen", f"IS {metric}", f"OOS {metric}"]
    body = []
    for r in rows:
        chosen = (" ".join(r["chosen"]["overrides"]) or "(defaults)") if r["chosen"] else "(none)"
        body.append(
            [
                str(r["fold"]),
                f"{_short(r['is_start'])} .. {_short(r['is_end'])}",
                f"{_short(r['oos_start'])} .. {_short(r['oos_end'])}",
                chosen,
                _fmt(r["is_metric"]),
                _fmt(r["oos_metric"]),
            ]
        )
    body.append(["mean", "", "", "", _fmt(summary["is"]["mean"]), _fmt(summary["oos"]["mean"])])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {0, 4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(b) for b in body)])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
