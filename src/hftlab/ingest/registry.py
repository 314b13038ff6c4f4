"""The importers ``hftlab data import`` offers: one :class:`Importer` per vendor format.

Each importer module declares its own ``IMPORTER = register(Importer(...))``: its subcommand name,
help, the arguments naming its input files, and how the parsed arguments become an
:class:`~hftlab.storage.schema.IngestResult`. The instrument arguments every import needs are added
by :func:`add_instrument_arguments`. So a new format is a new module listed in :data:`BUILTIN_MODULES`
(or any module that calls :func:`register` before the parser is built); the CLI does not change.
"""

from __future__ import annotations

import argparse
import glob
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hftlab.errors import ConfigError
from hftlab.storage.schema import IngestResult, Instrument

#: Modules holding the built-in importers, in the order ``hftlab data import --help`` lists them.
BUILTIN_MODULES = (
    "hftlab.ingest.binance_futures",
    "hftlab.ingest.tardis",
    "hftlab.ingest.databento",
    "hftlab.ingest.lobster",
    "hftlab.ingest.npz",
)

ID_HELP = "dataset id (default: <venue>-<symbol>)"


def venue_symbol_id(args: argparse.Namespace) -> str:
    """The default dataset id of an import: ``<venue>-<symbol>``."""
    return f"{args.venue}-{args.symbol}"


@dataclass(frozen=True)
class Importer:
    """One vendor format as a ``hftlab data import <name>`` subcommand."""

    #: Subcommand name, e.g. ``binance-futures``.
    name: str
    #: One line for ``hftlab data import --help``.
    help: str
    #: Default of ``--venue``.
    venue: str
    #: Adds the format's own arguments (its input files), which come before the instrument arguments.
    add_arguments: Callable[[argparse.ArgumentParser], None]
    #: Converts the parsed arguments (the format's and the instrument's) into canonical rows: one
    #: :class:`IngestResult` per import (a raw file), each with its own lineage and timestamp correction.
    convert: Callable[[argparse.Namespace], IngestResult | list[IngestResult]]
    #: The dataset id when ``--id`` is not given.
    default_id: Callable[[argparse.Namespace], str] = venue_symbol_id
    #: The format names its instrument (symbol, venue, maybe tick): the instrument arguments are then
    #: optional overrides (None when not given) and the importer fills in the rest.
    instrument_from_file: bool = False

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add every argument of this import to its subcommand's parser."""
        self.add_arguments(parser)
        add_instrument_arguments(parser, self.venue, required=not self.instrument_from_file)


#: Registered importers by name, in registration order.
IMPORTERS: dict[str, Importer] = {}


def register(importer: Importer) -> Importer:
    """Offer ``importer`` as ``hftlab data import <importer.name>`` (replacing one of that name)."""
    IMPORTERS[importer.name] = importer
    return importer


def importers() -> list[Importer]:
    """Every importer: the built-in ones in :data:`BUILTIN_MODULES` order (importing their modules registers
    them), then any other in registration order."""
    builtin = [importlib.import_module(module).IMPORTER for module in BUILTIN_MODULES]
    return builtin + [i for i in IMPORTERS.values() if i not in builtin]


def file_importer(name: str, help: str, venue: str, convert: Callable[[Path, Instrument], IngestResult]) -> Importer:
    """An importer of raw files, the positional arguments ``files`` (paths or quoted glob patterns): one
    ``convert(file, instrument)`` per file, in name order, each its own import (a day per file, say)."""
    return Importer(
        name=name,
        help=help,
        venue=venue,
        add_arguments=add_file_argument,
        convert=lambda args: [convert(path, instrument(args)) for path in expand_paths(args.files)],
    )


