"""``Cursor``: reading one subject of a stream, in order, from a stream sequence onwards.

A cursor reads with an ephemeral pull consumer (no acks) whose position the cursor owns:
when the consumer disappears, the connection is re-established after a server restart
(the known nats-py trap: a pull subscription does not resume by itself), heartbeats stop
or a delivery gap shows up, the cursor deletes it and creates a new one at its own next
sequence. Nothing is lost or delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from omniroute.engine.log import LogError

__all__ = ["Cursor", "ack_meta"]

_log = logging.getLogger(__name__)


def _meta(msg: Msg) -> tuple[int, int, int]:
    """(stream sequence, consumer sequence, pending) of a JetStream-delivered message."""
    md = msg.metadata
    return md.sequence.stream, md.sequence.consumer, md.num_pending


def ack_meta(msg: Msg) -> tuple[int, int]:
    """(stream sequence, stream timestamp in ns) from a JetStream message's reply subject."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= 11:  # $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>...
        return int(tokens[7]), int(tokens[9])
    md = msg.metadata
    return md.sequence.stream, int(md.timestamp.timestamp() * 1e9)


class Cursor:
    """Reads one subject of a stream, in order, from stream sequence ``start_seq`` onwards.

    Owns its position (``next_seq``): the ephemeral pull consumer behind it is disposable
    and re-created at ``next_seq`` whenever it is lost (server restart, reconnect, missed
    heartbeats, delivery gap, deleted consumer). :meth:`fetch` never raises for those; it
    returns what it could read (possibly nothing) within ``max_wait``.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        subject: str,
        start_seq: int = 1,
        *,
        batch: int = 256,
        max_bytes: int = 16 * 1024 * 1024,
        heartbeat_s: float = 1.0,
        headers_only: bool = False,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.stream = stream
        self.subject = subject
        self.next_seq = max(1, start_seq)
        self.num_pending: int | None = None
        """Messages of the subject after the last one delivered (the consumer's lag)."""
        self.resets = 0
        self._batch = batch
        self._max_bytes = max_bytes
        self._heartbeat = heartbeat_s
        self._headers_only = headers_only
        self._consumer: str | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._outstanding = 0
        self._dseq = 0
        self._last_heard = 0.0
        self._reconnects = nc.stats["reconnects"]
        self._retry_at = 0.0
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        self._outstanding = 0
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._js.delete_consumer(self.stream, consumer), 1.0)

    async def _create(self) -> bool:
        """Create the consumer at ``next_seq``; False (and retry later) when it cannot."""
        await self._drop()
        now = time.monotonic()
        if now < self._retry_at or not self._nc.is_connected:
            return False
        name = uuid.uuid4().hex
        config = ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next_seq,
            ack_policy=AckPolicy.NONE,
            filter_subject=self.subject,
            inactive_threshold=max(30.0, 10 * self._heartbeat),
            mem_storage=True,
            num_replicas=1,
            headers_only=self._headers_only or None,
        )
        try:
            self._inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(
                self._inbox, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
            await self._js.add_consumer(self.stream, config=config)
        except Exception as exc:  # no connection, JetStream not ready after a restart, ...
            _log.debug("cursor %s: cannot create consumer yet: %r", self.subject, exc)
            self._retry_at = time.monotonic() + 0.25
            await self._drop()
            return False
        self._consumer = name
        self._dseq = 0
        self._reconnects = self._nc.stats["reconnects"]
        return True

    async def _request(self) -> None:
        assert self._consumer is not None
        expires = max(5.0, 5 * self._heartbeat)
        req = {
            "batch": self._batch,
            "expires": int(expires * 1e9),
            "idle_heartbeat": int(self._heartbeat * 1e9),
        }
        if self._max_bytes:
            req["max_bytes"] = self._max_bytes
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._consumer}"
        await self._nc.publish(subject, msgspec.json.encode(req), reply=self._inbox)
        self._outstanding = self._batch
        self._last_heard = time.monotonic()

    async def fetch(self, max_wait: float = 1.0, limit: int | None = None) -> list[Msg]:
        """Up to ``limit`` new messages in stream order, waiting at most ``max_wait`` s."""
        if self._closed:
            raise LogError("cursor is closed")
        deadline = time.monotonic() + max_wait
        out: list[Msg] = []
        limit = limit or self._batch
        while len(out) < limit:
            now = time.monotonic()
            if self._consumer is None or self._nc.stats["reconnects"] != self._reconnects:
                if not await self._create():
                    if out or now >= deadline:
                        break
                    await asyncio.sleep(min(0.05, max(0.0, deadline - now)))
                    continue
                self.resets += 1
            sub = self._sub
            assert sub is not None
            try:
                if self._outstanding <= 0:
                    await self._request()
                if out and sub.pending_msgs == 0:
                    break
                wait = deadline - time.monotonic()
                if wait <= 0 and sub.pending_msgs == 0:
                    break
                msg = await sub.next_msg(timeout=max(wait, 0.001))
            except (TimeoutError, nats.errors.TimeoutError):
                if time.monotonic() - self._last_heard > 3 * self._heartbeat + 1:
                    _log.info("cursor %s: no heartbeat, re-creating the consumer", self.subject)
                    self._consumer = None  # re-created on the next call
                break
            except Exception as exc:  # connection closed or draining
                _log.debug("cursor %s: %r", self.subject, exc)
                self._consumer = None
                break
            self._last_heard = time.monotonic()
            if not msg.reply:  # a status message
                self._status(msg)
                continue
            try:
                sseq, dseq, pending = _meta(msg)
            except Exception:
                continue
            self._outstanding -= 1
            if dseq != self._dseq + 1:
                _log.info(
                    "cursor %s: delivery gap (%d after %d), re-creating the consumer",
                    self.subject, dseq, self._dseq,
                )  # fmt: skip
                self._consumer = None
                continue
            self._dseq = dseq
            if sseq < self.next_seq:
                continue
            self.next_seq = sseq + 1
            self.num_pending = pending
            out.append(msg)
        return out

    def _status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":  # idle heartbeat
            return
        if status in ("404", "408"):  # no messages / request expired: the request is over
            self._outstanding = 0
            if status == "404":
                self.num_pending = 0
            return
        description = headers.get("Description", "")
        if status == "409" and description.startswith("Batch Completed"):
            # the request's batch was delivered in full (max_bytes to spare): the request is
            # over and already counted so, message by message. Not a fault: re-creating the
            # consumer here cost a consumer delete + create per batch, which slowed reading a
            # long log (a restarted instance's replay, before it can take a lease) severalfold
            return
        if status == "409" and "Max" in description and "Bytes" in description:
            self._max_bytes = 0  # a message is larger than max_bytes: ask without a limit
            self._outstanding = 0
            return
        _log.info("cursor %s: status %s %s, re-creating the consumer", self.subject, status,
                  description)  # fmt: skip
        self._consumer = None
