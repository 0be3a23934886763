"""Helpers for service tests: a realistic input workload, configs, ``omniroute serve`` runs
(in-process or as a subprocess), publishing inputs and reading and checking the log.

Everything talks to a real ``nats-server`` (see ``tests.support.nats``); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from omniroute.adapters.nats.asynclog import AsyncNatsLog
from omniroute.adapters.nats.cursor import Cursor
from omniroute.adapters.nats.frames import HEADER_IN, HEADER_WRITER
from omniroute.adapters.nats.log import NatsLog
from omniroute.adapters.nats.options import (
    NatsOptions,
    StreamOptions,
    Subjects,
    connect,
    ensure_stream,
)
from omniroute.adapters.service.config import ServiceConfig, parse_config
from omniroute.adapters.service.service import Service
from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.events import Event, encode_msgpack, is_decision
from omniroute.engine.log import encode_frame
from omniroute.engine.replay import replay

__all__ = [
    "Answer",
    "InProcessService",
    "ServeProcess",
    "answers",
    "check_log",
    "config_toml",
    "cpu_seconds",
    "log_events",
    "publish",
    "publish_in_thread",
    "publish_many",
    "wait_for",
    "wait_until_consumed",
    "workload",
]

CHANNELS: tuple[ev.Channel, ...] = (
    "voice", "webchat", "whatsapp", "sms", "email", "social", "task", "video", "messenger",
)  # fmt: skip


def workload(tenant: str, n: int, seed: int = 1, agents: int = 12, ts0: int = 1_000) -> list[Event]:
    """About ``n`` input events of a small contact centre, valid given the engine's decisions.

    A closed loop: a local engine sees every generated event, so offers are accepted by the
    agent they went to, conversations end after being assigned and wrap-ups complete.
    (Ticks appended by a running service change timing, so a few events may turn into
    rejections there; that is fine: rejections are decisions too.)
    """
    rng = random.Random(seed)
    engine = Engine()
    out: list[Event] = []
    ts = ts0
    offered: dict[str, str] = {}
    assigned: dict[str, str] = {}
    wrapping: dict[str, str] = {}
    queued: set[str] = set()
    next_id = 0

    def emit(event: Event) -> None:
        nonlocal next_id
        out.append(event)
        for d in engine.apply(event):
            if isinstance(d, ev.ConversationOffered):
                offered[d.conversation_id] = d.agent_id
                queued.discard(d.conversation_id)
            elif isinstance(d, ev.ConversationAssigned):
                offered.pop(d.conversation_id, None)
                assigned[d.conversation_id] = d.agent_id
                queued.discard(d.conversation_id)
            elif isinstance(d, ev.OfferExpired):
                offered.pop(d.conversation_id, None)
                queued.add(d.conversation_id)
            elif isinstance(d, ev.ConversationQueued):
                queued.add(d.conversation_id)
        next_id += 1

    def eid() -> str:
        return f"{tenant}-{seed}-{next_id}"

    skills = ["sales", "support", "billing"]
    for a in range(agents):
        emit(ev.AgentRegistered(
            tenant=tenant, ts=ts, id=eid(), agent_id=f"a{a}",
            skills={s: rng.randint(1, 5) for s in rng.sample(skills, rng.randint(1, 3))},
        ))  # fmt: skip
        emit(ev.AgentStatusChanged(tenant=tenant, ts=ts, id=eid(), agent_id=f"a{a}",
                                   status="available"))  # fmt: skip
    conv = 0
    while len(out) < n:
        ts += rng.randint(0, 400)
        r = rng.random()
        if r < 0.30 or not (offered or assigned or wrapping or queued):
            conv += 1
            channel = rng.choice(CHANNELS)
            emit(ev.ConversationArrived(
                tenant=tenant, ts=ts, id=eid(), conversation_id=f"c{conv}", channel=channel,
                contact=ev.Contact(channel, f"addr{rng.randint(1, 400)}"),
                skills={rng.choice(skills): rng.randint(1, 3)}, priority=rng.randint(0, 2),
            ))  # fmt: skip
        elif r < 0.55 and offered:
            cid = rng.choice(sorted(offered))
            if rng.random() < 0.9:
                emit(ev.OfferAccepted(tenant=tenant, ts=ts, id=eid(), conversation_id=cid,
                                      agent_id=offered[cid]))  # fmt: skip
            else:
                emit(ev.OfferDeclined(tenant=tenant, ts=ts, id=eid(), conversation_id=cid,
                                      agent_id=offered[cid]))  # fmt: skip
        elif r < 0.72 and assigned:
            cid = rng.choice(sorted(assigned))
            agent = assigned.pop(cid)
            emit(ev.ConversationEnded(tenant=tenant, ts=ts, id=eid(), conversation_id=cid))
            wrapping[cid] = agent
        elif r < 0.85 and wrapping:
            cid = rng.choice(sorted(wrapping))
            emit(ev.WrapUpCompleted(tenant=tenant, ts=ts, id=eid(), conversation_id=cid,
                                    agent_id=wrapping.pop(cid)))  # fmt: skip
        elif r < 0.90 and queued:
            cid = rng.choice(sorted(queued))
            queued.discard(cid)
            emit(ev.CustomerAbandoned(tenant=tenant, ts=ts, id=eid(), conversation_id=cid))
        elif r < 0.95 and assigned:
            emit(ev.MessageReceived(tenant=tenant, ts=ts, id=eid(),
                                    conversation_id=rng.choice(sorted(assigned))))  # fmt: skip
        else:
            a = f"a{rng.randrange(agents)}"
            status: ev.AgentStatus = rng.choice(["available", "available", "away"])
            emit(ev.AgentStatusChanged(tenant=tenant, ts=ts, id=eid(), agent_id=a, status=status))
    return out[:n]


def frames_of(events: Sequence[Event], seed: int = 0, max_size: int = 40) -> list[list[Event]]:
    """Split events into frames of random sizes 1..max_size."""
    rng = random.Random(seed)
    frames, i = [], 0
    while i < len(events):
        k = rng.randint(1, max_size)
        frames.append(list(events[i : i + k]))
        i += k
    return frames


def config_toml(
    server_url: str | Sequence[str],
    stream: StreamOptions,
    tenants: Sequence[str],
    *,
    instance: str | None = None,
    extra_service: str = "",
    extra_nats: str = "",
    metrics_port: int | None = None,
) -> str:
    """A ``serve`` configuration: one server URL or several (a cluster's), the stream's
    name, prefix, storage and replicas, the tenants and ``extra_*`` lines."""
    urls = [server_url] if isinstance(server_url, str) else list(server_url)
    lines = [
        "[nats]",
        "servers = [" + ", ".join(f'"{u}"' for u in urls) + "]",
        "reconnect_wait_s = 0.2",
        extra_nats,
        "[stream]",
        f'name = "{stream.name}"',
        f'prefix = "{stream.prefix}"',
        f'storage = "{stream.storage}"',
        f"replicas = {stream.replicas}",
        "[service]",
        "tenants = [" + ", ".join(f'"{t}"' for t in tenants) + "]",
    ]
    if instance:
        lines.append(f'instance = "{instance}"')
    lines.append(extra_service)
    if metrics_port is not None:
        lines += ["[metrics]", f"port = {metrics_port}", "interval_s = 0.2"]
    return "\n".join(lines) + "\n"


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- running the service -------------------------------------------------------------------


class ServeProcess:
    """``omniroute serve --config FILE`` as a child process (killable with SIGKILL),
    restartable: :meth:`start` runs a new incarnation, appending to the same log file."""

    def __init__(self, config_path: Path, log_path: Path, *args: str) -> None:
        """Start the first incarnation (``args``: more ``serve`` options)."""
        self.config_path = config_path
        self.log_path = log_path
        self.args = args
        self.starts = 0
        """Incarnations started so far."""
        self.start()

    def start(self) -> None:
        """Start a new incarnation (the previous one must have exited)."""
        if self.starts and self.proc.poll() is None:
            raise AssertionError("serve is still running")
        env = dict(os.environ)
        env.pop("NATS_URL", None)
        env.pop("NATS_CREDS", None)
        with self.log_path.open("ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "omniroute.adapters.cli", "--log-level", "INFO", "serve",
                 "--config", str(self.config_path), *self.args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        self.starts += 1

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        """AssertionError (with the log's tail) when the current incarnation has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(
                f"serve exited with {self.proc.returncode}:\n{self.output()[-3000:]}"
            )

    def wait_ready(self, text: str = "writing the log", timeout: float = 30) -> None:
        """Wait until the current incarnation logged ``text`` (default: it became the
        writer), that is until the log holds it at least once per incarnation."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            return self.output().count(text) >= self.starts

        wait_for(ready, timeout, f"serve to log {text!r}")

    def writing_since(self) -> float | None:
        """When it first logged that it writes a tenant's log (epoch seconds; None: never),
        from the line's timestamp ("2026-11-30 10:30:32,600 INFO ...", local time)."""
        for line in self.output().splitlines():
            if "writing the log" in line:
                return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return None

    def cpu_s(self) -> float:
        """CPU seconds of the current incarnation so far (0 once it has been reaped)."""
        return cpu_seconds(self.proc.pid)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"serve did not stop on SIGTERM:\n{self.output()[-3000:]}"
            ) from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) of a running process so far, from ``/proc``; 0 when it
    is gone (or ``pid`` is None)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InProcessService:
    """The service on its own event loop in a thread of this process."""

    def __init__(self, config: ServiceConfig) -> None:
        self.service = Service(config)
        self.code: int | None = None
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.code = self._loop.run_until_complete(self.service.run())
        except BaseException as exc:  # pragma: no cover - surfaced by stop()
            self.error = exc
        finally:
            self._loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 20) -> int:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.service.request_stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("service did not stop")
        if self.error is not None:
            raise self.error
        assert self.code is not None
        return self.code


