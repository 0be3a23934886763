"""The agent desk API on an embedded log: logins, actions, and each agent's event stream."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from omniroute.adapters.gateway.config import parse_config
from omniroute.adapters.gateway.desk import routes
from omniroute.adapters.gateway.embedded import EmbeddedBackend
from omniroute.adapters.gateway.gateway import Gateway
from omniroute.engine.events import (
    AgentRegistered,
    Contact,
    ConversationArrived,
    Input,
    MessageReceived,
    OfferDeclined,
)
from omniroute.engine.policy import Policy

TENANT = "acme"
ANN = {"Authorization": "Bearer ann-token"}
BOB = {"Authorization": "Bearer bob-token"}
Sse = dict[str, Any]
"""One stream event: ``id`` (int), ``event`` (its type), ``data`` (parsed JSON)."""


class Desk:
    """A gateway serving only the desk routes, driven by a TestClient."""

    def __init__(self, tmp_path: Path, history: int = 10_000) -> None:
        config = parse_config({
            "gateway": {"tenant": TENANT, "rate_per_s": 0},
            "desk": {"heartbeat_s": 0.1},
            "agent": [{"agent_id": "ann", "token": "ann-token"},
                      {"agent_id": "bob", "token": "bob-token"}],
        })  # fmt: skip
        self.log = tmp_path / "g.olog"
        self.gw = Gateway(config, EmbeddedBackend(self.log, Policy(), history=history))
        self.stop = asyncio.Event()

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            await self.gw.backend.start()
            yield
            await self.gw.backend.close()

        app = Starlette(routes=routes(self.gw, self.stop), lifespan=lifespan)
        self.client = TestClient(app)

    def submit(self, make: Callable[[int], list[Input]]) -> list[Input]:
        """Inputs into the log as a channel would put them."""
        return self.client.portal.call(self.gw.backend.submit, TENANT, make)  # type: ignore[union-attr]

    def register(self, *agents: str) -> None:
        self.submit(
            lambda now: [AgentRegistered(tenant=TENANT, ts=now, agent_id=a) for a in agents]
        )

    def arrive(self, cid: str) -> None:
        def make(now: int) -> list[Input]:
            contact = Contact("whatsapp", f"wa-{cid}")
            return [ConversationArrived(tenant=TENANT, ts=now, conversation_id=cid,
                                        channel="whatsapp", contact=contact)]  # fmt: skip

        self.submit(make)

    def post(self, path: str, body: Any = None, headers: dict[str, str] = ANN) -> Any:
        return self.client.post(path, json=body, headers=headers)

    @contextmanager
    def stream(self, headers: dict[str, str] = ANN, url: str = "/desk/events") -> Iterator[Reader]:
        with self.client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            yield Reader(response.iter_lines())


class Reader:
    """The events of an open stream; ``: ping`` comments counted, never returned."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.pings = 0

    def next(self, max_pings: int = 30) -> Sse | None:
        """The next event; None after ``max_pings`` heartbeats without one (or the end)."""
        event: Sse = {}
        quiet = 0
        for line in self.lines:
            if line == ": ping":
                self.pings += 1
                quiet += 1
                if quiet >= max_pings:
                    return None
            elif line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif not line and event:
                return event
        return None

    def until(self, kind: str) -> list[Sse]:
        """Events up to and including the next ``kind``."""
        seen: list[Sse] = []
        while (event := self.next()) is not None:
            seen.append(event)
            if event["event"] == kind:
                return seen
        raise AssertionError(f"no {kind} in {seen}")

    def backlog(self) -> list[Sse]:
        """Events until the stream goes quiet (its first heartbeat)."""
        seen: list[Sse] = []
        while (event := self.next(max_pings=1)) is not None:
            seen.append(event)
        return seen


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk(tmp_path)
    with d.client:
        d.register("ann", "bob")
        yield d


def offered_to_ann(desk: Desk, cid: str = "c1") -> None:
    assert desk.post("/desk/status", {"status": "available"}).status_code == 200
    desk.arrive(cid)


