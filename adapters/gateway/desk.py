"""The agent desk API: agents and bots log in with a bearer token, act over HTTP JSON and
receive their work as a Server-Sent Events stream.

Every route needs ``Authorization: Bearer <token>`` (a ``[[agent]]`` login: 401 if
missing or unknown); the token names the tenant and the agent, so nobody acts for another.

=============================================  ==============================================
``GET /desk/me``                                the agent's desk: status, responsiveness, the
                                                conversations it holds (stage, channel, live
                                                legs, the offer's deadline); 404 unregistered
``POST /desk/status``                           ``{"status": "available"|"away"|"offline",
                                                "reason"?}``
``POST /desk/conversations/{id}/accept``        accept the offer
``POST /desk/conversations/{id}/decline``       ``{"reason"?}``
``POST /desk/conversations/{id}/end``           ``{"leg"?}``: the agent ends it (or one leg)
``POST /desk/conversations/{id}/wrapup``        wrap-up done
``POST /desk/conversations/{id}/transfer``      ``{"to_agent"?, "to_queue"?, "skills"?,
                                                "mode": "cold"|"warm"}``
``POST /desk/conversations/{id}/messages``      ``{"leg"?}``: the agent wrote to the customer
``GET /desk/events``                            the agent's events, ``text/event-stream``
=============================================  ==============================================

Each POST is one input (``id`` ``desk:<agent>:<hex>``) answered once the log holds it:
200 ``{"id", "position"?}`` applied, 409 ``{"error"}`` with the engine's reason (or the
desk's: only the conversation's agent ends it or writes in it), 202 ``{"id", "status":
"pending"}`` when no verdict came within 5 s, 400 a body that is not the JSON asked for,
413 too large, 429 rate-limited, 503 the log cannot be written.

The stream sends ``id: <log position>``, ``event: <type tag>`` (``conversation.offered``...)
and ``data: <event JSON>``. With ``Last-Event-ID`` (or ``?last_event_id=``) still in the
history it resumes right after that event; otherwise it starts with ``event: desk`` (the
``/desk/me`` JSON, ``null`` for an agent not registered, at the log's latest position; it
may already show what the next events say), then what follows. ``: ping`` comments every
``[desk] heartbeat_s``. A stream ends when the client goes, or when ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from omniroute.engine.events import (
    AgentStatusChanged,
    Contact,
    ConversationEnded,
    EventRejected,
    Input,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    TransferRequested,
    WrapUpCompleted,
    encode_json,
    tag_of,
)
from omniroute.engine.state import ConversationState, EngineState, TenantState

from .feed import Feed
from .gateway import Gateway
from .limits import BodyTooLarge, read_body

__all__ = ["DeskView", "desk_view", "routes"]

_log = logging.getLogger(__name__)

VERDICT_S = 5.0
"""How long a POST waits for the engine's verdict before answering 202."""


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A desk request's JSON body: a field it does not name is an error (400)."""


class _Status(_Body, frozen=True):
    status: Literal["available", "away", "offline"]
    reason: str | None = None


class _Decline(_Body, frozen=True):
    reason: str | None = None


class _Leg(_Body, frozen=True):
    leg: str | None = None


class _Transfer(_Body, frozen=True):
    to_agent: str | None = None
    to_queue: str | None = None
    skills: dict[str, int] | None = None
    mode: Literal["cold", "warm"] = "cold"


class LegView(msgspec.Struct, frozen=True):
    leg_id: str
    channel: str
    contact: Contact


class ConversationView(msgspec.Struct, frozen=True, omit_defaults=True):
    conversation_id: str
    stage: str
    """``offered`` to this agent, else the conversation's stage (``assigned``, ``wrap_up``)."""
    channel: str
    queue: str
    legs: list[LegView]
    offer_deadline: int | None = None


class DeskView(msgspec.Struct, frozen=True):
    """What ``GET /desk/me`` and the stream's ``desk`` event show."""

    tenant: str
    agent_id: str
    status: str
    responsive: bool
    kind: str
    conversations: list[ConversationView]


def _offer_deadline(tenant: TenantState, conv: ConversationState) -> int | None:
    key = ("offer", conv.conversation_id, conv.offer_seq)  # not a withdrawn offer's timer
    for timer in tenant.timers:
        if (timer.kind, timer.key, timer.gen) == key:
            return timer.deadline
    return None