def service_config(text: str, base: Path) -> ServiceConfig:
    import tomllib

    return parse_config(tomllib.loads(text), base, environ={})


# --- publishing and reading ------------------------------------------------------------------


def publish(
    options: NatsOptions,
    stream: StreamOptions,
    tenant: str,
    payloads: Sequence[bytes | list[Event]],
    *,
    msg_ids: Sequence[str | None] | None = None,
    pause: float = 0.0,
    on_progress: Callable[[int], None] | None = None,
    until: Callable[[], bool] | None = None,
    ack_timeout: float = 10.0,
    retry_s: float = 60.0,
) -> list[int]:
    """Publish input messages (raw bytes, or frames of events) in order; their sequences.

    ``until()`` true stops before the next message (each one published is acknowledged);
    a message not acknowledged within ``ack_timeout`` is published again (same id), for
    ``retry_s`` at most.
    """

    async def go() -> list[int]:
        nc = await connect(options)
        try:
            js = nc.jetstream(timeout=ack_timeout)
            await ensure_stream(js, stream)
            subject = Subjects(stream.prefix, tenant).inputs
            seqs = []
            for i, p in enumerate(payloads):
                if until is not None and until():
                    break
                data = p if isinstance(p, bytes) else encode_frame([encode_msgpack(e) for e in p])
                mid = msg_ids[i] if msg_ids is not None else None
                headers = {"Nats-Msg-Id": mid} if mid else None
                deadline = time.monotonic() + retry_s
                while True:
                    try:
                        ack = await js.publish(subject, data, headers=headers)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)
                seqs.append(ack.seq)
                if on_progress is not None:
                    on_progress(i)
                if pause:
                    await asyncio.sleep(pause)
            return seqs
        finally:
            await nc.close()

    return asyncio.run(go())


