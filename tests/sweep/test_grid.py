"""Grid expansion on Hydra's public API: the same jobs, strings and order as Hydra's basic sweeper.

The reference is ``BasicSweeper.split_arguments`` itself (a private Hydra module, imported here only as the
oracle: ``hftlab.sweep.grid`` must not need it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from hftlab.errors import ConfigError
from hftlab.sweep import grid as grid_module
from hftlab.sweep.grid import expand, sweep_points
from tests.conftest import PROJECT_ROOT


def basic_sweeper(grid: list[str], config_loader: ConfigLoader | None = None) -> list[list[str]]:
    """What Hydra's basic sweeper launches for ``grid``, flattened over its batches (any batch size)."""
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(grid)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=2)
    return [list(job) for batch in batches for job in batch]


def multirun_config(params: dict[str, str] | None, task: list[str]):
    return OmegaConf.create({"hydra": {"sweeper": {"params": params}, "overrides": {"task": task}}})


GRIDS = [
    pytest.param([], id="no overrides"),
    pytest.param(["a=1"], id="one value"),
    pytest.param(["a=1", "b=x", "c=null", "d=", "e=3.5", "f=true"], id="plain values"),
    pytest.param(["a=1,2,3", "b=10,20"], id="comma sweeps"),
    pytest.param(["a= 1 , 2", "b=x,y"], id="comma sweep with spaces"),
    pytest.param(["a=1,2", "a=3"], id="repeated key: last values, first position"),
    pytest.param(["a=1,2", "b=5", "a=3,4"], id="repeated sweep key"),
    pytest.param(["+a=1,2", "a=3"], id="prefix makes another key"),
    pytest.param(["a=range(1,4)", "b=range(0,1,0.25)", "c=range(5,1,-2)", "d=range(3)"], id="range"),
    pytest.param(["a=choice(x,y)", "b=choice(1)", "c=choice([1,2],[3])"], id="choice"),
    pytest.param(["a=sort(3,1,2)", "b=sort(range(4),reverse=true)"], id="sort"),
    pytest.param(["a=str(1),int(2)", "b=float(1),2"], id="casts"),
    pytest.param(["a='q,r'", 'b="x,y",z', "c=\\,", "d='it\\'s'", 'e="a\\\\b",c'], id="quoted and escaped"),
    pytest.param(["a=[1,2],[3]", "b={x:1,y:[2,3]}", "c={p:q},{r:s}"], id="lists and dicts"),
    pytest.param(["+a=1,2", "++b=x", "++c=3,4", "~d", "~e=1", "~f=1,2"], id="add, force-add, delete"),
    pytest.param(["db=mysql,postgresql", "db.user=someone"], id="config group"),
    pytest.param(["db@pkg=a,b", "+group@_global_=x", "~db@other"], id="packages"),
    pytest.param(["c=1", "a=${x},${y}", "b=${oc.env:HOME}"], id="interpolations"),
    pytest.param(["hydra.verbose=true", "a=1,2"], id="hydra key"),
]


@pytest.mark.parametrize("grid", GRIDS)
def test_expand_gives_what_the_basic_sweeper_launches(grid):
    assert basic_sweeper(grid) == expand(grid)


@pytest.mark.parametrize("grid", GRIDS)
def test_sweep_points_reads_sweeper_params_then_task_overrides(grid):
    """The same grid split between ``hydra.sweeper.params`` (first half) and the command line (the rest)."""
    half = len(grid) // 2
    params = dict(g.split("=", 1) for g in grid[:half])
    definition = [f"{k}={v}" for k, v in params.items()] + grid[half:]
    assert (definition, basic_sweeper(definition)) == sweep_points(multirun_config(params, grid[half:]))


def test_params_and_command_line_combine_like_hydra():
    """A key in both: the command line's values at the params' position."""
    config = multirun_config({"a": "1,2", "b": "x,y"}, ["c=5", "a=3,4"])
    definition, points = sweep_points(config)
    assert ["a=1,2", "b=x,y", "c=5", "a=3,4"] == definition
    assert [
        ["a=3", "b=x", "c=5"],
        ["a=3", "b=y", "c=5"],
        ["a=4", "b=x", "c=5"],
        ["a=4", "b=y", "c=5"],
    ] == points
    assert basic_sweeper(definition) == points


