"""The production backend: inputs published to ``<prefix>.<tenant>.in``, the engine's
state and the desk feeds from a replica following ``.out``.

Each input is one message whose ``Nats-Msg-Id`` is the event ``id`` (the provider's
message id), so a provider's retry within the stream's duplicate window is dropped by
the server, and beyond it by the engine's own id memory; a request is answered once
JetStream acknowledged every message. The replica re-applies the log's inputs in order
(what a hot standby of ``omniroute serve`` does), so the gateway reads the engine's own
state; an arrival published but not yet in the log answers for its contact meanwhile
(:class:`~.view.LiveView`). A publish that gets no acknowledgement is retried with the
same ids through server restarts and leader elections until ``publish_timeout_s``, then
the request fails (503) and the provider retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import TooManyStalledMsgsError

from omniroute.engine import Engine
from omniroute.engine.events import Input, decode_msgpack, encode_msgpack, is_decision
from omniroute.engine.policy import Policy

from ..nats.asynclog import AsyncNatsLog
from ..nats.cursor import Cursor
from ..nats.frames import MSG_ID, Frame, plain_headers
from ..nats.options import TRANSIENT, NatsOptions, StreamOptions, connect, ensure_stream
from .backend import Backend

__all__ = ["JetStreamBackend"]

_log = logging.getLogger(__name__)

_STALLED: tuple[type[BaseException], ...] = (*TRANSIENT, TooManyStalledMsgsError)
_UNACKED: tuple[type[BaseException], ...] = (*TRANSIENT, asyncio.TimeoutError)


class JetStreamBackend(Backend):
    """Publish inputs to the service's input subjects; follow its log."""

    def __init__(
        self, nats: NatsOptions, stream: StreamOptions, tenants: Sequence[str], policy: Policy,
        *, history: int = 10_000, publish_timeout_s: float = 30.0,
    ) -> None:  # fmt: skip
        super().__init__(Engine(policy), history)
        self.options = nats
        self.stream = stream
        self.tenants = tuple(dict.fromkeys(tenants))
        self.publish_timeout_s = publish_timeout_s
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        """One context: each holds its own subscription for publish acknowledgements."""
        self._followers: list[asyncio.Task[None]] = []
        self.applied: dict[str, int] = {}
        """Per tenant: the log position the replica has applied up to."""
        self._applied_seq: dict[str, int] = {}

    async def start(self) -> None:
        """Connect, then follow every tenant's log; return once the replica has applied
        each log up to its tail as it was (until then a follow-up would look new)."""
        self.nc = await connect(self.options)
        self.js = js = self.nc.jetstream(timeout=self.options.request_timeout_s)
        await ensure_stream(js, self.stream)
        tails = {}
        for tenant in self.tenants:
            last = await AsyncNatsLog(self.nc, self.stream, tenant).last_frame()
            tails[tenant] = last.seq if last is not None else 0
            self._applied_seq[tenant] = 0
        self._followers = [
            asyncio.create_task(self._follow(tenant), name=f"follow {tenant}")
            for tenant in self.tenants
        ]
        started = time.monotonic()
        while any(self._applied_seq[t] < tail for t, tail in tails.items()):
            for task in self._followers:
                if task.done():
                    task.result()  # a follower that failed: say why
            await asyncio.sleep(0.05)
        _log.info(
            "gateway replica caught up with %d tenant log(s) in %.2f s",
            len(tails), time.monotonic() - started,
        )  # fmt: skip

    async def close(self) -> None:
        for task in self._followers:
            task.cancel()
        for task in self._followers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()

    async def _stage(self, tenant: str, inputs: Sequence[Input]) -> Awaitable[None]:
        """Publish ``inputs`` in order (no waiting); the awaitable waits for their acks."""
        js = self.js
        assert js is not None
        subject = self.stream.subjects(tenant).inputs
        sent: list[tuple[bytes, dict[str, str] | None, asyncio.Future[Any] | None]] = []
        for event in inputs:
            headers = {MSG_ID: event.id} if event.id is not None else None
            payload = encode_msgpack(event)
            try:
                ack = await js.publish_async(
                    subject, payload, headers=headers, wait_stall=self.options.request_timeout_s
                )
            except _STALLED:
                ack = None  # published again, alone, when its turn comes
            sent.append((payload, headers, ack))
        return self._acknowledged(js, subject, sent)

    async def _acknowledged(
        self, js: JetStreamContext, subject: str,
        sent: list[tuple[bytes, dict[str, str] | None, asyncio.Future[Any] | None]],
    ) -> None:  # fmt: skip
        """Every message acknowledged; one that is not is published again with its id
        (the server drops a copy) until ``publish_timeout_s``."""
        deadline = time.monotonic() + self.publish_timeout_s
        for payload, headers, ack in sent:
            if ack is not None:
                try:
                    await asyncio.wait_for(ack, self.options.request_timeout_s)
                    continue
                except _UNACKED:
                    pass  # no answer in time: publish it again below, with its id
            while True:
                try:
                    await js.publish(subject, payload, headers=headers)
                    break
                except TRANSIENT:
                    if time.monotonic() > deadline:
                        self.healthy = False
                        raise
                    await asyncio.sleep(0.2)
        self.healthy = True

    async def _follow(self, tenant: str) -> None:
        """Apply the tenant's log to the replica, for ever."""
        assert self.nc is not None
        cursor = Cursor(self.nc, self.stream.name, self.stream.subjects(tenant).out)
        self.applied[tenant] = 0
        try:
            while True:
                for msg in await cursor.fetch(1.0):
                    seq = msg.metadata.sequence.stream
                    frame = Frame.from_msg(seq, plain_headers(msg.headers), msg.data)
                    self._apply(tenant, frame)
        finally:
            await cursor.close()

    def _apply(self, tenant: str, frame: Frame) -> None:
        if frame.pos != self.applied[tenant]:
            _log.error(
                "%s: frame at stream sequence %d starts at %d, expected %d (the log's start "
                "expired?): the replica skips ahead", tenant, frame.seq, frame.pos,
                self.applied[tenant],
            )  # fmt: skip
        events = [decode_msgpack(raw) for raw in frame.events()]
        for event in events:
            if not is_decision(event):
                self.engine.apply(event)
        self._record(tenant, list(enumerate(events, frame.pos)))
        self.applied[tenant] = frame.end
        self._applied_seq[tenant] = frame.seq
