"""Bad configuration, every class refused one way before anything runs: through the real CLI one line
``hftlab: error: <key>: [<rule>] ...``, exit code 2, no traceback, no results written.

Covers resource-sizing options (hard limits and the machine's memory), times and windows, names, integers
beyond int64, every enum-like option (:data:`hftlab.run.schema.CHOICES`) and Hydra's own refusals.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hftlab import compose_runs
from hftlab.errors import ConfigError
from hftlab.run import schema
from hftlab.run.schema import CHOICES, RESOURCE_LIMITS, RunConfig, check_choices, config_value
from tests.run.test_run_e2e import HFTLAB, make_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("bad-config") / "p")


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project), **(env or {})}
    return subprocess.run([HFTLAB, "run", *args], cwd=project, capture_output=True, text=True, env=full)


def refused(project: Path, args: list[str], key: str, rule: str, *also: str, env: dict[str, str] | None = None):
    """``hftlab run <args>``: exit 2, one line naming ``key`` and ``rule``, no traceback, no results."""
    out = run(project, *args, env=env)
    assert 2 == out.returncode, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "HYDRA_FULL_ERROR" not in out.stderr
    (line,) = [x for x in out.stderr.splitlines() if not x.startswith("sweep ")]
    assert line.startswith(f"hftlab: error: {key}: [{rule}] "), line
    for text in also:
        assert text in line, line
    results = project / "results"
    assert not results.exists() or not list(results.rglob("run.json"))


CASES = {
    # resources: a hard limit per option, then the machine's memory
    "max-orders": ("runtime.max_orders=4000000000", "runtime.max_orders", "resource-limit", "1,000,000"),
    "trade-buffer": ("runtime.trade_buffer=3000000000", "runtime.trade_buffer", "resource-limit", "100,000,000"),
    "book-levels": ("runtime.book_levels=10000000", "runtime.book_levels", "resource-limit", "1,000,000"),
    "actions": ("execution.max_actions_per_second=1e12", "execution.max_actions_per_second", "resource-limit", ""),
    "roi-margin": ("venue.roi_margin=1e6", "venue.roi_margin", "resource-limit", "above the limit 1:"),
    "last-trades": ("venue.last_trades_capacity=100000000000", "venue.last_trades_capacity", "resource-limit", ""),
    "memory": ("runtime.initial_capacity=900000000", "runtime.initial_capacity", "memory-limit", "GiB of memory"),
    "int64": ("runtime.interval_ns=99999999999999999999999", "runtime.interval_ns", "integer-out-of-range", ""),
    # the dataset: names, times, the window
    "version-path": ("dataset.version=../synthetic", "dataset.version", "invalid-name", "'../synthetic'"),
    "end-word": ("dataset.end=yesterday", "dataset.end", "time-format", "'yesterday'"),
    "start-overflow": ("dataset.start=99999999999999999999999", "dataset.start", "time-out-of-range", "2262-04-11"),
    "start-year-9999": ("dataset.start=9999-01-01", "dataset.start", "time-out-of-range", "'9999-01-01'"),
    "feeds": ("dataset.feeds=[depth,nope]", "dataset.feeds", "invalid-choice", "'snapshot', 'trades'"),
    # enum-like options (Hydra refuses them while composing: reported the same way)
    "progress": ("output.progress=bogus", "output.progress", "invalid-choice", "auto, terminal, log, off"),
    "evaluation": ("runtime.evaluation=nope", "runtime.evaluation", "invalid-choice", "interval, every_feed"),
    "queue": ("venue.queue.model=fifo", "venue.queue.model", "invalid-choice", "risk_averse"),
    "contract-type": ("venue.contract_type=quanto", "venue.contract_type", "invalid-choice", "'linear', 'inverse'"),
    # Hydra's refusals and ranges
    "unknown-key": ("risk.foo=1", "risk.foo", "unknown-key", ""),
    "wrong-type": ("risk.max_position=abc", "risk.max_position", "wrong-type", "'abc'"),
    "unknown-group-option": ("strategy=nope", "strategy", "unknown-option", "strategy/nope"),
    "range": ("strategy.params.order_qty=-1", "strategy.params.order_qty", "invalid-value", "> 0"),
}


@pytest.mark.parametrize(("override", "key", "rule", "text"), CASES.values(), ids=CASES.keys())
def test_bad_option_is_refused_naming_key_and_rule(project: Path, override: str, key: str, rule: str, text: str):
    refused(project, override.split(), key, rule, text)


@pytest.mark.parametrize("end", ["2024-01-01T00:05", "2024-01-01T00:10"], ids=["before", "equal"])
def test_window_that_ends_before_it_starts_is_refused(project: Path, end: str) -> None:
    refused(project, ["dataset.start=2024-01-01T00:10", f"dataset.end={end}"], "dataset.end", "empty-window")


def test_bad_progress_environment_is_refused_even_for_a_cached_run(project: Path) -> None:
    """``HFTLAB_PROGRESS`` overrides ``output.progress``: a bad value used to pass when the run was cached."""
    refused(project, [], "HFTLAB_PROGRESS", "invalid-choice", "'auto', 'terminal'", env={"HFTLAB_PROGRESS": "loud"})


def test_sweep_and_cfg_with_a_bad_key_are_refused_the_same_way(project: Path) -> None:
    refused(project, ["-m", "risk.foo=1,2"], "risk.foo", "unknown-key")
    refused(project, ["--cfg", "job", "risk.foo=1"], "risk.foo", "unknown-key")


@pytest.mark.parametrize(
    ("overrides", "start"),
    [(["risk.foo=1"], "risk.foo: [unknown-key] "), (["strategy=nope"], "strategy: [unknown-option] "),
     (["risk.max_position=[1"], "overrides: [override-syntax] ")],
)  # fmt: skip
def test_the_python_api_refuses_like_the_command_line(project: Path, overrides: list[str], start: str) -> None:
    """compose_runs (what tests and notebooks call) gives the same ``<key>: [<rule>]`` error, plus the job."""
    with pytest.raises(ConfigError) as caught:
        compose_runs([overrides], project)
    assert str(caught.value).startswith(start) and str(caught.value).endswith(f"[overrides: {overrides[0]}]")


# -- the tables behind the checks ----------------------------------------------------------------------


def choice_fields(config: Any, prefix: str = "") -> set[str]:
    """Keys of every enum field and every field with a ``choices`` rule in a config dataclass tree."""
    out = set()
    for f in dataclasses.fields(config):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(config, f.name)
        rule = f.metadata.get("hftlab.range")
        if dataclasses.is_dataclass(value):
            out |= choice_fields(value, key)
        elif isinstance(value, enum.Enum) or (rule is not None and rule.choices is not None):
            out.add(key)
    return out


def test_choices_list_every_enum_like_option() -> None:
    """A new enum-like option must be added to CHOICES (and so gets checked and named)."""
    assert choice_fields(RunConfig()) == set(CHOICES)


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_choice_option_refuses_other_values(key: str) -> None:
    """Built in Python (where Hydra checks nothing): each option refuses a value outside its set."""
    path = key.split(".")

    def replaced(config: Any, parts: list[str], value: Any) -> Any:
        if len(parts) == 1:
            return dataclasses.replace(config, **{parts[0]: value})
        return dataclasses.replace(config, **{parts[0]: replaced(getattr(config, parts[0]), parts[1:], value)})

    bad = ["nope"] if isinstance(config_value(RunConfig(), key), list) else "nope"
    with pytest.raises(ConfigError, match=rf"^{key}: \[invalid-choice\] .*{CHOICES[key][-1]!r}"):
        check_choices(replaced(RunConfig(), path, bad))


def test_memory_limit_follows_the_machine(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default run fits a machine of 1 GiB; on one of 32 MiB it is refused, naming the option that
    asks for the most (the record tables' initial capacity)."""
    monkeypatch.setattr(schema, "machine_memory", lambda: 2**30)
    compose_runs([[]], project)
    monkeypatch.setattr(schema, "machine_memory", lambda: 32 * 2**20)
    with pytest.raises(ConfigError, match=r"^runtime.initial_capacity: \[memory-limit\] .* 0.0312 GiB of memory"):
        compose_runs([[]], project)
    assert set(RESOURCE_LIMITS) >= set(schema.resource_bytes(RunConfig()))