def files_naming_their_instrument(
    convert: Callable[[Path, argparse.Namespace], IngestResult],
) -> Callable[[argparse.Namespace], list[IngestResult]]:
    """The ``convert`` of an importer whose files name their instrument (``instrument_from_file``): one
    ``convert(file, args)`` per file of ``args.files``; ``args.venue`` and ``args.symbol`` are then set
    from the first file's instrument, so the default dataset id (:func:`venue_symbol_id`) comes from it."""

    def convert_all(args: argparse.Namespace) -> list[IngestResult]:
        results = [convert(path, args) for path in expand_paths(args.files)]
        args.venue, args.symbol = results[0].instrument.venue, results[0].instrument.symbol
        return results

    return convert_all


def expand_paths(patterns: list[str]) -> list[Path]:
    """Paths as given, with glob patterns (``*``, ``?``, ``[``) that name no file expanded in name order.

    A pattern matching nothing, or a path given twice, is an error naming it.
    """
    out: list[Path] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?[") and not Path(pattern).exists():
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ConfigError(f"{pattern}: the pattern matches no file")
            out += [Path(m) for m in matches]
        else:
            out.append(Path(pattern))
    seen = [p.resolve() for p in out]
    for i, path in enumerate(seen):
        if path in seen[:i]:
            raise ConfigError(f"{out[i]}: the file is given twice")
    return out


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="file", help="raw files (or quoted glob patterns): each one an import, e.g. a day"
    )


def add_instrument_arguments(parser: argparse.ArgumentParser, venue: str, required: bool = True) -> None:
    """The instrument, dataset id, timestamp unit, local-timestamp correction and plausibility-bound
    arguments every import takes (:func:`hftlab.ingest.common.finish_import` applies the last four).
    With ``required=False`` (a format that names its instrument) the instrument arguments default to None."""
    from hftlab.ingest import common

    from_file = "" if required else " (default: from the file)"
    parser.add_argument("--symbol", required=required, help=f"instrument symbol, e.g. BTCUSDT{from_file}")
    parser.add_argument(
        "--tick-size", type=float, required=required, help=f"price tick (prices must lie on it){from_file}"
    )
    parser.add_argument("--lot-size", type=float, required=required, help=f"quantity step{from_file}")
    parser.add_argument("--venue", default=venue or None, help=f"venue name (default: {venue or 'from the file'})")
    parser.add_argument("--contract-type", choices=["linear", "inverse"], default="linear")
    parser.add_argument(
        "--contract-size",
        type=float,
        default=1.0 if required else None,
        help=f"contract multiplier{from_file or ' (default: 1)'}",
    )
    parser.add_argument("--id", help=ID_HELP)
    parser.add_argument(
        "--local-ts-correction",
        default="none",
        help="shift local timestamps: 'none', 'auto' (the smallest feed latency of the snapshot, depth and trades "
        "rows becomes 0 if negative, as hftbacktest's converters do) or integer ns; recorded in the lineage",
    )
    parser.add_argument(
        "--ts-unit",
        choices=common.TS_UNIT_CHOICES,
        default="auto",
        help="unit of the raw timestamp columns whose unit the format does not fix (binance-futures: the local "
        "timestamp; tardis, npz: both); auto (default) detects it from the magnitudes; recorded in the lineage",
    )
    parser.add_argument(
        "--max-local-ts-correction",
        type=common.duration_type,
        default=common.DEFAULT_MAX_LOCAL_TS_CORRECTION,
        metavar="DURATION",
        help="refuse a local-timestamp correction larger than this, e.g. 5s, 500ms "
        f"(default: {common.DEFAULT_MAX_LOCAL_TS_CORRECTION})",
    )
    parser.add_argument(
        "--max-feed-latency",
        type=common.duration_type,
        default=common.DEFAULT_MAX_FEED_LATENCY,
        metavar="DURATION",
        help="refuse a feed latency (local - exchange time, after the correction) larger than this "
        f"(default: {common.DEFAULT_MAX_FEED_LATENCY})",
    )


def instrument(args: argparse.Namespace) -> Instrument:
    """The instrument the arguments of :func:`add_instrument_arguments` describe."""
    return Instrument(
        venue=args.venue,
        symbol=args.symbol,
        tick_size=args.tick_size,
        lot_size=args.lot_size,
        contract_type=args.contract_type,
        contract_size=args.contract_size,
    )
