"""``AsyncNatsLog``: one tenant's ``.out`` log written and read on an asyncio connection.

Appends are fenced and idempotent. Every append carries
``Nats-Expected-Last-Subject-Sequence`` = the stream sequence of the last frame this writer
knows on ``.out`` (``0`` for an empty log), so a writer that is behind (a stale writer after
a failover) can never append; the server answers "wrong last sequence" and
:class:`LogConflictError` is raised. Every append also carries a ``Nats-Msg-Id``: when an
acknowledgement is lost and the publish is retried, the server checks the expected sequence
*before* de-duplication, so the retry fails with "wrong last sequence"; the writer then reads
the last frame and, if its ``Nats-Msg-Id`` is its own, the first attempt landed. An append
larger than ``StreamOptions.max_frame_bytes`` is split into several frames published as one
JetStream atomic batch (``allow_atomic``, nats-server >= 2.12), so one ``append`` stays one
atomic batch of the log.

The service uses it on its own loop; :class:`~omniroute.adapters.nats.log.NatsLog` wraps it
in the synchronous ``EventLog`` interface.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec
import nats.js.errors
from nats.aio.client import Client

from omniroute.engine.log import LogError, encode_frame

from .cursor import Cursor
from .frames import HEADER_COUNT, HEADER_POS, MSG_ID, Frame, plain_headers, split_batch
from .options import TRANSIENT, StreamOptions
from .retry import Backoff

__all__ = ["AsyncNatsLog", "LogConflictError"]

_EXPECTED_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQ = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"
_ERR_WRONG_LAST_SEQUENCE = 10071
_MAX_ATOMIC_BATCH = 1000  # nats-server's default limit of messages per atomic batch

_json_decoder = msgspec.json.Decoder()


class LogConflictError(LogError):
    """Another writer appended to the log first: this writer is stale (fenced off).

    Nothing of the failed append was stored. ``tail_seq`` is the stream sequence of the
    log's last frame as the server reported it.
    """

    def __init__(self, message: str, tail_seq: int | None = None) -> None:
        super().__init__(message)
        self.tail_seq = tail_seq


def _api_error(data: bytes) -> tuple[int, str] | None:
    try:
        resp = _json_decoder.decode(data)
    except msgspec.DecodeError:
        return (0, f"unreadable reply {data[:100]!r}")
    err = resp.get("error") if isinstance(resp, dict) else None
    if err is None:
        return None
    return int(err.get("err_code", 0)), str(err.get("description", err))


class AsyncNatsLog:
    """The writer and reader of one tenant's ``.out`` log, on an asyncio connection.

    :meth:`open` learns the tail (last frame) with one request; :meth:`append` writes
    fenced, idempotent frames (see the module docstring); :meth:`frames` reads frames
    through a :class:`Cursor`.
    """

    def __init__(
        self,
        nc: Client,
        stream: StreamOptions,
        tenant: str,
        *,
        atomic: bool = True,
        timeout: float = 5.0,
        subject: str | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout)
        self.options = stream
        self.subjects = stream.subjects(tenant)
        self.subject = subject or self.subjects.out
        self.tenant = tenant
        self.tail_seq = 0
        """Stream sequence of the last frame of the log (0: empty)."""
        self.end = 0
        """The next log position (the number of events, expired ones included)."""
        self.tail_headers: Mapping[str, str] = {}
        self._atomic = atomic
        self._timeout = timeout

    @property
    def max_frame_bytes(self) -> int:
        limit = self.options.max_frame_bytes
        server = self.nc.max_payload
        return min(limit, server - 4096) if server else limit

    async def open(self) -> None:
        """Learn the log's tail from the server."""
        last = await self.last_frame()
        if last is None:
            self.tail_seq, self.end, self.tail_headers = 0, 0, {}
        else:
            self.tail_seq, self.end, self.tail_headers = last.seq, last.end, last.headers

    async def last_frame(self) -> Frame | None:
        """The last frame of the log, or None when it is empty."""
        try:
            raw = await self.js.get_last_msg(self.options.name, self.subject, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        assert raw.seq is not None
        return Frame.from_msg(raw.seq, plain_headers(raw.headers), raw.data or b"")

    async def get_frame(self, seq: int) -> Frame | None:
        """The frame at stream sequence ``seq``, or None if there is none on this subject."""
        try:
            raw = await self.js.get_msg(self.options.name, seq, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        if raw.subject != self.subject:
            return None
        assert raw.seq is not None
        return Frame.from_msg(raw.seq, plain_headers(raw.headers), raw.data or b"")

    async def append(
        self,
        encoded: Sequence[bytes],
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        attempts: int = 3,
    ) -> int:
        """Append encoded events as one atomic batch; return the position of the first.

        Raises :class:`LogConflictError` when another writer appended first (nothing was
        stored), ``LogError`` when the server cannot be reached (then the outcome is
        unknown: call :meth:`open` before appending again).
        """
        if not encoded:
            return self.end
        parts = split_batch(encoded, self.max_frame_bytes)
        if len(parts) > 1 and not self._atomic:
            raise ValueError(
                "append needs several frames, but the server has no atomic batches "
                "(nats-server >= 2.12); raise stream.max_frame_bytes or the server's max_payload"
            )
        if len(parts) > _MAX_ATOMIC_BATCH:
            raise ValueError(f"append of {len(parts)} frames exceeds one atomic batch")
        base_id = msg_id or f"{self.tenant}:{self.end}:{uuid.uuid4().hex[:16]}"
        messages: list[tuple[bytes, dict[str, str]]] = []
        pos = self.end
        for i, part in enumerate(parts):
            h = dict(headers or {})
            h[HEADER_POS] = str(pos)
            h[HEADER_COUNT] = str(len(part))
            h[MSG_ID] = base_id if len(parts) == 1 else f"{base_id}/{i}"
            if i == 0:
                h[_EXPECTED_SUBJECT_SEQ] = str(self.tail_seq)
            messages.append((encode_frame(part), h))
            pos += len(part)
        last_id = messages[-1][1][MSG_ID]
        error: str = ""
        backoff = Backoff(f"append {self.subject}", first=0.1, cap=1.0)
        for _ in range(attempts):
            try:
                reply = await self._publish(messages)
            except TRANSIENT as exc:
                error = repr(exc)
                await asyncio.sleep(backoff.next())
                continue
            failure = _api_error(reply)
            if failure is None:
                seq = int(_json_decoder.decode(reply)["seq"])
                self._advance(seq, pos, messages[-1][1])
                return pos - len(encoded)
            code, description = failure
            if code == _ERR_WRONG_LAST_SEQUENCE:
                last = await self._last_or_none()
                if last is not None and last.headers.get(MSG_ID) == last_id:
                    self._advance(last.seq, last.end, last.headers)  # an earlier attempt landed
                    return pos - len(encoded)
                raise LogConflictError(
                    f"{self.subject}: another writer appended first ({description}); "
                    f"this writer expected the last frame at sequence {self.tail_seq}",
                    last.seq if last is not None else None,
                )
            raise LogError(f"{self.subject}: append refused: {description} (code {code})")
        raise LogError(f"{self.subject}: append failed after {attempts} attempts: {error}")

    async def _last_or_none(self) -> Frame | None:
        backoff = Backoff(f"tail {self.subject}", first=0.1, cap=0.5)
        for _ in range(5):
            try:
                return await self.last_frame()
            except TRANSIENT:
                await asyncio.sleep(backoff.next())
        raise LogError(f"{self.subject}: cannot read the log's tail")

    def _advance(self, seq: int, end: int, headers: Mapping[str, str]) -> None:
        self.tail_seq, self.end, self.tail_headers = seq, end, headers

    async def _publish(self, messages: list[tuple[bytes, dict[str, str]]]) -> bytes:
        if len(messages) == 1:
            payload, headers = messages[0]
            msg = await self.nc.request(self.subject, payload, timeout=self._timeout,
                                        headers=headers)  # fmt: skip
            return msg.data
        batch_id = uuid.uuid4().hex
        for i, (payload, headers) in enumerate(messages, start=1):
            headers[_BATCH_ID] = batch_id
            headers[_BATCH_SEQ] = str(i)
            if i < len(messages):
                await self.nc.publish(self.subject, payload, headers=headers)
            else:
                headers[_BATCH_COMMIT] = "1"
                msg = await self.nc.request(self.subject, payload, timeout=self._timeout,
                                            headers=headers)  # fmt: skip
                return msg.data
        raise AssertionError("unreachable")

    def cursor(self, start_seq: int, **kwargs: Any) -> Cursor:
        """A cursor over this log's frames from stream sequence ``start_seq``."""
        return Cursor(self.nc, self.options.name, self.subject, start_seq, **kwargs)

    async def frames(
        self, start_seq: int = 1, stop_seq: int | None = None, *, max_wait: float = 1.0
    ) -> AsyncIterator[Frame]:
        """Frames from ``start_seq`` up to ``stop_seq`` (default: the tail now), in order."""
        if stop_seq is None:
            last = await self.last_frame()
            stop_seq = last.seq if last is not None else 0
        if stop_seq < start_seq:
            return
        cursor = self.cursor(start_seq)
        try:
            while cursor.next_seq <= stop_seq:
                msgs = await cursor.fetch(max_wait)
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > stop_seq:
                        return
                    yield Frame.from_msg(seq, plain_headers(msg.headers), msg.data)
        finally:
            await cursor.close()
