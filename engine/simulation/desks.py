"""An agent's written work: the asynchronous conversations they hold, worked one at a time.

A human agent holds several asynchronous conversations at once (emails, social posts,
messaging chats: ``policy.REPLY_CLASSES``) but writes one reply at a time. Each piece
of written work (answering an email, a reply in a messaging conversation) is a
:class:`Piece` on the agent's desk; the agent works the piece of the conversation they
were given first (then the oldest piece of it), to the end, and puts it down only for
real-time work: while they have a live call or video leg, the written work is paused and
resumes, where it stopped, when the last such leg ends. Web chats are worked alongside
(they do not pause written work). Everything is ordered by counters, never by dict order
of anything random, so a run stays deterministic.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from .floor import Floor

__all__ = ["Desks", "Piece"]


@dataclass(order=True)
class Piece:
    """A piece of written work: ``work_ms`` on leg ``leg`` of conversation ``cid``, then
    ``done`` is called with the time it was finished. Pieces are worked in ``order``:
    (the assignment's generation, the piece's sequence number)."""

    order: tuple[int, int]
    cid: str = field(compare=False)
    leg: str = field(compare=False)
    work_ms: int = field(compare=False)
    done: Callable[[int], object] = field(compare=False)


@dataclass
class _Desk:
    pieces: list[Piece] = field(default_factory=list)
    """The pieces waiting, a heap by ``order``."""
    realtime: dict[tuple[str, str], None] = field(default_factory=dict)
    """The live call and video legs (conversation, leg) the agent is on."""
    current: Piece | None = None
    since: int = 0
    """When work on ``current`` (re)started."""
    token: int = 0
    """Bumped when ``current`` changes: a planned finish of another piece is stale."""


class Desks:
    """Every human agent's written work, on the floor they share."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self._desks: dict[str, _Desk] = {}
        self._seq = itertools.count()

    def order(self, gen: int) -> tuple[int, int]:
        """The place of a new piece of an assignment of generation ``gen``."""
        return (gen, next(self._seq))

    def add(self, agent_id: str, piece: Piece, ts: int) -> None:
        """Put ``piece`` on the agent's desk; they start on it if they have nothing else."""
        desk = self._desks.setdefault(agent_id, _Desk())
        heapq.heappush(desk.pieces, piece)
        self._next(desk, ts)

    def owes(self, agent_id: str, cid: str, leg: str) -> bool:
        """Whether the agent still has written work on leg ``leg`` of ``cid``."""
        desk = self._desks.get(agent_id)
        if desk is None:
            return False
        pieces = [*desk.pieces, *([desk.current] if desk.current is not None else [])]
        return any(p.cid == cid and p.leg == leg for p in pieces)

    def realtime_on(self, agent_id: str, cid: str, leg: str, ts: int) -> None:
        """The agent starts on a live call or video leg: their written work pauses."""
        desk = self._desks.setdefault(agent_id, _Desk())
        desk.realtime[(cid, leg)] = None
        piece = desk.current
        if piece is not None:
            piece.work_ms -= ts - desk.since
            heapq.heappush(desk.pieces, piece)
            desk.current = None
            desk.token += 1

    def drop(self, agent_id: str, cid: str, ts: int, leg: str | None = None) -> None:
        """The agent no longer works on conversation ``cid`` (or only its leg ``leg``: a
        call that hung up...): its pieces and live legs leave the desk, and the agent
        goes on with the rest."""
        desk = self._desks.get(agent_id)
        if desk is None:
            return

        def mine(c: str, lg: str) -> bool:
            return c == cid and (leg is None or lg == leg)

        desk.pieces = [p for p in desk.pieces if not mine(p.cid, p.leg)]
        heapq.heapify(desk.pieces)
        desk.realtime = {k: None for k in desk.realtime if not mine(*k)}
        if desk.current is not None and mine(desk.current.cid, desk.current.leg):
            desk.current = None
            desk.token += 1
        self._next(desk, ts)

    def _next(self, desk: _Desk, ts: int) -> None:
        """Start the next piece if the agent is free of real-time and written work."""
        if desk.current is not None or desk.realtime or not desk.pieces:
            return
        piece = heapq.heappop(desk.pieces)
        desk.current, desk.since = piece, ts
        desk.token += 1
        token = desk.token

        def finish(ts: int) -> None:
            if desk.token != token:
                return  # paused, or dropped
            desk.current = None
            desk.token += 1
            piece.done(ts)
            self._next(desk, ts)

        self.floor.at(ts + max(0, piece.work_ms), finish)
