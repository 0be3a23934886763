"""Fixtures of the service tests: ``nats_cluster``, a 3-node JetStream cluster of the test's
own on loopback, whose nodes the test may kill (``kill -9``) and restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omniroute.adapters.nats.cluster import LocalNatsCluster
from tests.support.nats import require_nats_server


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[LocalNatsCluster]:
    require_nats_server()
    with LocalNatsCluster(tmp_path / "cluster") as cluster:
        yield cluster
