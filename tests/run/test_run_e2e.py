"""`hftlab run` and `hftlab reproduce` end to end, in temporary project copies (real Hydra, hftbacktest, Parquet)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hftlab import compose_runs, prepare
from hftlab.run.results import deterministic_files
from tests.conftest import PROJECT_ROOT

HFTLAB = str(Path(sys.executable).with_name("hftlab"))
SYNTH = ["data", "synth", "--id", "synthetic", "--seed", "4", "--days", "0.01", "--events-per-second", "40"]


def synth_version(stdout: str) -> str:
    """The dataset version ``hftlab data synth`` printed it promoted."""
    return stdout.split(" version ")[1].split(":")[0].split(",")[0]


def hftlab(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    out = subprocess.run([HFTLAB, *args], cwd=project, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"hftlab {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def make_project(path: Path, synth: list[str] = SYNTH) -> Path:
    """A project copy: conf/ and strategies/ of this repository, plus its own synthetic dataset."""
    path.mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "conf", path / "conf")
    shutil.copytree(PROJECT_ROOT / "strategies", path / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    hftlab(path, "--root", str(path / "data" / "canonical"), *synth)
    return path


def run_dir_of(project: Path, *overrides: str, stdout: str | None = None) -> Path:
    """Where ``hftlab run <overrides>`` puts its run, from the Python API (the run config it composes,
    prepared); with ``stdout``, also checks that the command reported that directory."""
    (config,) = compose_runs([list(overrides)], project)
    run_dir = prepare(config, project).run_dir
    if stdout is not None:
        assert f"run {run_dir.name}: " in stdout and str(run_dir.relative_to(project)) in stdout, stdout
    return run_dir


def digests(run_dir: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((run_dir / rel).read_bytes()).hexdigest() for rel in deterministic_files(run_dir)}


@pytest.fixture(scope="module")
def two_clones(tmp_path_factory):
    """The same run executed in two project copies at different paths, in separate processes."""
    base = tmp_path_factory.mktemp("clones")
    a, b = make_project(base / "a"), make_project(base / "elsewhere" / "b")
    run_a = run_dir_of(a, stdout=hftlab(a, "run").stdout)
    run_b = run_dir_of(b, stdout=hftlab(b, "run").stdout)
    return a, b, run_a, run_b


def test_run_writes_one_complete_run_directory(two_clones):
    """One run directory with the definition, metrics, every record table and telemetry."""
    a, _, run_a, _ = two_clones
    assert ["scratch"] == [p.name for p in (a / "results").iterdir()]
    assert [run_a.name] == [p.name for p in (a / "results" / "scratch" / "runs").iterdir()]
    assert [
        "content.json", "metrics.json", "metrics_definition.json", "records/account.parquet", "records/dispatch.parquet",
        "records/fills.parquet", "records/orders.parquet",
        "records/risk.parquet", "records/state.parquet", "records/throttles.parquet", "run.json",
        "warnings.json",
    ] == deterministic_files(run_a)  # fmt: skip
    assert (run_a / "telemetry.json").is_file()
    metrics = json.loads((run_a / "metrics.json").read_text())
    assert metrics["trades"] > 0


def test_same_run_id_and_bytes_from_another_clone_and_process(two_clones):
    """Two clones at different paths, two processes: same run id, byte-identical deterministic files."""
    _, _, run_a, run_b = two_clones
    assert run_a.name == run_b.name
    assert digests(run_a) == digests(run_b)


def test_running_again_reuses_the_complete_result(two_clones):
    """Running the same configuration again finds the complete result under the same run id."""
    a, _, run_a, _ = two_clones
    before = digests(run_a)
    out = hftlab(a, "run")
    assert f"run {run_a.name}: cached" in out.stdout
    assert before == digests(run_a)
    metrics = json.loads((run_a / "metrics.json").read_text())
    line = out.stdout.splitlines()[-1]  # the headline metrics, after the run line, cached or not
    assert line.startswith(f"  net_pnl {metrics['net_pnl']:.6g}  gross_pnl {metrics['gross_pnl']:.6g}  "), line
    assert line.endswith(f"sharpe {metrics['sharpe']:.6g}  returns_n {metrics['returns_n']}"), line
    lot = json.loads((run_a / "run.json").read_text())["dataset"]["instrument"]["lot_size"]
    assert 0.001 == lot and f"final_position {round(metrics['final_position'], 3) + 0.0:.3f}  " in line, line


def test_the_run_cache_is_global_across_experiments(two_clones):
    """The same run definition under another experiment name is not executed: the complete run is reused
    (copied, same bytes) and said so; a run directory that is not complete is never reused."""
    a, _, run_a, _ = two_clones
    out = hftlab(a, "run", "experiment_name=elsewhere")
    other = run_dir_of(a, "experiment_name=elsewhere", stdout=out.stdout)
    assert run_a.name == other.name and f"run {other.name}: cached" in out.stdout
    assert f"run {other.name}: reused from {run_a}" in out.stderr
    assert digests(run_a) == digests(other)
    expected = digests(run_a)
    shutil.rmtree(other)
    metrics = (run_a / "metrics.json").read_bytes()
    (run_a / "metrics.json").unlink()  # run_a edited: not complete, so not a source
    (run_a / "metrics.json").write_bytes(metrics.replace(b"1", b"2", 1))
    try:
        again = hftlab(a, "run", "experiment_name=elsewhere")
        assert f"run {other.name}: done" in again.stdout and "reused from" not in again.stderr
        assert expected == digests(other)
    finally:
        (run_a / "metrics.json").unlink()
        (run_a / "metrics.json").write_bytes(metrics)
    pruned = other.parent.parent / ".pruned" / other.name  # a copy pruning moved aside is reused too
    pruned.parent.mkdir()
    os.replace(other, pruned)
    os.replace(run_a, run_a.with_name("aside"))
    try:
        third = hftlab(a, "run", "experiment_name=third")
    finally:
        os.replace(run_a.with_name("aside"), run_a)
    assert f"run {other.name}: cached" in third.stdout and f"reused from {pruned}" in third.stderr


def test_run_definition_has_no_absolute_path_hostname_or_time(two_clones):
    """The stored definition holds no absolute path, no hostname and no wall-clock timestamp."""
    a, _, run_a, _ = two_clones
    text = (run_a / "run.json").read_text()
    assert str(a) not in text and str(PROJECT_ROOT) not in text and '"/' not in text
    assert platform.node() not in text
    assert not re.search(r"20\d\d-\d\d-\d\d[T ]\d\d:\d\d", text)
    definition = json.loads(text)
    assert "strategies/grid.py" == definition["strategy"]["source"]
    assert 64 == len(definition["strategy"]["sha256"])
    assert {"hftbacktest", "hftlab", "hftlab_source_sha256", "numba", "numpy", "pyarrow", "python"} == set(
        definition["engine"]
    )


def test_reproduce_passes_then_refuses_changed_strategy_and_missing_dataset(two_clones):
    """reproduce matches every file; after a one-line strategy edit it refuses naming both hashes; after
    deleting the dataset it refuses naming the missing version."""
    _, b, _, run_b = two_clones
    out = hftlab(b, "reproduce", str(run_b))
    assert "reproduced: every deterministic file matches" in out.stdout
    assert 12 == out.stdout.count("match: ")  # content.json included
    definition = json.loads((run_b / "run.json").read_text())
    source = b / "strategies" / "grid.py"
    source.write_text(source.read_text() + "\n# an edited line\n")
    out = hftlab(b, "reproduce", str(run_b), check=False)
    assert 0 != out.returncode
    assert "strategies/grid.py changed" in out.stderr and definition["strategy"]["sha256"] in out.stderr
    assert "found " in out.stderr
    source.write_text(source.read_text().removesuffix("\n# an edited line\n"))
    shutil.rmtree(b / "data" / "canonical" / "synthetic")
    out = hftlab(b, "reproduce", str(run_b), check=False)
    assert 0 != out.returncode
    assert definition["dataset"]["version"] in out.stderr and "is missing" in out.stderr


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("risk.foo=1", "risk.foo"),
        ("risk.max_position=abc", "risk.max_position"),
        ("strategy.params.order_qty=-1", "strategy.params.order_qty"),
        ("strategy=nope", "strategy/nope"),
        ("experiment_name=../escape", "experiment_name"),
    ],
)
def test_config_errors_name_the_key_and_run_nothing(two_clones, override, key):
    """Unknown key, wrong type, negative quantity, unknown strategy, path-like names: refused before running."""
    a, _, _, _ = two_clones
    before = sorted(p.name for p in (a / "results" / "scratch" / "runs").iterdir())
    out = hftlab(a, "run", override, check=False)
    assert 0 != out.returncode
    assert key in out.stdout + out.stderr
    assert before == sorted(p.name for p in (a / "results" / "scratch" / "runs").iterdir())


def test_kill_during_a_run_leaves_nothing_complete_and_next_run_succeeds(tmp_path):
    """kill -9 while results are being written: no complete-looking run directory; the next run completes."""
    project = make_project(tmp_path / "p", [*SYNTH[:-4], "--days", "0.05", "--events-per-second", "40"])
    runs = project / "results" / "scratch" / "runs"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    proc = subprocess.Popen(
        [HFTLAB, "run"], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    killed_while_writing = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if runs.is_dir() and any(p.name.startswith(".tmp-") for p in runs.iterdir()):
            os.killpg(proc.pid, signal.SIGKILL)  # the command and the watched process writing the run
            killed_while_writing = True
            break
        time.sleep(0.0005)
    proc.wait()
    if not killed_while_writing:
        pytest.fail("the run finished before its temporary directory was seen; cannot test the kill")
    leftovers = [p.name for p in runs.iterdir()]
    assert all(name.startswith(".tmp-") for name in leftovers), leftovers
    out = hftlab(project, "run")
    run_dir = run_dir_of(project, stdout=out.stdout)
    assert ": done:" in out.stdout
    assert [run_dir.name] == [p.name for p in runs.iterdir()]
