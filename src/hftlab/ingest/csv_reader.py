"""Typed CSV reading with line-precise errors, for the CSV importers (:mod:`hftlab.ingest.tardis`).

:func:`_read` checks the header, then reads the needed columns of a CSV file (plain or compressed;
pyarrow picks the codec from the extension) with their Arrow types and checks the ``symbol`` column;
:func:`_floats`, :func:`_timestamps` (microseconds or another unit, detected or forced, in;
nanoseconds out) and :func:`_codes` turn columns into numpy arrays. pyarrow's own errors name no line, so on a failure the file is scanned again to find
the first offending line.

Errors (:class:`~hftlab.errors.DataError`, naming the file and the CSV line, header = line 1, data row
``i`` = line ``i + FIRST_DATA_LINE``): ``unreadable-input``, ``wrong-type``, ``malformed-row``,
``symbol-mismatch``, ``invalid-side`` and ``timestamp-out-of-range`` (a timestamp beyond int64, as
written or once in ns). A value that does not parse as its column's type is ``wrong-type``: pyarrow
reads no ``true``/``false`` as a number, so a boolean where a number is expected is refused too.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hftlab.errors import DataError
from hftlab.ingest.common import TS_UNITS, detect_unit, first_overflow

#: Header line is line 1; data row ``i`` (0-based) is line ``i + FIRST_DATA_LINE``.
FIRST_DATA_LINE = 2
#: Longest header accepted before the file is judged not to be CSV text.
MAX_HEADER_BYTES = 1 << 20


# -- reading ------------------------------------------------------------------------------------------


def _unreadable(path: Path, exc: BaseException) -> DataError:
    return DataError("unreadable-input", str(path), None, f"cannot read the file as CSV text: {exc}")


def _header(path: Path) -> list[str]:
    """The column names of the header line (decompressing if the extension says so)."""
    try:
        with pa.input_stream(str(path)) as stream:
            head = b""
            while b"\n" not in head and len(head) < MAX_HEADER_BYTES:
                chunk = stream.read(1 << 16)
                if not chunk:
                    break
                head += chunk
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\n" not in head and len(head) >= MAX_HEADER_BYTES:
        raise _unreadable(path, ValueError(f"no line break in the first {MAX_HEADER_BYTES} bytes"))
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _unreadable(path, exc) from None
    if "\0" in text:
        raise _unreadable(path, ValueError("binary data (NUL bytes) in the header line"))
    if not text.strip():
        raise DataError("wrong-type", str(path), "line 1", "the file has no header line")
    return next(csv.reader([text]))


def _read(path: Path, columns: dict[str, pa.DataType], symbol: str) -> pa.Table:
    """Read the needed columns with their types; raise a DataError naming the line on any failure."""
    header = _header(path)
    missing = [name for name in columns if name not in header]
    if missing:
        raise DataError(
            "wrong-type",
            str(path),
            "line 1",
            f"missing column(s) {', '.join(repr(m) for m in missing)}; the header has {header}",
        )
    try:
        table = _read_csv(path, columns)
    except pa.ArrowInvalid as exc:
        raise _parse_failure(path, columns, header, exc) from None
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    _check_symbol(path, table, symbol)
    return table


def _read_csv(path: Path, columns: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        str(path),
        # Blank lines are not skipped, so data row i is exactly CSV line i + 2.
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=columns,
            include_columns=list(columns),
            null_values=[""],
            strings_can_be_null=False,
        ),
    )


def _parse_failure(path: Path, columns: dict[str, pa.DataType], header: list[str], exc: pa.ArrowInvalid) -> DataError:
    """The error naming the first bad line, after pyarrow refused the file (its message names none)."""
    if "parse error" in str(exc):
        line, fields = _first_malformed_line(path, len(header))
        return DataError(
            "malformed-row",
            str(path),
            f"line {line}" if line else None,
            f"expected {len(header)} comma-separated fields (as in the header), got {fields}"
            if line
            else f"the CSV could not be parsed: {exc}",
        )
    import pyarrow.compute as pc  # error paths only: it takes ~25 ms to import, and the CLI imports this module

    # A conversion error: re-read the typed columns as strings and find the first value that does
    # not parse (empty values are nulls, handled by the callers).
    typed = {name: t for name, t in columns.items() if not pa.types.is_dictionary(t)}
    try:
        strings = _read_csv(path, dict.fromkeys(typed, pa.string()))
    except (OSError, pa.ArrowException) as exc2:
        return _unreadable(path, exc2)
    bad: list[tuple[int, str, str, pa.DataType]] = []
    for name, target in typed.items():
        values = strings.column(name).combine_chunks()
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        i = _first_failing_cast(values, target)
        if i is not None:
            bad.append((i, name, values[i].as_py(), target))
    if not bad:
        return DataError("wrong-type", str(path), None, f"a value does not parse: {exc}")
    i, name, value, target = min(bad, key=lambda b: b[0])
    where = f"line {i + FIRST_DATA_LINE}"
    if pa.types.is_integer(target) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        rule = "timestamp-out-of-range" if "timestamp" in name else "integer-out-of-range"
        return DataError(rule, str(path), where, f"column '{name}': {value} does not fit a 64-bit integer")
    return DataError("wrong-type", str(path), where, f"column '{name}': {value!r} is not a valid {_type_name(target)}")


def _type_name(t: pa.DataType) -> str:
    return "integer" if pa.types.is_integer(t) else "number"


def _first_failing_cast(values: pa.Array, target: pa.DataType) -> int | None:
    """Index of the first value that does not cast to ``target`` (bisection over slices)."""
    import pyarrow.compute as pc

    def ok(lo: int, hi: int) -> bool:
        try:
            pc.cast(values.slice(lo, hi - lo), target)
        except pa.ArrowInvalid:
            return False
        return True

    lo, hi = 0, len(values)
    if ok(lo, hi):
        return None
    while hi - lo > 1:  # invariant: [lo, hi) holds a failure
        mid = (lo + hi) // 2
        if ok(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


def _first_malformed_line(path: Path, nfields: int) -> tuple[int | None, int]:
    """(line, field count) of the first line whose field count differs from the header's."""
    try:
        with pa.input_stream(str(path)) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text)
            for record in reader:
                if len(record) != nfields:
                    return reader.line_num, len(record)
    except (OSError, pa.ArrowException, csv.Error):
        pass
    return None, 0


