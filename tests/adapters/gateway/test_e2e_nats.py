"""The gateway in production: a real nats-server, ``omniroute serve`` and ``omniroute gateway``
(without ``--embedded``) as child processes, talked to over HTTP on loopback.

A signed WhatsApp webhook becomes a conversation, the agent's Server-Sent Events stream
receives its offer, the agent accepts over HTTP and the assignment is in the log (read
with ``omniroute tail``); a webhook retried 5 times is one conversation; a customer who
writes on WhatsApp then calls on Twilio Voice from the same number is one conversation
with two legs, and the call's ``completed`` status ends the voice leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from omniroute.adapters.nats.options import NatsOptions, StreamOptions, connect
from omniroute.adapters.nats.server import LocalNatsServer, free_port
from omniroute.engine.events import (
    AgentRegistered,
    Contact,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationRejoined,
    CustomerAbandoned,
    Event,
    is_decision,
)
from tests.support import webhooks as hooks
from tests.support.nats import options_for, require_nats_server, unique
from tests.support.service import (
    ServeProcess,
    config_toml,
    log_events,
    publish,
    wait_for,
    wait_until_consumed,
)

SECRET = "e2e-s3cret"
PUBLIC_URL = "https://cc.example.com"
"""What Twilio is told to call (behind a proxy): the URL it signs, not the gateway's own."""
TWILIO_URL = f"{PUBLIC_URL}/webhooks/twilio/main"
TOKEN = "ann-desk-token"
WA = "/webhooks/whatsapp/main"
TWILIO = "/webhooks/twilio/main"


class GatewayProcess:
    """``omniroute gateway --config FILE --port P`` as a child process (NATS mode)."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.config = config
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "NATS_CREDS")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "omniroute.adapters.cli", "--log-level", "INFO", "gateway",
             "--config", str(config), "--port", str(port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        """The first ok ``/health`` answer."""
        answers: list[dict[str, Any]] = []

        def up() -> bool:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise AssertionError(f"gateway exited with {code}:\n{self.output()}")
            try:
                r = httpx.get(f"{self.url}/health", timeout=1)
            except httpx.HTTPError:
                return False
            if r.status_code == 200:
                answers.append(r.json())
            return bool(answers)

        wait_for(up, timeout, "the gateway's /health")
        return answers[0]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class DeskStream:
    """``GET /desk/events`` read in a thread: the Server-Sent Events received so far."""

    def __init__(self, url: str, token: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=10))
        self._url, self._token = url, token
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "text/event-stream"}
        try:
            with self._client.stream("GET", f"{self._url}/desk/events", headers=headers) as r:
                assert r.status_code == 200, r.read()
                assert r.headers["content-type"].startswith("text/event-stream")
                event: dict[str, Any] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        if event:
                            self.events.append(event)
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except BaseException as exc:  # reported by the test
            if not self._stop.is_set():
                self.error = exc

    def of(self, kind: str) -> list[dict[str, Any]]:
        if self.error is not None:
            raise AssertionError(f"the desk stream failed: {self.error!r}")
        return [
            {**json.loads(e["data"]), "_id": int(e["id"])}
            for e in list(self.events)
            if e.get("event") == kind
        ]

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(15)


@dataclass
class Stack:
    server: LocalNatsServer
    options: NatsOptions
    stream: StreamOptions
    tenant: str
    gateway: GatewayProcess
    serve: ServeProcess
    serve_config: Path
    http: httpx.Client

    def post(self, path: str, request: tuple[bytes, dict[str, str]]) -> httpx.Response:
        body, headers = request
        return self.http.post(path, content=body, headers=headers)

    def desk(self, path: str, body: object | None = None) -> httpx.Response:
        return self.http.post(path, json=body or {}, headers={"Authorization": f"Bearer {TOKEN}"})

    def settled(self) -> list[Event]:
        """The log's events once it covers every input published so far."""
        wait_until_consumed(self.options, self.stream, self.tenant, last_input(self), 30)
        return log_events(self.options, self.stream, self.tenant)

    def inputs(self) -> list[Event]:
        return [e for e in self.settled() if not is_decision(e)]


