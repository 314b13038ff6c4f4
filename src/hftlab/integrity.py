"""``hftlab check``: verify what a clone holds before trusting it (after ``git checkout`` + ``dvc pull``,
in CI, before a review).

- **Results**: every run directory under ``<results>/<experiment>/runs/`` is complete: its own
  ``content.json`` lists every file with its size and sha256, and each matches
  (:func:`hftlab.run.results.check_complete`): an edited ``metrics.json``, a deleted record table or a
  run cut short is named.
- **Datasets**: every version in Canonical Storage passes the quick verification (sealed manifest, each
  file's size, sha256 and footer ranges; ``--full`` also re-hashes the rows into the version).
- **Stale results**: every sweep experiment's committed results are those its current code, config and
  data give (:mod:`hftlab.sweep.stale`: run ids recomputed, what changed named).
- **DVC cache** (``--dvc-cache``): every object in ``.dvc/cache`` hashes to its own name. DVC trusts the
  objects it has checked (it makes them read-only and never hashes them again), so a byte flipped in
  the cache would be checked out and pushed; this catches it. Cost: one md5 pass over the cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from hftlab.errors import StorageError
from hftlab.run.results import TELEMETRY_FILE, check_complete
from hftlab.storage.catalog import Catalog
from hftlab.storage.manifest import MANIFEST_NAME

_CHUNK = 1 << 22


@dataclass
class Findings:
    """What :func:`check` looked at and every problem it found (one line each, naming the path)."""

    runs: int = 0
    datasets: int = 0
    objects: int = 0
    experiments: int = 0
    problems: list[str] = field(default_factory=list)
    #: Run directories holding only ``telemetry.json`` (DVC-ignored): a ``dvc checkout`` of another revision
    #: removed the rest. Not runs, and not a problem: nothing in them looks complete.
    husks: list[Path] = field(default_factory=list)


def check_results(results: Path, found: Findings) -> None:
    """Every run directory of every experiment under ``results`` (temporary ones aside)."""
    if not results.is_dir():
        return
    for experiment in sorted(p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")):
        runs = experiment / "runs"
        if not runs.is_dir():
            continue
        for run_dir in sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if [p.name for p in run_dir.iterdir()] == [TELEMETRY_FILE]:
                found.husks.append(run_dir)  # DVC tracks everything else: what its checkout of another revision leaves
                continue
            found.runs += 1
            found.problems += [f"{run_dir}: {problem}" for problem in check_complete(run_dir)]


def check_datasets(catalog: Catalog, found: Findings, *, full: bool) -> None:
    """Every promoted dataset version under the catalog's root."""
    if not catalog.root.is_dir():
        return
    for id_dir in sorted(p for p in catalog.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(p for p in id_dir.iterdir() if (p / MANIFEST_NAME).is_file()):
            found.datasets += 1
            try:
                catalog.verify(id_dir.name, version_dir.name, full=full)
            except StorageError as exc:
                found.problems.append(str(exc))


def check_dvc_cache(cache: Path, found: Findings) -> None:
    """Every object of a DVC cache (``files/md5/ab/cdef...``, ``.dir`` listings included) hashes to its name."""
    root = cache / "files" / "md5"
    if not root.is_dir():
        return
    for path in sorted(root.glob("??/*")):
        if not path.is_file() or ".tmp" in path.name:
            continue
        found.objects += 1
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        name = path.parent.name + path.name.removesuffix(".dir")
        if digest.hexdigest() != name:
            found.problems.append(f"{path}: DVC cache object does not hash to its name (md5 {digest.hexdigest()})")


def check_stale(results: Path, project: Path, found: Findings) -> None:
    """Every sweep experiment under ``results`` against what the project would compute now."""
    from hftlab.sweep.stale import stale_results

    for verdict in stale_results(results, project):
        found.experiments += 1
        found.problems += [f"{results / verdict.experiment}: stale: {p}" for p in verdict.problems]


def check(
    results: Path,
    catalog: Catalog,
    *,
    full: bool = False,
    dvc_cache: Path | None = None,
    project: Path | None = None,
) -> Findings:
    """Everything above; see the module docstring. Stale results are checked when ``project`` is given."""
    found = Findings()
    check_results(results, found)
    check_datasets(catalog, found, full=full)
    if project is not None:
        check_stale(results, project, found)
    if dvc_cache is not None:
        check_dvc_cache(dvc_cache, found)
    return found
