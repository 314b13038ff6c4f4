"""The ``hftlab`` command line.

``hftlab data ...`` manages Canonical Storage (synthesize, import, list, verify); ``data import``
offers every importer of :mod:`hftlab.ingest.registry`. Errors the user can act on
(:class:`~hftlab.errors.HftlabError`: bad input) are printed as one line on stderr with exit code 2;
nothing is half-written. Any other exception is a bug: its traceback is shown, exit code 3.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hftlab import __version__
from hftlab.errors import ConfigError, HftlabError, StorageError
from hftlab.files import atomic_write
from hftlab.ingest.registry import ID_HELP, Importer, importers
from hftlab.storage.catalog import Catalog, Dataset
from hftlab.storage.schema import L3_FEEDS, IngestResult

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _iso(ns: int) -> str:
    import numpy as np

    return str(np.datetime64(int(ns), "ns")) + "Z"


def _dataset_row(d: Dataset) -> dict[str, Any]:
    m = d.manifest
    return {
        "id": m.dataset_id,
        "version": m.version,
        "parent": m.parent,
        "venue": m.instrument.venue,
        "symbol": m.instrument.symbol,
        "rows": m.rows,
        "feeds": m.feeds,
        "schema_version": m.schema_version,
        "level": "L3" if L3_FEEDS & set(m.feeds) else "L2",
        "start": _iso(m.start_ns),
        "end": _iso(m.end_ns),
        "start_ns": m.start_ns,
        "end_ns": m.end_ns,
        "windows": [
            {"start": _iso(s.start_ns), "end": _iso(s.end_ns), "rows": s.rows, "source": s.names()}
            for s in sorted(m.sources, key=lambda s: s.start_ns)
        ],
        "path": d.path.as_posix(),
    }


def _promote(args: argparse.Namespace, results: IngestResult | list[IngestResult], default_id: str) -> int:
    from hftlab.ingest.common import finish_import

    imports = results if isinstance(results, list) else [results]
    for result in imports:
        finish_import(result, args)
    dataset, new = Catalog(args.root).promote(imports, args.id or default_id)
    m = dataset.manifest
    state = "promoted" if new else "already promoted (identical content)"
    feeds = ", ".join(f"{k} {v}" for k, v in m.feeds.items())
    grown = f", grown from {m.parent}" if new and m.parent else ""
    print(
        f"{state}: {m.dataset_id} version {m.version}{grown}: {m.rows} rows ({feeds}), "
        f"{_iso(m.start_ns)} .. {_iso(m.end_ns)} in {len(m.sources)} window(s)"
    )
    print(f"  at {dataset.path}")
    for result in imports:
        for note in result.lineage.get("notes", []):
            print(f"  note: {note}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from hftlab.ingest import synthetic

    params = synthetic.params_from_args(args)
    return _promote(args, synthetic.generate(params), f"{params.venue}-{params.symbol}")


def _cmd_import(importer: Importer, args: argparse.Namespace) -> int:
    return _promote(args, importer.convert(args), importer.default_id(args))


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [_dataset_row(d) for d in Catalog(args.root).datasets()]
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print(f"no datasets in {Catalog(args.root).root}")
        return 0
    print(f"{'id':32} {'version':16} {'parent':16} {'rows':>12} level  windows (exchange time, UTC)")
    for r in rows:
        print(f"{r['id']:32} {r['version']:16} {r['parent'] or '-':16} {r['rows']:>12} {r['level']:5}")
        for w in r["windows"]:
            print(f"{'':73}  {w['start']} .. {w['end']}  {w['rows']:>10} rows  {w['source']}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    catalog = Catalog(args.root)
    targets = [(args.id, args.version)] if args.id else [(d.id, d.version) for d in catalog.datasets()]
    if not targets:
        raise StorageError(f"no datasets to verify in {catalog.root}")
    failed = 0
    for dataset_id, version in targets:
        try:
            d = catalog.verify(dataset_id, version, full=not args.quick)
            print(f"ok: {d.id} {d.version} ({len(d.manifest.partitions)} files)")
        except StorageError as exc:
            failed += 1
            print(f"FAILED: {dataset_id} {version or ''}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hftlab", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--root", type=Path, default=None, help="Canonical Storage root (default: $HFTLAB_DATA_ROOT or data/canonical)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="Canonical Storage: synthesize, import, list, verify datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    synth = dsub.add_parser("synth", help="generate the deterministic synthetic market (the embedded default)")
    from hftlab.ingest import synthetic

    synthetic.add_arguments(synth)
    synth.add_argument("--id", help=ID_HELP)
    synth.set_defaults(func=_cmd_synth)

    imp = dsub.add_parser("import", help="import vendor files into Canonical Storage")
    isub = imp.add_subparsers(dest="source", required=True)
    for importer in importers():
        p = isub.add_parser(importer.name, help=importer.help)
        importer.configure(p)
        p.set_defaults(func=functools.partial(_cmd_import, importer))

    sub.add_parser(
        "run", help="run a backtest with Hydra: hftlab run [overrides] [-m] [--cfg job] [--help]", add_help=False
    )
    rep = sub.add_parser("reproduce", help="re-execute a stored run and compare every deterministic file")
    rep.add_argument("run_dir", help="results/<experiment>/runs/<run_id>")
    rep.add_argument("--data-root", default="data/canonical", help="Canonical Storage root (default: data/canonical)")
    rep.set_defaults(func=_cmd_reproduce)

    sub.add_parser(
        "walkforward", help="rolling in-sample / out-of-sample evaluation (hftlab walkforward --help)", add_help=False
    )
    rp = sub.add_parser("run-params", help="one run with the Hydra overrides a DVC params file holds (dvc exp run -S)")
    rp.add_argument("params", help="params.yaml: its strategy/dataset/venue/risk/execution/runtime/metrics sections")
    rp.add_argument("--experiment-name", default="dvc_experiment", help="results folder (default: dvc_experiment)")
    rp.add_argument("--metrics", help="also copy the run's metrics.json here (a DVC metrics file)")
    rp.set_defaults(func=_cmd_run_params)

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

    rp2 = sub.add_parser("report", help="HTML report (images embedded) and PNGs per experiment")
    rp2.add_argument("results", help="results (every experiment) or results/<experiment>")
    rp2.add_argument("--out", default="reports", help="output folder (default: reports)")
    rp2.add_argument("--metric", default="net_pnl", help="metric choosing the best run and colouring heatmaps")
    rp2.set_defaults(func=_cmd_report)

    strat = sub.add_parser("strategy", help="strategies in strategies/: new")
    ssub = strat.add_subparsers(dest="strategy_command", required=True)
    new = ssub.add_parser(
        "new",
        help="write strategies/NAME.py (a runnable template whose docstring is the contract) and conf/strategy/NAME.yaml",
    )
    new.add_argument("name", help="a Python identifier, not starting with '_'")
    new.add_argument("--dir", type=Path, default=None, help="strategies folder (default: <project>/strategies)")
    new.set_defaults(func=_cmd_strategy_new)

    cache = sub.add_parser("cache", help="the event cache of fed windows ($HFTLAB_EVENT_CACHE): info, clear")
    csub = cache.add_subparsers(dest="cache_command", required=True)
    csub.add_parser("info", help="location, size limit, and every cached window").set_defaults(func=_cmd_cache_info)
    csub.add_parser("clear", help="remove every cached window").set_defaults(func=_cmd_cache_clear)

    _add_results_commands(sub)

    lst = dsub.add_parser("list", help="list promoted datasets")
    lst.add_argument("--json", action="store_true", help="JSON array: id, version, rows, start, end, ...")
    lst.set_defaults(func=_cmd_list)
    ver = dsub.add_parser("verify", help="check datasets against their manifests (exit 1 on any mismatch)")
    ver.add_argument("id", nargs="?", help="dataset id (default: every dataset)")
    ver.add_argument("--version", help="dataset version (default: the newest)")
    ver.add_argument("--quick", action="store_true", help="check file hashes only, do not re-hash rows")
    ver.set_defaults(func=_cmd_verify)
    return parser


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from hftlab.run.reproduce import reproduce
    from hftlab.sweep.app import project_dir

    ok, lines = reproduce(Path(args.run_dir), project_dir(), args.data_root)
    for line in lines:
        print(line)
    print("reproduced: every deterministic file matches" if ok else "NOT reproduced: see the lines above")
    return 0 if ok else 1


def _cmd_run_params(args: argparse.Namespace) -> int:
    from hftlab.sweep.app import run_from_params

    return run_from_params(Path(args.params), args.experiment_name, Path(args.metrics) if args.metrics else None)


def _cmd_diff(args: argparse.Namespace) -> int:
    from hftlab.analysis.diff import diff_markdown

    text = diff_markdown(Path("."), args.base, args.head, Path(args.plots) if args.plots else None)
    if args.output:
        atomic_write(Path(args.output), text)
    else:
        print(text, end="")
    return 0


def _cmd_cache_info(args: argparse.Namespace) -> int:
    from hftlab.event_cache import EventCache

    cache = EventCache()
    entries = cache.entries()
    total = sum(e.bytes for e in entries)
    print(
        f"event cache at {cache.root}: {len(entries)} window(s), {total / 2**30:.2f} GiB of {cache.limit / 2**30:.2f} GiB"
    )
    for e in reversed(entries):  # most recently used first
        i = e.index
        window = f"{_iso(i['start']) if i['start'] is not None else 'start'} .. {_iso(i['end']) if i['end'] is not None else 'end'}"
        print(
            f"  {i['dataset_id']} {i['version']} {','.join(i['feeds'])} {window}: {len(i['chunks'])} piece(s), {e.bytes / 2**20:.1f} MiB"
        )
    return 0


def _add_results_commands(sub: Any) -> None:
    """The commands that read results: runs, status, check."""
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


def _cmd_strategy_new(args: argparse.Namespace) -> int:
    from importlib.resources import files

    from hftlab.sweep.project import project_dir, shown

    name = str(args.name)
    if not name.isidentifier() or name.startswith("_") or not name.isascii():
        raise ConfigError(f"{name!r}: a strategy name is a Python identifier not starting with '_'", key="NAME",
                          rule="invalid-name")  # fmt: skip
    folder = args.dir if args.dir is not None else project_dir() / "strategies"
    path = folder / f"{name}.py"
    config = folder.parent / "conf" / "strategy" / f"{name}.yaml"
    for target in (path, config):
        if target.exists():
            raise ConfigError(f"{target} exists: choose another name (nothing was written)", key="NAME", rule="exists")
    template = files("hftlab.templates").joinpath("strategy.py").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, template.replace("NAME", name))
    written = [shown(path)]
    if config.parent.is_dir():  # a project's conf/strategy: the strategy's config, its parameters untouched
        atomic_write(config, STRATEGY_YAML.replace("NAME", name))
        written.append(shown(config))
    print(
        f"wrote {' and '.join(written)}: run it with `hftlab run strategy={name}`; edit Params, validate and evaluate"
    )
    return 0


#: The config ``hftlab strategy new`` writes: no parameter values, so they come from the file's ``Params``
#: (one place to edit) until one is set here for every run of the strategy.
STRATEGY_YAML = """\
# The configuration of strategies/NAME.py (`hftlab run strategy=NAME`). Its parameters start from the
# Params defaults in that file; set one here to change it for every run (params: {half_spread: 0.3}),
# or for one run on the command line (strategy.params.half_spread=0.3).
defaults:
  - /strategy_schema_NAME@_here_
