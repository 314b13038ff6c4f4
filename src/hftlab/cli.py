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
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hftlab import __version__, cli_results
from hftlab.errors import ConfigError, HftlabError, StorageError
from hftlab.files import atomic_write
from hftlab.ingest.registry import ID_HELP, Importer, importers
from hftlab.storage.catalog import Catalog, Dataset
from hftlab.storage.schema import L3_FEEDS, IngestResult

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# A Ray sweep's driver would replace builtins.print (ray.experimental.tqdm_ray); numba then cannot compile
# a function that prints (untyped global 'print') later in this process.
os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")


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

    cli_results.add_commands(sub)

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
