"""The writer of one tenant's log: inputs in, the engine applied, frames appended.

The writer (the instance holding the tenant's lease) consumes ``P.T.in`` in stream order,
applies each event and appends to ``P.T.out`` the input followed by the decisions it
caused, many inputs per frame, with ``Nats-Expected-Last-Subject-Sequence`` (a stale
writer can never append), a ``Nats-Msg-Id`` derived from the log position and the input
sequences (an append retried after a lost acknowledgement is recognised, not doubled) and
``Omniroute-In`` = the last input sequence the log now covers.

Timers fire through the log, so a replay fires them identically: the writer publishes a
``Tick`` (``ts`` = wall time, epoch ms) to ``P.T.in`` only when one is due. Every
``tick_interval_s`` (the check cadence; 0: no Ticks at all) it looks at the engine's
:meth:`~omniroute.engine.engine.Engine.next_deadline` (the worker's engine holds its one
tenant) and ticks when that deadline has passed and no Tick already sent covers it (a
Tick at ``ts`` fires every timer due by ``ts``; one still due 5 s after it was sent --
rejected, or stuck behind a backlog -- is ticked again), or, for liveness, when neither an
event (the tenant's clock) nor a Tick has been logged for ``heartbeat_s`` (0: no
heartbeat). An idle tenant with nothing pending logs one Tick per heartbeat; a timer made
stale since it was set is still reported, and its Tick changes nothing. The Tick carries
the time the service chose, so the engine stays deterministic.

Bad input never stops the service, and each bad message or event is answered once: a
message that does not parse, holds no event or exceeds ``service.max_message_bytes`` goes
to ``P.T.dead`` (raw bytes, cut to fit the server's limit with the headers; reason in
``Omniroute-Reason``); every bad event (see
:mod:`.inputs`; also one too large for a log frame) and every ``EventRejected`` the engine
decides is published as JSON on ``P.T.rejected``. An input on which the engine itself
fails (raises, or decides what the log cannot hold) is quarantined: it never enters the
log, the engine is rebuilt without it and it is rejected as ``internal``. Rejections are
published before the frame is appended, with message ids derived from the input's
sequence: at least once, de-duplicated within the window. The engine is applied between
awaits, overlapping the acknowledgement of one frame with the decisions of the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
from nats.aio.msg import Msg

from omniroute.engine.events import (
    TAGS,
    Event,
    EventRejected,
    Tick,
    encode_json,
    encode_msgpack,
    tag_of,
)
from omniroute.engine.log import LogError, encode_frame

from ..nats.asynclog import LogConflictError
from ..nats.cursor import Cursor, ack_meta
from ..nats.frames import HEADER_IN, HEADER_WRITER, MSG_ID
from ..nats.retry import Backoff
from .inputs import Rejection, decode_inputs
from .lease import Lease, cancel

if TYPE_CHECKING:
    from .metrics import Outcomes
    from .types import Tenant

__all__ = [
    "HEADER_IN_SEQ",
    "HEADER_REASON",
    "HEADER_TRUNCATED",
    "Fenced",
    "Quarantined",
    "Writer",
    "tick_due",
]

_log = logging.getLogger(__name__)

HEADER_REASON = "Omniroute-Reason"
HEADER_IN_SEQ = "Omniroute-In-Seq"
HEADER_TRUNCATED = "Omniroute-Truncated"
"""On a dead letter cut to fit the server's max_payload: the size of the message."""
_HEADER_ROOM = 4096
_encoder = msgspec.msgpack.Encoder()  # the encoding of encode_msgpack, bound once
_FRAME_OVERHEAD = 16  # a frame's msgpack array header, with room to spare
_ID_CHARS = 200  # an event id quoted in a rejection is cut to this
_TICK_RETRY_S = 5.0  # a timer still due this long after the Tick that covers it: tick again


def tick_due(
    now: int, deadline: int | None, clock: int, sent: int, heartbeat_ms: int, retry_ms: int
) -> bool:
    """Whether to publish a ``Tick`` at wall time ``now`` (epoch ms).

    ``deadline``: the tenant's earliest pending timer (``Engine.next_deadline``), ``clock``
    its time (the latest event ``ts`` applied), ``sent`` the ``ts`` of the last Tick
    published (0: none). Due when the deadline has passed and no Tick sent covers it (one
    at ``sent`` fires every timer due by then: while it is in flight the timer is not
    ticked again, unless it is still due ``retry_ms`` after), or when nothing has been
    logged nor ticked for ``heartbeat_ms`` (0: no heartbeat).
    """
    if sent > now:  # the wall clock went back: what was sent says nothing of now
        sent = 0
    if deadline is not None and deadline <= now and (deadline > sent or now - sent >= retry_ms):
        return True
    return heartbeat_ms > 0 and now - max(clock, sent) >= heartbeat_ms


