"""Replay a log through a fresh engine and check it re-decides exactly what was recorded.

Every input (an event for which :func:`~omniroute.engine.events.is_decision` is False)
is applied, in log order, to a new :class:`~omniroute.engine.Engine`. The decisions it
returns must be exactly the decisions recorded after that input and before the next
one, compared as msgpack bytes (``encode_msgpack``): byte-identical, or the replay fails
at the first difference. With ``snapshot_at=N`` the engine is snapshotted after input
``N``, restored into a new engine and the replay continues on the restored one, which
checks that snapshot + tail == full replay.

This is what ``omniroute replay`` runs; tests call it directly.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine import Engine
from .events import Event, decode_msgpack, encode_json, encode_msgpack, is_decision
from .policy import Policy

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["Mismatch", "ReplayResult", "replay"]


@dataclass(frozen=True)
class Mismatch:
    """The first place where the replay and the log disagree.

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


@dataclass
class ReplayResult:
    """What a replay read, applied and matched; ``mismatch`` is None when it verified."""

    events_read: int = 0
    inputs_applied: int = 0
    decisions_matched: int = 0
    snapshot_at: int | None = None
    snapshot_position: int | None = None
    snapshot_bytes: int | None = None
    seconds: float = 0.0
    mismatch: Mismatch | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None


def replay(
    log: EventLog,
    policy: Policy | None = None,
    *,
    snapshot_at: int | None = None,
) -> ReplayResult:
    """Re-apply every input of ``log`` to a fresh engine; stop at the first mismatch.

    ``snapshot_at=N`` snapshots the engine after ``N`` inputs, restores it into a new
    engine and continues there (``N=0`` restores an empty engine). Raises ``ValueError``
    when ``snapshot_at`` is negative or larger than the number of inputs in the log, or
    when a stored event does not decode. Log errors (``LogError``, ``CorruptLogError``)
    propagate.
    """
    if snapshot_at is not None and snapshot_at < 0:
        raise ValueError(f"snapshot_at must be >= 0, got {snapshot_at}")
    started = time.perf_counter()
    result = ReplayResult(snapshot_at=snapshot_at)
    engine = Engine(policy)
    pending: deque[tuple[bytes, Event]] = deque()
    input_position: int | None = None
    for position, raw in log.read_raw():
        result.events_read += 1
        try:
            event = decode_msgpack(raw)
        except ValueError as exc:  # msgspec.DecodeError
            raise ValueError(
                f"the event at log position {position} does not decode: {exc}"
            ) from exc
        if is_decision(event):
            if not pending:
                result.mismatch = Mismatch(
                    position, input_position, event, None,
                    "the log records a decision the engine did not make",
                )  # fmt: skip
                break
            got_bytes, got = pending.popleft()
            if got_bytes != raw:
                result.mismatch = Mismatch(
                    position, input_position, event, got, "the decisions differ"
                )
                break
            result.decisions_matched += 1
            continue
        if pending:
            _, got = pending[0]
            result.mismatch = Mismatch(
                position, input_position, None, got,
                "the engine made a decision the log does not record",
            )  # fmt: skip
            break
        if snapshot_at is not None and result.inputs_applied == snapshot_at:
            engine = _through_snapshot(engine, policy, result, position)
        input_position = position
        pending.extend((encode_msgpack(d), d) for d in engine.apply(event))
        result.inputs_applied += 1
    else:
        if pending:
            _, got = pending[0]
            result.mismatch = Mismatch(
                result.events_read, input_position, None, got,
                "the engine made a decision the log does not record (at the end of the log)",
            )  # fmt: skip
        elif snapshot_at is not None and result.snapshot_position is None:
            if snapshot_at > result.inputs_applied:
                raise ValueError(
                    f"snapshot_at={snapshot_at}, but the log has only "
                    f"{result.inputs_applied} inputs"
                )
            _through_snapshot(engine, policy, result, result.events_read)
    result.seconds = time.perf_counter() - started
    return result


def _through_snapshot(
    engine: Engine, policy: Policy | None, result: ReplayResult, position: int
) -> Engine:
    data = engine.snapshot()
    result.snapshot_position = position
    result.snapshot_bytes = len(data)
    return Engine.restore(data, policy)