def test_results_outside_the_project_are_written_with_a_note(project: Path, tmp_path: Path) -> None:
    """``output.results_dir`` absolute or with ``..``: accepted (a shared results disk is a real need), with a
    note naming where; the run id is the one the run has inside the project (where results go is not part of
    the run definition). A sweep says it once."""
    from tests.run.test_run_e2e import run_dir_of

    inside = run_dir_of(project).name
    for where, resolved in ((str(tmp_path / "abs"), tmp_path / "abs"), ("../rel", project.parent / "rel")):
        out = run(project, f"output.results_dir={where}", env={"HFTLAB_PROGRESS": "off"})
        assert 0 == out.returncode, out.stderr
        note = f"hftlab: note: output.results_dir={where} writes results outside the project, to {resolved}/scratch"
        assert 1 == out.stderr.count(note), out.stderr
        assert [inside] == [p.name for p in (resolved / "scratch" / "runs").iterdir()]
        assert str(resolved) not in (resolved / "scratch" / "runs" / inside / "run.json").read_text()
    sweep = run(project, "-m", f"output.results_dir={tmp_path / 'abs'}", "strategy.params.skew=0.0,0.5")
    assert 0 == sweep.returncode and 1 == sweep.stderr.count("hftlab: note: output.results_dir="), sweep.stderr


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def evaluate(:\n", "broken.py:1: SyntaxError: "),
        ("import math\n\nx = math.log(0)\n", "broken.py:3: ValueError: "),
    ],
    ids=["syntax", "raises"],
)
def test_a_strategy_file_that_does_not_load_is_named_with_its_line(project: Path, source: str, error: str) -> None:
    path = project / "strategies" / "broken.py"
    path.write_text(source)
    try:
        refused(project, ["strategy.name=broken"], "strategy.name", "strategy-does-not-load", error)
    finally:
        path.unlink()


@pytest.mark.parametrize(
    "args",
    [["experiment=grid_sweep", "strategy.params.skew=0.1"], ["experiment_name=grid_sweep"],
     ["-m", "experiment=grid_sweep", "strategy.params.skew=0.1,0.2"]],
    ids=["override", "experiment_name", "sweep"],
)  # fmt: skip
def test_a_managed_experiment_refuses_overrides_that_change_its_results(project: Path, args: list[str]) -> None:
    """With grid_sweep in params.yaml `experiments`, its results change only through its config."""
    (project / "params.yaml").write_text("experiments:\n  grid_sweep:\n    strategy: grid\n")
    try:
        refused(project, args, "experiment", "managed-experiment", "conf/experiment/grid_sweep.yaml")
    finally:
        (project / "params.yaml").unlink()