def desk_view(state: EngineState, tenant: str, agent_id: str) -> DeskView | None:
    """The agent's desk in ``state``, or None if it is not registered."""
    t = state.tenants.get(tenant)
    agent = t.agents.get(agent_id) if t is not None else None
    if t is None or agent is None:
        return None
    held = []
    for cid in agent.holding:
        conv = t.conversations.get(cid)
        if conv is None:
            continue
        offered = conv.offer_agent == agent_id and conv.owner != agent_id
        deadline = _offer_deadline(t, conv) if offered else None
        legs = [LegView(g.leg_id, g.channel, g.contact) for g in conv.legs if g.ended_ts is None]
        stage = "offered" if offered else conv.stage
        held.append(ConversationView(cid, stage, conv.channel, conv.queue, legs, deadline))
    return DeskView(tenant, agent_id, agent.status, agent.responsive, agent.kind, held)


Endpoint = Callable[[Request], Awaitable[Response]]
Build = Callable[[str, str, int, str, str, Any], Input]
"""(tenant, agent, ts, id, conversation id, body) -> the input."""

_ACTIONS: dict[str, tuple[type[_Body], Build, bool]] = {
    # name: (body, input, only the conversation's owner may do it)
    "accept": (_Body, lambda t, a, ts, i, c, b: OfferAccepted(
        tenant=t, ts=ts, id=i, conversation_id=c, agent_id=a), False),
    "decline": (_Decline, lambda t, a, ts, i, c, b: OfferDeclined(
        tenant=t, ts=ts, id=i, conversation_id=c, agent_id=a, reason=b.reason), False),
    "end": (_Leg, lambda t, a, ts, i, c, b: ConversationEnded(
        tenant=t, ts=ts, id=i, conversation_id=c, by="agent", leg=b.leg), True),
    "wrapup": (_Body, lambda t, a, ts, i, c, b: WrapUpCompleted(
        tenant=t, ts=ts, id=i, conversation_id=c, agent_id=a), False),
    "transfer": (_Transfer, lambda t, a, ts, i, c, b: TransferRequested(
        tenant=t, ts=ts, id=i, conversation_id=c, agent_id=a, to_agent=b.to_agent,
        to_queue=b.to_queue, skills=b.skills, mode=b.mode), False),
    "messages": (_Leg, lambda t, a, ts, i, c, b: MessageReceived(
        tenant=t, ts=ts, id=i, conversation_id=c, direction="out", leg=b.leg), True),
}  # fmt: skip


def _status(t: str, a: str, ts: int, i: str, _c: str, b: Any) -> Input:
    return AgentStatusChanged(tenant=t, ts=ts, id=i, agent_id=a, status=b.status, reason=b.reason)


def _sse(position: int, kind: str, data: bytes) -> bytes:
    """One event; before the log's first event there is no position to resume from."""
    head = b"id: %d\n" % position if position >= 0 else b""
    return head + b"event: %s\ndata: %s\n\n" % (kind.encode(), data)


def _position(feed: Feed, event_id: str) -> int | None:
    """Where the input ``event_id`` is in the log, if it is among the feed's newest."""
    for position, _, event in itertools.islice(reversed(feed.entries), 256):
        if event.id == event_id:
            return position
    return None


def _owner_problem(state: EngineState, tenant: str, agent: str, cid: str) -> str | None:
    t = state.tenants.get(tenant)
    conv = t.conversations.get(t.aliases.get(cid, cid)) if t is not None else None
    if conv is None or conv.owner != agent:
        return f"conversation {cid!r} is not held by {agent!r}"
    return None


