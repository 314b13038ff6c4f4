"""Timestamp units and plausibility of imports (issue 13, point 4): unit detection and ``--ts-unit``,
the automatic local-timestamp correction (per file, from snapshot/depth/trades as hftbacktest), and one
test per rule of :func:`hftlab.ingest.common.finish_import`: calendar range, correction bound, feed
latency negative or above its bound after the correction."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hftlab import cli
from hftlab.errors import ConfigError, DataError
from hftlab.ingest import binance_futures, npz, synthetic, tardis
from hftlab.ingest.common import apply_local_ts_correction, detect_unit, finish_import, parse_duration
from hftlab.ingest.registry import add_instrument_arguments
from hftlab.storage import Catalog, IngestResult, Instrument, Kind

BTC = Instrument(venue="binance-futures", symbol="BTCUSDT", tick_size=0.1, lot_size=0.001)
INSTRUMENT_ARGS = ["--symbol", "BTCUSDT", "--tick-size", "0.1", "--lot-size", "0.001"]
T0 = 1723161256298  # ms, 2024-08-08T23:54:16.298Z
SKEW_NS = 1_270_000_000  # the receiving clock is 1.27 s behind the exchange's, as in the real sample
LATENCY_NS = 2_000_000  # true feed latency of the hand-made lines
MS = 1_000_000


def parse(*extra: str) -> argparse.Namespace:
    """The arguments every import takes, as `hftlab data import` parses them."""
    parser = argparse.ArgumentParser()
    add_instrument_arguments(parser, "binance-futures")
    return parser.parse_args([*INSTRUMENT_ARGS, *extra])


def msg(event: str, t_ms: int, **data: Any) -> str:
    return json.dumps(
        {"stream": f"btcusdt@{event}", "data": {"e": event, "s": "BTCUSDT", "E": t_ms + 1, "T": t_ms, **data}}
    )


def depth(t: int) -> str:
    return msg("depthUpdate", t, U=1, u=2, pu=0, b=[["100.0", "1.0"]], a=[["100.1", "2.0"]])


def trade(t: int) -> str:
    return msg("trade", t, t=7, p="100.1", q="0.5", X="MARKET", m=False)


def book_ticker(t: int) -> str:
    return msg("bookTicker", t, u=9, b="100.0", B="1.5", a="100.1", A="2.5")


def local(t_ms: int, unit_ns: int, skew_ns: int = SKEW_NS, latency_ns: int = LATENCY_NS) -> int:
    """The collector's timestamp of a message sent at ``t_ms``, in a unit of ``unit_ns`` nanoseconds."""
    return (t_ms * MS + latency_ns - skew_ns) // unit_ns


def collector_file(
    tmp_path: Path, unit_ns: int = 1, *, first: str | None = None, name: str = "c.gz", **kw: int
) -> Path:
    """A hand-made collector file of 4 lines (depth, trade, depth, trade), local times in ``unit_ns``;
    ``first`` replaces line 1's local timestamp text."""
    bodies = [depth(T0), trade(T0 + 5), depth(T0 + 10), trade(T0 + 15)]
    stamps = [str(local(t, unit_ns, **kw)) for t in (T0, T0 + 5, T0 + 10, T0 + 15)]
    if first is not None:
        stamps[0] = first
    path = tmp_path / name
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(f"{s} {b}\n" for s, b in zip(stamps, bodies, strict=True))
    return path


def imported(path: Path, *extra: str) -> IngestResult:
    result = binance_futures.convert(path, BTC)
    finish_import(result, parse(*extra))
    return result


def refused(path: Path, rule: str, location: str | None, *extra: str) -> DataError:
    with pytest.raises(DataError) as info:
        imported(path, *extra)
    err = info.value
    assert (rule, str(path), location) == (err.rule, err.source, err.location)
    assert f"{path}, {location}: [{rule}]" in str(err)
    return err


