"""The ``EventLog`` interface: an append-only, totally ordered log of events.

Positions are event ordinals: 0-based and contiguous across the whole log, so
``end()`` is both the next position to be assigned and the number of events.
One ``append`` call is one batch, stored atomically: after a crash either every
event of the batch is in the log or none is. Implementations: ``FileLog`` (a local
file) and the NATS JetStream log; both pass ``tests/contracts/eventlog.py``.

A log object is not thread-safe: use it from one thread at a time.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

import msgspec

from .events import EVENT_TYPES, Event, decode_msgpack, encode_msgpack

__all__ = ["CorruptLogError", "EventLog", "LogError", "encode_batch", "encode_frame"]


class LogError(Exception):
    """The log cannot do what was asked (closed, read-only, locked, I/O failure)."""


class CorruptLogError(LogError):
    """Stored data failed verification; ``offset`` locates it when the storage has offsets."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def encode_batch(events: Sequence[Event]) -> list[bytes]:
    """Encode a batch with ``encode_msgpack``, checking every event decodes back.

    Raises ``TypeError`` for an object that is not an event and ``ValueError`` for an
    event whose fields do not match the schema (msgspec does not validate on
    construction), so nothing unreadable is ever appended.
    """
    encoded: list[bytes] = []
    for i, event in enumerate(events):
        if not isinstance(event, EVENT_TYPES):
            raise TypeError(f"batch item {i} is not an event: {type(event).__name__}")
        data = encode_msgpack(event)
        try:
            decode_msgpack(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"batch item {i} ({type(event).__name__}) is invalid: {exc}") from exc
        encoded.append(data)
    return encoded


def encode_frame(encoded: Sequence[bytes]) -> bytes:
    """Already encoded events as one msgpack array: the frame payload stored logs write."""
    n = len(encoded)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 1 << 16:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return b"".join([header, *encoded])


class EventLog(abc.ABC):
    """Append-only event log; also a context manager that closes it.

    :meth:`append` checks and encodes a batch once for every log; a log stores it in
    :meth:`_append_encoded`. ``_readonly`` and ``_failed`` (an earlier append whose outcome
    is unknown) refuse appends; :meth:`_check_open` refuses a closed log.
    """

    _readonly: bool = False
    _failed: BaseException | None = None

    def append(self, events: Sequence[Event]) -> list[int]:
        """Append ``events`` as one atomic batch and return the positions assigned.

        An empty batch appends nothing and returns ``[]``. Invalid events raise
        ``TypeError``/``ValueError`` (see ``encode_batch``) and nothing is written.
        """
        self._check_open()
        if self._readonly:
            raise LogError(f"{self._name} is open read-only")
        if self._failed is not None:
            raise LogError(f"{self._name}: an earlier append failed ({self._failed}); reopen")
        encoded = encode_batch(events)
        if not encoded:
            return []
        first = self._append_encoded(encoded)
        return list(range(first, first + len(encoded)))

    @abc.abstractmethod
    def _append_encoded(self, encoded: list[bytes]) -> int:
        """Store a non-empty batch of encoded events; the position of the first.

        A failure after which the log's content is unknown sets ``_failed``.
        """

    @property
    @abc.abstractmethod
    def _name(self) -> str:
        """The log's name in error messages (a path, a subject)."""

    @abc.abstractmethod
    def _check_open(self) -> None:
        """Raise ``LogError`` when the log is closed."""

    @abc.abstractmethod
    def read_raw(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(position, encoded event)`` in position order from ``start``.

        The bytes are exactly ``encode_msgpack(event)`` as appended. The range read
        is fixed when this is called: at most ``limit`` events, up to ``end()``.
        """

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        """Yield ``(position, event)`` in position order; same range rules as ``read_raw``."""
        return self._decode_all(self.read_raw(start, limit))

    @abc.abstractmethod
    def end(self) -> int:
        """The next position to be assigned, which is the number of events in the log."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the log; idempotent. Using a closed log raises ``LogError``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _stop(self, start: int, limit: int | None) -> int:
        """Check ``read`` arguments; return the position one past the last to read."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        end = self.end()
        if limit is None:
            return end
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return min(end, start + limit)

    @staticmethod
    def _decode_all(raw: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, Event]]:
        for position, data in raw:
            try:
                event = decode_msgpack(data)
            except msgspec.DecodeError as exc:
                raise CorruptLogError(
                    f"event at position {position} does not decode: {exc}"
                ) from exc
            yield position, event
