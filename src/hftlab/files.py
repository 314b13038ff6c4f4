"""Writing files the one way hftlab writes them: atomically, and JSON in one canonical text per value.

Every writer of hftlab (dataset manifests, run directories, metrics, sweep manifests and summaries,
walk-forward tables) goes through :func:`atomic_write`: the bytes go to a temporary file in the target's
folder, which is then renamed over the target, so a reader sees the old file or the new one, never a
part. JSON is written with sorted keys (:func:`pretty_json` for files people read, :func:`canonical_json`
for hashing), non-finite floats as the strings ``"inf"``/``"-inf"``/``"nan"``, enums as their values.
"""

from __future__ import annotations

import dataclasses
import enum
import fcntl
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """Plain JSON types: dataclasses as dicts, tuples as lists, enums as values, non-finite floats as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return jsonable(value.item())
    return value


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: one text per value, on every machine."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def pretty_json(data: Any) -> str:
    """Indented JSON with sorted keys and a final newline (stable diffs), of :func:`jsonable` values."""
    return json.dumps(jsonable(data), sort_keys=True, indent=2, allow_nan=False) + "\n"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """:func:`pretty_json` of ``data`` written atomically to ``path``."""
    atomic_write(path, pretty_json(data))


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_file(path: Path, *, exclusive: bool, wait: bool = True) -> int | None:
    """Open ``path`` (created if absent) and ``flock`` it, shared or exclusive: the open descriptor, which
    holds the lock until closed; None when ``wait`` is False and another holder has a conflicting lock.
    Raises FileNotFoundError when the directory is gone."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd
