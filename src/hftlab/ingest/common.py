"""What every importer shares: raw-input lineage and the recorded local-timestamp correction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hftlab import __version__
from hftlab.errors import ConfigError
from hftlab.storage.manifest import file_sha256
from hftlab.storage.schema import IngestResult


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


def parse_correction(value: str | int | None) -> str | int:
    """``'auto'``, ``'none'``/None (0) or an integer number of nanoseconds."""
    if value is None or value == "none":
        return 0
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"local-ts correction must be 'auto', 'none' or integer nanoseconds, got {value!r}") from None


def apply_local_ts_correction(result: IngestResult, correction: str | int | None) -> int:
    """Shift every local timestamp by a correction and record it in the lineage; return the offset.

    ``'auto'`` adds just enough for the smallest feed latency (local - exchange) to be zero, as
    hftbacktest's own converters do when the receiving clock was behind the exchange's. An integer
    adds that many nanoseconds. The offset applied is recorded as ``lineage['local_ts_correction_ns']``.
    """
    spec = parse_correction(correction)
    if spec == "auto":
        latencies = [np.min(f.local_ts - f.exch_ts) for f in result.feeds if len(f)]
        offset = max(0, -int(min(latencies))) if latencies else 0
    else:
        offset = int(spec)
    for frame in result.feeds:
        if offset:
            frame.local_ts = frame.local_ts + np.int64(offset)
    result.lineage["local_ts_correction"] = spec
    result.lineage["local_ts_correction_ns"] = offset
    return offset
