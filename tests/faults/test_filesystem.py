"""A full or read-only filesystem during import, run and sweep: a clear one-line error (exit 2, the
path and the reason, no traceback) and nothing partial that looks complete. The filesystems are small
tmpfs mounts the test creates (root with CAP_SYS_ADMIN, as in CI); elsewhere the tests skip saying so."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hftlab.storage import Catalog
from tests.run.test_run_e2e import SYNTH, hftlab, make_project


def _mount(path: Path, *options: str) -> None:
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.decode().strip()}): needs root with CAP_SYS_ADMIN")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: too small for an import or a run's records."""
    path = tmp_path / "small"
    path.mkdir()
    _mount(path, "size=64k")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def read_only_fs(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ro"
    path.mkdir()
    _mount(path, "size=1m")
    (path / "results").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def _clear_error(out: subprocess.CompletedProcess[str], path: Path, reason: str) -> None:
    assert 2 == out.returncode, f"exit {out.returncode}:\n{out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("hftlab: error: ") and str(path) in line and reason in line, out.stderr


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_an_import_into_a_full_filesystem_fails_clearly_and_leaves_no_version(small_fs, tmp_path):
    root = small_fs / "canonical"
    out = hftlab(tmp_path, "--root", str(root), *SYNTH, check=False)
    _clear_error(out, small_fs, "No space left on device")
    assert [] == Catalog(root).versions("synthetic")
    assert [] == [f for f in _files(root) if not f.startswith(".locks/")]  # no staging left behind


def test_a_run_into_a_full_filesystem_fails_clearly_and_leaves_no_run(small_fs, tmp_path):
    project = make_project(tmp_path / "p")
    out = hftlab(project, "run", f"output.results_dir={small_fs}", check=False)
    _clear_error(out, small_fs, "No space left on device")
    assert not [f for f in _files(small_fs) if f.endswith("run.json")]  # nothing that looks complete
    assert 0 == hftlab(project, "run").returncode  # and the same run elsewhere is fine


def test_a_run_into_a_read_only_results_directory_fails_clearly(read_only_fs, tmp_path):
    project = make_project(tmp_path / "p")
    out = hftlab(project, "run", f"output.results_dir={read_only_fs / 'results'}", check=False)
    _clear_error(out, read_only_fs, "Read-only file system")
    assert [] == _files(read_only_fs)


def test_a_sweep_into_a_full_filesystem_fails_clearly_and_keeps_no_partial_run(small_fs, tmp_path):
    project = make_project(tmp_path / "p")
    out = hftlab(project, "run", "-m", "experiment=grid_sweep", f"output.results_dir={small_fs}", check=False)
    assert 0 != out.returncode
    assert "Traceback" not in out.stderr and "No space left on device" in out.stdout + out.stderr
    assert not [f for f in _files(small_fs) if f.endswith("run.json")]


def test_a_full_event_cache_fails_clearly_and_keeps_no_entry(small_fs, tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    monkeypatch.setenv("HFTLAB_EVENT_CACHE", str(small_fs))
    out = hftlab(project, "run", check=False)
    _clear_error(out, small_fs, "No space left on device")
    assert [] == [f for f in _files(small_fs) if f.endswith("index.json")]