def feeds_of(result: IngestResult) -> dict[str, Any]:
    return {f.feed: f for f in result.feeds}


# -- units ----------------------------------------------------------------------------------------


def test_us_collector_file_is_imported_with_the_unit_detected(tmp_path: Path, catalog: Catalog) -> None:
    """The symptom: a collector file with µs local timestamps was corrected by ~54 years and promoted.
    Now the unit is detected (µs against the JSON's ms), the correction is the clock's 1.27 s, and it
    promotes with the unit and the correction in the lineage."""
    path = collector_file(tmp_path, 1_000)
    result = imported(path, "--local-ts-correction", "auto")
    assert {"exch_ts": {"unit": "ms", "how": "format"}, "local_ts": {"unit": "us", "how": "detected"}} == (
        result.lineage["timestamp_units"]
    )
    assert SKEW_NS - LATENCY_NS == result.lineage["local_ts_correction_ns"]
    trades = feeds_of(result)["trades"]
    assert [(T0 + 5) * MS, (T0 + 15) * MS] == trades.local_ts.tolist()  # latency 0 after the correction
    dataset, _ = catalog.promote(result, "us")
    assert "us" == dataset.manifest.lineage["timestamp_units"]["local_ts"]["unit"]


def test_us_collector_file_beyond_the_correction_bound_is_refused(tmp_path: Path) -> None:
    """A µs file whose clock is 8 s behind: the automatic correction exceeds the 5 s default bound; the
    error names the first line that requires it. A wider bound accepts it."""
    path = collector_file(tmp_path, 1_000, skew_ns=8_000_000_000)
    err = refused(path, "local-ts-correction-too-large", "line 1", "--local-ts-correction", "auto")
    assert "7.998 s" in err.detail and "--max-local-ts-correction 5 s" in err.detail
    result = imported(path, "--local-ts-correction", "auto", "--max-local-ts-correction", "10s")
    assert 7_998_000_000 == result.lineage["local_ts_correction_ns"]


@pytest.mark.parametrize(("unit", "unit_ns"), [("s", 10**9), ("ms", MS), ("us", 1_000), ("ns", 1)])
def test_every_local_timestamp_unit_is_detected(tmp_path: Path, unit: str, unit_ns: int) -> None:
    """Detection against the exchange timestamps: s, ms, µs and ns collector files all read right."""
    path = collector_file(tmp_path, unit_ns, skew_ns=0, latency_ns=2 * 10**9)  # 2 s: visible in seconds
    result = imported(path)
    assert {"unit": unit, "how": "detected"} == result.lineage["timestamp_units"]["local_ts"]
    expected = local(T0 + 5, unit_ns, skew_ns=0, latency_ns=2 * 10**9) * unit_ns  # truncated to the unit
    assert [expected] == [int(feeds_of(result)["trades"].local_ts[0])]


def test_us_file_forced_as_ns_is_refused_not_shifted_by_decades(tmp_path: Path) -> None:
    """`--ts-unit` overrides detection; a wrong forced unit makes 1970 timestamps, refused at line 1
    (before: `--local-ts-correction auto` shifted them by 54 years and the import succeeded)."""
    path = collector_file(tmp_path, 1_000)
    err = refused(path, "timestamp-outside-calendar", "line 1", "--ts-unit", "ns", "--local-ts-correction", "auto")
    assert "1970-01-20" in err.detail and "read as ns, forced" in err.detail
    forced = imported(path, "--ts-unit", "us", "--local-ts-correction", "auto")
    assert {"unit": "us", "how": "forced"} == forced.lineage["timestamp_units"]["local_ts"]
    assert (
        forced.lineage["local_ts_correction_ns"]
        == imported(path, "--local-ts-correction", "auto").lineage["local_ts_correction_ns"]
    )


def test_forced_unit_that_overflows_is_refused(tmp_path: Path) -> None:
    """A ns file forced as µs does not fit int64 ns: `timestamp-out-of-range` at line 1, not a wrap."""
    refused(collector_file(tmp_path), "timestamp-out-of-range", "line 1", "--ts-unit", "us")


