"""The importer registry: a registered importer is a `hftlab data import` subcommand without a CLI edit;
bad instrument or correction arguments are ConfigErrors (exit 2, one line), not ValueError tracebacks."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from hftlab import cli
from hftlab.errors import ConfigError
from hftlab.ingest import registry
from hftlab.ingest.common import parse_correction
from hftlab.storage import Catalog, FeedFrame, IngestResult, Instrument, Kind, Side


def _toy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, required=True, help="how many toy trades")


def _toy_convert(args: argparse.Namespace) -> IngestResult:
    n = args.rows
    exch = np.arange(1, n + 1, dtype=np.int64) * 1_000_000_000
    trades = FeedFrame.from_columns(
        "trades",
        "toy",
        exch_ts=exch,
        local_ts=exch + 1_000,
        kind=np.full(n, Kind.TRADE),
        side=np.full(n, Side.BID),
        price=np.full(n, 100.5),
        qty=np.ones(n),
    )
    return IngestResult(instrument=registry.instrument(args), feeds=[trades], lineage={"converter": "toy"})


TOY = registry.Importer(
    name="toy",
    help="a toy format that only tests use",
    venue="toyland",
    add_arguments=_toy_arguments,
    convert=_toy_convert,
    default_id=lambda args: f"toy-{args.rows}",
)


#: `hftlab data import toy` with the required instrument arguments.
TOY_IMPORT = ["data", "import", "toy", "--symbol", "TOY", "--tick-size", "0.5", "--lot-size", "1"]


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """TOY registered for one test only (the built-ins are registered first, into the real registry)."""
    registry.importers()
    monkeypatch.setattr(registry, "IMPORTERS", dict(registry.IMPORTERS))
    registry.register(TOY)


def test_builtin_importers_in_help_order() -> None:
    """The built-in formats, in the order `hftlab data import --help` lists them."""
    assert ["binance-futures", "tardis", "databento", "lobster", "npz"] == [i.name for i in registry.importers()][:5]


def test_registered_importer_is_a_subcommand_with_its_arguments(toy_registered, capsys) -> None:
    """A new importer appears under `data import` with its own and the shared instrument arguments."""
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "import", "--help"])
    listing = capsys.readouterr().out
    assert "toy" in listing and "a toy format that only tests use" in listing
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "import", "toy", "--help"])
    usage = capsys.readouterr().out
    for option in ("--rows", "--symbol", "--tick-size", "--lot-size", "--venue", "--id", "--local-ts-correction"):
        assert option in usage
    assert "venue name (default: toyland)" in usage
    args = parser.parse_args([*TOY_IMPORT, "--rows", "2"])
    assert (2, "TOY", "toyland", "none") == (args.rows, args.symbol, args.venue, args.local_ts_correction)


def test_registered_importer_promotes_through_the_cli(toy_registered, tmp_path: Path, capsys) -> None:
    """`hftlab data import toy ...` converts with the importer and promotes under its default id."""
    root = tmp_path / "canonical"
    assert 0 == cli.main(["--root", str(root), *TOY_IMPORT, "--rows", "3", "--local-ts-correction", "auto"])
    assert capsys.readouterr().out.startswith("promoted: toy-3 version ")
    (dataset,) = Catalog(root).datasets()
    assert ("toy-3", 3, "toyland") == (dataset.id, dataset.manifest.rows, dataset.manifest.instrument.venue)
    assert ("auto", 0) == (
        dataset.manifest.lineage["local_ts_correction"],
        dataset.manifest.lineage["local_ts_correction_ns"],
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tick-size", "-1"], "instrument tick_size must be a finite number > 0, got -1.0"),
        (["--contract-size", "nan"], "instrument contract_size must be a finite number > 0, got nan"),
        (["--local-ts-correction", "soon"], "local-ts correction must be 'auto', 'none' or integer nanoseconds"),
        (["--id", "../escape"], "dataset id '../escape' is not a valid name"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(toy_registered, tmp_path: Path, capsys, extra, message) -> None:
    """A bad instrument, correction or id is a ConfigError: one `hftlab: error:` line, exit 2, nothing stored."""
    root = tmp_path / "canonical"
    assert 2 == cli.main(["--root", str(root), *TOY_IMPORT, "--rows", "1", *extra])
    err = capsys.readouterr().err
    assert err.startswith("hftlab: error: ") and message in err and 1 == len(err.splitlines())
    assert [] == Catalog(root).datasets()


def test_instrument_and_correction_errors_are_config_errors() -> None:
    """The CLI reports HftlabErrors only: bad instrument fields and corrections raise ConfigError."""
    with pytest.raises(ConfigError, match="instrument lot_size must be"):
        Instrument(venue="v", symbol="S", tick_size=0.1, lot_size=0.0)
    with pytest.raises(ConfigError, match="instrument contract_type must be"):
        Instrument(venue="v", symbol="S", tick_size=0.1, lot_size=1.0, contract_type="quanto")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="symbol 'a/b' is not a valid name"):
        Instrument(venue="v", symbol="a/b", tick_size=0.1, lot_size=1.0)
    with pytest.raises(ConfigError, match="local-ts correction must be"):
        parse_correction("1.5")
