"""The Prometheus endpoint of a sweep listens on loopback unless told otherwise, and serves only the
sweep's own metrics (no process, platform or Python metrics of the default registry)."""

from __future__ import annotations

import inspect
import json
import shutil
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hftlab.run.schema import SweepConfig
from hftlab.sweep.prometheus import serve
from tests.cluster import free_port
from tests.conftest import PROJECT_ROOT
from tests.run.test_run_e2e import hftlab

#: Another loopback address (Linux routes all of 127.0.0.0/8 to lo): a server bound to 127.0.0.1 does
#: not answer on it, one bound to every interface (0.0.0.0) does.
OTHER_LOOPBACK = "127.0.0.2"


def experiment(tmp_path: Path) -> Path:
    exp = tmp_path / "results" / "e"
    (exp / "runs").mkdir(parents=True)
    runs = [{"overrides": ["a=1"], "run_id": None, "status": "pending"}]
    (exp / "manifest.json").write_text(json.dumps({"experiment": "e", "grid": ["a=1"], "runs": runs}))
    return exp


def answers(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_composed_configuration_binds_loopback(tmp_path: Path) -> None:
    """`hftlab run --cfg job` on the project's conf/: sweep.prometheus_addr is 127.0.0.1 (the schema's
    default; no config file overrides it)."""
    project = tmp_path / "p"
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf")
    shutil.copytree(PROJECT_ROOT / "strategies", project / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    out = hftlab(project, "run", "--cfg", "job")
    assert "  prometheus_addr: 127.0.0.1\n" in out.stdout
    assert "127.0.0.1" == SweepConfig().prometheus_addr
    assert "127.0.0.1" == inspect.signature(serve).parameters["addr"].default


def test_serve_listens_on_127_0_0_1_only_by_default(tmp_path: Path) -> None:
    """serve() without an address: bound to 127.0.0.1, scraped there, refused on another loopback address."""
    port = free_port()
    server = serve(experiment(tmp_path), "e", port)
    try:
        assert "127.0.0.1" == server.server_address[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert 200 == response.status
        assert not answers(OTHER_LOOPBACK, port)
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_sees_a_server_bound_to_every_interface(tmp_path: Path) -> None:
    """The control for the test above: with addr=0.0.0.0 (an explicit choice) the same probe answers."""
    port = free_port()
    server = serve(experiment(tmp_path), "e", port, addr="0.0.0.0")
    try:
        assert answers(OTHER_LOOPBACK, port)
    finally:
        server.shutdown()
        server.server_close()


def test_the_endpoint_exposes_only_the_sweep_metrics(tmp_path: Path) -> None:
    """Run counts by status, events/s and the events total, labelled by experiment (and status): nothing
    about the process, the host or the Python runtime."""
    port = free_port()
    server = serve(experiment(tmp_path), "e", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    families = list(text_string_to_metric_families(text))
    assert {"hftlab_sweep_runs", "hftlab_sweep_events_per_second", "hftlab_sweep_events"} == {f.name for f in families}
    assert {"experiment", "status"} == {label for f in families for s in f.samples for label in s.labels}
    assert {"e"} == {s.labels["experiment"] for f in families for s in f.samples}