def _check_symbol(path: Path, table: pa.Table, symbol: str) -> None:
    col = table.column("symbol")
    if all(chunk.dictionary.to_pylist() in ([symbol], []) for chunk in col.chunks):
        return
    import pyarrow.compute as pc

    values = col.cast(pa.string()).combine_chunks()
    i = int(np.flatnonzero(pc.not_equal(values, symbol).to_numpy(zero_copy_only=False))[0])
    row = table.slice(i, 1).to_pylist()[0]
    if all(v is None or v == "" for v in row.values()):
        # pyarrow keeps blank lines as rows of empty fields (empty lines are not skipped, see _read_csv).
        raise DataError("malformed-row", str(path), f"line {i + FIRST_DATA_LINE}", "blank line")
    raise DataError(
        "symbol-mismatch",
        str(path),
        f"line {i + FIRST_DATA_LINE}",
        f"symbol {values[i].as_py()!r} differs from the instrument's symbol {symbol!r}",
    )


# -- column conversion --------------------------------------------------------------------------------


def _first_null_line(col: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0]) + FIRST_DATA_LINE


def _floats(path: Path, table: pa.Table, name: str, *, required: bool = True) -> np.ndarray:
    """A float column as numpy (empty values: NaN if not required, else an error naming the line)."""
    col = table.column(name)
    if required and col.null_count:
        raise DataError("wrong-type", str(path), f"line {_first_null_line(col)}", f"column '{name}' is empty")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _timestamps(
    path: Path, table: pa.Table, ts_unit: str = "auto"
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[str, str]]]:
    """Exchange and local timestamps in nanoseconds, and ``(unit, how)`` of each column (``exch_ts``,
    ``local_ts``): ``ts_unit`` if not ``auto`` (forced), else detected from the magnitudes (the unit that
    puts the column's median in the calendar range, :func:`hftlab.ingest.common.detect_unit`), else
    microseconds, Tardis's documented unit (default)."""
    out = []
    units: dict[str, tuple[str, str]] = {}
    for name, column in (("timestamp", "exch_ts"), ("local_timestamp", "local_ts")):
        col = table.column(name)
        if col.null_count:
            raise DataError("wrong-type", str(path), f"line {_first_null_line(col)}", f"column '{name}' is empty")
        raw = np.asarray(col.to_numpy(), dtype=np.int64)
        unit, how = (ts_unit, "forced") if ts_unit != "auto" else detect_unit(raw, "us")
        i = first_overflow(raw, unit)
        if i is not None:
            raise DataError(
                "timestamp-out-of-range",
                str(path),
                f"line {i + FIRST_DATA_LINE}",
                f"column '{name}': {raw[i]} does not fit int64 nanoseconds when read as {unit} ({how}; "
                "Tardis timestamps are microseconds; is the file in another unit? see --ts-unit)",
            )
        out.append(raw * TS_UNITS[unit])
        units[column] = (unit, how)
    return out[0], out[1], units


def _codes(path: Path, table: pa.Table, name: str, mapping: Mapping[str, int], dtype: type[np.generic]) -> np.ndarray:
    """Map a dictionary-encoded string column through ``mapping``; an unknown value is an error."""
    parts: list[np.ndarray] = []
    offset = 0
    rule = "invalid-side" if name == "side" else "wrong-type"
    for chunk in table.column(name).chunks:
        words = chunk.dictionary.to_pylist()
        unknown = [w not in mapping for w in words]
        lut = np.array([mapping.get(w, 0) for w in words], dtype=dtype)
        idx = chunk.indices.to_numpy(zero_copy_only=False)
        if any(unknown):
            hits = np.flatnonzero(np.asarray(unknown)[idx])
            i = int(hits[0])
            raise DataError(
                rule,
                str(path),
                f"line {offset + i + FIRST_DATA_LINE}",
                f"column '{name}': {words[idx[i]]!r} is not one of {sorted(mapping)}",
            )
        parts.append(lut[idx])
        offset += len(chunk)
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
