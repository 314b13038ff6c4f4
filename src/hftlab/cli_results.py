"""The ``hftlab`` commands that read results: ``runs``, ``status``, ``check``, ``diff``, ``compare`` and
``report`` (the rest of the command line: :mod:`hftlab.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hftlab.errors import ConfigError, StorageError
from hftlab.files import atomic_write
from hftlab.storage.catalog import Catalog


def add_commands(sub: Any) -> None:
    """The commands that read results: runs, status, check, diff, compare, report."""
    df = sub.add_parser("diff", help="Markdown of config and metric changes between git revisions (for a pull request)")
    df.add_argument("base", nargs="?", default="main", help="base revision (default: main)")
    df.add_argument("head", nargs="?", default=None, help="head revision (default: the working tree)")
    df.add_argument("--plots", default="reports/diff", help="folder for PNG charts ('' for none)")
    df.add_argument("--output", help="write the Markdown here instead of stdout")
    df.set_defaults(func=_cmd_diff)

    cmp = sub.add_parser(
        "compare", help="runs side by side: metrics with deltas; a page overlaying equity, inventory, markouts"
    )
    cmp.add_argument("runs", nargs="+", metavar="RUN", help="a run directory, or a run id under --results/*/runs")
    cmp.add_argument(
        "--results", type=Path, default=Path("results"), help="where run ids are looked up (default: results)"
    )
    cmp.add_argument(
        "--out",
        type=Path,
        default=Path("reports/compare"),
        help="folder of the page (default: reports/compare; '' for none)",
    )
    cmp.set_defaults(func=_cmd_compare)

    rp2 = sub.add_parser("report", help="interactive offline HTML report (and PNGs) per experiment")
    rp2.add_argument("results", help="results (every experiment) or results/<experiment>")
    rp2.add_argument("--out", default="reports", help="output folder (default: reports)")
    rp2.add_argument("--metric", default="net_pnl", help="metric choosing the best run and colouring heatmaps")
    rp2.set_defaults(func=_cmd_report)

    runs = sub.add_parser(
        "runs", help="the most recent runs of every experiment (scratch included): parameters, metrics"
    )
    runs.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    runs.add_argument("-n", type=int, default=20, help="how many (default 20)")
    runs.set_defaults(func=_cmd_runs)

    status = sub.add_parser("status", help="progress of an experiment (exit 0 only when every run is complete)")
    status.add_argument("results_dir", help="results/<experiment>")
    status.add_argument("--top", type=int, default=0, metavar="N",
                        help="also print the N best finished runs by --by, with their grid values and headline metrics")  # fmt: skip
    status.add_argument(
        "--by",
        default="net_pnl",
        metavar="METRIC",
        help="metric to rank by; '-name' lower is better, '+name' higher; a bare name takes the metric's own direction (default net_pnl)",
    )
    status.add_argument("--no-stale", action="store_true",
                        help="skip recomputing the committed runs' ids from the current code, config and data")  # fmt: skip
    status.set_defaults(func=_cmd_status)

    chk = sub.add_parser("check", help="verify results and datasets before trusting them (exit 1 naming each problem)")
    chk.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    chk.add_argument("--full", action="store_true", help="also re-hash every dataset's rows into its version")
    chk.add_argument("--dvc-cache", type=Path, nargs="?", const=Path(".dvc/cache"), default=None,
                     help="also check that every DVC cache object hashes to its name (default folder .dvc/cache)")  # fmt: skip
    chk.add_argument("--no-stale", action="store_true",
                     help="skip recomputing each sweep experiment's run ids from the current code, config and data")  # fmt: skip
    chk.set_defaults(func=_cmd_check)


def _cmd_diff(args: argparse.Namespace) -> int:
    from hftlab.analysis.diff import diff_markdown

    text = diff_markdown(Path("."), args.base, args.head, Path(args.plots) if args.plots else None)
    if args.output:
        atomic_write(Path(args.output), text)
    else:
        print(text, end="")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hftlab.analysis.report import report

    for index in report(Path(args.results), Path(args.out), args.metric):
        print(f"report: {index}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from hftlab.analysis.compare import compare_page, find_run, metric_table, text_table

    runs = [find_run(name, args.results) for name in args.runs]
    print(text_table(*metric_table(runs)))
    if str(args.out):
        print(f"page: {compare_page(runs, args.out)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from hftlab.sweep import manifest, walkforward
    from hftlab.sweep.project import project_dir
    from hftlab.sweep.stale import SUMMARY_JSON, judge
    from hftlab.sweep.summary import status_manifest

    exp_dir = Path(args.results_dir)
    if (exp_dir / walkforward.RESULTS_JSON).is_file() and not (exp_dir / SUMMARY_JSON).is_file():
        text, whole = walkforward.status(exp_dir)
        print(text)
        print("complete" if whole else "NOT complete")
        return 0 if whole else 1
    m, note = status_manifest(exp_dir)
    if m is None:
        raise StorageError(f"{exp_dir}: neither {manifest.MANIFEST} nor summary.json and summary.csv: not an "
                           "experiment directory (results/<experiment>)")  # fmt: skip
    if note:
        print(f"note: {note}")
    c = manifest.counts(m)
    finished = c["done"] + c["cached"]
    print(
        f"{m['experiment']}: {finished}/{c['total']} complete (done {c['done']}, cached {c['cached']}), "
        f"running {c['running']}, pending {c['pending']}, failed {c['failed']}"
    )
    for r in m["runs"]:
        line = f"  {r['status']:8} {r.get('run_id') or '-':16} {' '.join(r['overrides'])}"
        print(line + (f"  error: {r['error']}" if r.get("error") else ""))
    if args.top > 0:
        _print_top(exp_dir, m, args.top, args.by)
    if (exp_dir / SUMMARY_JSON).is_file() and not args.no_stale:
        verdict = judge(exp_dir, project_dir())
        for problem in verdict.problems:
            print(f"stale: {problem}")
        if not verdict.problems:
            print(f"current: the {verdict.points} points' run ids are those the current code, config and data give")
    complete = manifest.is_complete(m)
    print("complete" if complete else "NOT complete")
    return 0 if complete else 1


def _cmd_runs(args: argparse.Namespace) -> int:
    """Recent complete runs, newest first: when, experiment, run id, strategy and parameters, headline."""
    from hftlab.run.results import METRICS_FILE, RUN_FILE, is_complete
    from hftlab.sweep.app import headline

    found = [p for p in args.results.glob("*/runs/*") if (p / RUN_FILE).is_file() and not p.name.startswith(".")]
    found.sort(key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)
    print(f"{min(args.n, len(found))} most recent of {len(found)} runs in {args.results}/")
    for p in found[: args.n]:
        definition = json.loads((p / RUN_FILE).read_text())
        strategy = definition["strategy"]
        params = " ".join(f"{k}={v}" for k, v in strategy["params"].items())
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.stat().st_mtime))
        print(f"{when}  {p.parent.parent.name:16} {p.name}  {strategy['name']} {params}  "
              f"dataset {definition['dataset']['id']}@{definition['dataset']['version']}")  # fmt: skip
        if not is_complete(p):
            print("    not complete (hftlab check names why)")
            continue
        print("  " + headline(p / METRICS_FILE))
    return 0


def _print_top(exp_dir: Path, m: dict[str, Any], top: int, by: str) -> None:
    """The ``top`` best finished runs of a verified manifest ``m`` by metric spec ``by``, as a table."""
    from hftlab.analysis.compare import text_table
    from hftlab.ranking import goal, ranked
    from hftlab.run.results import METRICS_FILE, runs_dir
    from hftlab.sweep.app import HEADLINE
    from hftlab.sweep.manifest import FINISHED

    g = goal(by, "--by")
    rows = [r for r in m["runs"] if r["status"] in FINISHED]
    runs = runs_dir(exp_dir.parent, exp_dir.name)
    metrics = [json.loads((runs / r["run_id"] / METRICS_FILE).read_text()) for r in rows]
    if rows and not any(g.metric in x for x in metrics):
        raise ConfigError(
            f"{by!r}: no such metric (known: {', '.join(sorted(metrics[0]))})", key="--by", rule="unknown-metric"
        )
    order = ranked([x.get(g.metric) for x in metrics], g.lower)
    shared = set.intersection(*(set(r["overrides"]) for r in rows)) if rows else set()
    columns = [g.metric, *(k for k in HEADLINE if k != g.metric)]
    print(
        f"top {min(top, len(order))} of {len(rows)} finished runs by {g.metric} ({g.word}); unranked: {len(rows) - len(order)}"
    )
    header = ["#", "run_id", *columns, "grid point"]
    table = []
    for n, i in enumerate(order[:top], 1):
        cells = [f"{v:.6g}" if isinstance(v := metrics[i].get(c), int | float) else "-" for c in columns]
        point = " ".join(o for o in rows[i]["overrides"] if o not in shared)
        table.append([str(n), rows[i]["run_id"], *cells, point])
    print(text_table(header, table, left=frozenset({1, len(header) - 1}), rule=False, indent="  "))


def _cmd_check(args: argparse.Namespace) -> int:
    from hftlab.integrity import check
    from hftlab.sweep.project import project_dir

    project = None if args.no_stale else project_dir()
    found = check(args.results, Catalog(args.root), full=args.full, dvc_cache=args.dvc_cache, project=project)
    for problem in found.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if found.husks:
        print(f"note: {len(found.husks)} run directories hold only telemetry.json (left by a dvc checkout of another "
              f"revision; not runs), e.g. {found.husks[0]}: delete them to tidy up")  # fmt: skip
    cache = f", {found.objects} DVC cache objects" if args.dvc_cache is not None else ""
    stale = "" if args.no_stale else f", {found.experiments} experiments against the current code, config and data"
    verdict = f"{len(found.problems)} problems" if found.problems else "ok"
    print(f"{verdict}: {found.runs} run directories, {found.datasets} dataset versions{cache}{stale} checked")
    return 1 if found.problems else 0