def test_sweeper_params_with_values_that_are_not_strings():
    """YAML params may hold numbers or lists: formatted exactly as the basic sweeper formats them."""
    config = OmegaConf.create(
        {"hydra": {"sweeper": {"params": {"a": 1, "b": 0.5, "c": [1, 2], "d": True}}, "overrides": {"task": []}}}
    )
    definition, points = sweep_points(config)
    assert basic_sweeper(definition) == points
    assert ["a=1", "b=0.5", "c=[1, 2]", "d=True"] == definition
    assert [["a=1", "b=0.5", "c=[1,2]", "d=True"]] == points


def test_no_params_key_and_null_params():
    no_key = OmegaConf.create({"hydra": {"sweeper": {}, "overrides": {"task": ["a=1,2"]}}})
    assert (["a=1,2"], [["a=1"], ["a=2"]]) == sweep_points(no_key)
    assert (["a=1,2"], [["a=1"], ["a=2"]]) == sweep_points(multirun_config(None, ["a=1,2"]))


def test_the_named_experiment_grid():
    """conf/experiment/grid_sweep.yaml, as `hftlab run -m experiment=grid_sweep` sees it."""
    experiment = OmegaConf.load(PROJECT_ROOT / "conf" / "experiment" / "grid_sweep.yaml")
    params = OmegaConf.to_container(experiment.hydra.sweeper.params)
    definition, points = sweep_points(multirun_config(params, ["experiment=grid_sweep"]))
    assert basic_sweeper(definition) == points
    assert 6 == len(points)
    assert ["strategy.params.half_spread=0.1", "strategy.params.skew=0.0", "experiment=grid_sweep"] == points[0]
    assert ["strategy.params.half_spread=0.4", "strategy.params.skew=0.5", "experiment=grid_sweep"] == points[-1]


def test_shuffled_sweeps_give_the_same_points_unshuffled():
    """Hydra shuffles again when it launches: only the set of points can match; ours is deterministic."""
    grid = ["a=shuffle(1,2,3)", "b=shuffle(range(3))", "c=x,y"]
    _, points = sweep_points(multirun_config(None, grid))
    assert sorted(basic_sweeper(grid)) == sorted(points)
    assert expand(["a=1,2,3", "b=range(3)", "c=x,y"]) == points


def test_interval_sweeps_are_refused_like_the_basic_sweeper_does():
    with pytest.raises(HydraException, match="does not support sweep type : INTERVAL_SWEEP"):
        basic_sweeper(["a=interval(0,1)"])
    with pytest.raises(ConfigError, match=r"'a=interval\(0,1\)'.*cannot enumerate a INTERVAL_SWEEP"):
        expand(["b=1,2", "a=interval(0,1)"])


def test_an_unparsable_grid_is_a_config_error():
    with pytest.raises(ConfigError, match="sweep grid"):
        expand(["a=tag(t,1,2)"])


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A config tree with groups ``db`` (4 options) and ``model`` (2)."""
    (tmp_path / "config.yaml").write_text("defaults:\n  - db: mysql\n  - _self_\n")
    for group, names in {"db": ["mysql", "postgresql", "sqlite", "mongo"], "model": ["small", "large"]}.items():
        (tmp_path / group).mkdir()
        for name in names:
            (tmp_path / group / f"{name}.yaml").write_text(f"name: {name}\n")
    return tmp_path


@pytest.mark.usefixtures("hydra_restore_singletons")
@pytest.mark.parametrize(
    "grid",
    [
        ["db=glob(*)"],
        ["db=glob(*,exclude=mongo)", "model=glob([s*,l*])"],
        ["db=glob(*sql*)", "a=1,2"],
        ["+model@m=glob(*)", "db=glob(*,exclude=[m*,p*])"],
    ],
)
def test_glob_over_config_groups_lists_the_group_like_hydra(config_dir, grid):
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        loader = GlobalHydra.instance().config_loader()
        expected = basic_sweeper(grid, loader)
        assert expected == expand(grid, loader)
        assert (grid, expected) == sweep_points(multirun_config(None, grid))  # the running app's loader
    assert expected  # not vacuous


def test_glob_without_a_running_hydra_app_says_it_is_unsupported():
    assert not GlobalHydra.instance().is_initialized()
    with pytest.raises(ConfigError, match=r"'db=glob\(\*\)'.*glob\(\) over a config group is unsupported here"):
        sweep_points(multirun_config({"a": "1,2"}, ["db=glob(*)"]))


def test_grid_module_uses_no_private_hydra_module():
    tree = ast.parse(Path(grid_module.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert imported and not [m for m in imported if m and "_internal" in m]
