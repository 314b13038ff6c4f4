"""Hydra callback: declare a sweep's grid in its manifest at start, write its summary at the end.

Hydra turns an exception raised by a callback into a warning and carries on; a sweep whose bookkeeping
failed (manifest, summary, metrics endpoint) must not look successful, so these hooks stop the command
instead: the error on stderr, exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: Outcome of the last multirun in this process (read by ``hftlab run`` for its exit code).
LAST_SWEEP: dict[str, Any] = {}


@contextmanager
def _stop_on_error() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        print(f"hftlab: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc  # not an Exception: Hydra lets it through


def sweep_points(config: DictConfig) -> tuple[list[str], list[list[str]]]:
    """The grid definition and every job's overrides, generated the way Hydra's basic sweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    grid = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(grid)
    batches = BasicSweeper.split_arguments(parsed, None)
    return grid, [list(job) for batch in batches for job in batch]


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.metrics_server: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _stop_on_error():
            self._start(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            with _stop_on_error():
                self._end(config)
        finally:
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
                self.metrics_server.server_close()
                self.metrics_server = None

    def _start(self, config: DictConfig) -> None:
        from hftlab.sweep import manifest
        from hftlab.sweep.app import experiment_dir

        grid, points = sweep_points(config)
        exp_dir = experiment_dir(config)
        port = config.sweep.prometheus_port
        if port is not None:  # before anything is written: a port that cannot be served stops the sweep
            from hftlab.sweep.prometheus import serve

            addr = str(config.sweep.prometheus_addr)
            self.metrics_server = serve(exp_dir, str(config.experiment_name), int(port), addr)
            print(f"sweep {config.experiment_name}: Prometheus metrics on http://{addr}:{port}/metrics", flush=True)
        manifest.start_sweep(exp_dir, grid, points)
        print(f"sweep {config.experiment_name}: {len(points)} runs -> {exp_dir}")

    def _end(self, config: DictConfig) -> None:
        from hftlab.sweep import manifest
        from hftlab.sweep.app import experiment_dir
        from hftlab.sweep.summary import write_summary

        exp_dir: Path = experiment_dir(config)
        m = manifest.read(exp_dir) or {"experiment": config.experiment_name, "grid": [], "runs": []}
        if config.sweep.prune:
            pruned = manifest.prune_runs(exp_dir, m)
            if pruned:
                print(f"sweep {config.experiment_name}: removed {pruned} run directories outside the grid")
        write_summary(exp_dir, m, list(config.sweep.best_by))
        c = manifest.counts(m)
        LAST_SWEEP.update(c)
        print(
            f"sweep {config.experiment_name}: {c['total']} runs: {c['done']} executed, {c['cached']} cached, "
            f"{c['failed']} failed, {c['pending'] + c['running']} not finished; summary in {exp_dir / 'summary.csv'}"
        )
        for r in m["runs"]:
            if r["status"] == "failed":
                print(f"  failed [{' '.join(r['overrides'])}]: {r['error']}")
