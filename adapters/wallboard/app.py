"""The wallboard's ASGI application.

========================  ===================================================================
``GET /``                  the board, rendered on the server (complete without JS); the
                           query string ``tenant``, ``queue``, ``channel`` filters it
``GET /events``            its Server-Sent Events (:mod:`.stream`), with the same filters
``GET /state.json``        the live state (``LiveState.to_json``), with the same filters
``GET /health``            ``{"status": "ok", "as_of", "source"}`` (200) while the source
                           reads (a following source: and its ``position``), else
                           ``"degraded"`` with the error (503)
``GET /static/...``        the stylesheet and the client script (nothing from elsewhere)
========================  ===================================================================

Nothing is written: the application only reads its :class:`.sources.StateSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .filters import Filters
from .page import page, problem_page
from .reads import Reads
from .sources import StateSource
from .stream import event_stream

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).with_name("static")
"""The stylesheet and the client script."""

_NO_CACHE = {"Cache-Control": "no-cache"}


def create_app(source: StateSource, *, every_s: float = 1.0) -> Starlette:
    """The wallboard of ``source``, re-read every ``every_s`` seconds for the streams.

    ``app.state.stop`` (an ``asyncio.Event``, new at each start) ends the open streams; it
    is set when the application shuts down, or once ``app.state.should_exit()`` (a
    callable :func:`.serve` sets: the server is stopping) turns true.
    """
    if every_s <= 0:
        raise ValueError(f"every_s must be > 0, got {every_s}")
    reads = Reads(source, fresh_s=every_s / 2)

    async def board(request: Request) -> Response:
        filters = Filters.of(request.query_params)
        try:
            state = await reads.read(filters)
            choices = await reads.read(Filters()) if filters else state
        except Exception as exc:  # the page says so; the next load tries again
            problem = f"{type(exc).__name__}: {exc}"
            return HTMLResponse(problem_page(problem), status_code=503, headers=_NO_CACHE)
        return HTMLResponse(page(state, filters, choices), headers=_NO_CACHE)

    async def events(request: Request) -> Response:
        stop: asyncio.Event = request.app.state.stop
        filters = Filters.of(request.query_params)
        stream = event_stream(reads, filters, every_s, stop, request.is_disconnected)
        headers = {**_NO_CACHE, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, headers=headers, media_type="text/event-stream")

    async def state_json(request: Request) -> Response:
        state = await reads.read(Filters.of(request.query_params))
        return JSONResponse(state.to_json(), headers=_NO_CACHE)

    async def health(_request: Request) -> Response:
        body: dict[str, Any] = {"source": repr(source)}
        if (position := getattr(source, "position", None)) is not None:
            body["position"] = position  # a following source's: the log events projected
        problem = getattr(source, "error", None)  # a following source's projection thread
        try:
            state = await reads.read(Filters())
            body["as_of"] = state.as_of.isoformat()
        except Exception as exc:
            problem = problem or exc
        if problem is not None:
            body.update(status="degraded", error=f"{type(problem).__name__}: {problem}")
            return JSONResponse(body, status_code=503, headers=_NO_CACHE)
        return JSONResponse({"status": "ok", **body}, headers=_NO_CACHE)

    async def watch(should_exit: Callable[[], bool], stop: asyncio.Event) -> None:
        while not should_exit():
            await asyncio.sleep(0.1)
        stop.set()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.stop = stop = asyncio.Event()  # (an event belongs to its loop)
        should_exit: Callable[[], bool] | None = getattr(app.state, "should_exit", None)
        watcher = asyncio.create_task(watch(should_exit, stop)) if should_exit else None
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    routes = [
        Route("/", board, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/state.json", state_json, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.stop = asyncio.Event()
    return app