def publish_in_thread(
    progress: list[int], seqs: list[int], *args: object, **kwargs: object
) -> threading.Thread:
    """:func:`publish` in a thread: ``progress`` grows by one entry per message
    acknowledged, ``seqs`` receives their stream sequences at the end."""

    def run() -> None:
        seqs.extend(publish(*args, on_progress=progress.append, **kwargs))  # type: ignore[arg-type]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def publish_many(
    options: NatsOptions, stream: StreamOptions, tenant: str, payloads: Sequence[bytes],
    window: int = 2000,
) -> list[int]:  # fmt: skip
    """Publish many raw input messages, ``window`` acknowledgements in flight; their
    sequences (in order: one connection publishes in order)."""

    async def go() -> list[int]:
        nc = await connect(options)
        try:
            js = nc.jetstream(timeout=30)
            await ensure_stream(js, stream)
            subject = Subjects(stream.prefix, tenant).inputs
            seqs: list[int] = []
            for start in range(0, len(payloads), window):
                futures = [await js.publish_async(subject, p)
                           for p in payloads[start : start + window]]  # fmt: skip
                seqs += [ack.seq for ack in await asyncio.gather(*futures)]
            return seqs
        finally:
            await nc.close()

    return asyncio.run(go())


def out_tail(options: NatsOptions, stream: StreamOptions, tenant: str) -> dict[str, str]:
    """Headers of the last frame of the tenant's log ({} when it is empty)."""

    async def go() -> dict[str, str]:
        nc = await connect(options)
        try:
            await ensure_stream(nc.jetstream(), stream)
            frame = await AsyncNatsLog(nc, stream, tenant).last_frame()
            return dict(frame.headers) if frame is not None else {}
        finally:
            await nc.close()

    return asyncio.run(go())