class Fenced(Exception):
    """Leading stopped with engine state that the log does not hold: rebuild."""


class Quarantined(Fenced):
    """The engine failed on an input: rebuild without it (it is rejected as ``internal``)."""


class _Poison(Exception):
    def __init__(self, seq: int, index: int, exc: BaseException) -> None:
        super().__init__(f"the engine failed on input {index} of message {seq}: {exc!r}")
        self.seq, self.index = seq, index


@dataclass
class _Batch:
    encoded: list[bytes] = field(default_factory=list)
    first_in: int = 0
    last_in: int = 0
    inputs: int = 0
    decisions: Counter[type] = field(default_factory=Counter)
    rejected: list[tuple[int, int, EventRejected, str]] = field(default_factory=list)
    dead: list[tuple[int, bytes, str]] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)  # stream timestamps (ns) of the messages
    outcomes: Outcomes = field(default_factory=Counter)  # assigned/abandoned/breached by queue


class Writer:
    """Writes one tenant's log while its worker holds the lease (:meth:`lead`).

    Remembers across rebuilds the inputs the engine failed on, so they are rejected.
    """

    def __init__(self, worker: Tenant) -> None:
        self.worker = worker
        self.svc = worker.svc
        self.tenant = worker.tenant
        self.log = worker.log
        self.subjects = worker.subjects
        self._poison: set[tuple[int, int]] = set()
        self._next_in = 0  # the last input sequence applied to the engine
        self._tick_sent = 0  # ts of the last Tick published (epoch ms)

    def _apply_messages(self, msgs: deque[Msg], max_msgs: int, max_bytes: int) -> _Batch:
        """Apply the events of input messages taken from ``msgs``, until ``max_msgs`` of
        them or about ``max_bytes`` of log events; the batch to append. (The hot path.)"""
        batch = _Batch()
        engine = self.worker.engine
        apply = engine.apply
        metrics, tenant, outcomes = self.svc.metrics, self.tenant, batch.outcomes
        encode = _encoder.encode
        out = batch.encoded
        append = out.append
        kinds = batch.decisions
        poison = self._poison
        size = 0
        taken = 0
        largest = self.log.max_frame_bytes - _FRAME_OVERHEAD  # the largest event a frame holds
        max_message = self.svc.config.service.max_message_bytes
        while msgs and taken < max_msgs and size < max_bytes:
            msg = msgs.popleft()
            taken += 1
            seq, stamp = ack_meta(msg)
            if seq <= self._next_in:
                continue
            if not batch.first_in:
                batch.first_in = seq
            items, error = self._decode(msg.data, max_message)
            if error is not None:
                batch.dead.append((seq, msg.data, error))
            for index, item in enumerate(items):
                if isinstance(item, Rejection):
                    rej = self._rejection(item.reason, item.event_type, item.event_id)
                    batch.rejected.append((seq, index, rej, item.stage))
                    continue
                if poison and (seq, index) in poison:
                    rej = self._rejection("internal error: the engine failed on this event",
                                          TAGS.get(type(item)), item.id)  # fmt: skip
                    batch.rejected.append((seq, index, rej, "internal"))
                    continue
                try:
                    data = encode(item)
                except Exception as exc:  # not loggable: say why, go on
                    rej = self._rejection(f"invalid event: cannot be logged: {exc}",
                                          TAGS.get(type(item)), item.id)  # fmt: skip
                    batch.rejected.append((seq, index, rej, "schema"))
                    continue
                if len(data) > largest:
                    rej = self._rejection(
                        f"event of {len(data)} bytes is larger than the log holds ({largest} "
                        "bytes; stream.max_frame_bytes)", TAGS.get(type(item)), item.id,
                    )  # fmt: skip
                    batch.rejected.append((seq, index, rej, "size"))
                    continue
                before = metrics.before(engine, tenant, item)
                try:
                    decisions = apply(item)
                    encoded = [encode(d) for d in decisions]
                except Exception as exc:
                    raise _Poison(seq, index, exc) from exc
                if encoded and max(map(len, encoded)) > largest:
                    raise _Poison(seq, index, ValueError("a decision larger than a log frame"))
                append(data)
                size += len(data)
                for d, data in zip(decisions, encoded, strict=True):
                    append(data)
                    size += len(data)
                    kinds[type(d)] += 1
                    if type(d) is EventRejected:
                        batch.rejected.append((seq, index, d, "engine"))
                if decisions or before is not None:
                    metrics.tally(engine, tenant, item, decisions, before, outcomes)
                batch.inputs += 1
            batch.last_in = seq
            batch.stamps.append(stamp)
            self._next_in = seq
        return batch

    def _decode(self, data: bytes, max_message: int) -> tuple[list[Event | Rejection], str | None]:
        """:func:`decode_inputs`, with the message size limit; never raises."""
        if len(data) > max_message:
            return [], (f"message of {len(data)} bytes is larger than service.max_message_bytes "
                        f"= {max_message}")  # fmt: skip
        try:
            return decode_inputs(data, self.tenant)
        except Exception as exc:  # a message that breaks the decoder is dead
            return [], f"cannot decode the message: {exc!r}"[:1000]

    def _rejection(
        self, reason: str, event_type: str | None = None, event_id: str | None = None
    ) -> EventRejected:
        return EventRejected(
            tenant=self.tenant, ts=self.worker.engine.clock_of(self.tenant), reason=reason,
            event_type=event_type, event_id=event_id and event_id[:_ID_CHARS],
        )  # fmt: skip

    async def _publish_rejections(self, batch: _Batch) -> None:
        """Publish the batch's rejections and dead letters (idempotent message ids)."""
        js = self.svc.js
        todo: list[tuple[str, bytes, dict[str, str]]] = []
        room = self.svc.nc_checked.max_payload - _HEADER_ROOM  # a message's bytes, at most
        for seq, index, rej, stage in batch.rejected:
            headers = {MSG_ID: f"rej:{self.tenant}:{seq}:{index}:{stage}",
                       HEADER_IN_SEQ: str(seq)}  # fmt: skip
            data = encode_json(rej)
            if len(data) > room:  # an engine's reason quoting huge ids: cut, to be published
                eid = rej.event_id and rej.event_id[:_ID_CHARS]
                reason = rej.reason[:1000] + " [cut]"
                data = encode_json(msgspec.structs.replace(rej, reason=reason, event_id=eid))
            todo.append((self.subjects.rejected, data, headers))
            self.svc.metrics.rejected.labels(self.tenant, stage).inc()
        for seq, data, reason in batch.dead:
            self.svc.metrics.rejected.labels(self.tenant, "dead").inc()
            clean = reason[:1000].replace("\r", " ").replace("\n", " ")
            headers = {MSG_ID: f"dead:{self.tenant}:{seq}", HEADER_IN_SEQ: str(seq),
                       HEADER_REASON: clean}  # fmt: skip
            if len(data) > room:  # with the headers it would not fit the server's limit
                headers[HEADER_TRUNCATED] = str(len(data))
                data = data[:room]
            todo.append((self.subjects.dead, data, headers))
        health, key = self.svc.health, f"publish {self.tenant}"
        backoff = Backoff(key, first=0.05, cap=0.5)
        while todo:
            results = await asyncio.gather(
                *(js.publish(subject, data, headers=dict(h)) for subject, data, h in todo),
                return_exceptions=True,
            )
            todo = [job for job, r in zip(todo, results, strict=True) if isinstance(r, Exception)]
            if not todo:
                health.clear(key)
                return
            if not backoff.attempt:
                _log.warning("%s: %d rejection(s) not published yet; retrying", self.tenant,
                             len(todo))  # fmt: skip
                health.trouble(key, f"publish retrying for {self.tenant}")
            if self.svc.hard_stop or (
                self.worker.lease is not None and not self.worker.lease.still_valid()
            ):
                health.clear(key)
                raise Fenced("rejections not published")
            await asyncio.sleep(backoff.next())

    async def _append(self, batch: _Batch) -> _Batch:
        if batch.rejected or batch.dead:
            await self._publish_rejections(batch)
        if not batch.encoded:
            return batch
        headers = {HEADER_IN: str(batch.last_in), HEADER_WRITER: self.svc.instance}
        msg_id = f"{self.tenant}:{self.log.end}:{batch.first_in}-{batch.last_in}"
        health, key = self.svc.health, f"append {self.tenant}"
        backoff = Backoff(key, first=0.05, cap=0.5)
        while True:
            try:
                await self.log.append(batch.encoded, msg_id=msg_id, headers=headers)
                health.clear(key)
                return batch
            except LogConflictError:
                health.clear(key)
                raise
            except LogError as exc:
                if (
                    self.svc.hard_stop
                    or self.worker.lease is None
                    or not self.worker.lease.still_valid()
                ):
                    health.clear(key)
                    raise Fenced(f"append abandoned: {exc}") from exc
                if not backoff.attempt:
                    _log.warning("%s: append not acknowledged (%s); retrying", self.tenant, exc)
                    health.trouble(key, f"append retrying for {self.tenant}: {exc}")
                await asyncio.sleep(backoff.next())

    def _commit(self, batch: _Batch) -> None:
        self.worker.applied_seq, self.worker.applied_end = self.log.tail_seq, self.log.end
        self.worker.in_seq = max(self.worker.in_seq, batch.last_in)
        self.worker.since_snapshot += len(batch.encoded)
        m = self.svc.metrics
        t = self.tenant
        if batch.inputs:
            m.inputs.labels(t).inc(batch.inputs)
        for kind, n in batch.decisions.items():
            m.decisions.labels(t, tag_of(kind)).inc(n)
        m.count_outcomes(t, batch.outcomes.items())
        now = time.time_ns()
        hist = m.latency.labels(t)
        for stamp in batch.stamps:
            hist.observe(max(0, now - stamp) / 1e9)
        m.position.labels(t).set(self.worker.applied_end)

    async def _ticks(self) -> None:
        """Every ``tick_interval_s``, publish a ``Tick`` if one is due (:func:`tick_due`)."""
        opts = self.svc.config.service
        interval = opts.tick_interval_s
        heartbeat_ms = round(opts.heartbeat_s * 1000)
        retry_ms = round(max(_TICK_RETRY_S, 2 * interval) * 1000)
        js = self.svc.js
        while True:
            await asyncio.sleep(interval)
            engine = self.worker.engine  # (rebuilt on a quarantine: read it each time)
            ts = int(time.time() * 1000)
            deadline = engine.next_deadline()
            clock = engine.clock_of(self.tenant)
            if not tick_due(ts, deadline, clock, self._tick_sent, heartbeat_ms, retry_ms):
                continue
            frame = encode_frame([encode_msgpack(Tick(tenant=self.tenant, ts=ts))])
            try:
                await js.publish(self.subjects.inputs, frame,
                                 headers={MSG_ID: f"tick:{self.tenant}:{ts}"})  # fmt: skip
            except Exception as exc:  # not sent: tried again at the next check
                _log.debug("%s: tick not published: %r", self.tenant, exc)
                continue
            self._tick_sent = ts

    async def lead(self, lease: Lease) -> None:
        """Write the log while the lease holds; raises ``Fenced`` if state must be rebuilt."""
        svc = self.svc
        opts = svc.config.service
        self.worker.role = "catching up"
        await self.worker.catch_up()
        self.log.tail_seq, self.log.end = self.worker.applied_seq, self.worker.applied_end
        self._next_in = self.worker.in_seq
        self.worker.role = "writer"
        svc.metrics.writer.labels(self.tenant).set(1)
        _log.info("%s: writing the log from position %d, inputs after %d", self.tenant,
                  self.worker.applied_end, self.worker.in_seq)  # fmt: skip
        cursor = Cursor(svc.nc_checked, svc.config.stream.name, self.subjects.inputs,
                        self.worker.in_seq + 1, batch=opts.fetch_batch)  # fmt: skip
        ticker = asyncio.create_task(self._ticks()) if opts.tick_interval_s > 0 else None
        inflight: asyncio.Task[_Batch] | None = None
        group = opts.append_messages or opts.fetch_batch
        frame_bytes = self.log.max_frame_bytes
        clean = False
        try:
            while not self.worker.leaving() and lease.still_valid():
                msgs = await cursor.fetch(0.0 if inflight is not None else 0.25)
                svc.metrics.lag.labels(self.tenant).set(cursor.num_pending or 0)
                if not msgs:
                    if inflight is not None:
                        self._commit(await inflight)
                        inflight = None
                    if self.worker.snapshot_due():
                        await self.worker.save_snapshot()
                    continue
                todo = deque(msgs)
                while todo:
                    if self.worker.snapshot_due():
                        if inflight is not None:
                            self._commit(await inflight)
                            inflight = None
                        await self.worker.save_snapshot()
                    try:
                        batch = self._apply_messages(todo, group, frame_bytes)
                    except _Poison as poison:
                        _log.error("%s: %s; rebuilding without it", self.tenant, poison)
                        self._poison.add((poison.seq, poison.index))
                        raise Quarantined(str(poison)) from poison
                    if inflight is not None:
                        self._commit(await inflight)
                    inflight = asyncio.create_task(self._append(batch))
            if inflight is not None:
                self._commit(await inflight)
                inflight = None
            clean = True
        except LogConflictError as exc:
            svc.metrics.conflicts.labels(self.tenant).inc()
            _log.warning("%s: fenced off: %s", self.tenant, exc)
            raise Fenced(str(exc)) from exc
        finally:
            await cancel(inflight)
            await cancel(ticker)
            await cursor.close()
            svc.metrics.writer.labels(self.tenant).set(0)
            self.worker.role = "standby"
            if clean and self.worker.leaving() and self.worker.since_snapshot:
                await self.worker.save_snapshot(wait=True)
        if not lease.still_valid():
            # the engine may hold inputs applied after the lease lapsed and never appended
            raise Fenced("lease lost")