name: NAME
"""


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    from hftlab.event_cache import EventCache

    cache = EventCache()
    freed, kept = cache.clear()
    busy = f"; {kept} window(s) in use by a running process kept" if kept else ""
    print(f"removed {freed / 2**20:.1f} MiB from {cache.root}{busy}")
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
    table = [["#", "run_id", *columns, "grid point"]]
    for n, i in enumerate(order[:top], 1):
        cells = [f"{v:.6g}" if isinstance(v := metrics[i].get(c), int | float) else "-" for c in columns]
        point = " ".join(o for o in rows[i]["overrides"] if o not in shared)
        table.append([str(n), rows[i]["run_id"], *cells, point])
    widths = [max(len(row[j]) for row in table) for j in range(len(table[0]))]
    for row in table:
        print(
            "  "
            + "  ".join(
                c.ljust(w) if j in (1, len(row) - 1) else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hftlab`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--quiet" in argv:  # for every command: no progress output
        argv.remove("--quiet")
        os.environ["HFTLAB_PROGRESS"] = "off"
    if argv and argv[0] == "run":
        from hftlab.sweep.app import hydra_entry

        # Hydra raises what it would print as several lines and exit code 1: reported below, one line, exit 2
        os.environ["HYDRA_FULL_ERROR"] = "1"
        return _reporting_errors(lambda: hydra_entry(argv[1:]))
    if argv and argv[0] == "walkforward":
        from hftlab.sweep.walkforward import main as walkforward_main

        return _reporting_errors(lambda: walkforward_main(argv[1:]))
    args = build_parser().parse_args(argv)
    return _reporting_errors(lambda: int(args.func(args)))


def _reporting_errors(command: Callable[[], int]) -> int:
    """Run a command: an :class:`HftlabError` (bad input the user can fix) is one line on stderr and exit
    code 2; any other exception is a bug in hftlab, shown with its traceback and exit code 3."""
    try:
        return command()
    except HftlabError as exc:
        print(f"hftlab: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output went away (`hftlab ... | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exiting flushes nowhere
        return 1
    except Exception as exc:
        if _from_hydra(exc):  # composing the config: an unknown key, a wrong type, a bad override
            from hftlab.run.schema import composition_error

            print(f"hftlab: error: {composition_error(exc)}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"hftlab: internal error: this is a bug in hftlab {__version__}; please report it with the "
              "traceback above and the command you ran", file=sys.stderr)  # fmt: skip
        return 3


def _from_hydra(exc: BaseException) -> bool:
    """Whether ``exc`` is Hydra's or OmegaConf's (about the configuration, not a bug in hftlab)."""
    module = type(exc).__module__.split(".")[0]
    return module in ("hydra", "omegaconf")


if __name__ == "__main__":
    sys.exit(main())
