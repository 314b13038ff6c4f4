"""How hftlab compiles its numba code: once per machine, cached on disk under a key of the code itself.

numba's own on-disk cache (``cache=True``) notices only an edit of the compiled function's own file: a
callee edited in another file (a Risk rule called by the loop, a helper module imported by a strategy)
would leave stale machine code in the cache. hftlab therefore gives every cache a directory of its own,
named by a hash of all the source that can end up inside it:

- :func:`engine_jit` compiles hftlab's compiled modules (:data:`COMPILED_MODULES`: the Core Runtime, the
  Venue Adapter's C bindings, the feeder and synthetic-market kernels). Their cache directory is keyed by
  the sha256 of all those files together, plus the versions of Python, numba, llvmlite, numpy and
  hftbacktest. Any edit of any of them (or an upgrade) selects a fresh directory: everything recompiles
  once, nothing stale is ever loaded. The decorator refuses a function defined outside those modules.
- :func:`strategy_cache_dir` keys a strategy's cache by its file, the local modules it imports and the
  engine key (the View it reads is engine code); see :mod:`hftlab.runtime.strategy`.

Where the caches live: ``$HFTLAB_CACHE_DIR/numba`` if set, else ``$NUMBA_CACHE_DIR/hftlab`` if numba's own
variable is set, else ``$XDG_CACHE_HOME/hftlab/numba`` (``~/.cache/hftlab/numba``); if none of these is
writable (a read-only home), a folder in the system temp directory. Nothing is written next to the
sources, so a read-only install works. Old key directories are not removed automatically: deleting the
folder is always safe (everything recompiles once).

Python mode: with ``NUMBA_DISABLE_JIT=1`` (what ``runtime.debug=true`` runs under) every hftlab function
runs as plain Python, so a debugger can step through the loop and the strategy; :data:`PYTHON_MODE` tells
the few places that must differ (the C bindings become ctypes calls).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numba
import numpy as np
from numba.core import config as _numba_config

F = TypeVar("F", bound=Callable[..., Any])
numba_config: Any = _numba_config  # its settings are set at import time: mypy cannot see them

PACKAGE_DIR = Path(__file__).resolve().parent
#: hftlab modules holding compiled code, relative to the package: the engine key hashes exactly these.
COMPILED_MODULES = (
    "feed_kernels.py",
    "ingest/synthetic_kernels.py",
    "metrics/marks.py",
    "runtime/contract.py",
    "runtime/execution.py",
    "runtime/lifecycle.py",
    "runtime/loop.py",
    "runtime/records.py",
    "runtime/risk.py",
    "runtime/state.py",
    "venue/abi.py",
    "hftbacktest_types.py",
)
CACHE_ENV = "HFTLAB_CACHE_DIR"
_VERSIONED = ("numba", "llvmlite", "numpy", "hftbacktest")

#: True when numba's JIT is disabled (``NUMBA_DISABLE_JIT=1``): everything runs as Python.
PYTHON_MODE = bool(numba_config.DISABLE_JIT)


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


@cache
def cache_root() -> Path:
    """The folder holding hftlab's numba caches (see the module docstring for the order of choices)."""
    if os.environ.get(CACHE_ENV):
        candidates = [Path(os.environ[CACHE_ENV]) / "numba"]
    elif os.environ.get("NUMBA_CACHE_DIR"):
        candidates = [Path(os.environ["NUMBA_CACHE_DIR"]) / "hftlab"]
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        candidates = [Path(xdg) / "hftlab" / "numba"]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    candidates.append(Path(tempfile.gettempdir()) / f"hftlab-numba-{uid}")
    for path in candidates:
        if _writable(path):
            return path
    raise OSError(f"no writable folder for the numba cache among {[str(p) for p in candidates]}")


def _versions() -> str:
    found = []
    for name in _VERSIONED:
        try:
            found.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ";".join([f"python={platform.python_version()}", platform.machine(), *found])


@cache
def engine_key() -> str:
    """sha256 (first 16 hex digits) of the compiled modules' sources and the compiler stack's versions."""
    digest = hashlib.sha256(_versions().encode())
    for name in COMPILED_MODULES:
        digest.update(name.encode() + b"\0" + (PACKAGE_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def engine_cache_dir() -> Path:
    return cache_root() / "engine" / engine_key()


def strategy_cache_dir(source_key: str) -> Path:
    """Cache folder of one strategy build: ``source_key`` hashes its file and local imports."""
    return cache_root() / "strategies" / hashlib.sha256(f"{source_key}:{engine_key()}".encode()).hexdigest()[:16]


@contextlib.contextmanager
def numba_cache_dir(path: Path) -> Iterator[None]:
    """Make dispatchers created inside this block cache under ``path``.

    numba binds a dispatcher's cache folder when the dispatcher is created (``config.CACHE_DIR`` is read
    then), so setting it around the decoration is enough; other numba users in the process keep theirs.
    """
    saved = numba_config.CACHE_DIR
    numba_config.CACHE_DIR = str(path)
    try:
        yield
    finally:
        numba_config.CACHE_DIR = saved


def engine_jit(fn: F | None = None, **options: Any) -> Any:
    """``numba.njit(cache=True, **options)`` for hftlab's compiled modules, cached under the engine key.

    Usable bare (``@engine_jit``) or with options (``@engine_jit(forceinline=True)``). In Python mode the
    function is returned as it is.
    """

    def decorate(func: F) -> F:
        source = Path(func.__code__.co_filename).resolve()
        try:
            relative = source.relative_to(PACKAGE_DIR).as_posix()
        except ValueError:
            relative = str(source)
        if relative not in COMPILED_MODULES:
            raise RuntimeError(
                f"{func.__qualname__} ({relative}) uses engine_jit but its module is not in "
                "hftlab.jit.COMPILED_MODULES: add it there, or its edits would not invalidate the cache"
            )
        if PYTHON_MODE:
            return func
        with numba_cache_dir(engine_cache_dir()):
            return numba.njit(cache=True, **options)(func)

    return decorate(fn) if fn is not None else decorate


def record_array(length: int, dtype: np.dtype) -> np.ndarray:
    """A zeroed structured array that compiled code reads and writes by field (``rows[k].price = p``).

    In Python mode it is a ``np.recarray`` view, whose rows support the same attribute access as numba's
    records; compiled code gets a plain array.
    """
    rows = np.zeros(length, dtype)
    return rows.view(np.recarray) if PYTHON_MODE else rows


def plain(rows: np.ndarray) -> np.ndarray:
    """``rows`` as a plain ndarray (undoes :func:`record_array`'s Python-mode view)."""
    return rows.view(np.ndarray) if isinstance(rows, np.recarray) else rows
