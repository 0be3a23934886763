"""``NatsLog``: the synchronous ``EventLog`` over one tenant's log in NATS JetStream.

nats-py is asyncio. :class:`NatsLog` runs a private event loop in a background thread,
owns its connection, keeps an index of its subject's frames (stream sequence and first
position, 16 bytes per frame, built on open from a headers-only scan) and is used from
one thread at a time like every ``EventLog``. The subjects, frames and appends are those
of :mod:`.options`, :mod:`.frames` and :mod:`.asynclog`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
from array import array
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from omniroute.engine.log import CorruptLogError, EventLog, LogError

from .asynclog import AsyncNatsLog, LogConflictError
from .frames import Frame, plain_headers, split_batch
from .options import NatsOptions, StreamOptions, connect, ensure_stream

__all__ = ["NatsLog"]

_T = TypeVar("_T")


class _LoopThread:
    """An asyncio event loop running in a daemon thread; submit coroutines to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise LogError(f"NATS operation timed out after {timeout} s") from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class NatsLog(EventLog):
    """The ``EventLog`` of one tenant's ``.out`` subject in a JetStream stream.

    Connects on construction (``options`` from ``[nats]``, the environment applied by the
    caller), creates or checks the stream (``stream``) and indexes the subject's frames.
    ``readonly=True`` opens a follower that never appends and picks up other writers'
    frames with :meth:`refresh`. ``subject`` overrides the log subject (default
    ``<prefix>.<tenant>.out``).
    """

    def __init__(
        self,
        options: NatsOptions,
        tenant: str,
        stream: StreamOptions | None = None,
        *,
        readonly: bool = False,
        subject: str | None = None,
    ) -> None:
        self._options = options
        self._stream = stream or StreamOptions()
        self._tenant = tenant
        self._readonly = readonly
        self._subject_override = subject
        self._timeout = options.request_timeout_s * 3 + options.initial_connect_s
        self._seqs = array("q")  # stream sequence of each frame
        self._starts = array("q")  # position of each frame's first event
        self._first = 0  # the first readable position (> 0 once old frames expired)
        self._last_count = 0  # events in the last indexed frame
        self._failed: BaseException | None = None
        self._thread: _LoopThread | None = _LoopThread(f"nats-log-{tenant}")
        try:
            self._core: AsyncNatsLog = self._thread.run(self._open(), self._timeout)
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise

    async def _open(self) -> AsyncNatsLog:
        nc = await connect(self._options)
        try:
            atomic = await ensure_stream(nc.jetstream(), self._stream)
            core = AsyncNatsLog(
                nc, self._stream, self._tenant, atomic=atomic,
                timeout=self._options.request_timeout_s, subject=self._subject_override,
            )  # fmt: skip
            await core.open()
            await self._scan(core)
        except BaseException:
            await nc.close()
            raise
        return core

    async def _scan(self, core: AsyncNatsLog) -> None:
        """Index frames after the last indexed one, up to the tail."""
        last = await core.last_frame()
        if last is None:
            return
        start = self._seqs[-1] + 1 if self._seqs else 1
        if last.seq < start:
            return
        cursor = core.cursor(start, batch=4096, headers_only=True)
        try:
            while cursor.next_seq <= last.seq:
                msgs = await cursor.fetch(2.0)
                if not msgs and cursor.next_seq <= last.seq and cursor.resets > 20:
                    raise LogError(f"{core.subject}: cannot read the log's frames")
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > last.seq:
                        break
                    frame = Frame.from_msg(seq, plain_headers(msg.headers), b"")
                    self._index(frame)
        finally:
            await cursor.close()
        core.tail_seq, core.end, core.tail_headers = last.seq, last.end, last.headers

    def _index(self, frame: Frame) -> None:
        expected = self._starts[-1] + self._count(len(self._starts) - 1) if self._starts else None
        if expected is None:
            self._first = frame.pos
        elif frame.pos != expected:
            raise CorruptLogError(
                f"frame at stream sequence {frame.seq} starts at position {frame.pos}, "
                f"expected {expected}"
            )
        self._seqs.append(frame.seq)
        self._starts.append(frame.pos)
        self._last_count = frame.count

    def _count(self, i: int) -> int:
        if i + 1 < len(self._starts):
            return self._starts[i + 1] - self._starts[i]
        return self._last_count

    # --- properties --------------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def subject(self) -> str:
        return self._core.subject

    @property
    def _name(self) -> str:
        return self.subject

    @property
    def options(self) -> NatsOptions:
        return self._options

    @property
    def stream(self) -> StreamOptions:
        return self._stream

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def closed(self) -> bool:
        return self._thread is None

    @property
    def first_position(self) -> int:
        """The first position still stored (old frames may have expired by ``max_age``)."""
        return self._first

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._thread is None:
            coro.close()
            raise LogError(f"{self._stream.prefix}.{self._tenant}: the log is closed")
        return self._thread.run(coro, self._timeout)

    def _check_open(self) -> None:
        if self._thread is None:
            raise LogError(f"{self._stream.prefix}.{self._tenant}: the log is closed")

    # --- the EventLog interface -------------------------------------------------------------

    def _append_encoded(self, encoded: list[bytes]) -> int:
        try:
            return self._run(self._append(encoded))
        except LogConflictError:
            raise
        except LogError as exc:
            self._failed = exc
            raise

    async def _append(self, encoded: list[bytes]) -> int:
        core = self._core
        prev_seq = core.tail_seq
        first = await core.append(encoded)
        # index the frame(s) just written: one, or an atomic batch ending at tail_seq
        parts = split_batch(encoded, core.max_frame_bytes)
        if len(parts) == 1:
            self._index(Frame(core.tail_seq, first, len(encoded), {}, b""))
        else:
            async for frame in core.frames(prev_seq + 1, core.tail_seq):
                self._index(Frame(frame.seq, frame.pos, frame.count, {}, b""))
        return first

    def read_raw(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        self._check_open()
        stop = self._stop(start, limit)
        if start < stop and start < self._first:
            raise LogError(
                f"{self.subject}: positions before {self._first} have expired (stream max_age)"
            )
        return self._read_raw(start, stop)

    def _read_raw(self, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        if start >= stop:
            return
        i = bisect.bisect_right(self._starts, start) - 1
        j = bisect.bisect_left(self._starts, stop)
        seqs = list(self._seqs[i:j])
        starts = list(self._starts[i:j])
        chunk = 256
        for k in range(0, len(seqs), chunk):
            frames = self._run(self._fetch(seqs[k : k + chunk]))
            for expected_pos, frame in zip(starts[k : k + chunk], frames, strict=True):
                if frame.pos != expected_pos:
                    raise CorruptLogError(
                        f"{self.subject}: frame at stream sequence {frame.seq} moved from "
                        f"position {expected_pos} to {frame.pos}"
                    )
                raws = frame.events()
                for n in range(max(start - frame.pos, 0), min(stop - frame.pos, frame.count)):
                    yield frame.pos + n, raws[n]

    async def _fetch(self, seqs: list[int]) -> list[Frame]:
        """The frames at these stream sequences (ascending, all on this subject)."""
        core = self._core
        if len(seqs) <= 2:
            frames = []
            for seq in seqs:
                frame = await core.get_frame(seq)
                if frame is None:
                    raise LogError(f"{core.subject}: frame at stream sequence {seq} is gone")
                frames.append(frame)
            return frames
        wanted = set(seqs)
        found: list[Frame] = []
        async for frame in core.frames(seqs[0], seqs[-1]):
            if frame.seq in wanted:
                found.append(frame)
        if [f.seq for f in found] != seqs:
            raise LogError(f"{core.subject}: frames between {seqs[0]} and {seqs[-1]} are gone")
        return found

    def end(self) -> int:
        self._check_open()
        return self._core.end

    def refresh(self) -> int:
        """Index frames other writers appended since; return ``end()``."""
        self._check_open()
        self._run(self._scan(self._core))
        return self._core.end

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with contextlib.suppress(Exception):
            thread.run(self._core.nc.close(), 5)
        thread.stop()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._core.end} events"
        return f"NatsLog({self._stream.prefix}.{self._tenant}, {state})"
