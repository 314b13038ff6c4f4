"""Writing files the one way hftlab writes them: atomically, and JSON in one canonical text per value.

Every writer of hftlab (dataset manifests, run directories, metrics, sweep manifests and summaries,
walk-forward tables) goes through :func:`atomic_write`: the bytes go to a temporary file in the target's
folder, which is then renamed over the target, so a reader sees the old file or the new one, never a
part. JSON is written with sorted keys (:func:`pretty_json` for files people read, :func:`canonical_json`
for hashing), non-finite floats as the strings ``"inf"``/``"-inf"``/``"nan"``, enums as their values.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import errno
import fcntl
import hashlib
import json
import math
import os
import platform
import shutil
import sys
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


def remove_dead_temporaries(folder: Path, prefix: str) -> int:
    """Remove the entries of ``folder`` named ``<prefix>...-<pid>-<tag>`` whose process no longer runs (or
    that name no process): what killed writers left. How many were removed."""
    removed = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if not p.name.startswith(prefix):
                continue
            parts = p.name.rsplit("-", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
            if pid > 0 and pid != os.getpid() and process_alive(pid):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed += 1
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (another user's counts as running; a zombie, dead but
    not reaped, e.g. a killed run's orphan under an init that does not reap, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux): kill(0) said it exists
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


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file's bytes, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def remove_stale_temps(folder: Path, name: str) -> int:
    """Remove the temporary files :func:`atomic_write` left for ``folder/name`` in processes that were killed
    (``.name.tmp-<pid>-*`` of a pid no longer running); how many were removed."""
    removed = 0
    for tmp in folder.glob(f".{name}.tmp-*"):
        pid = tmp.name[len(name) + 6 :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``): a reader sees one or the
    other, never neither. False where the system or filesystem cannot (then nothing changed)."""
    libc = _libc()
    fn = getattr(libc, "renameat2", None) if libc is not None else None
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``): with the pid, it names one
    process even after pids are reused. None where ``/proc`` is absent or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def boot_id() -> str:
    """This machine's current boot (``/proc/sys/kernel/random/boot_id``; the host name where absent): pids
    and process start times mean something only on the same boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return platform.node()


def process_token(pid: int | None = None) -> dict[str, Any]:
    """What identifies a running process (default: this one) across pid reuse: pid, start time, boot."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "start": process_start(pid), "boot": boot_id()}


def token_alive(token: dict[str, Any]) -> bool:
    """Whether the process a :func:`process_token` names still runs. A process of another machine (or boot)
    cannot be checked from here: it counts as running."""
    if token.get("boot") != boot_id():
        return True
    pid = int(token["pid"])
    if token.get("start") is None:
        return process_alive(pid)
    return process_start(pid) == token["start"]
