"""Shared test settings: hypothesis profiles (``HYPOTHESIS_PROFILE=long`` for exhaustive runs),
and the real ``nats-server`` fixtures the adapter and CLI tests share (imported lazily, so
the engine's tests run with the core install alone).

- ``nats_server``: one server per test module (JetStream in a temp folder, free loopback
  port); the tests of a module isolate themselves by tenant name or stream name, and
  server-wide state (KV buckets with their TTLs) does not leak between modules.
- ``fresh_nats_server``: a server of the test's own, which the test may stop, kill and
  restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from omniroute.adapters.nats.server import LocalNatsServer

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNatsServer]:
    from omniroute.adapters.nats.server import LocalNatsServer
    from tests.support.nats import require_nats_server

    require_nats_server()
    with LocalNatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def fresh_nats_server(tmp_path: Path) -> Iterator[LocalNatsServer]:
    from omniroute.adapters.nats.server import LocalNatsServer
    from tests.support.nats import require_nats_server

    require_nats_server()
    with LocalNatsServer(tmp_path / "nats") as server:
        yield server
