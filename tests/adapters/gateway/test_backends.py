"""The backend contract, run against the embedded log and against JetStream + the service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniroute.adapters.gateway.backend import Backend
from omniroute.adapters.gateway.embedded import EmbeddedBackend
from omniroute.adapters.gateway.jetstream import JetStreamBackend
from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.engine.policy import Policy
from tests.contracts.backend import TENANT, BackendContract, closing
from tests.support.nats import options_for, unique
from tests.support.service import InProcessService, config_toml, service_config


class TestEmbeddedBackend(BackendContract):
    @pytest.fixture(autouse=True)
    def _where(self, tmp_path: Path) -> None:
        self.path = tmp_path / "g.olog"

    def started(self) -> contextlib.AbstractAsyncContextManager[Backend]:
        return closing(EmbeddedBackend(self.path, Policy(), tick_s=60))


class TestJetStreamBackend(BackendContract):
    @pytest.fixture(autouse=True)
    def _where(self, nats_server: LocalNatsServer, tmp_path: Path) -> None:
        self.server = nats_server
        self.stream = StreamOptions(name=unique("GW"), prefix=unique("gw"))
        self.base = tmp_path

    @contextlib.asynccontextmanager
    async def _started(self) -> AsyncIterator[Backend]:
        text = config_toml(self.server.url, self.stream, [TENANT],
                           extra_service="tick_interval_s = 0\nsnapshots = \"off\"")  # fmt: skip
        service = InProcessService(service_config(text, self.base))
        try:
            backend = JetStreamBackend(options_for(self.server), self.stream, [TENANT], Policy())
            async with closing(backend):
                yield backend
        finally:
            service.stop()

    def started(self) -> contextlib.AbstractAsyncContextManager[Backend]:
        return self._started()
