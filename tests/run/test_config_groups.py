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
    missing = hftlab(project, "run", "dataset=nope", check=False)
    assert 2 == missing.returncode
    assert (
        "hftlab: error: dataset: [unknown-option]" in missing.stderr and "available: other, synthetic" in missing.stderr
    )