def test_every_route_needs_a_known_bearer_token(desk: Desk) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic ann-token"},
                    {"Authorization": "Bearer "}):  # fmt: skip
        assert desk.client.get("/desk/me", headers=headers).status_code == 401
        assert desk.client.get("/desk/events", headers=headers).status_code == 401
        r = desk.post("/desk/status", {"status": "available"}, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer" and "error" in r.json()
        assert desk.post("/desk/conversations/c1/accept", headers=headers).status_code == 401
    assert desk.gw.backend.engine.state.tenants[TENANT].agents["ann"].status == "offline"


def test_me_shows_the_agents_desk(desk: Desk) -> None:
    r = desk.client.get("/desk/me", headers=ANN)
    assert r.status_code == 200
    assert r.json() == {"tenant": TENANT, "agent_id": "ann", "status": "offline",
                        "responsive": True, "kind": "human", "conversations": []}  # fmt: skip
    offered_to_ann(desk)
    me = desk.client.get("/desk/me", headers=ANN).json()
    assert me["status"] == "available"
    [conv] = me["conversations"]
    assert conv["conversation_id"] == "c1" and conv["stage"] == "offered"
    assert conv["channel"] == "whatsapp" and conv["queue"] == "default"
    assert conv["legs"] == [
        {
            "leg_id": "c1",
            "channel": "whatsapp",
            "contact": {"channel": "whatsapp", "address": "wa-c1"},
        }
    ]
    assert conv["offer_deadline"] > time.time() * 1000
    assert desk.post("/desk/conversations/c1/accept").status_code == 200
    [conv] = desk.client.get("/desk/me", headers=ANN).json()["conversations"]
    assert conv["stage"] == "assigned" and "offer_deadline" not in conv


def test_me_of_an_agent_not_registered_is_404(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    with d.client:
        r = d.client.get("/desk/me", headers=ANN)
        assert r.status_code == 404 and "not registered" in r.json()["error"]
        with d.stream() as events:
            assert events.next() == {"event": "desk", "data": None}


def test_the_offer_reaches_the_agents_stream_and_accepting_assigns(desk: Desk) -> None:
    with desk.stream() as events:
        first = events.next()
        assert first is not None and first["event"] == "desk"
        assert first["data"]["status"] == "offline"
        r = desk.post("/desk/status", {"status": "available", "reason": "back"})
        assert r.status_code == 200
        assert r.json()["id"].startswith("desk:ann:") and r.json()["position"] > first["id"]
        changed = events.next()
        assert changed is not None and changed["event"] == "agent.status_changed"
        assert changed["id"] == r.json()["position"] and changed["data"]["reason"] == "back"
        desk.arrive("c1")
        offered = events.until("conversation.offered")[-1]
        assert offered["data"]["agent_id"] == "ann"
        assert offered["data"]["conversation_id"] == "c1" and offered["data"]["legs"] == ["c1"]
        r = desk.post("/desk/conversations/c1/accept")
        assert r.status_code == 200
        seen = events.until("conversation.assigned")
        assert [e["event"] for e in seen] == ["offer.accepted", "conversation.assigned"]
        assert seen[0]["data"]["id"] == r.json()["id"]
        ids = [first["id"], changed["id"], offered["id"], *(e["id"] for e in seen)]
        assert ids == sorted(set(ids))


def test_another_agents_stream_does_not_see_the_offer(desk: Desk) -> None:
    for who in (BOB, ANN):
        assert desk.post("/desk/status", {"status": "available"}, headers=who).status_code == 200
    desk.arrive("c1")
    desk.arrive("c2")
    convs = desk.gw.backend.engine.state.tenants[TENANT].conversations
    offers = {str(convs[c].offer_agent): c for c in ("c1", "c2")}
    assert sorted(offers) == ["ann", "bob"]
    for agent in ("ann", "bob"):
        auth = {"Authorization": f"Bearer {agent}-token"}
        with desk.stream(auth, "/desk/events?last_event_id=-1") as events:
            seen = events.backlog()
        assert [e["event"] for e in seen] == [
            "agent.registered", "agent.status_changed", "conversation.offered",
        ]  # fmt: skip
        assert all(e["data"]["agent_id"] == agent for e in seen)
        assert seen[-1]["data"]["conversation_id"] == offers[agent]


def test_a_rejected_input_never_reaches_a_stream(desk: Desk) -> None:
    offered_to_ann(desk)
    assert desk.post("/desk/conversations/c1/decline", headers=BOB).status_code == 409
    assert desk.post("/desk/conversations/c1/wrapup").status_code == 409
    with desk.stream(ANN, "/desk/events?last_event_id=-1") as events:
        kinds = [e["event"] for e in events.backlog()]
    assert kinds == ["agent.registered", "agent.status_changed", "conversation.offered"]


def test_last_event_id_resumes_with_exactly_the_missed_events(desk: Desk) -> None:
    with desk.stream() as events:
        start = events.next()
        assert start is not None
        offered_to_ann(desk)
        offered = events.until("conversation.offered")
    desk.post("/desk/conversations/c1/accept")  # missed while disconnected
    desk.submit(lambda now: [MessageReceived(tenant=TENANT, ts=now, conversation_id="c1")])
    assert desk.post("/desk/conversations/c1/end").status_code == 200
    with desk.stream({**ANN, "Last-Event-ID": str(offered[-1]["id"])}) as events:
        missed = events.backlog()
    assert [e["event"] for e in missed] == [
        "offer.accepted", "conversation.assigned", "message.received", "conversation.ended",
    ]  # fmt: skip
    assert all(e["id"] > offered[-1]["id"] for e in missed)
    assert len({e["id"] for e in missed}) == len(missed)
    with desk.stream({**ANN, "Last-Event-ID": str(missed[1]["id"])}) as events:
        assert events.backlog() == missed[2:]
    with desk.stream({**ANN, "Last-Event-ID": str(missed[-1]["id"])}) as events:
        assert events.backlog() == []


def test_an_id_older_than_the_history_starts_with_the_desk(tmp_path: Path) -> None:
    d = Desk(tmp_path, history=3)
    with d.client:
        d.register("ann", "bob")
        for status in ("available", "away", "available", "away", "available"):
            assert d.post("/desk/status", {"status": status}).status_code == 200
        end = d.gw.backend.feed(TENANT).end
        for stale in ("0", "junk", str(end + 100)):  # dropped, not an id, not of this log
            with d.stream({**ANN, "Last-Event-ID": stale}) as events:
                seen = events.backlog()
            assert [e["event"] for e in seen] == ["desk"]
            assert seen[0]["id"] == end - 1 and seen[0]["data"]["status"] == "available"
        with d.stream({**ANN, "Last-Event-ID": str(end - 3)}) as events:
            assert [e["id"] for e in events.backlog()] == [end - 2, end - 1]


def test_declining_what_is_not_offered_is_409_with_the_engines_reason(desk: Desk) -> None:
    offered_to_ann(desk)
    r = desk.post("/desk/conversations/c1/decline", {"reason": "busy"}, headers=BOB)
    assert r.status_code == 409
    assert r.json() == {"error": "conversation 'c1' is not offered to 'bob'"}
    r = desk.post("/desk/conversations/nope/accept")
    assert r.status_code == 409 and "unknown or closed conversation" in r.json()["error"]
    r = desk.post("/desk/conversations/c1/decline", {"reason": "busy"})
    assert r.status_code == 200
    declined = [e for _, e in desk.gw.backend.feed(TENANT).since(-1, "ann")
                if isinstance(e, OfferDeclined) and e.agent_id == "ann"]  # fmt: skip
    assert [(e.id, e.reason) for e in declined] == [(r.json()["id"], "busy")]


def test_only_the_conversations_agent_ends_it_or_writes_in_it(desk: Desk) -> None:
    offered_to_ann(desk)
    for action in ("end", "messages"):
        r = desk.post(f"/desk/conversations/c1/{action}", headers=BOB)
        assert r.status_code == 409
        assert r.json() == {"error": "conversation 'c1' is not held by 'bob'"}
    assert desk.post("/desk/conversations/c1/accept").status_code == 200
    assert desk.post("/desk/conversations/c1/messages", {"leg": "c1"}).status_code == 200
    assert desk.gw.backend.engine.state.tenants[TENANT].conversations["c1"].replied
    assert desk.post("/desk/conversations/c1/end").status_code == 200
    assert desk.post("/desk/conversations/c1/wrapup").status_code == 200
    assert desk.client.get("/desk/me", headers=ANN).json()["conversations"] == []


def test_a_cold_transfer_to_another_agent(desk: Desk) -> None:
    offered_to_ann(desk)
    assert desk.post("/desk/conversations/c1/accept").status_code == 200
    r = desk.post("/desk/conversations/c1/transfer", {"to_agent": "bob"})
    assert r.status_code == 409 and r.json() == {"error": "target agent 'bob' is not available"}
    assert desk.post("/desk/status", {"status": "available"}, headers=BOB).status_code == 200
    r = desk.post("/desk/conversations/c1/transfer", {"to_agent": "bob", "mode": "cold"})
    assert r.status_code == 200
    assert desk.gw.backend.engine.state.tenants[TENANT].conversations["c1"].offer_agent == "bob"
    with desk.stream(BOB) as events:
        first = events.next()
    assert first is not None and first["event"] == "desk"
    assert [c["stage"] for c in first["data"]["conversations"]] == ["offered"]


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/desk/status", b"{not json", "body: JSON is malformed"),
        ("/desk/status", b"[]", "body: Expected `object`, got `array`"),
        (
            "/desk/status",
            b'{"status": "asleep"}',
            "body: Invalid enum value 'asleep' - at `$.status`",
        ),
        ("/desk/status", b"", "body: Object missing required field `status`"),
        ("/desk/conversations/c1/accept", b'{"x": 1}', "body: Object contains unknown field"),
        ("/desk/conversations/c1/transfer", b'{"mode": "hot"}', "body: Invalid enum value 'hot'"),
    ],
)
def test_a_body_of_the_wrong_shape_is_400(desk: Desk, path: str, body: bytes, reason: str) -> None:
    r = desk.client.post(path, content=body, headers=ANN)
    assert r.status_code == 400
    assert r.json()["error"].startswith(reason)


def test_an_oversized_body_is_413_and_an_unwritable_log_503(desk: Desk) -> None:
    limit = desk.gw.config.gateway.max_body_bytes
    big = json.dumps({"status": "away", "reason": "x" * limit})
    r = desk.client.post("/desk/status", content=big, headers=ANN)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    desk.gw.backend.healthy = False
    r = desk.post("/desk/status", {"status": "away"})
    assert r.status_code == 503
    assert desk.gw.backend.engine.state.tenants[TENANT].agents["ann"].status == "offline"


def metric(desk: Desk, name: str, **labels: str) -> float | None:
    return desk.gw.metrics.registry.get_sample_value(f"omniroute_gateway_{name}", labels)


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_streams_are_counted_and_end_on_shutdown(desk: Desk) -> None:
    with desk.stream() as events:
        assert events.next() is not None
        assert metric(desk, "desk_streams") == 1
    assert wait_for(lambda: metric(desk, "desk_streams") == 0)
    with desk.stream() as events:
        assert events.next() is not None

        async def stop() -> None:
            desk.stop.set()

        desk.client.portal.call(stop)  # type: ignore[union-attr]
        assert events.next(max_pings=50) is None  # the stream ended (not quiet)
        assert events.pings < 50
    assert metric(desk, "desk_streams") == 0
    assert metric(desk, "requests_total", route="desk", provider="events", status="200") == 2
    desk.client.get("/desk/me")
    assert metric(desk, "requests_total", route="desk", provider="me", status="401") == 1


def test_a_client_that_hangs_up_on_a_real_server_ends_its_stream(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(d.client.app, host="127.0.0.1", port=port,
                                           log_config=None, lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started)
        url = f"http://127.0.0.1:{port}/desk/events"
        with httpx.stream("GET", url, headers=BOB, timeout=5) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = Reader(response.iter_lines())
            assert events.next() == {"event": "desk", "data": None}
            assert events.next(max_pings=3) is None and events.pings == 3
            assert metric(d, "desk_streams") == 1
        assert wait_for(lambda: metric(d, "desk_streams") == 0)
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()
