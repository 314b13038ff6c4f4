"""`hftlab check` on a real project and a real DVC repository: what it verifies is named when wrong."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import rewrite_manifest
from tests.pipeline.test_dvc_pipeline import sh
from tests.run.test_run_e2e import hftlab, make_project
from tests.sweep.test_sweep_e2e import GRID


def _flip_digit(path: Path) -> None:
    """Edit one digit of a number: same size, other bytes (what a hand edit of a metric looks like)."""
    text = path.read_text()
    i = next(i for i, c in enumerate(text) if c in "123456789")
    path.write_text(text[:i] + str(int(text[i]) % 9 + 1) + text[i + 1 :])


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("check") / "p")
    hftlab(project, "run", *GRID)
    return project


def check(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return hftlab(project, "--root", str(project / "data" / "canonical"), "check", *args, check=False)


def test_a_whole_project_passes(swept):
    out = check(swept)
    assert 0 == out.returncode, out.stdout + out.stderr
    assert (
        "ok: 6 run directories, 1 dataset versions, 1 experiments against the current code, config and data checked"
        in out.stdout
    )


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda run: _flip_digit(run / "metrics.json"), "metrics.json does not match its recorded sha256"),
        (lambda run: (run / "records" / "fills.parquet").unlink(), "records/fills.parquet is missing"),
        (lambda run: (run / "content.json").unlink(), "no content.json"),
        (lambda run: (run / "extra.txt").write_text("x"), "extra.txt is not in content.json"),
    ],
    ids=["edited-metrics", "deleted-records", "no-content-list", "added-file"],
)
def test_an_edited_or_incomplete_run_is_named(swept, tmp_path, damage, named):
    import shutil

    project = tmp_path / "p"
    shutil.copytree(swept, project, symlinks=True)
    run = sorted((project / "results" / "grid_sweep" / "runs").iterdir())[0]
    damage(run)
    out = check(project)
    assert 1 == out.returncode
    assert f"{run.relative_to(project)}: " in out.stderr and named in out.stderr, out.stderr
    assert "1 problems: 6 run directories" in out.stdout


def test_an_edited_dataset_manifest_is_named(swept, tmp_path):
    import shutil

    project = tmp_path / "p"
    shutil.copytree(swept, project, symlinks=True)
    (version_dir,) = (project / "data" / "canonical" / "synthetic").iterdir()
    rewrite_manifest(version_dir, lambda d: d["sources"][0]["lineage"].update(converter="x"), reseal=False)
    out = check(project)
    assert 1 == out.returncode and f"{version_dir / 'manifest.json'}: edited manifest" in out.stderr, out.stderr


def test_a_corrupted_dvc_cache_object_is_named(tmp_path):
    """DVC trusts the read-only objects of its cache: `dvc status` misses a flipped byte there."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return sh(tmp_path, *args)

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    (tmp_path / "data.txt").write_text("some tracked bytes\n" * 100)
    run("dvc", "add", "-q", "data.txt")
    assert 0 == check(tmp_path, "--dvc-cache").returncode
    (obj,) = [p for p in (tmp_path / ".dvc" / "cache" / "files" / "md5").glob("??/*")]
    os.chmod(obj, 0o644)
    raw = bytearray(obj.read_bytes())
    raw[10] ^= 0x01
    obj.write_bytes(bytes(raw))
    os.chmod(obj, 0o444)
    assert 0 == sh(tmp_path, "dvc", "status", "-q").returncode  # DVC itself does not notice
    out = check(tmp_path, "--dvc-cache")
    named = f"{obj.relative_to(tmp_path)}: DVC cache object does not hash to its name"
    assert 1 == out.returncode and named in out.stderr, out.stderr
