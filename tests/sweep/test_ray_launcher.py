"""Ray-launched sweeps: a real local Ray cluster (``ray start --head`` on 127.0.0.1), our ``ray_cluster``
launcher config, and the same bytes as a serial sweep of the same grid."""

from __future__ import annotations

from tests.run.test_run_e2e import hftlab, make_project
from tests.sweep.test_sweep_e2e import manifest, run_dirs

GRID = ("-m", "experiment_name=four", "strategy.params.half_spread=0.1,0.2", "strategy.params.skew=0.0,0.5")


def test_ray_sweep_gives_the_same_bytes_as_serial(ray_cluster, tmp_path, monkeypatch):
    """4 runs through hydra-ray-launcher on the cluster: all done, same run ids and bytes as serial."""
    serial, on_ray = make_project(tmp_path / "serial"), make_project(tmp_path / "ray")
    hftlab(serial, "run", *GRID)
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
    out = hftlab(on_ray, "run", *GRID, "hydra/launcher=ray_cluster")
    log = out.stdout + out.stderr
    assert "Connected to Ray cluster" in log
    assert "(_run_job pid=" in log  # the runs executed in Ray worker processes, not in the driver
    assert "4 runs: 4 executed, 0 cached, 0 failed" in out.stdout
    assert all(r["status"] == "done" for r in manifest(on_ray, "four")["runs"])
    expected = run_dirs(serial, "four")
    assert 4 == len(expected)
    assert expected == run_dirs(on_ray, "four")
    for name in ("summary.csv", "summary.json", "summary.parquet"):
        assert (serial / "results" / "four" / name).read_bytes() == (on_ray / "results" / "four" / name).read_bytes()
