"""Hydra callback: declare a sweep's grid in its manifest at start, write its summary at the end.

Hydra turns an exception raised by a callback into a warning and carries on; a sweep whose bookkeeping
failed (manifest, summary, metrics endpoint) must not look successful, so these hooks stop the command
instead: the error on stderr, exit code 2. The sweep's exit status comes from here too: when any of its runs
failed or is not complete (its run directory checked at the end: :func:`hftlab.sweep.manifest.finish_sweep`),
the end hook exits with code 1 (``SystemExit`` passes through Hydra).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hftlab.sweep.grid import sweep_points
from hftlab.sweep.project import check_managed, experiment_dir, outside_note, shown


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
        self.sweep_id: str | None = None
        self.grid: list[str] = []
        self.points: list[list[str]] = []
        self.started = 0.0

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
            raise SystemExit(1)  # the sweep ran to its end, but not every one of its runs is complete

    def _start(self, config: DictConfig) -> None:
        from hftlab.sweep import manifest
        from hftlab.sweep.lifetime import mark_sweep_process

        self.started = time.time()
        mark_sweep_process()  # before any launcher starts workers: they inherit it
        grid, points = sweep_points(config)
        check_managed(config, [str(o) for o in config.hydra.overrides.task])
        exp_dir = experiment_dir(config)
        port = config.sweep.prometheus_port
        if port is not None:  # before anything is written: a port that cannot be served stops the sweep
            from hftlab.sweep.prometheus import serve

            addr = str(config.sweep.prometheus_addr)
            self.metrics_server = serve(exp_dir, str(config.experiment_name), int(port), addr)
            print(f"sweep {config.experiment_name}: Prometheus metrics on http://{addr}:{port}/metrics", flush=True)
        if note := outside_note(config):
            print(note, file=sys.stderr)
        self.sweep_id = manifest.start_sweep(exp_dir, grid, points)
        self.grid, self.points = grid, points
        print(f"sweep {config.experiment_name}: {len(points)} runs -> {exp_dir}")
        distinct = len({manifest.point_key(o) for o in points})
        if distinct < len(points):
            print(f"sweep {config.experiment_name}: the grid repeats points: {len(points)} jobs, {distinct} distinct "
                  "(a repeated point runs once; its other jobs find it cached)")  # fmt: skip

    def _end(self, config: DictConfig) -> int:
        """Verify this sweep's runs, prune, write the summary, print the outcome; how many of its runs
        failed or are not complete."""
        from hftlab.sweep import manifest
        from hftlab.sweep.summary import write_summary

        exp_dir: Path = experiment_dir(config)
        name = config.experiment_name
        assert self.sweep_id is not None
        end = manifest.finish_sweep(
            exp_dir, self.sweep_id, self.grid, self.points, prune=bool(config.sweep.prune), since=self.started
        )
        if end.pruned:
            print(f"sweep {name}: moved {len(end.pruned)} run directories outside the grid aside to "
                  f"{shown(end.pruned_to or exp_dir)} (a run needed again is restored from there; delete it to free "
                  "the space)")  # fmt: skip
        elif config.sweep.prune and end.overlap:
            print(f"sweep {name}: not pruning: another sweep of this experiment ran at the same time")
        m = {**end.manifest, "overrides": [str(o) for o in config.hydra.overrides.task]}
        if end.owner:
            write_summary(exp_dir, m, list(config.sweep.best_by))
            where = f"summary in {exp_dir / 'summary.csv'}"
        else:
            where = "summary not written: a sweep of this experiment started later writes it"
        c = manifest.counts(m)
        unfinished = c["pending"] + c["running"] + c["incomplete"]
        print(
            f"sweep {name}: {c['total']} runs: {c['done']} executed, {c['cached']} cached, "
            f"{c['failed']} failed, {unfinished} not finished; {where}"
        )
        for r in m["runs"]:
            if r["status"] in ("failed", "incomplete"):
                print(f"  {r['status']} [{' '.join(r['overrides'])}]: {r['error']}")
        if unfinished:
            print(f"sweep {name}: {unfinished} of its runs are not complete: run the same command again")
        return int(c["failed"]) + unfinished
