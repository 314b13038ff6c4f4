"""Fixtures of the sweep tests: a real local Ray cluster."""

from __future__ import annotations

import pytest

from tests.cluster import ray_nodes


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster (2 CPUs) for the tests of one module: its address."""
    with ray_nodes([{}], cpus=2) as address:
        yield address
