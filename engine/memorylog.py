"""``MemoryLog``: the ``EventLog`` held in memory, for tests, simulations and embedders.

Events are stored encoded, exactly as ``encode_msgpack`` gives them, so reading returns
new objects and an invalid event is refused at ``append`` as on every other log. A
second ``MemoryLog`` made on the first one's ``records`` is the same log opened again.
"""

from __future__ import annotations

from collections.abc import Iterator

from .log import EventLog, LogError

__all__ = ["MemoryLog"]


class MemoryLog(EventLog):
    """An append-only event log in a Python list (one encoded event per item)."""

    def __init__(self, records: list[bytes] | None = None) -> None:
        self._records: list[bytes] = [] if records is None else records
        self._closed = False

    @property
    def records(self) -> list[bytes]:
        """The stored events, encoded; share it to open the same log twice."""
        return self._records

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def _name(self) -> str:
        return "the memory log"

    def _append_encoded(self, encoded: list[bytes]) -> int:
        first = len(self._records)
        self._records.extend(encoded)
        return first

    def read_raw(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        self._check_open()
        stop = self._stop(start, limit)
        return ((i, self._records[i]) for i in range(start, stop))

    def end(self) -> int:
        self._check_open()
        return len(self._records)

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._records)} events"
        return f"MemoryLog({state})"

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("the memory log is closed")