def last_input(stack: Stack) -> int:
    """The stream sequence of the tenant's last input message."""

    async def go() -> int:
        nc = await connect(stack.options)
        try:
            js = nc.jetstream(timeout=10)
            subject = stack.stream.subjects(stack.tenant).inputs
            msg = await js.get_last_msg(stack.stream.name, subject)
            return int(msg.seq or 0)
        finally:
            await nc.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_nats_server()  # in the test extras: its absence is a failure, not a skip
    tmp = tmp_path_factory.mktemp("e2e")
    server = LocalNatsServer(tmp / "nats").__enter__()
    tenant = unique("acme")
    stream = StreamOptions(name=unique("E2E"), prefix=unique("gw"))
    policy = tmp / "policy.toml"
    policy.write_text('preset = "longest_idle"\n')
    serve_config = tmp / "serve.toml"
    serve_config.write_text(config_toml(
        server.url, stream, [tenant], instance="e2e",
        extra_service=f'policy = "{policy}"\ntick_interval_s = 0.2\nlease_ttl_s = 2',
    ))  # fmt: skip
    port = free_port()
    gateway_config = tmp / "gateway.toml"
    gateway_config.write_text("\n".join([
        config_toml(server.url, stream, [tenant]).split("[service]")[0],
        "[gateway]", f'tenant = "{tenant}"', 'region = "GB"', f'public_url = "{PUBLIC_URL}"',
        f'policy = "{policy}"', "rate_per_s = 0",
        "[desk]", "heartbeat_s = 0.5",
        *(line for provider in ("whatsapp", "twilio") for line in (
            "[[source]]", f'provider = "{provider}"', 'name = "main"', f'secret = "{SECRET}"')),
        "[[agent]]", 'agent_id = "ann"', f'token = "{TOKEN}"',
    ]) + "\n")  # fmt: skip
    with contextlib.ExitStack() as cleanup:  # every process ends, whatever fails
        cleanup.callback(server.__exit__, None, None, None)
        serve = ServeProcess(serve_config, tmp / "serve.log")
        cleanup.callback(serve.close)
        cleanup.callback(serve.terminate)
        serve.wait_ready()
        gateway = GatewayProcess(gateway_config, port, tmp / "gateway.log")
        cleanup.callback(gateway.close)
        gateway.wait_healthy()
        http = cleanup.enter_context(httpx.Client(base_url=gateway.url, timeout=15))
        stack = Stack(server, options_for(server), stream, tenant, gateway, serve, serve_config,
                      http)  # fmt: skip
        cleanup.callback(lambda: stack.gateway.close())  # a test may have restarted it
        yield stack


@pytest.fixture(scope="module")
def ann(stack: Stack) -> str:
    """Agent ``ann``, registered on NATS (as a workforce system would) and available over
    the desk API."""
    now = int(time.time() * 1000)
    registered = AgentRegistered(tenant=stack.tenant, ts=now, id="e2e:ann", agent_id="ann",
                                 skills={"support": 3})  # fmt: skip
    publish(stack.options, stack.stream, stack.tenant, [[registered]], msg_ids=["e2e:ann"])
    r = stack.desk("/desk/status", {"status": "available"})
    assert r.status_code == 200, r.text
    return "ann"


