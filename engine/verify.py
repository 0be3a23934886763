"""Re-decide a log and compare, byte for byte: the check shared by replay and the service.

A log holds each input followed by the decisions it caused. A :class:`Verifier` applies
every input to an engine and expects the decisions recorded after it, before the next
input, to be exactly the ones the engine returns, compared as msgpack bytes
(``encode_msgpack``). The first disagreement is a :class:`Mismatch`. Pure: no I/O, no
clock; the caller reads the log and decides what a mismatch means (replay stops, the
service stops or goes on with the recomputed state).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .engine import Engine
from .events import Decision, Event, encode_json, encode_msgpack

__all__ = ["Mismatch", "Verifier"]


@dataclass(frozen=True)
class Mismatch:
    """The first place where the engine and the log disagree.

    ``position`` is the log position of the recorded decision that differs or is
    missing from the replay, or (``expected`` None) the position where the engine made a
    decision the log does not have. ``input_position`` is the input that caused it.
    """

    position: int
    input_position: int | None
    expected: Event | None
    got: Event | None
    reason: str

    def describe(self) -> list[str]:
        """Human-readable lines: where, why, and both sides as JSON."""
        cause = (
            f" (decisions of the input at position {self.input_position})"
            if self.input_position is not None
            else ""
        )
        return [
            f"replay MISMATCH at log position {self.position}{cause}: {self.reason}",
            f"  expected: {_json(self.expected)}",
            f"  got:      {_json(self.got)}",
        ]


def _json(event: Event | None) -> str:
    return "(nothing)" if event is None else encode_json(event).decode()


class Verifier:
    """Applies a log's inputs to ``engine`` and matches its recorded decisions.

    Feed the log in order: :meth:`decision` for every recorded decision, and for every
    input first :meth:`unmatched` (the previous input's decisions must all be recorded)
    then :meth:`apply`. At the end of the log call :meth:`unmatched` once more.
    ``engine`` may be replaced between inputs (a restored snapshot).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inputs_applied = 0
        self.decisions_matched = 0
        self.input_position: int | None = None
        """The log position of the last input applied."""
        self._pending: deque[tuple[bytes, Decision]] = deque()

    def decision(self, position: int, raw: bytes, recorded: Event) -> Mismatch | None:
        """Match the recorded decision ``recorded`` (``raw``: its bytes in the log)."""
        if not self._pending:
            return Mismatch(
                position, self.input_position, recorded, None,
                "the log records a decision the engine did not make",
            )  # fmt: skip
        got_bytes, got = self._pending.popleft()
        if got_bytes != raw:
            return Mismatch(position, self.input_position, recorded, got, "the decisions differ")
        self.decisions_matched += 1
        return None

    def unmatched(self, position: int, at_end: bool = False) -> Mismatch | None:
        """A mismatch if the engine made decisions the log has not recorded by ``position``."""
        if not self._pending:
            return None
        _, got = self._pending[0]
        where = " (at the end of the log)" if at_end else ""
        return Mismatch(
            position, self.input_position, None, got,
            f"the engine made a decision the log does not record{where}",
        )  # fmt: skip

    def apply(self, position: int, event: Event) -> None:
        """Apply the input at ``position``; its decisions are expected next in the log."""
        self.input_position = position
        self._pending.extend((encode_msgpack(d), d) for d in self.engine.apply(event))
        self.inputs_applied += 1

    def reset(self) -> None:
        """Forget the decisions still expected (going on after a mismatch)."""
        self._pending.clear()
