"""The routing engine: ``Engine.apply(event) -> decisions``, pure and deterministic.

Time comes only from event ``ts``, and each tenant has its own clock: a tenant's events
(ticks included) move only its clock and fire only its timers. Before an event is applied,
every timer of its tenant whose deadline it passes fires, in deadline order, at its
deadline (offer timeouts, escalation rings, SLA breaches, sticky and bot-first windows,
wrap-up timeouts, asynchronous inactivity, scheduled callbacks); then the customers due
to be forgotten by then are (bounded state: ``arrivals``). After every event and every
timer, matching runs until no waiting conversation has an eligible agent with room.

An invalid event (a wrong type, a value out of range or over the policy's ``limits``, a
``ts`` more than ``limits.clock_tolerance_s`` behind its tenant's clock or more than
``limits.clock_horizon_s`` ahead) returns one ``EventRejected`` with the reason; a late
event within the tolerance is applied at the tenant's clock. An event the handler
rejects changes nothing but the time: the timers its ``ts`` made due have fired.

The steps live in modules of one concept each, as functions over an explicit
:class:`~.context.Context`: ``validation``, ``capacity``, ``queueing``, ``routing``,
``timers``, and the handlers of ``agents``, ``arrivals`` and ``conversations``. This
class owns the public API and the dispatch of each event type to its handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .agents import agent_registered, agent_removed, agent_status_changed, agent_updated
from .arrivals import contacts_linked, conversation_arrived
from .context import Context, ms
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
from .validation import MAX_TS, Rejected, input_problem, rejection

__all__ = ["Engine"]

_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(EngineState)


def _tick(ctx: Context, event: Tick) -> None:
    ctx.tenant(event.tenant)  # a tenant's time starts with its first event


_HANDLERS: dict[type, Callable[[Context, Any], None]] = {
    Tick: _tick,
    AgentRegistered: agent_registered,
    AgentUpdated: agent_updated,
    AgentStatusChanged: agent_status_changed,
    AgentRemoved: agent_removed,
    ConversationArrived: conversation_arrived,
    MessageReceived: message_received,
    OfferAccepted: offer_accepted,
    OfferDeclined: offer_declined,
    TransferRequested: transfer_requested,
    HandoffRequested: handoff_requested,
    ConversationEnded: conversation_ended,
    WrapUpCompleted: wrap_up_completed,
    CustomerAbandoned: customer_abandoned,
    CallbackRequested: callback_requested,
    ContactsLinked: contacts_linked,
}
"""Each input type's handler (an input is exactly one of these types: ``input_problem``)."""


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + " s"


class Engine:
    """Feed events with :meth:`apply`; each call returns the decisions it caused.

    >>> engine = Engine()
    >>> engine.apply(AgentRegistered(tenant="acme", ts=0, agent_id="ann", skills={"sales": 3}))
    []
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy if policy is not None else Policy()
        self._ctx = Context(self.policy, EngineState())
        limits = self.policy.limits
        self._late_ms = ms(limits.clock_tolerance_s)
        self._ahead_ms = ms(limits.clock_horizon_s)

    @property
    def state(self) -> EngineState:
        """The whole state (read it, do not mutate it)."""
        return self._ctx.state

    def apply(self, event: Event) -> list[Decision]:
        """Apply one event; return the decisions it caused, in order.

        Whatever built ``event``, a bad one (a decision, a field of the wrong type, out of
        range or over the policy's ``limits``, a ``ts`` too far from its tenant's clock)
        changes nothing and returns one ``EventRejected`` saying why.
        """
        ctx = self._ctx
        ctx.out = []
        limits = self.policy.limits
        problem = input_problem(event, limits)
        if problem is not None:
            return [rejection(event, self._clock_for(event), problem, limits)]
        if event.id is not None and self._seen(event.tenant, event.id):
            return []
        tenant = ctx.state.tenants.get(event.tenant)
        if tenant is None:
            ctx.now = event.ts
        else:
            problem = self._time_problem(tenant, event.ts)
            if problem is not None:
                return [rejection(event, tenant.clock, problem, limits)]
            advance(ctx, tenant, event.ts)
        try:
            self._handle(event)
        except Rejected as exc:
            ctx.out.append(rejection(event, ctx.now, str(exc), limits))
        else:
            if event.id is not None:
                self._remember(event.tenant, event.id)
        route(ctx)
        tenant = ctx.state.tenants.get(event.tenant)
        if tenant is not None:
            advance(ctx, tenant, ctx.now)  # timers the event itself made due fire now
        return ctx.out

    @property
    def clock(self) -> int:
        """The latest tenant clock (epoch ms), 0 before any tenant; each tenant's own time
        is :meth:`clock_of`."""
        return max((t.clock for t in self._ctx.state.tenants.values()), default=0)

    def clock_of(self, tenant: str) -> int:
        """The tenant's time: its latest event ``ts`` (epoch ms), 0 for an unknown tenant."""
        state = self._ctx.state.tenants.get(tenant)
        return state.clock if state is not None else 0

    def next_deadline(self) -> int | None:
        """When the earliest pending timer of any tenant falls due (epoch ms), or None.

        A client that sends ``Tick`` only when something is due (the simulator) reads
        this; a timer made stale since it was set is still reported, and its tick
        changes nothing. A tenant's timers fire only on that tenant's events and ticks.
        Forgetting idle customers (``arrivals``) is not a timer and is not reported here:
        it needs no tick, the tenant's next event does it.
        """
        due = [t.timers[0].deadline for t in self._ctx.state.tenants.values() if t.timers]
        return min(due) if due else None

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
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise Rejected(f"unknown event type {type(event).__name__}")
        handler(self._ctx, event)

    def _time_problem(self, tenant: TenantState, ts: int) -> str | None:
        """Why ``ts`` is too far behind or ahead of the tenant's clock, or None."""
        if ts < tenant.clock - self._late_ms:
            return (
                f"ts {ts} is {_seconds(tenant.clock - ts)} behind the clock of tenant "
                f"{tenant.tenant!r} ({tenant.clock}); limits.clock_tolerance_s accepts "
                f"{_seconds(self._late_ms)} late"
            )
        if ts > tenant.clock + self._ahead_ms:
            return (
                f"ts {ts} is {_seconds(ts - tenant.clock)} ahead of the clock of tenant "
                f"{tenant.tenant!r} ({tenant.clock}); limits.clock_horizon_s accepts "
                f"{_seconds(self._ahead_ms)} ahead"
            )
        return None

    def _clock_for(self, event: Event) -> int:
        """The time of a rejection: the tenant's clock, else the event's ``ts`` if valid."""
        name = getattr(event, "tenant", None)
        tenant = self._ctx.state.tenants.get(name) if type(name) is str else None
        if tenant is not None:
            return tenant.clock
        ts = getattr(event, "ts", None)
        return ts if type(ts) is int and 0 <= ts <= MAX_TS else 0

    def applied(self, tenant: str, event_id: str) -> bool:
        """True if an event of ``tenant`` with this ``id`` was applied within the policy's
        ``dedup_window`` (a re-sent copy would change nothing)."""
        return self._seen(tenant, event_id)

    def _seen(self, tenant: str, event_id: str) -> bool:
        return f"{tenant}\x00{event_id}" in self._ctx.state.recent_ids

    def _remember(self, tenant: str, event_id: str) -> None:
        """An applied event's id: a re-sent copy is ignored (a rejected one may be re-sent)."""
        recent = self._ctx.state.recent_ids
        recent[f"{tenant}\x00{event_id}"] = None
        if len(recent) > self.policy.dedup_window:
            del recent[next(iter(recent))]