def routes(gw: Gateway, stop: asyncio.Event | None = None) -> list[BaseRoute]:
    """The desk routes of ``gw``; open streams end when ``stop`` is set (server shutdown)."""
    backend = gw.backend

    def reply(
        name: str, status: int, body: object, headers: dict[str, str] | None = None
    ) -> Response:
        gw.metrics.requests.labels("desk", name, str(status)).inc()
        return Response(msgspec.json.encode(body), status, headers, "application/json")

    def login(name: str, request: Request) -> tuple[str, str] | Response:
        """(tenant, agent) of the request's bearer token, or the answer refusing it."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        who = gw.logins.get(hashlib.sha256(token.encode()).hexdigest()) if token else None
        if scheme.lower() != "bearer" or who is None:
            error = {"error": "a valid bearer token is required"}
            return reply(name, 401, error, {"WWW-Authenticate": "Bearer"})
        if not gw.limiter.allow(f"desk:{who[0]}/{who[1]}"):
            return reply(name, 429, {"error": "too many requests"})
        return who

    async def me(request: Request) -> Response:
        who = login("me", request)
        if isinstance(who, Response):
            return who
        view = desk_view(backend.engine.state, *who)
        if view is None:
            return reply("me", 404, {"error": f"agent {who[1]!r} is not registered"})
        return reply("me", 200, view)

    def action(name: str, body_type: type[_Body], build: Build, owner_only: bool) -> Endpoint:
        async def act(request: Request) -> Response:
            who = login(name, request)
            if isinstance(who, Response):
                return who
            tenant, agent = who
            cid: str = request.path_params.get("cid", "")
            try:
                raw = await read_body(request, gw.config.gateway.max_body_bytes)
                body = msgspec.json.decode(raw.strip() or b"{}", type=body_type)
            except BodyTooLarge as exc:
                return reply(name, 413, {"error": str(exc)})
            except msgspec.DecodeError as exc:
                return reply(name, 400, {"error": f"body: {exc}"})
            if not backend.healthy:
                return reply(name, 503, {"error": "the log cannot be written"})
            event_id = f"desk:{agent}:{uuid.uuid4().hex}"
            problem: list[str] = []

            def make(now: int) -> list[Input]:
                state = backend.engine.state
                found = _owner_problem(state, tenant, agent, cid) if owner_only else None
                if found is not None:
                    problem.append(found)
                    return []
                backend.watch(tenant, event_id)
                return [build(tenant, agent, now, event_id, cid, body)]

            try:
                await backend.submit(tenant, make)
            except Exception as exc:  # not durable: the desk may retry
                _log.warning("desk %s by %s/%s not stored: %s", name, tenant, agent, exc)
                return reply(name, 503, {"error": "the log cannot be written"})
            if problem:
                return reply(name, 409, {"error": problem[0]})
            try:
                rejected: EventRejected | None = await backend.verdict(tenant, event_id, VERDICT_S)
            except TimeoutError:
                return reply(name, 202, {"id": event_id, "status": "pending"})
            if rejected is not None:
                return reply(name, 409, {"error": rejected.reason})
            position = _position(backend.feed(tenant), event_id)
            done = {"id": event_id} if position is None else {"id": event_id, "position": position}
            return reply(name, 200, done)

        return act

    async def stream(tenant: str, agent: str, last: int | None) -> AsyncIterator[bytes]:
        feed = backend.feed(tenant)
        heartbeat = gw.config.desk.heartbeat_s
        gw.metrics.streams.inc()
        try:
            fresh = last is None or last >= feed.end  # none, or not of this log
            beat = time.monotonic() + heartbeat
            while stop is None or not stop.is_set():
                if fresh or last is None or not feed.covers(last):  # or too far behind
                    fresh, last = False, feed.end - 1
                    view = desk_view(backend.engine.state, tenant, agent)
                    yield _sse(last, "desk", msgspec.json.encode(view))
                batch = feed.since(last, agent)
                if batch:
                    last = batch[-1][0]
                    yield b"".join(_sse(p, tag_of(e), encode_json(e)) for p, e in batch)
                elif (wait := beat - time.monotonic()) > 0:
                    await feed.wait(min(wait, 1.0))
                    continue
                else:
                    yield b": ping\n\n"
                beat = time.monotonic() + heartbeat
        finally:
            gw.metrics.streams.dec()

    async def events(request: Request) -> Response:
        who = login("events", request)
        if isinstance(who, Response):
            return who
        raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        try:
            last = int(raw) if raw else None
        except ValueError:
            last = None  # not one of ours: start from the desk
        gw.metrics.requests.labels("desk", "events", "200").inc()
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(*who, last), headers=headers,
                                 media_type="text/event-stream")  # fmt: skip

    return [
        Route("/desk/me", me, methods=["GET"]),
        Route("/desk/events", events, methods=["GET"]),
        Route("/desk/status", action("status", _Status, _status, False), methods=["POST"]),
        *(
            Route(f"/desk/conversations/{{cid}}/{name}", action(name, *spec), methods=["POST"])
            for name, spec in _ACTIONS.items()
        ),
    ]
