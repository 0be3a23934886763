"""The gateway's ASGI application: webhooks, the agent desk, health and metrics.

``GET /health`` is ``{"status": "ok"}`` (200) while the log can be written, else
``"degraded"`` (503), with each tenant's log position the gateway's state has reached;
``GET /metrics`` is the Prometheus text format (:mod:`.metrics`). The backend opens with
the application (lifespan), with the mailbox readers of email sources that name a
Maildir or mbox (:mod:`.maildir`), and closes with it, after the requests in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import desk, webhooks
from .gateway import Gateway
from .maildir import MailboxReader

__all__ = ["build_app"]


def build_app(gw: Gateway, on_ready: Callable[[], None] | None = None) -> Starlette:
    """The application serving ``gw``; its lifespan starts and closes the backend.
    ``app.state.stop`` ends the open desk streams (the server sets it when it stops);
    ``on_ready`` is called once the backend has caught up with its log."""
    stop = asyncio.Event()

    async def health(_request: Request) -> Response:
        ok = gw.backend.healthy
        body = {
            "status": "ok" if ok else "degraded",
            "backend": type(gw.backend).__name__,
            "positions": {tenant: feed.end for tenant, feed in gw.backend.feeds.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gw.backend.start()
        await gw.register_agents()
        readers = [
            asyncio.create_task(MailboxReader(gw, s).run(), name=f"mailbox {s.name}")
            for s in gw.config.source
            if s.maildir or s.mbox
        ]
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            stop.set()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await gw.backend.close()

    routes = [
        *webhooks.routes(gw),
        *desk.routes(gw, stop),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.stop = stop
    return app