def wait_until_consumed(
    options: NatsOptions, stream: StreamOptions, tenant: str, last_in: int, timeout: float = 60
) -> None:
    """Wait until the log records every input message up to sequence ``last_in``."""
    wait_for(
        lambda: int(out_tail(options, stream, tenant).get(HEADER_IN, "0")) >= last_in,
        timeout, f"the log of {tenant} to cover input {last_in}", every=0.2,
    )  # fmt: skip


def log_events(options: NatsOptions, stream: StreamOptions, tenant: str) -> list[Event]:
    with NatsLog(options, tenant, stream, readonly=True) as log:
        return [e for _, e in log.read()]


def writers(options: NatsOptions, stream: StreamOptions, tenant: str) -> list[str]:
    """The Omniroute-Writer header of every frame of the log, in order."""

    async def go() -> list[str]:
        nc = await connect(options)
        try:
            core = AsyncNatsLog(nc, stream, tenant)
            return [f.headers.get(HEADER_WRITER, "") async for f in core.frames(1)]
        finally:
            await nc.close()

    return asyncio.run(go())


def subject_messages(
    options: NatsOptions, stream: StreamOptions, subject: str
) -> list[tuple[dict[str, str], bytes]]:
    async def go() -> list[tuple[dict[str, str], bytes]]:
        nc = await connect(options)
        try:
            out: list[tuple[dict[str, str], bytes]] = []
            last = await nc.jetstream().stream_info(stream.name)
            cursor = Cursor(nc, stream.name, subject, 1)
            while cursor.next_seq <= last.state.last_seq:
                msgs = await cursor.fetch(0.5)
                if not msgs:
                    break
                out += [({str(k): str(v) for k, v in (m.headers or {}).items()}, m.data)
                        for m in msgs]  # fmt: skip
            await cursor.close()
            return out
        finally:
            await nc.close()

    return asyncio.run(go())


class Answer(NamedTuple):
    """One message of ``P.T.rejected`` or ``P.T.dead``: the service's answer to bad input."""

    subject: str
    """``rejected`` or ``dead``."""
    in_seq: int
    """The stream sequence of the input message answered."""
    stage: str
    """Where it was refused (``schema``, ``engine``, ``internal``, ... ; ``dead``)."""
    reason: str


def answers(options: NatsOptions, stream: StreamOptions, tenant: str) -> list[Answer]:
    """Every rejection and dead letter published for ``tenant``, in order per subject."""
    subjects = stream.subjects(tenant)
    out: list[Answer] = []
    for headers, data in subject_messages(options, stream, subjects.rejected):
        stage = headers.get("Nats-Msg-Id", "").rsplit(":", 1)[-1]
        reason = msgspec.json.decode(data)["reason"]
        out.append(Answer("rejected", int(headers["Omniroute-In-Seq"]), stage, reason))
    for headers, _ in subject_messages(options, stream, subjects.dead):
        out.append(Answer("dead", int(headers["Omniroute-In-Seq"]), "dead",
                          headers.get("Omniroute-Reason", "")))  # fmt: skip
    return out


def check_log(
    options: NatsOptions,
    stream: StreamOptions,
    tenant: str,
    expected_inputs: Sequence[Event],
    *,
    invariants_every: int = 250,
) -> list[Event]:
    """The checks every crash/failover test makes; returns the log's events.

    - a clean replay of the log's inputs re-decides every recorded decision byte for byte
      (nothing decided twice, nothing decided differently);
    - the log's inputs, Ticks aside, are exactly ``expected_inputs`` in order (no input
      lost, none applied twice);
    - every conversation is assigned at most once at a time and no agent is ever over
      capacity: the routing invariants hold along the clean replay.
    """
    from tests.oracles.invariants import check_invariants

    events = log_events(options, stream, tenant)
    with NatsLog(options, tenant, stream, readonly=True) as log:
        result = replay(log)
    assert result.ok, "\n".join(result.mismatch.describe() if result.mismatch else [])
    inputs = [e for e in events if not is_decision(e) and not isinstance(e, ev.Tick)]
    assert len(inputs) == len(expected_inputs), (len(inputs), len(expected_inputs))
    assert inputs == list(expected_inputs)
    engine = Engine()
    n = 0
    for event in events:
        if is_decision(event):
            continue
        engine.apply(event)
        n += 1
        if n % invariants_every == 0:
            check_invariants(engine)
    check_invariants(engine)
    return events


def decode_any(data: bytes) -> Any:
    return msgspec.json.decode(data)
