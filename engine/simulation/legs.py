"""Customers with simultaneous legs, read back from a log: the moments an agent served
two or more live channels of one conversation (the email with the document during the
call, WhatsApp during a chat), from the inputs and decisions alone."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..events import (
    Channel,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationRejoined,
    CustomerAbandoned,
    Event,
    EventRejected,
    LegJoined,
)

__all__ = ["LiveLegs", "simultaneous_legs"]


@dataclass(frozen=True, slots=True)
class LiveLegs:
    """An agent took on a conversation with several live legs (``channels``, in the
    order the customer opened them) at ``ts``."""

    ts: int
    conversation_id: str
    customer_id: str | None
    agent_id: str
    channels: tuple[Channel, ...]


def simultaneous_legs(events: Iterable[Event]) -> Iterator[LiveLegs]:
    """Each time, in log order, an agent takes on a conversation while two or more of
    its legs are live: a ``LegJoined``, or an assignment listing several legs. An input
    the engine rejected (an ``EventRejected`` follows it) changed nothing and is skipped."""
    legs: dict[str, dict[str, Channel]] = {}
    """The live legs of each open conversation: leg id -> channel."""
    customer: dict[str, str | None] = {}
    alias: dict[str, str] = {}
    stream = iter(events)
    event = next(stream, None)
    for after in itertools.chain(stream, [None]):
        if event is None:
            break
        if isinstance(after, EventRejected):
            event = after
            continue  # the input changed nothing
        match event:
            case ConversationArrived():
                legs[event.conversation_id] = {event.conversation_id: event.channel}
                customer[event.conversation_id] = event.customer_id
            case ConversationRejoined():
                legs.pop(event.new_conversation_id, None)
                customer.pop(event.new_conversation_id, None)
                alias[event.new_conversation_id] = event.conversation_id
                legs.setdefault(event.conversation_id, {})[event.new_conversation_id] = (
                    event.channel
                )
            case ConversationEnded() | CustomerAbandoned():
                cid = alias.get(event.conversation_id, event.conversation_id)
                live = legs.get(cid, {})
                live.pop(event.leg or cid, None)
                if event.leg is None or not live:
                    legs.pop(cid, None)
            case LegJoined():
                live = legs.get(event.conversation_id, {})
                if len(live) > 1:
                    yield LiveLegs(
                        event.ts, event.conversation_id, customer.get(event.conversation_id),
                        event.agent_id, tuple(live.values()),
                    )  # fmt: skip
            case ConversationAssigned() if len(event.legs) > 1:
                live = legs.get(event.conversation_id, {})
                yield LiveLegs(
                    event.ts, event.conversation_id, customer.get(event.conversation_id),
                    event.agent_id, tuple(live[leg] for leg in event.legs if leg in live),
                )  # fmt: skip
            case _:
                pass
        event = after