def test_detection_ignores_a_few_absurd_values() -> None:
    """The unit is judged on the median: one absurd value cannot change it; no fit -> the default."""
    ns = np.array([1_723_161_255_030_314_667] * 4, dtype=np.int64)
    assert ("us", "detected") == detect_unit(np.array([5, *(ns[1:] // 1000)]), "ns", reference_ns=ns)
    assert ("ms", "detected") == detect_unit(ns // MS, "us")
    assert ("us", "default") == detect_unit(np.array([1, 2, 3]), "us")
    assert ("ns", "default") == detect_unit(np.array([0, 0]), "ns", reference_ns=ns[:2])


# -- plausibility rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "rule"),
    [
        (str(local(T0, 1) // 1000), "timestamp-outside-calendar"),  # a µs value: 1970, 54.6 years off
        (str(local(T0, 1) - 3_600 * 10**9), "local-ts-correction-too-large"),  # an hour behind
    ],
)
def test_absurd_first_line_fails_the_import_instead_of_shifting_it(tmp_path: Path, first: str, rule: str) -> None:
    """One absurd local timestamp on line 1 of a ns file fails `--local-ts-correction auto` naming
    line 1; it never becomes the correction of the whole file."""
    path = collector_file(tmp_path, first=first)
    refused(path, rule, "line 1", "--local-ts-correction", "auto")


@pytest.mark.parametrize("t_ms", [946_684_799_999, 4_102_444_800_000], ids=["1999-12-31", "2100-01-01"])
def test_exchange_timestamp_outside_the_calendar_is_refused(tmp_path: Path, t_ms: int) -> None:
    """Exchange timestamps must lie in [2000-01-01, 2100-01-01) UTC; the first line outside is named."""
    path = tmp_path / "cal.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(f"{local(T0, 1)} {depth(T0)}\n{local(t_ms, 1, skew_ns=0)} {trade(t_ms)}\n")
    err = refused(path, "timestamp-outside-calendar", "line 2", "--local-ts-correction", "auto")
    assert err.detail.startswith("feed 'trades': exch_ts ")


def test_negative_feed_latency_after_the_correction_names_the_first_line(tmp_path: Path) -> None:
    """A given correction too small for the clock's skew leaves latencies < 0: refused at line 1."""
    path = collector_file(tmp_path)
    err = refused(path, "local-before-exchange", "line 1", "--local-ts-correction", "1000000000")
    assert "-0.268 s is below 0" in err.detail and "correction of 1 s" in err.detail
    assert "(6 rows break this rule)" in err.detail  # two rows per depth line, one per trade


def test_feed_latency_above_the_bound_names_the_first_line(tmp_path: Path) -> None:
    """A message received 20 s after it was sent (line 3) is refused under the 10 s default bound."""
    path = tmp_path / "late.gz"
    lines = [(T0, depth(T0)), (T0 + 5, trade(T0 + 5)), (T0 + 10, depth(T0 + 10)), (T0 + 15, trade(T0 + 15))]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, (t, body) in enumerate(lines):
            f.write(f"{local(t, 1, skew_ns=0, latency_ns=20 * 10**9 if i == 2 else LATENCY_NS)} {body}\n")
    err = refused(path, "feed-latency-too-large", "line 3", "--local-ts-correction", "auto")
    assert "20 s is above --max-feed-latency 10 s" in err.detail
    imported(path, "--local-ts-correction", "auto", "--max-feed-latency", "30s")


def test_given_correction_above_the_bound_is_a_config_error(tmp_path: Path) -> None:
    """An explicit correction larger than --max-local-ts-correction is an argument error."""
    with pytest.raises(ConfigError, match="exceeds --max-local-ts-correction 5 s"):
        imported(collector_file(tmp_path), "--local-ts-correction", str(6 * 10**9))


def test_bound_arguments_parse_durations_and_refuse_bad_ones(capsys) -> None:
    """`--max-local-ts-correction` / `--max-feed-latency` take durations (defaults 5 s / 10 s)."""
    args = parse()
    assert ("auto", 5 * 10**9, 10 * 10**9) == (args.ts_unit, args.max_local_ts_correction, args.max_feed_latency)
    assert (1_500_000_000, 250_000, 7, 120 * 10**9) == tuple(map(parse_duration, ["1.5s", "250us", "7", "2m"]))
    for bad in (["--max-feed-latency", "soon"], ["--max-local-ts-correction", "-1s"], ["--ts-unit", "days"]):
        with pytest.raises(SystemExit):
            parse(*bad)
    assert "invalid duration 'soon'" in capsys.readouterr().err


# -- the automatic correction ---------------------------------------------------------------------


def test_auto_correction_comes_from_book_and_trades_not_bbo(tmp_path: Path, catalog: Catalog) -> None:
    """As hftbacktest's converter (which emits no bbo): the offset makes the smallest snapshot/depth/trades
    latency 0; a bbo row 0.3 ms faster still gets just enough more to stay >= 0, recorded apart."""
    path = collector_file(tmp_path)
    with gzip.open(path, "at", encoding="utf-8") as f:
        f.write(f"{local(T0 + 20, 1, latency_ns=LATENCY_NS - 300_000)} {book_ticker(T0 + 20)}\n")
    result = imported(path, "--local-ts-correction", "auto")
    assert SKEW_NS - LATENCY_NS == result.lineage["local_ts_correction_ns"]
    assert {"bbo": 300_000} == result.lineage["local_ts_correction_extra_ns"]
    assert [0, 0] == (feeds_of(result)["bbo"].local_ts - feeds_of(result)["bbo"].exch_ts).tolist()
    catalog.promote(result, "bbo")


def test_no_correction_shifts_no_feed_a_bbo_row_before_its_exchange_time_is_refused(tmp_path: Path) -> None:
    """Without a correction (the default) nothing is shifted, bbo included: a bookTicker line received
    3 s before it was sent is refused as a depth or trade line would be, naming its line."""
    path = tmp_path / "bbo.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(f"{local(T0, 1, skew_ns=0)} {depth(T0)}\n")
        f.write(f"{local(T0 + 5, 1, skew_ns=3 * 10**9)} {book_ticker(T0 + 5)}\n")
    err = refused(path, "local-before-exchange", "line 2")
    assert err.detail.startswith("feed 'bbo'")
    result = imported(path, "--local-ts-correction", "auto")  # auto: the bbo row gets just enough more
    assert {"bbo": 3 * 10**9 - LATENCY_NS} == result.lineage["local_ts_correction_extra_ns"]


def test_generated_data_passes_unchanged(tmp_path: Path) -> None:
    """`hftlab data synth` goes through finish_import without the import arguments: no check applies
    (here a 1990 start and 20 s latencies) and only the correction keys are added, as before."""
    params = synthetic.SynthParams(start="1990-01-01", days=0.0005, latency_base_ns=20 * 10**9)
    result, reference = synthetic.generate(params), synthetic.generate(params)
    apply_local_ts_correction(reference, None)
    finish_import(result, argparse.Namespace(root=tmp_path, id="syn"))
    assert reference.lineage == result.lineage
    for mine, theirs in zip(result.feeds, reference.feeds, strict=True):
        for column in ("exch_ts", "local_ts", "price", "qty"):
            np.testing.assert_array_equal(getattr(theirs, column), getattr(mine, column))


# -- tardis and npz -------------------------------------------------------------------------------

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
US = 1_723_161_256_298_000  # µs


def tardis_trades(tmp_path: Path, name: str, scale: int, local_offset_us: int = 2_000) -> Path:
    """Two Tardis trades rows, timestamps in µs times ``scale`` (1000: ns, 1/1000 via negative: ms)."""

    def ts(us: int) -> int:
        return us * scale if scale > 0 else us // -scale

    rows = [f"x,BTCUSDT,{ts(US + i)},{ts(US + i + local_offset_us)},{i},buy,100.0,1" for i in (0, 1000)]
    path = tmp_path / name
    path.write_text("\n".join([TRADES_HEADER, *rows]) + "\n")
    return path


@pytest.mark.parametrize(("scale", "unit"), [(1, "us"), (1000, "ns"), (-1000, "ms")])
def test_tardis_units_are_detected_or_forced(tmp_path: Path, scale: int, unit: str) -> None:
    """Tardis files are µs, but ns and ms files are recognized; `--ts-unit` forces the unit."""
    path = tardis_trades(tmp_path, "t.csv", scale)
    result = tardis.convert(trades=path, instrument=BTC)
    finish_import(result, parse())
    assert {"unit": unit, "how": "detected"} == result.lineage["timestamp_units"]["exch_ts"]
    assert US * 1000 == int(result.feeds[0].exch_ts[0])
    forced = tardis.convert(trades=path, instrument=BTC, ts_unit=unit)
    finish_import(forced, parse("--ts-unit", unit))
    assert {"unit": unit, "how": "forced"} == forced.lineage["timestamp_units"]["local_ts"]
    np.testing.assert_array_equal(result.feeds[0].local_ts, forced.feeds[0].local_ts)


def test_tardis_files_in_different_units_are_refused(tmp_path: Path) -> None:
    """The files of one import share one clock and unit: trades in µs and quotes in ns is an error."""
    quotes = tmp_path / "q.csv"
    quotes.write_text(
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
        f"x,BTCUSDT,{US * 1000},{(US + 2000) * 1000},1,100.1,100.0,1\n"
    )
    with pytest.raises(DataError) as info:
        tardis.convert(trades=tardis_trades(tmp_path, "t.csv", 1), quotes=quotes, instrument=BTC)
    assert ("ts-unit-mismatch", str(quotes)) == (info.value.rule, info.value.source)


def test_tardis_latency_rule_names_the_csv_line(tmp_path: Path) -> None:
    """Plausibility errors of CSV imports name the CSV line (header = line 1)."""
    path = tardis_trades(tmp_path, "t.csv", 1, local_offset_us=-1_000)  # received before it was sent
    result = tardis.convert(trades=path, instrument=BTC)
    with pytest.raises(DataError) as info:
        finish_import(result, parse())
    assert ("local-before-exchange", "line 2") == (info.value.rule, info.value.location)


def npz_file(tmp_path: Path, exch: list[int], local: list[int]) -> Path:
    arr = np.zeros(len(exch), dtype=[("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"), ("qty", "f8")])
    arr["ev"] = (1 << 31) | (1 << 30) | (1 << 29) | int(Kind.TRADE)
    arr["exch_ts"], arr["local_ts"], arr["px"], arr["qty"] = exch, local, 100.0, 1.0
    path = tmp_path / "events.npz"
    np.savez_compressed(path, data=arr)
    return path


def test_npz_microseconds_of_hftbacktest_1_are_detected_and_rows_are_named(tmp_path: Path) -> None:
    """hftbacktest 2 writes ns (detected), hftbacktest 1 wrote µs (detected too); a plausibility error
    names the row. Forcing the unit re-reads the column exactly."""
    ns = [T0 * MS, (T0 + 1) * MS]
    result = npz.convert(npz_file(tmp_path, [t // 1000 for t in ns], [t // 1000 + 5 for t in ns]), BTC)
    finish_import(result, parse())
    assert {"unit": "us", "how": "detected"} == result.lineage["timestamp_units"]["local_ts"]
    assert [t + 5000 for t in ns] == result.feeds[0].local_ts.tolist()

    path = npz_file(tmp_path, ns, [ns[0] + 5, ns[1] + 20 * 10**9])
    with pytest.raises(DataError) as info:
        finish_import(npz.convert(path, BTC), parse())
    assert ("feed-latency-too-large", str(path), "row 2") == (info.value.rule, info.value.source, info.value.location)

    small = npz.convert(npz_file(tmp_path, [1, 2], [3, 4]), BTC)  # no unit fits: ns by default
    assert "default" == small.lineage["timestamp_units"]["exch_ts"]["how"]
    with pytest.raises(DataError, match="timestamp-outside-calendar"):
        finish_import(small, parse("--ts-unit", "s"))  # re-read as seconds: still 1970


# -- through the CLI and on the real sample -------------------------------------------------------


def test_cli_imports_a_us_file_and_refuses_it_forced_as_ns(tmp_path: Path, capsys) -> None:
    """`hftlab data import binance-futures` applies finish_import: exit 0 with the unit detected; exit 2,
    one line naming file, line and rule, and nothing stored when the unit is forced wrong."""
    path = collector_file(tmp_path, 1_000)
    root = tmp_path / "canonical"
    base = ["--root", str(root), "data", "import", "binance-futures", str(path), *INSTRUMENT_ARGS]
    assert 2 == cli.main([*base, "--local-ts-correction", "auto", "--ts-unit", "ns", "--id", "bad"])
    err = capsys.readouterr().err
    assert f"{path}, line 1: [timestamp-outside-calendar]" in err and 1 == len(err.splitlines())
    assert 0 == cli.main([*base, "--local-ts-correction", "auto", "--id", "good"])
    (dataset,) = Catalog(root).datasets()
    assert ("good", "us") == (dataset.id, dataset.manifest.lineage["timestamp_units"]["local_ts"]["unit"])


@pytest.mark.shared_data
def test_an_empty_file_among_several_is_named(tmp_path: Path, capsys) -> None:
    """An import of several files where one holds no rows fails naming that file, and stores nothing."""
    good = collector_file(tmp_path, name="good.gz")
    empty = tmp_path / "empty.gz"
    with gzip.open(empty, "wt", encoding="utf-8"):
        pass
    root = tmp_path / "canonical"
    argv = ["--root", str(root), "data", "import", "binance-futures", str(good), str(empty), *INSTRUMENT_ARGS]
    assert 2 == cli.main([*argv, "--local-ts-correction", "auto", "--id", "two"])
    assert "empty.gz: [empty-input] the input holds no rows" in capsys.readouterr().err
    assert [] == Catalog(root).versions("two")


def test_real_sample_auto_correction_equals_hftbacktest_converter(shared_data: Path, catalog: Catalog) -> None:
    """The BTCUSDT sample: ns detected, correction 1.27 s within the default bound, and snapshot/depth/
    trades get exactly the local timestamps of hftbacktest's own converter (bbo, which it does not emit,
    gets 0.25 ms more); it promotes."""
    from hftbacktest.data.utils import binancefutures

    path = shared_data / "binance-futures" / "btcusdt_20240808.gz"
    if not path.is_file():
        pytest.skip(f"sample {path} not found")
    result = imported(path, "--local-ts-correction", "auto")
    assert {"unit": "ns", "how": "detected"} == result.lineage["timestamp_units"]["local_ts"]
    assert 1_272_156_851 == result.lineage["local_ts_correction_ns"]
    assert {"bbo": 245_617} == result.lineage["local_ts_correction_extra_ns"]
    arr = binancefutures.convert(str(path), combined_stream=True, buffer_size=2_000_000)
    theirs = np.sort(arr["local_ts"][(arr["ev"] & (1 << 31)) != 0])
    ours = np.sort(np.concatenate([f.local_ts for f in result.feeds if f.feed != "bbo"]))
    np.testing.assert_array_equal(theirs, ours)
    catalog.promote(result, "btc")
