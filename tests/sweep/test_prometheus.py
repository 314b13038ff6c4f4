"""The optional Prometheus endpoint of a sweep: exact values from a hand-made experiment, and a real
scrape over loopback while a sweep runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hftlab.sweep.prometheus import SweepCollector
from tests.cluster import free_port
from tests.run.test_run_e2e import HFTLAB, hftlab, make_project


def samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, status label or '') -> value."""
    return {
        (s.name, s.labels.get("status", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_collector_reports_runs_by_status_and_events_of_executed_runs(tmp_path: Path):
    exp = tmp_path / "results" / "e"
    runs = [
        {"overrides": ["a=1"], "run_id": "r1", "status": "done"},
        {"overrides": ["a=2"], "run_id": "r2", "status": "done"},
        {"overrides": ["a=3"], "run_id": "r3", "status": "cached"},
        {"overrides": ["a=4"], "run_id": None, "status": "running"},
        {"overrides": ["a=5"], "run_id": None, "status": "failed", "error": "x"},
    ]
    (exp / "runs").mkdir(parents=True)
    (exp / "manifest.json").write_text(json.dumps({"experiment": "e", "grid": ["a=1,2,3,4,5"], "runs": runs}))
    for run_id, events, rate in (("r1", 1000, 2.0e6), ("r2", 3000, 4.0e6), ("r3", 5000, 9.0e6)):
        (exp / "runs" / run_id).mkdir()
        (exp / "runs" / run_id / "telemetry.json").write_text(json.dumps({"events": events, "events_per_second": rate}))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SweepCollector(exp, "e"))  # type: ignore[arg-type]
    got = samples(generate_latest(registry).decode())
    assert 2 == got[("hftlab_sweep_runs", "done")]
    assert 1 == got[("hftlab_sweep_runs", "cached")]
    assert 1 == got[("hftlab_sweep_runs", "running")]
    assert 1 == got[("hftlab_sweep_runs", "failed")]
    assert 0 == got[("hftlab_sweep_runs", "pending")]
    assert 3.0e6 == got[("hftlab_sweep_events_per_second", "")]  # executed runs only: the cached r3 is not counted
    assert 4000 == got[("hftlab_sweep_events_total", "")]


def test_endpoint_is_scraped_over_loopback_during_a_sweep(tmp_path: Path):
    project = make_project(tmp_path / "p")
    port = free_port()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HFTLAB_PROJECT": str(project)}
    args = ["run", "-m", "experiment_name=prom", "strategy.params.half_spread=0.1,0.2,0.3", f"sweep.prometheus_port={port}"]  # fmt: skip
    proc = subprocess.Popen([HFTLAB, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    scraped: list[dict[tuple[str, str], float]] = []
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            if proc.poll() is None:  # count only what was served while the sweep was running
                scraped.append(samples(text))
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert 0 == proc.returncode, out + err
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in out
    assert scraped, "no scrape succeeded while the sweep ran"
    for got in scraped:  # every scrape accounts for all three grid points
        assert 3 == sum(v for (name, _), v in got.items() if name == "hftlab_sweep_runs")
    assert any(got[("hftlab_sweep_runs", "pending")] > 0 for got in scraped)
    try:  # the endpoint is gone with the sweep
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        raise AssertionError("the endpoint still answers after the sweep ended")
    except (urllib.error.URLError, ConnectionError):
        pass


def test_a_port_that_cannot_be_served_stops_the_sweep_before_anything_is_written(tmp_path: Path):
    """The port is taken: exit non-zero naming the key and address; no manifest, no run."""
    project = make_project(tmp_path / "p")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = hftlab(project, "run", "-m", "experiment_name=busy", f"sweep.prometheus_port={port}", check=False)
    assert 0 != out.returncode
    assert f"sweep.prometheus_port={port}: cannot serve metrics on 127.0.0.1:{port}" in out.stderr
    assert "Address already in use" in out.stderr
    assert not (project / "results" / "busy").exists()
