"""Replay a log through a fresh engine and check it re-decides exactly what was recorded.

Every input (an event for which :func:`~omniroute.engine.events.is_decision` is False)
is applied, in log order, to a new :class:`~omniroute.engine.Engine`. The decisions it
returns must be exactly the decisions recorded after that input and before the next
one, compared as msgpack bytes (:class:`~omniroute.engine.verify.Verifier`):
byte-identical, or the replay fails at the first difference. With ``snapshot_at=N`` the
engine is snapshotted after input ``N``, restored into a new engine and the replay
continues on the restored one, which checks that snapshot + tail == full replay.

This is what ``omniroute replay`` runs (and times); tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine import Engine
from .events import decode_msgpack, is_decision
from .policy import Policy
from .verify import Mismatch, Verifier

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """What a replay read, applied and matched; ``mismatch`` is None when it verified."""

    events_read: int = 0
    inputs_applied: int = 0
    decisions_matched: int = 0
    snapshot_at: int | None = None
    snapshot_position: int | None = None
    snapshot_bytes: int | None = None
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
    result = ReplayResult(snapshot_at=snapshot_at)
    verifier = Verifier(Engine(policy))
    result.mismatch = _verify(log, policy, verifier, result)
    result.inputs_applied = verifier.inputs_applied
    result.decisions_matched = verifier.decisions_matched
    return result


def _verify(
    log: EventLog, policy: Policy | None, verifier: Verifier, result: ReplayResult
) -> Mismatch | None:
    snapshot_at = result.snapshot_at
    for position, raw in log.read_raw():
        result.events_read += 1
        try:
            event = decode_msgpack(raw)
        except ValueError as exc:  # msgspec.DecodeError
            raise ValueError(
                f"the event at log position {position} does not decode: {exc}"
            ) from exc
        if is_decision(event):
            if mismatch := verifier.decision(position, raw, event):
                return mismatch
            continue
        if mismatch := verifier.unmatched(position):
            return mismatch
        if snapshot_at is not None and verifier.inputs_applied == snapshot_at:
            verifier.engine = _through_snapshot(verifier.engine, policy, result, position)
        verifier.apply(position, event)
    if mismatch := verifier.unmatched(result.events_read, at_end=True):
        return mismatch
    if snapshot_at is not None and result.snapshot_position is None:
        if snapshot_at > verifier.inputs_applied:
            raise ValueError(
                f"snapshot_at={snapshot_at}, but the log has only {verifier.inputs_applied} inputs"
            )
        _through_snapshot(verifier.engine, policy, result, result.events_read)
    return None


def _through_snapshot(
    engine: Engine, policy: Policy | None, result: ReplayResult, position: int
) -> Engine:
    data = engine.snapshot()
    result.snapshot_position = position
    result.snapshot_bytes = len(data)
    return Engine.restore(data, policy)
