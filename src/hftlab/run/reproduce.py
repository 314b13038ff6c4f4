"""``hftlab reproduce RUN_DIR``: re-execute a stored run definition and compare every deterministic file."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from hftlab.errors import HftlabError, ReproduceError
from hftlab.run.definition import config_from_definition, engine_versions
from hftlab.run.execute import execute, prepare
from hftlab.run.results import RUN_FILE, deterministic_files
from hftlab.run.schema import run_config
from hftlab.storage.catalog import Catalog
from hftlab.storage.manifest import file_sha256

__all__ = ["ReproduceError", "check_inputs", "reproduce"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_inputs(definition: dict, project_dir: Path, data_root: str = "data/canonical") -> list[str]:
    """Refuse (ReproduceError) when the dataset version is missing or the strategy source changed;
    return warnings (e.g. other engine versions)."""
    ds = definition["dataset"]
    catalog = Catalog(project_dir / data_root)
    try:
        dataset = catalog.resolve(ds["id"], ds["version"])
    except HftlabError as exc:
        raise ReproduceError(
            f"dataset '{ds['id']}' version {ds['version']} (content hash {ds['content_hash']}) is missing: {exc}"
        ) from None
    if dataset.manifest.content_hash != ds["content_hash"]:
        raise ReproduceError(
            f"dataset '{ds['id']}' version {ds['version']}: expected content hash {ds['content_hash']}, "
            f"found {dataset.manifest.content_hash}"
        )
    st = definition["strategy"]
    source = project_dir / st["source"]
    if not source.is_file():
        raise ReproduceError(f"strategy source {st['source']} is missing (expected sha256 {st['sha256']})")
    found = file_sha256(source)
    if found != st["sha256"]:
        raise ReproduceError(f"strategy source {st['source']} changed: expected sha256 {st['sha256']}, found {found}")
    for name, expected in st["local_imports"].items():
        path = source.parent / name
        got = file_sha256(path) if path.is_file() else "missing"
        if got != expected:
            raise ReproduceError(f"strategy module {name} changed: expected sha256 {expected}, found {got}")
    now = engine_versions()
    return [
        f"engine {k}: run used {v}, this environment has {now.get(k)} (outputs may differ)"
        for k, v in definition["engine"].items()
        if now.get(k) != v
    ]


def reproduce(run_dir: Path, project_dir: Path, data_root: str = "data/canonical") -> tuple[bool, list[str]]:
    """Re-run ``run_dir``'s definition in a temporary results folder; lines 'match'/'differs' per file."""
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise ReproduceError(f"{run_dir}: no {RUN_FILE}: not a run directory")
    definition = json.loads(run_file.read_text())
    lines = [f"warning: {w}" for w in check_inputs(definition, project_dir, data_root)]
    config = config_from_definition(definition)
    config["dataset"]["root"] = data_root
    config["experiment_name"] = "reproduce"
    tmp = Path(tempfile.mkdtemp(prefix="hftlab-reproduce-"))
    try:
        checked = run_config(config, project_dir / "strategies")
        result = execute(prepare(checked, project_dir, results_dir=tmp), force=True)
        if result.run_id != run_dir.name:
            lines.append(f"run id: stored {run_dir.name}, re-executed definition gives {result.run_id}")
        ok = result.run_id == run_dir.name
        expected = deterministic_files(run_dir)
        found = deterministic_files(result.path)
        for rel in sorted(set(expected) | set(found)):
            a, b = run_dir / rel, result.path / rel
            same = a.is_file() and b.is_file() and _sha(a) == _sha(b)
            ok &= same
            status = "match" if same else ("missing" if not b.is_file() or not a.is_file() else "differs")
            lines.append(f"{status}: {rel}")
        return ok, lines
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
