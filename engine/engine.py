"""The routing engine: ``Engine.apply(event) -> decisions``, pure and deterministic.

Time comes only from event ``ts``. Before an event is applied, every timer whose
deadline it passes fires, in deadline order, at its deadline (offer timeouts,
escalation rings, SLA breaches, sticky and bot-first windows, wrap-up timeouts,
asynchronous inactivity, scheduled callbacks). After every event and every timer,
matching runs until no waiting conversation has an eligible agent with room.

An invalid event changes nothing and returns one ``EventRejected`` with the reason.

The steps live in modules of one concept each, as functions over an explicit
:class:`~.context.Context`: ``validation``, ``capacity``, ``queueing``, ``routing``,
``timers``, and the handlers of ``agents``, ``arrivals`` and ``conversations``. This
class owns the public API and the dispatch of each event type to its handler.
"""

from __future__ import annotations

import msgspec

from .agents import agent_registered, agent_removed, agent_status_changed, agent_updated
from .arrivals import contacts_linked, conversation_arrived
from .context import Context
from .conversations import (
    callback_requested,
    conversation_ended,
    customer_abandoned,
    handoff_requested,
    message_received,
    offer_accepted,
    offer_declined,
    transfer_requested,
    wrap_up_completed,
)
from .events import (
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
    ContactsLinked,
    ConversationArrived,
    ConversationEnded,
    CustomerAbandoned,
    Decision,
    Event,
    HandoffRequested,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    Tick,
    TransferRequested,
    WrapUpCompleted,
)
from .policy import MEDIA_CLASSES, MediaClass, Policy
from .routing import route
from .state import EngineState, TenantState
from .timers import advance
from .validation import Rejected, envelope_problem, rejection

__all__ = ["Engine"]

_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(EngineState)


class Engine:
    """Feed events with :meth:`apply`; each call returns the decisions it caused.

    >>> engine = Engine()
    >>> engine.apply(AgentRegistered(tenant="acme", ts=0, agent_id="ann", skills={"sales": 3}))
    []
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy if policy is not None else Policy()
        self._ctx = Context(self.policy, EngineState())

    @property
    def state(self) -> EngineState:
        """The whole state (read it, do not mutate it)."""
        return self._ctx.state

    def apply(self, event: Event) -> list[Decision]:
        """Apply one event; return the decisions it caused, in order."""
        ctx = self._ctx
        ctx.out = []
        problem = envelope_problem(event)
        if problem is not None:
            return [rejection(event, ctx.state.clock, problem)]
        if event.id is not None and self._seen(event.tenant, event.id):
            return []
        advance(ctx, event.ts)
        try:
            self._handle(event)
        except Rejected as exc:
            ctx.out.append(rejection(event, ctx.state.clock, str(exc)))
        else:
            if event.id is not None:
                self._remember(event.tenant, event.id)
        route(ctx)
        advance(ctx, ctx.state.clock)  # timers the event itself made due fire now
        return ctx.out

    @property
    def clock(self) -> int:
        """The engine's time: the latest event ``ts`` seen (epoch milliseconds)."""
        return self._ctx.state.clock

    def next_deadline(self) -> int | None:
        """When the earliest pending timer falls due (epoch ms), or None.

        A client that sends ``Tick`` only when something is due (the simulator) reads
        this; a timer made stale since it was set is still reported, and its tick
        changes nothing.
        """
        timers = self._ctx.state.timers
        return timers[0].deadline if timers else None

    def tenant(self, name: str) -> TenantState | None:
        """Read-only view of one tenant's state (do not mutate)."""
        return self._ctx.state.tenants.get(name)

    def agents_with_room(self, tenant: str) -> dict[MediaClass, int]:
        """How many routable agents of ``tenant`` could take one more item of each media
        class now, by the capacity rule routing uses (budget, class maximum, interruption)."""
        matcher = self._ctx.matchers.get(tenant)
        if matcher is None:
            return dict.fromkeys(MEDIA_CLASSES, 0)
        return matcher.agents_with_room()

    def snapshot(self) -> bytes:
        """The whole state as msgpack; :meth:`restore` turns it back into an engine."""
        return msgspec.msgpack.encode(self._ctx.state)

    @classmethod
    def restore(cls, data: bytes, policy: Policy | None = None) -> Engine:
        """An engine in exactly the state a :meth:`snapshot` captured."""
        engine = cls(policy)
        engine._ctx = Context(engine.policy, _SNAPSHOT_DECODER.decode(data))
        return engine

    def _handle(self, event: Event) -> None:
        ctx = self._ctx
        match event:
            case Tick():
                pass
            case AgentRegistered():
                agent_registered(ctx, event)
            case AgentUpdated():
                agent_updated(ctx, event)
            case AgentStatusChanged():
                agent_status_changed(ctx, event)
            case AgentRemoved():
                agent_removed(ctx, event)
            case ConversationArrived():
                conversation_arrived(ctx, event)
            case MessageReceived():
                message_received(ctx, event)
            case OfferAccepted():
                offer_accepted(ctx, event)
            case OfferDeclined():
                offer_declined(ctx, event)
            case TransferRequested():
                transfer_requested(ctx, event)
            case HandoffRequested():
                handoff_requested(ctx, event)
            case ConversationEnded():
                conversation_ended(ctx, event)
            case WrapUpCompleted():
                wrap_up_completed(ctx, event)
            case CustomerAbandoned():
                customer_abandoned(ctx, event)
            case CallbackRequested():
                callback_requested(ctx, event)
            case ContactsLinked():
                contacts_linked(ctx, event)
            case _:
                raise Rejected(f"unknown event type {type(event).__name__}")

    def _seen(self, tenant: str, event_id: str) -> bool:
        return f"{tenant}\x00{event_id}" in self._ctx.state.recent_ids

    def _remember(self, tenant: str, event_id: str) -> None:
        """An applied event's id: a re-sent copy is ignored (a rejected one may be re-sent)."""
        recent = self._ctx.state.recent_ids
        recent[f"{tenant}\x00{event_id}"] = None
        if len(recent) > self.policy.dedup_window:
            del recent[next(iter(recent))]
