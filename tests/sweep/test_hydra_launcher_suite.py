"""Hydra's own launcher test suites (``hydra.test_utils.launcher_common_tests``) on every launcher we ship that
runs on this machine, as Hydra's launcher plugins test themselves.

- ``LauncherTestSuite``: sweeps run in this process by Hydra's test fixtures (``hydra_sweep_runner``,
  ``hydra_restore_singletons`` from Hydra's pytest plugin) on Hydra's test app and configs;
  ``BatchedSweeperTestSuite``: a sweep launched in batches (``hydra.sweeper.max_batch_size``).
- ``IntegrationTestSuite``: small Hydra apps written to a temporary directory and run as subprocesses.

Launchers: ``basic`` (Hydra's: the in-process suite only, as the reference that the harness holds here),
``parallel`` (our joblib config), ``forked`` (ours) and ``ray_cluster`` (our Ray config; the in-process suite,
on a one-node Ray cluster started for this module). Our launcher configs are found through
``hydra.searchpath`` (the project's ``conf/``), so what is tested is the shipped YAML. Not here: ``slurm``
(needs a SLURM cluster and hydra-submitit-launcher, not installed) and Ray through the integration suite
(every subprocess would join Ray: seconds each; ``tests/sweep/test_ray_launcher.py`` runs a real sweep).

The forked launcher forks once the Core Runtime loop is loaded (``warmup: loop``), which Hydra's generic test
tasks never do: here it runs with ``warmup=none`` (every job in a forked worker) and ``warmup=first`` (the
first job in this process, the others in workers), so the suite exercises the forked workers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

from hftlab.sweep import fork_launcher
from tests.conftest import PROJECT_ROOT

# The Ray launcher's config node, stored when its module is imported: import it now, before Hydra's fixtures
# snapshot the ConfigStore at each test (and restore it after: a first import inside a test would be undone).
importlib.import_module("hydra_plugins.hydra_ray_launcher._config")

CONF = PROJECT_ROOT / "conf"
SEARCHPATH = f"hydra.searchpath=[file://{CONF}]"
#: Hydra's suites check that each job ran in its own output directory: the default of Hydra's version base
#: 1.1, which is what they are written for; hftlab's app (run in this process by other tests) sets 1.3.
CHDIR = "hydra.job.chdir=true"
FORKED_MODES = {"warmup=none": ["hydra.launcher.warmup=none"], "warmup=first": ["hydra.launcher.warmup=first"]}


def suite_params(launcher: str, **modes: list[str]) -> list[Any]:
    """``launcher_name, overrides`` parameters of LauncherTestSuite, one per mode (fresh lists: suites mutate them)."""
    extra = [CHDIR] if launcher == "basic" else [CHDIR, SEARCHPATH]
    return [pytest.param(launcher, [*extra, *o], id=f"{launcher}-{m}") for m, o in (modes or {"": []}).items()]


def integration_params(launcher: str, **launcher_cfg: Any) -> list[Any]:
    """``task_launcher_cfg, extra_flags`` parameters of IntegrationTestSuite (cf. Hydra's plugins' own tests)."""
    hydra_cfg: dict[str, Any] = {} if launcher == "basic" else {"searchpath": [f"file://{CONF}"]}
    if launcher_cfg:
        hydra_cfg["launcher"] = launcher_cfg
    defaults = [
        {"override hydra/launcher": launcher},
        {"override hydra/hydra_logging": "disabled"},
        {"override hydra/job_logging": "disabled"},
    ]
    return [pytest.param({"defaults": defaults, "hydra": hydra_cfg}, ["-m"], id=launcher)]


def test_the_forked_launcher_is_discovered_and_its_config_is_valid():
    assert "ForkLauncher" in [x.__name__ for x in Plugins.instance().discover(Launcher)]
    with pytest.raises(Exception, match=r"hydra.launcher.warmup='sometimes': expected one of loop, first, none"):
        fork_launcher.ForkLauncher(warmup="sometimes")


@pytest.mark.parametrize("launcher_name, overrides", suite_params("basic") + suite_params("parallel"))
class TestLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", integration_params("parallel"))
class TestLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.fixture
def count_forked_jobs(monkeypatch) -> Iterator[list[int]]:
    """The pids of the processes that ran jobs through the forked launcher's workers; checked after the test:
    workers ran the jobs (not this process) whenever the warmup leaves jobs to them."""
    pids: list[int] = []
    run_one = fork_launcher.run_one

    def spy(*args: Any) -> Any:
        pids.append(os.getpid())
        return run_one(*args)

    monkeypatch.setattr(fork_launcher, "run_one", spy)
    yield pids


@pytest.mark.usefixtures("count_forked_jobs")
@pytest.mark.parametrize("launcher_name, overrides", suite_params("forked", **FORKED_MODES))
class TestForkedLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        pytest.param("forked", [CHDIR, SEARCHPATH, "hydra.sweeper.max_batch_size=2", *o], id=m)
        for m, o in FORKED_MODES.items()
    ],
)
class TestForkedLauncherBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    integration_params("forked", warmup="none") + integration_params("forked", warmup="first"),
)
class TestForkedLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.fixture
def on_ray_cluster(ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What our ``ray_cluster`` config reads from the environment; the driver disconnects afterwards (the
    cluster lives for this module)."""
    import ray

    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
    monkeypatch.setenv("HFTLAB_PROJECT", str(PROJECT_ROOT))
    yield
    ray.shutdown()


@pytest.mark.usefixtures("on_ray_cluster")
@pytest.mark.parametrize("launcher_name, overrides", suite_params("ray_cluster"))
class TestRayClusterLauncher(LauncherTestSuite):
    pass