def test_a_whatsapp_webhook_is_offered_on_the_desk_stream_accepted_and_retries_are_one_contact(
    stack: Stack, ann: str
) -> None:
    stream = DeskStream(stack.gateway.url, TOKEN)
    try:
        wait_for(lambda: bool(stream.of("desk")), 10, "the stream's first desk event")
        assert stream.of("desk")[0]["status"] == "available"
        webhook = hooks.whatsapp_text(SECRET, "wamid.E2E1", "447700900123", "my parcel is lost")
        r = stack.post(WA, webhook)
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 1, "items": {"arrived": 1}}
        cid = "whatsapp:wamid.E2E1"
        for _ in range(2):  # retried at once: the arrival may still be on its way
            r = stack.post(WA, webhook)
            assert (r.status_code, r.json()["accepted"]) == (200, 0), r.text

        def on_stream(kind: str) -> list[dict[str, Any]]:
            return [e for e in stream.of(kind) if e["conversation_id"] == cid]

        wait_for(lambda: bool(on_stream("conversation.offered")), 20, "the offer on ann's stream")
        [offer] = on_stream("conversation.offered")
        assert offer["agent_id"] == "ann"
        assert offer["_id"] > stream.of("desk")[0]["_id"]  # the log position

        r = stack.desk(f"/desk/conversations/{cid}/accept")
        assert r.status_code == 200, r.text
        wait_for(lambda: bool(on_stream("conversation.assigned")), 20, "ann's assignment")
        for _ in range(3):  # retried once the conversation is in the engine's state
            r = stack.post(WA, webhook)
            assert (r.status_code, r.json()["accepted"]) == (200, 0), r.text
    finally:
        stream.close()

    events = stack.settled()
    arrived = [e for e in events if isinstance(e, ConversationArrived)]
    assert [e.conversation_id for e in arrived] == [cid]  # 6 deliveries, one contact
    assert arrived[0].contact.address == "+447700900123"
    [assigned] = [e for e in events if isinstance(e, ConversationAssigned)]
    assert (assigned.conversation_id, assigned.agent_id) == (cid, "ann")

    tail = subprocess.run(
        [sys.executable, "-m", "omniroute.adapters.cli", "tail", "--config",
         str(stack.serve_config), "--tenant", stack.tenant, "--from-start", "--idle-exit", "1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert [(d["conversation_id"], d["agent_id"]) for d in lines
            if d["type"] == "conversation.assigned"] == [(cid, "ann")]  # fmt: skip


def _rejoined(stack: Stack, leg: str) -> list[ConversationRejoined]:
    events = log_events(stack.options, stack.stream, stack.tenant)
    return [e for e in events if isinstance(e, ConversationRejoined)
            and e.new_conversation_id == leg]  # fmt: skip


def _offered_to(stack: Stack, agent_token: str, cid: str) -> bool:
    """True once the gateway's own replica shows ``cid`` on the agent's desk."""
    r = stack.http.get("/desk/me", headers={"Authorization": f"Bearer {agent_token}"})
    assert r.status_code == 200, r.text
    return any(c["conversation_id"] == cid for c in r.json()["conversations"])


def test_a_customer_who_writes_then_calls_is_one_conversation_with_two_legs(
    stack: Stack, ann: str
) -> None:
    r = stack.post(WA, hooks.whatsapp_text(SECRET, "wamid.E2E2", "447700900456", "router down"))
    assert r.status_code == 200, r.text
    cid, call = "whatsapp:wamid.E2E2", "CA" + "7" * 32
    leg = f"twilio:{call}"
    # the call comes once the gateway knows the WhatsApp conversation (offered to ann); a
    # call within the log's round trip: test_a_call_racing_the_log_still_rejoins
    wait_for(lambda: _offered_to(stack, TOKEN, cid), 20, "the WhatsApp conversation's offer")
    ringing = hooks.twilio_call(SECRET, TWILIO_URL, call, "+447700900456")
    r = stack.post(TWILIO, ringing)
    assert r.status_code == 200, r.text
    assert f"<Enqueue>{leg}</Enqueue>" in r.text
    assert stack.post(TWILIO, ringing).status_code == 200  # Twilio retries: still one leg

    wait_for(lambda: bool(_rejoined(stack, leg)), 20, "the call to rejoin the conversation")
    [joined] = _rejoined(stack, leg)
    assert (joined.conversation_id, joined.channel) == (cid, "voice")

    completed = hooks.twilio_call(SECRET, TWILIO_URL, call, "+447700900456", "completed")
    for _ in range(2):  # the final status, retried
        r = stack.post(TWILIO, completed)
        assert r.status_code == 200, r.text
        assert "<Enqueue>" not in r.text

    def gone() -> list[ConversationEnded | CustomerAbandoned]:
        return [e for e in stack.inputs() if isinstance(e, ConversationEnded | CustomerAbandoned)
                and e.leg == leg]  # fmt: skip

    wait_for(lambda: bool(gone()), 20, "the call's end in the log")
    inputs = stack.inputs()
    [ended] = gone()
    assert ended.conversation_id == cid
    legs = [e for e in inputs if isinstance(e, ConversationArrived)
            and e.conversation_id in (cid, leg)]  # fmt: skip
    assert [(e.conversation_id, e.channel, e.contact.address) for e in legs] == [
        (cid, "whatsapp", "+447700900456"), (leg, "voice", "+447700900456"),
    ]  # fmt: skip
    # the WhatsApp leg lives on
    assert not [e for e in inputs if isinstance(e, ConversationEnded | CustomerAbandoned)
                and e.conversation_id == cid and e.leg != leg]  # fmt: skip


def test_a_call_racing_the_log_still_rejoins(stack: Stack) -> None:
    """The customer calls while their WhatsApp message is published but not yet in the log
    (here: the service is paused; in production, a busy or restarting service)."""
    call = "CA" + "8" * 32
    leg = f"twilio:{call}"
    stack.serve.proc.send_signal(signal.SIGSTOP)
    try:
        r = stack.post(WA, hooks.whatsapp_text(SECRET, "wamid.E2E3", "447700900789", "hello?"))
        assert r.status_code == 200, r.text
        r = stack.post(TWILIO, hooks.twilio_call(SECRET, TWILIO_URL, call, "+447700900789"))
        assert r.status_code == 200, r.text
    finally:
        stack.serve.proc.send_signal(signal.SIGCONT)
    stack.settled()
    [joined] = _rejoined(stack, leg)
    assert joined.conversation_id == "whatsapp:wamid.E2E3"


def test_a_restarted_gateway_knows_the_open_conversations_before_it_answers(
    stack: Stack,
) -> None:
    """The replica catches up with the log before /health is ok: a follow-up sent at once
    after a restart is a message on its conversation, never a new one."""
    numbers = [f"+4477009{n:05d}" for n in range(10_000, 14_000)]  # none met before
    now = int(time.time() * 1000)
    arrivals = [
        ConversationArrived(tenant=stack.tenant, ts=now, id=f"whatsapp:wamid.R{n}",
                            conversation_id=f"whatsapp:wamid.R{n}", channel="whatsapp",
                            contact=Contact("whatsapp", number))
        for n, number in enumerate(numbers)
    ]  # fmt: skip
    publish(stack.options, stack.stream, stack.tenant,
            [arrivals[i : i + 500] for i in range(0, len(arrivals), 500)])  # fmt: skip
    stack.settled()
    old = stack.gateway
    old.close()
    end = len(stack.settled())
    stack.gateway = GatewayProcess(old.config, old.port, old.log_path)
    first = stack.gateway.wait_healthy()
    assert first["positions"][stack.tenant] >= end  # its first ok: caught up already
    for n, number in list(enumerate(numbers))[-20:]:
        request = hooks.whatsapp_text(SECRET, f"wamid.R{n}b", number[1:], "still there?")
        r = stack.post(WA, request)
        assert r.json()["items"] == {"message": 1}, r.text
