"""Config group options that need no YAML file: ``strategy=<name>`` for any strategy file in ``strategies/``
and ``dataset=<id>`` for any dataset in the project's Canonical Storage, through the real CLI and Hydra."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.run.test_run_e2e import hftlab, make_project, run_dir_of


def test_a_strategy_file_without_yaml_and_an_imported_dataset_are_selected_by_name(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert not (project / "conf" / "strategy" / "mine.yaml").exists()
    shutil.copy(project / "strategies" / "grid.py", project / "strategies" / "mine.py")
    hftlab(project, "--root", str(project / "data" / "canonical"), "data", "synth", "--id", "other", "--seed", "5",
           "--days", "0.01", "--events-per-second", "40")  # fmt: skip
    out = hftlab(project, "run", "strategy=mine", "dataset=other", "strategy.params.grid_num=3")
    definition = json.loads((run_dir_of(project, "strategy=mine", "dataset=other", "strategy.params.grid_num=3",
                                        stdout=out.stdout) / "run.json").read_text())  # fmt: skip
    assert ("mine", "strategies/mine.py", 3) == (
        definition["strategy"]["name"], definition["strategy"]["source"], definition["strategy"]["params"]["grid_num"]
    )  # fmt: skip
    assert "other" == definition["dataset"]["id"]
    groups = hftlab(project, "run", "--help").stdout
    assert "strategy: glft, grid, mine, obi\n" in groups and "dataset: other, synthetic\n" in groups
    assert "schema" not in groups.split("== Config ==")[0]  # each strategy's schema is not an option to pick
    missing = hftlab(project, "run", "dataset=nope", check=False)
    assert 2 == missing.returncode
    assert (
        "hftlab: error: dataset: [unknown-option]" in missing.stderr and "available: other, synthetic" in missing.stderr
    )


def test_strategy_new_writes_a_runnable_strategy_whose_docstring_example_works(tmp_path: Path) -> None:
    """`hftlab strategy new mm` writes strategies/mm.py; `strategy=mm` runs it (it quotes and trades); the
    unit-test example of its docstring gives the two quotes around the mid; names are checked."""
    import numpy as np

    from hftlab.runtime.strategy import load_strategy, make_view

    project = make_project(tmp_path / "p")
    out = hftlab(project, "strategy", "new", "mm")
    assert "wrote strategies/mm.py and conf/strategy/mm.yaml: run it with `hftlab run strategy=mm`" in out.stdout
    assert "params" not in (project / "conf" / "strategy" / "mm.yaml").read_text().split("name: mm")[1]
    run = hftlab(project, "run", "strategy=mm")
    metrics = json.loads((run_dir_of(project, "strategy=mm", stdout=run.stdout) / "metrics.json").read_text())
    assert metrics["trades"] > 0
    s = load_strategy("mm", project / "strategies")
    rows = np.zeros((64, 4))
    n = s.module.evaluate(make_view(bids=[(99.9, 1.0)], asks=[(100.1, 1.0)]), s.module.Params(), np.zeros(1), rows)
    assert 2 == n and [[1.0, 99.8, 0.01, 1.0], [-1.0, 100.2, 0.01, 1.0]] == np.round(rows[:2], 9).tolist()
    (project / "conf" / "strategy" / "mm.yaml").write_text(
        (project / "conf" / "strategy" / "mm.yaml").read_text() + "params:\n  half_spread: 0.3\n"
    )  # a value set in the config applies to every run
    set_in_yaml = run_dir_of(project, "strategy=mm", stdout=hftlab(project, "run", "strategy=mm").stdout)
    assert 0.3 == json.loads((set_in_yaml / "run.json").read_text())["strategy"]["params"]["half_spread"]
    again = hftlab(project, "strategy", "new", "mm", check=False)
    assert 2 == again.returncode and "hftlab: error: NAME: [exists]" in again.stderr
    bad = hftlab(project, "strategy", "new", "_x", check=False)
    assert 2 == bad.returncode and "hftlab: error: NAME: [invalid-name]" in bad.stderr
