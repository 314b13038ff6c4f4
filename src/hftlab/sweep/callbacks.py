"""Hydra callback: declare a sweep's grid in its manifest at start, write its summary at the end.

Hydra turns an exception raised by a callback into a warning and carries on; a sweep whose bookkeeping
failed (manifest, summary, metrics endpoint) must not look successful, so these hooks stop the command
instead: the error on stderr, exit code 2. The sweep's exit status comes from here too: when any run
failed, the end hook exits with code 1 (``SystemExit`` passes through Hydra).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hftlab.sweep.grid import sweep_points
from hftlab.sweep.project import experiment_dir


@contextmanager
def _stop_on_error() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        print(f"hftlab: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc  # not an Exception: Hydra lets it through


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.metrics_server: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _stop_on_error():
            self._start(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            with _stop_on_error():
                failed = self._end(config)
        finally:
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
                self.metrics_server.server_close()
                self.metrics_server = None
        if failed:
            raise SystemExit(1)  # the sweep ran to its end, but not every run succeeded

    def _start(self, config: DictConfig) -> None:
        from hftlab.sweep import manifest

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

    def _end(self, config: DictConfig) -> int:
        """Prune, write the summary, print the outcome; the number of failed runs."""
        from hftlab.sweep import manifest
        from hftlab.sweep.summary import write_summary

        exp_dir: Path = experiment_dir(config)
        m = manifest.read(exp_dir) or {"experiment": config.experiment_name, "grid": [], "runs": []}
        if config.sweep.prune:
            pruned = manifest.prune_runs(exp_dir, m)
            if pruned:
                print(f"sweep {config.experiment_name}: removed {pruned} run directories outside the grid")
        write_summary(exp_dir, m, list(config.sweep.best_by))
        c = manifest.counts(m)
        print(
            f"sweep {config.experiment_name}: {c['total']} runs: {c['done']} executed, {c['cached']} cached, "
            f"{c['failed']} failed, {c['pending'] + c['running']} not finished; summary in {exp_dir / 'summary.csv'}"
        )
        for r in m["runs"]:
            if r["status"] == "failed":
                print(f"  failed [{' '.join(r['overrides'])}]: {r['error']}")
        return int(c["failed"])
