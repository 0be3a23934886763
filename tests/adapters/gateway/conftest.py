"""A gateway on an embedded log with one source per provider, served in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.gateway import EmbeddedBackend, Gateway, build_app, parse_config
from omniroute.engine.events import Event
from omniroute.engine.policy import Policy

SECRET = "s3cret"
"""Every source's secret (app secret, bot token, auth token, relay token...)."""
TWILIO_URL = "https://cc.example.com/webhooks/twilio/main"
TOKENS = {"ann": "ann-token", "bob": "bob-token"}

CONFIG: dict[str, Any] = {
    "gateway": {
        "tenant": "acme", "region": "GB", "public_url": "https://cc.example.com",
        "rate_per_s": 0,
    },
    "source": [
        {"provider": p, "name": "main", "secret": SECRET, "verify_token": "verify-me"}
        for p in ("whatsapp", "messenger", "instagram", "facebook", "telegram", "twilio",
                  "email", "webchat", "x")
    ],
    "route": [
        {"keywords": ["refund", "invoice"], "queue": "default", "skills": {"billing": 1},
         "priority": 1},
        {"channel": "voice", "skills": {"support": 1}},
    ],
    "agent": [{"agent_id": name, "token": token} for name, token in TOKENS.items()],
}  # fmt: skip


def config(**gateway: Any) -> dict[str, Any]:
    """:data:`CONFIG` with ``[gateway]`` settings changed."""
    return {**CONFIG, "gateway": {**CONFIG["gateway"], **gateway}}


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**gateway_settings)`` (or ``data=`` a whole configuration): a started
    gateway on ``tmp_path/g.olog``."""
    clients: list[TestClient] = []

    def make(
        policy: Policy | None = None, data: dict[str, Any] | None = None, **gateway: Any
    ) -> TestClient:
        gw = Gateway(
            parse_config(data if data is not None else config(**gateway)),
            EmbeddedBackend(tmp_path / "g.olog", policy or Policy(), tick_s=0.05),
        )
        client = TestClient(build_app(gw), base_url="https://cc.example.com")
        client.__enter__()
        client.app_state = gw  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def logged(path: Path) -> list[Event]:
    """Every event of the gateway's log, in order."""
    with FileLog(path, readonly=True) as log:
        return [event for _, event in log.read()]
