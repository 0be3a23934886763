"""``omniroute gateway``: the application under uvicorn, until SIGTERM or Ctrl-C.

uvicorn owns the signals: a stop refuses new connections, lets the requests in flight
finish (``drain_s``; open desk streams are closed), then the backend appends what is
waiting and closes the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from omniroute.engine.policy import Policy

from .app import build_app
from .backend import Backend
from .config import GatewayConfig
from .embedded import EmbeddedBackend
from .gateway import Gateway
from .jetstream import JetStreamBackend

__all__ = ["make_gateway", "run"]

_log = logging.getLogger(__name__)


def make_gateway(
    config: GatewayConfig, policy: Policy, embedded: str | os.PathLike[str] | None = None
) -> Gateway:
    """The gateway of ``config``: on the embedded log at ``embedded``, else on NATS."""
    opts = config.gateway
    logins = config.logins()
    backend: Backend
    if embedded is not None:
        backend = EmbeddedBackend(
            embedded, policy, history=opts.sse_history, tick_s=opts.tick_s,
            tenants=config.tenants(logins),
        )  # fmt: skip
    else:
        backend = JetStreamBackend(
            config.nats, config.stream, config.tenants(logins), policy, history=opts.sse_history
        )
    return Gateway(config, backend, logins=logins)


class _Server(uvicorn.Server):
    """uvicorn, ending the open desk streams as soon as it stops (it waits for open
    connections before the application's shutdown runs)."""

    def __init__(self, config: uvicorn.Config, stop: asyncio.Event) -> None:
        super().__init__(config)
        self.stop = stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stop.set()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT drain and return (uvicorn's own handlers re-raise the
        signal after the drain, so the process would end killed, not stopped)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def run(
    gw: Gateway, host: str | None = None, port: int | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:  # fmt: skip
    """Serve ``gw`` until stopped (``on_ready`` once it accepts requests); the exit status."""
    opts = gw.config.gateway
    app = build_app(gw, on_ready)
    server = _Server(
        uvicorn.Config(
            app, host=host or opts.host, port=port or opts.port, log_config=None,
            lifespan="on", timeout_graceful_shutdown=int(max(1, opts.drain_s)),
            proxy_headers=False, access_log=False,
        ),
        app.state.stop,
    )  # fmt: skip
    server.run()
    return 0 if server.started else 1
