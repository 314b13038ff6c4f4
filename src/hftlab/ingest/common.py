"""What every importer shares: raw-input lineage, timestamp units, the local-timestamp correction and the
plausibility checks that finish an import (:func:`finish_import`).

**Timestamp units.** Canonical timestamps are int64 nanoseconds since the Unix epoch, UTC. A raw column is
in seconds, milliseconds, microseconds or nanoseconds (:data:`TS_UNITS`). Where the format fixes the unit
(Binance's JSON ``T``: ms) the importer uses it (``how: format``); otherwise the unit is forced by
``--ts-unit`` (``forced``), detected from the magnitudes (``detected``, :func:`detect_unit`), or, when the
magnitudes match no unit, the format's documented unit (``default``; the plausibility checks then judge
the values). Each importer records ``lineage['timestamp_units']``: ``{column: {"unit": ..., "how": ...}}``
for ``exch_ts`` and ``local_ts``.

**Plausibility** (:func:`finish_import`, for imports of raw files), each a :class:`DataError` naming the
file, the first offending line (``row N`` for numpy event files) and the rule:

- ``timestamp-outside-calendar``: an exchange or local timestamp outside
  [:data:`CALENDAR_MIN_NS`, :data:`CALENDAR_MAX_NS`) = [2000-01-01, 2100-01-01) UTC, checked before
  the correction (which the next rule bounds to seconds): a wrong unit or an absurd line;
- ``local-ts-correction-too-large``: the automatic correction exceeds ``--max-local-ts-correction``
  (default :data:`DEFAULT_MAX_LOCAL_TS_CORRECTION`), naming the row that requires it (a given correction
  above the bound is a :class:`ConfigError`);
- ``local-before-exchange`` / ``feed-latency-too-large``: after the correction, a feed latency
  ``local_ts - exch_ts`` below 0 or above ``--max-feed-latency`` (default :data:`DEFAULT_MAX_FEED_LATENCY`).

An absurd timestamp therefore fails the import; it can never shift the dataset. The automatic
correction stays the smallest latency (hftbacktest's rule), not a robust statistic such as the median
offset: a median would leave half the rows with local time before exchange time, and the feeds would no
longer match hftbacktest's. Robustness comes from the bound instead: its error counts the rows that
need more than the bound and shows the median latency, so one absurd line is told apart from a clock
that is really off, and ``--max-local-ts-correction`` is the option that accepts the latter. A given or
automatic correction that would carry a local timestamp beyond int64 is refused whatever the bound.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from hftlab import __version__
from hftlab.errors import ConfigError, DataError
from hftlab.storage.manifest import file_sha256
from hftlab.storage.schema import FeedFrame, IngestResult

#: Nanoseconds per unit of a raw timestamp column.
TS_UNITS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
#: Values of ``--ts-unit``.
TS_UNIT_CHOICES: tuple[str, ...] = ("auto", *TS_UNITS)
#: Plausible timestamps: [2000-01-01, 2100-01-01) UTC, in ns. Market data recorded electronically is
#: after the first date; the second leaves room for any real recording. Each unit's range of raw values
#: (e.g. 9.5e14..4.1e15 for microseconds) is then disjoint from every other unit's.
CALENDAR_MIN_NS = 946_684_800 * 1_000_000_000
CALENDAR_MAX_NS = 4_102_444_800 * 1_000_000_000
#: Default bounds; the real Binance sample needs a correction of 1.27 s.
DEFAULT_MAX_LOCAL_TS_CORRECTION = "5s"
DEFAULT_MAX_FEED_LATENCY = "10s"
#: Feeds the automatic correction is computed from: what hftbacktest's converters emit (DEPTH, TRADE,
#: CLEAR and SNAPSHOT events), so that these feeds get hftbacktest's local timestamps exactly.
CORRECTION_FEEDS: tuple[str, ...] = ("snapshot", "depth", "trades")
INT64_MAX = int(np.iinfo(np.int64).max)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)?")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


# -- lineage ------------------------------------------------------------------------------------------


def raw_input(path: Path) -> dict[str, Any]:
    """Lineage entry of one raw input file: its name (no directory), size and sha256."""
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def converter_lineage(name: str, converter_version: int, inputs: list[Path], **params: Any) -> dict[str, Any]:
    """Lineage of an import: converter name and version, hftlab version, raw inputs, parameters."""
    return {
        "converter": name,
        "converter_version": converter_version,
        "hftlab_version": __version__,
        "raw_inputs": [raw_input(p) for p in inputs],
        "params": params,
    }


def unit_entry(unit: str, how: str) -> dict[str, str]:
    """One column of ``lineage['timestamp_units']``; ``how``: format, forced, detected or default."""
    return {"unit": unit, "how": how}


# -- arguments ----------------------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """A duration as integer nanoseconds >= 0: ``5s``, ``500ms``, ``1.5s``, ``2m``, ``250us``; a bare
    integer is nanoseconds. Raises ValueError (argparse turns it into a usage error)."""
    match = _DURATION.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit (ns, us, ms, s, m, h), e.g. 5s")
    ns = Decimal(match.group(1)) * _DURATION_NS[match.group(2) or "ns"]
    if ns != ns.to_integral_value():
        raise ValueError(f"invalid duration {text!r}: not a whole number of nanoseconds")
    return int(ns)


def duration_type(text: str) -> int:
    """:func:`parse_duration` as an argparse ``type`` (a bad value is a usage error naming the option)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_arg(value: int | str, option: str) -> int:
    """An argument value that is a duration (already ns, or text for :func:`parse_duration`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(str(exc), key=option, rule="invalid-duration") from None


def parse_correction(value: str | int | None) -> str | int:
    """``'auto'``, ``'none'`` (also for None) or an integer number of nanoseconds."""
    if value is None or value == "none":
        return "none"
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"local-ts correction must be 'auto', 'none' or integer nanoseconds, got {value!r}",
            key="--local-ts-correction",
            rule="invalid-value",
        ) from None


# -- units --------------------------------------------------------------------------------------------


def detect_unit(raw: np.ndarray, default: str, reference_ns: np.ndarray | None = None) -> tuple[str, str]:
    """``(unit, how)`` of an integer timestamp column, judged on the median, so a few absurd values
    cannot change it.

    Without ``reference_ns``: the unit that puts the median inside the calendar range (the units' ranges
    are disjoint). With ``reference_ns`` (ns timestamps of the same rows whose unit is known, e.g. the
    exchange's): the unit that brings the column within a factor 10 of the reference, as the median over
    rows of ``log10(reference / raw)``. When no unit fits (or no value is positive): ``(default, "default")``.
    """
    values = np.asarray(raw, dtype=np.float64)
    ok = values > 0
    if reference_ns is not None:
        ok &= np.asarray(reference_ns) > 0
    if not ok.any():
        return default, "default"
    if reference_ns is None:
        median = float(np.median(values[ok]))
        for unit, scale in TS_UNITS.items():
            if CALENDAR_MIN_NS <= median * scale < CALENDAR_MAX_NS:
                return unit, "detected"
        return default, "default"
    decades = float(np.median(np.log10(np.asarray(reference_ns, dtype=np.float64)[ok]) - np.log10(values[ok])))
    k = round(decades / 3)
    if 0 <= k <= 3 and abs(decades - 3 * k) <= 1:
        return ("ns", "us", "ms", "s")[k], "detected"
    return default, "default"


def first_overflow(raw: np.ndarray, unit: str) -> int | None:
    """Index of the first value that does not fit int64 nanoseconds once read in ``unit`` (None: all fit)."""
    bad = np.flatnonzero(_beyond(np.asarray(raw, dtype=np.int64), INT64_MAX // TS_UNITS[unit]))
    return int(bad[0]) if bad.size else None


def _beyond(values: np.ndarray, limit: int) -> np.ndarray:
    """Which values lie outside ``[-limit, limit]`` (not ``np.abs``: it leaves int64's minimum negative)."""
    return np.asarray((values > limit) | (values < -limit))


def force_ts_unit(result: IngestResult, ts_unit: str) -> None:
    """Re-read, in ``ts_unit``, every column whose unit the format does not fix, and record it as forced.

    Exact: the importer multiplied raw integers by its unit's scale, so dividing gives them back. Raises
    :class:`ConfigError` for an unknown unit or an importer that records no units, and
    ``timestamp-out-of-range`` for a value that does not fit int64 ns in the new unit.
    """
    if ts_unit == "auto":
        return
    if ts_unit not in TS_UNITS:
        raise ConfigError(f"--ts-unit must be one of {list(TS_UNIT_CHOICES)}, got {ts_unit!r}")
    units = result.lineage.get("timestamp_units")
    if not isinstance(units, dict):
        raise ConfigError(f"--ts-unit {ts_unit}: the importer ({_converter(result)}) records no timestamp units")
    for column, entry in units.items():
        if entry["how"] == "format":
            continue
        if entry["unit"] != ts_unit:
            _rescale(result.feeds, column, TS_UNITS[entry["unit"]], ts_unit)
        units[column] = unit_entry(ts_unit, "forced")


def _rescale(frames: list[FeedFrame], column: str, old_scale: int, new: str) -> None:
    """Re-read ``column`` of every frame in unit ``new``; refuse the first line that would overflow."""
    limit = INT64_MAX // TS_UNITS[new]
    hit = _first_offender(frames, lambda f: _beyond(getattr(f, column) // old_scale, limit))
    if hit is not None:
        frame, i, count = hit
        raw = int(getattr(frame, column)[i] // old_scale)
        detail = f"{column} {raw} read as {new} (--ts-unit) does not fit int64 nanoseconds"
        _raise("timestamp-out-of-range", frame, i, count, detail)
    for frame in frames:
        setattr(frame, column, getattr(frame, column) // old_scale * TS_UNITS[new])


# -- finishing an import ------------------------------------------------------------------------------


def finish_import(result: IngestResult, args: argparse.Namespace) -> None:
    """Finish one import (one raw file, or one generator run) in place before it is promoted.

    1. ``args.ts_unit`` (default ``auto``): see :func:`force_ts_unit`;
    2. every timestamp within the calendar range (:func:`check_calendar`);
    3. the local-timestamp correction ``args.local_ts_correction`` (default none), at most
       ``args.max_local_ts_correction`` (:func:`apply_local_ts_correction`);
    4. every feed latency in [0, ``args.max_feed_latency``] (:func:`check_feed_latency`).

    The arguments are those of :func:`hftlab.ingest.registry.add_instrument_arguments`, read with
    ``getattr`` and their defaults, since ``hftlab data synth`` defines none of them. Checks 2-4 are about
    recorded data: a result without raw input files (``lineage['raw_inputs']`` empty: a generator,
    which validates its own parameters) gets the correction only, unbounded, exactly as before. Raises
    :class:`DataError` for data and :class:`ConfigError` for arguments; the lineage records the units
    and the correction applied.
    """
    correction = parse_correction(getattr(args, "local_ts_correction", None))
    bound = duration_arg(
        getattr(args, "max_local_ts_correction", DEFAULT_MAX_LOCAL_TS_CORRECTION), "--max-local-ts-correction"
    )
    max_latency = duration_arg(getattr(args, "max_feed_latency", DEFAULT_MAX_FEED_LATENCY), "--max-feed-latency")
    recorded = bool(result.lineage.get("raw_inputs"))
    force_ts_unit(result, getattr(args, "ts_unit", "auto"))
    if recorded:
        check_calendar(result)
    apply_local_ts_correction(result, correction, bound if recorded else None)
    if recorded:
        check_feed_latency(result, max_latency)


def check_calendar(result: IngestResult) -> None:
    """Refuse (``timestamp-outside-calendar``) a timestamp before 2000-01-01 or from 2100-01-01 UTC."""
    from hftlab.times import iso

    for column in ("exch_ts", "local_ts"):
        hit = _first_offender(result.feeds, _outside(column))
        if hit is None:
            continue
        frame, i, count = hit
        value = int(getattr(frame, column)[i])
        unit = result.lineage.get("timestamp_units", {}).get(column)
        read = f" (column read as {unit['unit']}, {unit['how']}; see --ts-unit)" if unit else ""
        _raise(
            "timestamp-outside-calendar",
            frame,
            i,
            count,
            f"{column} {value} ns is {iso(value)}, outside the plausible range [2000-01-01, 2100-01-01) UTC{read}",
        )


def _outside(column: str) -> Callable[[FeedFrame], np.ndarray]:
    """Which rows of a frame have ``column`` outside the calendar range."""

    def bad(frame: FeedFrame) -> np.ndarray:
        values = getattr(frame, column)
        return np.asarray((values < CALENDAR_MIN_NS) | (values >= CALENDAR_MAX_NS))

    return bad


def check_feed_latency(result: IngestResult, max_ns: int) -> None:
    """Refuse a feed latency ``local_ts - exch_ts`` below 0 (``local-before-exchange``) or above
    ``max_ns`` (``feed-latency-too-large``), after the correction, naming the first offending line."""
    for rule, above, below, what in (
        ("local-before-exchange", None, 0, "below 0"),
        ("feed-latency-too-large", max_ns, None, f"above --max-feed-latency {_human(max_ns)}"),
    ):
        hit = _first_offender(result.feeds, _latency_beyond(above, below))
        if hit is None:
            continue
        frame, i, count = hit
        latency = int(frame.local_ts[i] - frame.exch_ts[i])
        _raise(
            rule,
            frame,
            i,
            count,
            f"feed latency local_ts - exch_ts = {_human(latency)} is {what}, after a local-timestamp "
            f"correction of {_human(_correction_of(result, frame.feed))}",
        )


def _latency_beyond(above: int | None, below: int | None) -> Callable[[FeedFrame], np.ndarray]:
    """Which rows of a frame have a feed latency above ``above`` or below ``below``."""

    def bad(frame: FeedFrame) -> np.ndarray:
        latency = frame.local_ts - frame.exch_ts
        return np.asarray(latency > above if above is not None else latency < below)

    return bad


def _correction_of(result: IngestResult, feed: str) -> int:
    extra = result.lineage.get("local_ts_correction_extra_ns", {})
    return int(result.lineage.get("local_ts_correction_ns", 0)) + int(extra.get(feed, 0))


def apply_local_ts_correction(result: IngestResult, correction: str | int | None, max_ns: int | None = None) -> int:
    """Shift local timestamps by a correction and record it in the lineage; return the offset (ns).

    ``'auto'`` does what hftbacktest's converters do (``hftbacktest.data.validation.correct_local_timestamp``
    with ``base_latency=0``, called by ``data.utils.binancefutures.convert`` and ``tardis.convert`` on the
    rows they emit): when the smallest feed latency ``local - exch`` over the rows of
    :data:`CORRECTION_FEEDS` (snapshot, depth, trades; all feeds if none has rows) is negative, every
    local timestamp is shifted by its opposite, else by 0. So those feeds get hftbacktest's local
    timestamps exactly. hftbacktest emits no ``bbo`` by default (bookTicker only with ``opt='t'``); here
    a ``bbo`` feed, whose latency can be lower still (by 0.25 ms in the Binance sample), is shifted by
    just enough more to keep its latency >= 0: ``lineage['local_ts_correction_extra_ns'][feed]``.
    An integer shifts every feed by that many ns, and a ``bbo`` feed by the same "just enough more" (so
    the book and trade feeds of files imported with one given correction agree exactly, as they would in
    one file). ``'none'`` shifts nothing, not even ``bbo`` (a row whose local time is before its exchange
    time is then refused by :func:`check_feed_latency`, whatever its feed). ``lineage['local_ts_correction']``
    records the setting (``'none'`` as 0, as it always was), ``['local_ts_correction_ns']`` the common
    offset.

    With ``max_ns``, a correction whose magnitude exceeds it is refused: ``local-ts-correction-too-large``
    (DataError naming the row that requires it) for ``'auto'``, ConfigError for a given integer.
    """
    spec = parse_correction(correction)
    extra: dict[str, int] = {}
    if spec == "auto":
        offset, extra = _auto_offsets(result, max_ns)
    elif spec == "none":
        offset = 0
    else:
        offset = int(spec)
        if max_ns is not None and abs(offset) > max_ns:
            raise ConfigError(
                f"{offset} ns ({_human(offset)}) exceeds --max-local-ts-correction {_human(max_ns)}: raise "
                "the bound if this correction is meant",
                key="--local-ts-correction",
                rule="local-ts-correction-too-large",
            )
        _, extra = _auto_offsets(result, max_ns, fixed=offset)
    for frame in result.feeds:
        shift = offset + extra.get(frame.feed, 0)
        if shift:
            _check_shift_fits(frame, shift)
            frame.local_ts = frame.local_ts + np.int64(shift)
    result.lineage["local_ts_correction"] = 0 if spec == "none" else spec
    result.lineage["local_ts_correction_ns"] = offset
    if extra:
        result.lineage["local_ts_correction_extra_ns"] = extra
    return offset


def _auto_offsets(result: IngestResult, max_ns: int | None, fixed: int | None = None) -> tuple[int, dict[str, int]]:
    """The automatic offset (or the ``fixed`` one) and the extra offset of each feed outside
    :data:`CORRECTION_FEEDS` (see :func:`apply_local_ts_correction`), each checked against ``max_ns``."""
    frames = [f for f in result.feeds if len(f)]
    basis = [f for f in frames if f.feed in CORRECTION_FEEDS] or frames
    if fixed is None:
        low = _min_latency(basis)
        offset = max(0, -low[0]) if low else 0
        _check_auto(low, offset, max_ns, basis)
    else:
        offset = fixed
    extra: dict[str, int] = {}
    for frame in frames:
        if any(frame is b for b in basis):
            continue
        mine = _min_latency([frame])
        more = max(0, -(mine[0] + offset)) if mine else 0
        if more:
            _check_auto(mine, offset + more, max_ns, [frame])
            extra[frame.feed] = more
    return offset, extra


def _check_shift_fits(frame: FeedFrame, shift: int) -> None:
    """Refuse a correction that would carry a local timestamp beyond int64 (numpy would wrap it around)."""
    low, high = int(frame.local_ts.min()) + shift, int(frame.local_ts.max()) + shift
    if low >= -INT64_MAX and high <= INT64_MAX:
        return
    raise ConfigError(
        f"{shift} ns ({_human(shift)}) would carry feed '{frame.feed}' of {frame.source} beyond the int64 "
        "nanosecond range",
        key="--local-ts-correction",
        rule="local-ts-correction-too-large",
    )


def _min_latency(frames: Iterable[FeedFrame]) -> tuple[int, FeedFrame, int] | None:
    """The smallest ``local_ts - exch_ts`` over ``frames`` (non-empty), with the frame and row where it
    occurs first in its file (smallest source, then line)."""
    best: tuple[tuple[int, str, int], FeedFrame, int] | None = None
    for frame in frames:
        latency = frame.local_ts - frame.exch_ts
        at = np.flatnonzero(latency == latency.min())
        i = int(at[np.argmin(frame.line[at])])
        key = (int(latency[i]), frame.source, int(frame.line[i]))
        if best is None or key < best[0]:
            best = (key, frame, i)
    return None if best is None else (best[0][0], best[1], best[2])


def _check_auto(
    low: tuple[int, FeedFrame, int] | None, offset: int, max_ns: int | None, frames: list[FeedFrame]
) -> None:
    """Refuse an automatic correction above ``max_ns``, naming the row that requires it, how many rows
    do, and the median latency of ``frames`` (the rows it was computed from): one absurd line among
    normal ones shows as a handful of rows and a median far from them."""
    if low is None or max_ns is None or offset <= max_ns:
        return
    latency, frame, i = low
    lat = np.concatenate([f.local_ts - f.exch_ts for f in frames])
    beyond = int(np.count_nonzero(lat < -max_ns))
    raise DataError(
        "local-ts-correction-too-large",
        frame.source,
        frame.where(i),
        f"the automatic local-timestamp correction would be {_human(offset)}, more than "
        f"--max-local-ts-correction {_human(max_ns)}: feed '{frame.feed}' has local_ts - exch_ts = "
        f"{_human(latency)} here; {beyond} of {lat.size} rows need more than the bound, the median "
        f"latency is {_human(int(np.median(lat)))} (a clock this far off, a wrong timestamp unit or an "
        "absurd line; raise --max-local-ts-correction only if the clock really was this far off)",
    )


# -- helpers ------------------------------------------------------------------------------------------


def _first_offender(
    frames: Iterable[FeedFrame], bad: Callable[[FeedFrame], np.ndarray]
) -> tuple[FeedFrame, int, int] | None:
    """The offending row first in its file (smallest source, then line), and the count of offending rows."""
    best: tuple[tuple[str, int], FeedFrame, int] | None = None
    count = 0
    for frame in frames:
        hits = np.flatnonzero(bad(frame))
        if not hits.size:
            continue
        count += int(hits.size)
        i = int(hits[np.argmin(frame.line[hits])])
        key = (frame.source, int(frame.line[i]))
        if best is None or key < best[0]:
            best = (key, frame, i)
    return None if best is None else (best[1], best[2], count)


def _raise(rule: str, frame: FeedFrame, i: int, count: int, detail: str) -> NoReturn:
    more = f" ({count} rows break this rule)" if count > 1 else ""
    raise DataError(rule, frame.source, frame.where(i), f"feed '{frame.feed}': {detail}{more}")


def _human(ns: int) -> str:
    """A signed duration for messages: ``250 ns``, ``1.272156851 s``, ``54.6 years``."""
    seconds = ns / 1e9
    if abs(seconds) >= 86_400 * 365.25:
        return f"{seconds / (86_400 * 365.25):.1f} years"
    if abs(seconds) >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    return f"{ns} ns" if abs(ns) < 1_000 else f"{seconds:.9g} s"


def _converter(result: IngestResult) -> str:
    return str(result.lineage.get("converter", "unknown converter"))
