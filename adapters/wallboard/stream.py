"""The wallboard's Server-Sent Events: the board's sections as they change.

Every ``every_s`` the stream reads the state (through the shared :class:`.Reads`) and
renders its sections (:func:`.page.sections`):

- ``event: agents``: the agents' section, sent as soon as it changes;
- ``event: board``: the aggregate sections (queues, summary, chart, breaches), sent when
  they change, at most once a second;
- ``event: problem``: the source cannot be read (``{"error": ...}``, once per error);
  the stream goes on, and sends the whole board again once it reads;
- ``: ping`` comments when nothing was sent for ``heartbeat_s``.

``data`` is a JSON object of section name -> HTML, which the client puts into the
element of that ``data-section``. Each event's ``id`` is the state's ``as_of`` in epoch
milliseconds; a client reconnecting (``Last-Event-ID``) gets the whole board again, as a
new one does: sections are snapshots, there is nothing to replay. The stream ends when
the client goes or ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from .filters import Filters
from .page import AGENT_SECTIONS, BOARD_SECTIONS, sections
from .reads import Reads

__all__ = ["BOARD_MIN_S", "event_stream"]

BOARD_MIN_S = 1.0
"""The aggregates are pushed at most once per this many seconds."""
RETRY_MS = 2000
"""How soon a client whose stream broke reconnects."""


def _sse(kind: str, ident: str | None, data: dict[str, str]) -> bytes:
    head = f"id: {ident}\n" if ident is not None else ""
    body = json.dumps(data, separators=(",", ":"))
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


async def event_stream(
    reads: Reads,
    filters: Filters,
    every_s: float,
    stop: asyncio.Event,
    disconnected: Callable[[], Awaitable[bool]],
    heartbeat_s: float = 15.0,
) -> AsyncIterator[bytes]:
    """The events for ``filters``, until the client goes or ``stop`` is set."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    sent: dict[str, str] = {}
    said: str | None = None  # the problem the client was told of
    board_at = -BOARD_MIN_S
    beat = time.monotonic() + heartbeat_s
    while not stop.is_set() and not await disconnected():
        wait = every_s
        try:
            state = await reads.read(filters)
        except Exception as exc:
            sent.clear()  # once it reads again, send everything
            problem = f"{type(exc).__name__}: {exc}"
            if problem != said:
                said = problem
                yield _sse("problem", None, {"error": problem})
                beat = time.monotonic() + heartbeat_s
            elif time.monotonic() >= beat:
                yield b": ping\n\n"
                beat = time.monotonic() + heartbeat_s
        else:
            said = None
            parts = sections(state, filters)
            ident = str(round(state.as_of.timestamp() * 1000))
            out = []
            if any(parts[name] != sent.get(name) for name in AGENT_SECTIONS):
                out.append(_sse("agents", ident, {n: parts[n] for n in AGENT_SECTIONS}))
                sent.update((n, parts[n]) for n in AGENT_SECTIONS)
            if any(parts[name] != sent.get(name) for name in BOARD_SECTIONS):
                due = board_at + BOARD_MIN_S - time.monotonic()
                if due <= 0:
                    board_at = time.monotonic()
                    out.append(_sse("board", ident, {n: parts[n] for n in BOARD_SECTIONS}))
                    sent.update((n, parts[n]) for n in BOARD_SECTIONS)
                else:
                    wait = min(wait, due)  # not later than it may go
            if out:
                yield b"".join(out)
                beat = time.monotonic() + heartbeat_s
            elif time.monotonic() >= beat:
                yield b": ping\n\n"
                beat = time.monotonic() + heartbeat_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
