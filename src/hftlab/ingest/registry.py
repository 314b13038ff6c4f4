"""The importers ``hftlab data import`` offers: one :class:`Importer` per vendor format.

Each importer module declares its own ``IMPORTER = register(Importer(...))``: its subcommand name,
help, the arguments naming its input files, and how the parsed arguments become an
:class:`~hftlab.storage.schema.IngestResult`. The instrument arguments every import needs are added
by :func:`add_instrument_arguments`. So a new format is a new module listed in :data:`BUILTIN_MODULES`
(or any module that calls :func:`register` before the parser is built); the CLI does not change.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hftlab.storage.schema import IngestResult, Instrument

#: Modules holding the built-in importers, in the order ``hftlab data import --help`` lists them.
BUILTIN_MODULES = ("hftlab.ingest.binance_futures", "hftlab.ingest.tardis", "hftlab.ingest.npz")

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
    #: Converts the parsed arguments (the format's and the instrument's) into canonical rows.
    convert: Callable[[argparse.Namespace], IngestResult]
    #: The dataset id when ``--id`` is not given.
    default_id: Callable[[argparse.Namespace], str] = venue_symbol_id

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add every argument of this import to its subcommand's parser."""
        self.add_arguments(parser)
        add_instrument_arguments(parser, self.venue)


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
    """An importer of one input file, the positional argument ``file``: ``convert(file, instrument)``."""
    return Importer(
        name=name,
        help=help,
        venue=venue,
        add_arguments=_add_file_argument,
        convert=lambda args: convert(Path(args.file), instrument(args)),
    )


def _add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file")


def add_instrument_arguments(parser: argparse.ArgumentParser, venue: str) -> None:
    """The instrument, dataset id and local-timestamp correction arguments every import takes."""
    parser.add_argument("--symbol", required=True, help="instrument symbol, e.g. BTCUSDT")
    parser.add_argument("--tick-size", type=float, required=True, help="price tick (prices must lie on it)")
    parser.add_argument("--lot-size", type=float, required=True, help="quantity step")
    parser.add_argument("--venue", default=venue, help=f"venue name (default: {venue})")
    parser.add_argument("--contract-type", choices=["linear", "inverse"], default="linear")
    parser.add_argument("--contract-size", type=float, default=1.0)
    parser.add_argument("--id", help=ID_HELP)
    parser.add_argument(
        "--local-ts-correction",
        default="none",
        help="shift local timestamps: 'none', 'auto' (smallest feed latency becomes 0) or integer ns; recorded in the lineage",
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
