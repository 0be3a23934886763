"""Each tenant's recent log events, kept for agents' desk streams (Server-Sent Events).

The backend pushes every event of the tenant's log, in log order, with its position.
:class:`Feed` keeps the last ``size`` that concern an agent (any event naming an
``agent_id``; and, for the agent serving or offered a conversation, every event of
that conversation: a customer's message, an end, a breach), so a desktop that
reconnects with ``Last-Event-ID`` gets exactly what it missed, or, when that is older
than the history, a fresh copy of its state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque

from omniroute.engine.events import (
    ConversationAssigned,
    ConversationOffered,
    ConversationRejoined,
    Event,
    OfferExpired,
    WrapUpCompleted,
    WrapUpExpired,
)

__all__ = ["Feed"]

_FOLLOWED = 100_000
"""Conversations whose agent the feed remembers (the oldest forgotten first)."""


class Feed:
    """A tenant's desk events: ``(position, agents, event)``, the newest ``size``."""

    def __init__(self, size: int) -> None:
        self.entries: deque[tuple[int, tuple[str, ...], Event]] = deque(maxlen=size)
        self.end = 0
        """The log position after the last event pushed."""
        self._agent_of: OrderedDict[str, str] = OrderedDict()
        self._changed = asyncio.Event()

    def push(self, position: int, event: Event, root: str | None = None) -> None:
        """Record the log's event at ``position``; ``root`` is its conversation's own id
        when the event names a leg or an alias."""
        self.end = position + 1
        agents = self._agents(event, root)
        if agents:
            self.entries.append((position, agents, event))
            self._changed.set()
            self._changed = asyncio.Event()

    def _agents(self, event: Event, root: str | None) -> tuple[str, ...]:
        conv = root or getattr(event, "conversation_id", None)
        named = getattr(event, "agent_id", None)
        follows = self._agent_of
        if conv is not None:
            if isinstance(event, ConversationOffered | ConversationAssigned):
                follows[conv] = event.agent_id
                follows.move_to_end(conv)
                if len(follows) > _FOLLOWED:
                    follows.popitem(last=False)
            holder = follows.get(conv)
            if isinstance(event, WrapUpCompleted | WrapUpExpired) or (
                isinstance(event, OfferExpired) and holder == event.agent_id
            ):
                follows.pop(conv, None)
            if holder is not None and holder != named:
                return (holder, named) if isinstance(named, str) else (holder,)
        if isinstance(event, ConversationRejoined) and event.agent_id is None:
            return ()
        return (named,) if isinstance(named, str) else ()

    def since(self, position: int, agent: str) -> list[tuple[int, Event]]:
        """The agent's events after log position ``position``, oldest first (read from the
        newest back: a live stream asks for the last few)."""
        found = []
        for pos, agents, event in reversed(self.entries):
            if pos <= position:
                break
            if agent in agents:
                found.append((pos, event))
        return found[::-1]

    def covers(self, position: int) -> bool:
        """True if every desk event after ``position`` is still kept."""
        if position + 1 >= self.end:
            return True
        if len(self.entries) < (self.entries.maxlen or 0):
            return True  # nothing was ever dropped
        return bool(self.entries) and self.entries[0][0] <= position + 1

    async def wait(self, timeout: float) -> None:
        """Until the next desk event is pushed, or ``timeout`` seconds."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)
