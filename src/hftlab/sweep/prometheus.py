"""Optional Prometheus endpoint of a running sweep (``sweep.prometheus_port=PORT``).

Served by the launching process from the sweep's start to its end, on ``sweep.prometheus_addr``
(default 127.0.0.1). Every scrape reads the experiment's manifest and the telemetry of its executed
runs, so it sees the jobs of every launcher (in-process, worker processes, cluster nodes):

- ``hftlab_sweep_runs{experiment, status}``: runs by status (pending, running, done, cached, failed);
- ``hftlab_sweep_events_per_second{experiment}``: mean loop events/s of the runs executed so far;
- ``hftlab_sweep_events_total{experiment}``: events processed by the runs executed so far.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hftlab.errors import ConfigError
from hftlab.run.results import TELEMETRY_FILE, runs_dir
from hftlab.sweep import manifest


class SweepCollector:
    """Prometheus collector over one experiment directory."""

    def __init__(self, experiment_dir: Path, experiment: str) -> None:
        self.experiment_dir, self.experiment = experiment_dir, experiment

    def collect(self) -> Iterator[Metric]:
        m = manifest.read(self.experiment_dir, verify=False) or {"runs": []}  # live progress: no hashing per scrape
        runs = GaugeMetricFamily("hftlab_sweep_runs", "Runs of the sweep by status.", labels=["experiment", "status"])
        for status, n in manifest.counts(m).items():
            if status in manifest.STATUSES:
                runs.add_metric([self.experiment, status], n)
        yield runs
        rates, events = [], 0
        runs_root = runs_dir(self.experiment_dir.parent, self.experiment_dir.name)
        for r in m["runs"]:
            path = runs_root / str(r.get("run_id")) / TELEMETRY_FILE
            if r["status"] == "done" and path.is_file():
                t = json.loads(path.read_text())
                rates.append(float(t["events_per_second"]))
                events += int(t["events"])
        rate = GaugeMetricFamily(
            "hftlab_sweep_events_per_second", "Mean loop events/s of the runs executed so far.", labels=["experiment"]
        )
        rate.add_metric([self.experiment], sum(rates) / len(rates) if rates else 0.0)
        yield rate
        total = CounterMetricFamily(
            "hftlab_sweep_events", "Events processed by the runs executed so far.", labels=["experiment"]
        )
        total.add_metric([self.experiment], events)
        yield total


def serve(experiment_dir: Path, experiment: str, port: int, addr: str = "127.0.0.1") -> Any:
    """Start the endpoint in a daemon thread; returns the server (``shutdown()`` + ``server_close()`` it).

    Raises :class:`~hftlab.errors.ConfigError` naming the key when the address cannot be served."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SweepCollector(experiment_dir, experiment))
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise ConfigError(f"sweep.prometheus_port={port}: cannot serve metrics on {addr}:{port}: {exc}") from None
    return server
