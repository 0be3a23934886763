"""The routing engine: ``Engine.apply(event) -> decisions``, pure and deterministic.

Time comes only from event ``ts``. Before an event is applied, every timer whose
deadline it passes fires, in deadline order, at its deadline (offer timeouts,
escalation rings, SLA breaches, sticky and bot-first windows, wrap-up timeouts,
asynchronous inactivity, scheduled callbacks). After every event and every timer,
matching runs until no waiting conversation has an eligible agent with room.

An invalid event changes nothing and returns one ``EventRejected`` with the reason.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import msgspec

from omniroute.core_ext import kernel

from .events import (
    AGENT_KINDS,
    AGENT_STATUSES,
    CHANNELS,
    TAGS,
    AgentNotResponding,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationEscalated,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    Decision,
    Event,
    EventRejected,
    HandoffRequested,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    SlaBreached,
    Tick,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
    is_decision,
)
from .matching import CLASS_INDEX, ProfileTable, TenantMatcher, urgency
from .policy import CHANNEL_CLASS, MEDIA_CLASSES, MediaClass, Policy, Queue
from .state import (
    AgentState,
    ConversationState,
    CustomerState,
    EngineState,
    TenantState,
    Timer,
    TimerKind,
)

__all__ = ["Engine", "Rejected"]

_N_CLASSES = len(MEDIA_CLASSES)
_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(EngineState)


class Rejected(Exception):
    """Raised inside a handler, before any change, when the event is invalid."""


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _contact_key(contact: Contact) -> str:
    return f"{contact.channel}:{contact.address}"


def _check_skills(skills: dict[str, int], what: str = "skills") -> None:
    for name, level in skills.items():
        if not name:
            raise Rejected(f"{what}: empty skill name")
        if type(level) is not int or not 1 <= level <= 5:
            raise Rejected(f"{what}.{name}: level must be an integer 1..5, got {level!r}")


class Engine:
    """Feed events with :meth:`apply`; each call returns the decisions it caused.

    >>> engine = Engine()
    >>> engine.apply(AgentRegistered(tenant="acme", ts=0, agent_id="ann", skills={"sales": 3}))
    []
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy if policy is not None else Policy()
        self._profiles = ProfileTable(self.policy)
        self.state = EngineState()
        self._matchers: dict[str, TenantMatcher] = {}
        self._out: list[Decision] = []
        self._dirty_agents: dict[tuple[str, str], None] = {}
        self._dirty_convs: dict[tuple[str, str], None] = {}

    # --- public API --------------------------------------------------------------------

    def apply(self, event: Event) -> list[Decision]:
        """Apply one event; return the decisions it caused, in order."""
        self._out = []
        if is_decision(event):
            return [self._rejection(event, "decisions are emitted by the engine, not applied")]
        if type(event.ts) is not int or event.ts < 0:
            return [self._rejection(event, f"ts must be a non-negative integer, got {event.ts!r}")]
        if not event.tenant:
            return [self._rejection(event, "tenant must not be empty")]
        if event.id is not None and self._seen(event.tenant, event.id):
            return []
        self._advance(event.ts)
        try:
            self._handle(event)
        except Rejected as exc:
            self._out.append(self._rejection(event, str(exc)))
        else:
            if event.id is not None:
                self._remember(event.tenant, event.id)
        self._route()
        self._advance(self.state.clock)  # timers the event itself made due fire now
        return self._out

    @property
    def clock(self) -> int:
        """The engine's time: the latest event ``ts`` seen (epoch milliseconds)."""
        return self.state.clock

    def next_deadline(self) -> int | None:
        """When the earliest pending timer falls due (epoch ms), or None.

        A client that sends ``Tick`` only when something is due (the simulator) reads
        this; a timer made stale since it was set is still reported, and its tick
        changes nothing.
        """
        timers = self.state.timers
        return timers[0].deadline if timers else None

    def tenant(self, name: str) -> TenantState | None:
        """Read-only view of one tenant's state (do not mutate)."""
        return self.state.tenants.get(name)

    def snapshot(self) -> bytes:
        """The whole state as msgpack; :meth:`restore` turns it back into an engine."""
        return msgspec.msgpack.encode(self.state)

    @classmethod
    def restore(cls, data: bytes, policy: Policy | None = None) -> Engine:
        """An engine in exactly the state a :meth:`snapshot` captured."""
        engine = cls(policy)
        engine.state = _SNAPSHOT_DECODER.decode(data)
        for name, tenant in engine.state.tenants.items():
            matcher = engine._matcher(name)
            for agent in tenant.agents.values():
                matcher.table.sync(agent)
                matcher.agent_at[agent.slot] = agent.agent_id
            for conv in tenant.conversations.values():
                if conv.in_queue:
                    engine._index(tenant, conv)
        return engine

    # --- dispatch ----------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        match event:
            case Tick():
                pass
            case AgentRegistered():
                self._agent_registered(event)
            case AgentUpdated():
                self._agent_updated(event)
            case AgentStatusChanged():
                self._agent_status(event)
            case AgentRemoved():
                self._agent_removed(event)
            case ConversationArrived():
                self._arrived(event)
            case MessageReceived():
                self._message(event)
            case OfferAccepted():
                self._offer_accepted(event)
            case OfferDeclined():
                self._offer_declined(event)
            case TransferRequested():
                self._transfer(event)
            case HandoffRequested():
                self._handoff(event)
            case ConversationEnded():
                self._ended(event)
            case WrapUpCompleted():
                self._wrap_up_completed(event)
            case CustomerAbandoned():
                self._abandoned(event)
            case CallbackRequested():
                self._callback(event)
            case ContactsLinked():
                self._contacts_linked(event)
            case _:
                raise Rejected(f"unknown event type {type(event).__name__}")

    # --- helpers -----------------------------------------------------------------------

    def _rejection(self, event: Event, reason: str) -> EventRejected:
        return EventRejected(
            tenant=event.tenant or "",
            ts=self.state.clock,
            reason=reason,
            event_type=TAGS.get(type(event)),
            event_id=event.id,
        )

    def _seen(self, tenant: str, event_id: str) -> bool:
        return f"{tenant}\x00{event_id}" in self.state.recent_ids

    def _remember(self, tenant: str, event_id: str) -> None:
        """An applied event's id: a re-sent copy is ignored (a rejected one may be re-sent)."""
        recent = self.state.recent_ids
        recent[f"{tenant}\x00{event_id}"] = None
        if len(recent) > self.policy.dedup_window:
            del recent[next(iter(recent))]

    def _next_seq(self) -> int:
        self.state.seq += 1
        return self.state.seq

    def _emit(self, decision: Decision) -> None:
        self._out.append(decision)

    def _matcher(self, tenant: str) -> TenantMatcher:
        matcher = self._matchers.get(tenant)
        if matcher is None:
            matcher = TenantMatcher(self.policy, self._profiles)
            self._matchers[tenant] = matcher
        return matcher

    def _tenant(self, name: str) -> TenantState:
        tenant = self.state.tenants.get(name)
        if tenant is None:
            tenant = TenantState(tenant=name)
            self.state.tenants[name] = tenant
            self._matcher(name)
        return tenant

    def _agent(self, tenant: TenantState, agent_id: str) -> AgentState:
        agent = tenant.agents.get(agent_id)
        if agent is None:
            raise Rejected(f"unknown agent {agent_id!r}")
        return agent

    def _conv(self, tenant: TenantState, conversation_id: str) -> ConversationState:
        cid = tenant.aliases.get(conversation_id, conversation_id)
        conv = tenant.conversations.get(cid)
        if conv is None:
            raise Rejected(f"unknown or closed conversation {conversation_id!r}")
        return conv

    def _queue(self, name: str) -> Queue:
        queue = self.policy.queues.get(name)
        if queue is None:
            raise Rejected(f"unknown queue {name!r}")
        return queue

    def _schedule(self, kind: TimerKind, tenant: str, key: str, deadline: int, gen: int) -> None:
        timer = Timer(deadline, self._next_seq(), kind, tenant, key, gen)
        heapq.heappush(self.state.timers, timer)

    def _limit_cost(self, agent: AgentState, cls: MediaClass) -> int:
        limit = self.policy.profiles[agent.profile].classes.get(cls)
        return limit.cost if limit is not None else 0

    def _sync(self, tenant: TenantState, agent: AgentState) -> None:
        self._matchers[tenant.tenant].table.sync(agent)

    def _dirty_agent(self, tenant: TenantState, agent: AgentState) -> None:
        self._dirty_agents[(tenant.tenant, agent.agent_id)] = None

    def _dirty_conv(self, tenant: TenantState, conv: ConversationState) -> None:
        """Something that decides where a waiting conversation may go changed."""
        if conv.in_queue:
            self._index(tenant, conv)
        self._dirty_convs[(tenant.tenant, conv.conversation_id)] = None

    def _index(self, tenant: TenantState, conv: ConversationState) -> None:
        pinned = tenant.agents.get(conv.pinned) if conv.pinned is not None else None
        self._matchers[tenant.tenant].enqueue(
            conv, self._excluded_slots(tenant, conv), pinned.slot if pinned else -1,
            conv.pin_until if conv.pin_until is not None else 0,
        )  # fmt: skip

    # --- capacity ------------------------------------------------------------------------

    def _hold(
        self, tenant: TenantState, agent: AgentState, conv: ConversationState, units: int
    ) -> None:
        c = CLASS_INDEX[conv.media_class]
        agent.units[c] += units
        agent.counts[c] += 1
        agent.holding.append(conv.conversation_id)
        self._sync(tenant, agent)

    def _release(
        self,
        tenant: TenantState,
        agent: AgentState,
        conv: ConversationState,
        cls: MediaClass,
        units: int,
    ) -> None:
        c = CLASS_INDEX[cls]
        agent.units[c] -= units
        agent.counts[c] -= 1
        agent.holding.remove(conv.conversation_id)
        if conv.conversation_id in agent.pending_reactivation:
            agent.pending_reactivation.remove(conv.conversation_id)
        if not agent.holding:
            agent.idle_since = self.state.clock
        self._sync(tenant, agent)
        self._settle_reactivations(tenant, agent)
        self._dirty_agent(tenant, agent)

    def _release_owner(self, tenant: TenantState, conv: ConversationState) -> AgentState:
        """The holding agent lets go of the conversation and its capacity."""
        assert conv.owner is not None and conv.owner_class is not None
        agent = tenant.agents[conv.owner]
        self._release(tenant, agent, conv, conv.owner_class, conv.owner_units)
        conv.owner = None
        conv.owner_units = 0
        conv.owner_class = None
        conv.inactive = False
        conv.activity_gen += 1
        conv.inactive_armed = 0
        return agent

    def _settle_reactivations(self, tenant: TenantState, agent: AgentState) -> None:
        """Give reawakened asynchronous conversations their full cost, oldest first."""
        table = self._matchers[tenant.tenant].table
        while agent.pending_reactivation:
            conv = tenant.conversations[agent.pending_reactivation[0]]
            cls = conv.media_class
            delta = self._limit_cost(agent, cls) - conv.owner_units
            if not kernel.fits(table, agent.slot, CLASS_INDEX[cls], delta, False):
                return
            agent.pending_reactivation.pop(0)
            self._reactivate(tenant, agent, conv, delta)

    def _reactivate(
        self, tenant: TenantState, agent: AgentState, conv: ConversationState, delta: int
    ) -> None:
        agent.units[CLASS_INDEX[conv.media_class]] += delta
        conv.owner_units += delta
        conv.inactive = False
        self._sync(tenant, agent)
        self._schedule_inactivity(tenant, agent, conv)

    def _schedule_inactivity(
        self, tenant: TenantState, agent: AgentState, conv: ConversationState
    ) -> None:
        limit = self.policy.profiles[agent.profile].classes.get(conv.media_class)
        if limit is None or limit.inactive_after_s is None:
            return
        due = max(conv.last_in_ts, conv.assigned_ts) + _ms(limit.inactive_after_s)
        conv.inactive_due = due
        if conv.inactive_armed and conv.inactive_armed <= due:
            return  # the armed timer fires first and re-arms for the later deadline
        conv.activity_gen += 1
        self._arm_inactivity(tenant, conv, due)

    def _arm_inactivity(self, tenant: TenantState, conv: ConversationState, due: int) -> None:
        conv.inactive_armed = due
        self._schedule("inactive", tenant.tenant, conv.conversation_id, due, conv.activity_gen)

    # --- queue movements -------------------------------------------------------------------

    def _requeue(self, tenant: TenantState, conv: ConversationState, reason: str) -> None:
        """Put a conversation (back) in the queue, keeping its first-contact clock."""
        conv.in_queue = True
        if conv.owner is None:
            conv.stage = "queued"
        self._index(tenant, conv)
        self._emit(
            ConversationQueued(
                tenant=tenant.tenant, ts=self.state.clock,
                conversation_id=conv.conversation_id, queue=conv.queue, reason=reason,
            )
        )  # fmt: skip
        self._dirty_conv(tenant, conv)
        self._check_sla(tenant, conv)

    def _enqueue_fresh(self, tenant: TenantState, conv: ConversationState, reason: str) -> None:
        """Queue entry that restarts the escalation rings (arrival, transfer, handoff)."""
        now = self.state.clock
        conv.route_gen += 1
        conv.ring = 0
        conv.enqueued_ts = now
        self._arm_ring(tenant, conv)
        self._requeue(tenant, conv, reason)

    def _arm_ring(self, tenant: TenantState, conv: ConversationState) -> None:
        """One pending timer per conversation: for the next escalation ring, if any."""
        rings = self.policy.queues[conv.queue].rings
        if conv.ring < len(rings):
            due = conv.enqueued_ts + _ms(rings[conv.ring].after_s)
            self._schedule("ring", tenant.tenant, conv.conversation_id, due, conv.route_gen)

    def _leave_queue(self, tenant: TenantState, conv: ConversationState) -> None:
        conv.in_queue = False
        self._matchers[tenant.tenant].dequeue(conv.conversation_id)

    def _pin(
        self, tenant: TenantState, conv: ConversationState, agent_id: str, wait_s: float
    ) -> None:
        conv.pinned = agent_id
        conv.pin_until = self.state.clock + _ms(wait_s)
        self._schedule("pin", tenant.tenant, conv.conversation_id, conv.pin_until, conv.pin_until)

    def _check_sla(self, tenant: TenantState, conv: ConversationState) -> None:
        now = self.state.clock
        if (
            not conv.sla_breached
            and not conv.answered_by_human
            and conv.owner is None
            and now > conv.sla_deadline  # answered at the target is in time
        ):
            conv.sla_breached = True
            self._emit(
                SlaBreached(
                    tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
                    target_s=conv.sla_target_s, waited_ms=now - conv.first_contact_ts,
                )
            )  # fmt: skip

    def _withdraw_offer(
        self, tenant: TenantState, conv: ConversationState, reason: str | None
    ) -> AgentState:
        """Cancel the pending offer and free its reserved capacity; emits ``OfferExpired``
        unless ``reason`` is None (the agent declined: their event says it)."""
        assert conv.offer_agent is not None
        agent = tenant.agents[conv.offer_agent]
        if reason is not None:
            self._emit(
                OfferExpired(
                    tenant=tenant.tenant, ts=self.state.clock,
                    conversation_id=conv.conversation_id, agent_id=agent.agent_id,
                    reason=reason,  # type: ignore[arg-type]
                )
            )  # fmt: skip
        conv.offer_agent = None
        units, conv.offer_units = conv.offer_units, 0
        if conv.owner is None:
            conv.stage = "queued"
        self._release(tenant, agent, conv, conv.media_class, units)
        return agent

    def _exclude(self, conv: ConversationState, agent_id: str) -> None:
        """This agent declined or let the offer lapse: never offer it to them again."""
        if agent_id not in conv.excluded:
            conv.excluded.append(agent_id)
        if conv.pinned == agent_id:
            conv.pinned = None
            conv.pin_until = None

    def _close(self, tenant: TenantState, conv: ConversationState) -> None:
        """The conversation leaves the state (ended and wrapped up, or abandoned)."""
        self._leave_queue(tenant, conv)
        del tenant.conversations[conv.conversation_id]
        for alias in conv.aliases:
            tenant.aliases.pop(alias, None)
        customer = tenant.customers.get(conv.customer_id)
        if customer is not None and customer.open_conversation == conv.conversation_id:
            customer.open_conversation = None

    def _end_for_customer(self, tenant: TenantState, conv: ConversationState) -> None:
        customer = tenant.customers.get(conv.customer_id)
        if customer is None:
            return
        if customer.open_conversation == conv.conversation_id:
            customer.open_conversation = None
        owner = tenant.agents.get(conv.owner) if conv.owner else None
        if owner is not None and owner.kind == "human":
            customer.last_agent = owner.agent_id
            customer.last_ended_ts = self.state.clock

    # --- timers --------------------------------------------------------------------------

    def _advance(self, now: int) -> None:
        timers = self.state.timers
        while timers and timers[0].deadline <= now:
            timer = heapq.heappop(timers)
            self.state.clock = max(self.state.clock, timer.deadline)
            self._fire(timer)
            self._route()
        self.state.clock = max(self.state.clock, now)

    def _fire(self, timer: Timer) -> None:
        tenant = self.state.tenants.get(timer.tenant)
        if tenant is None:
            return
        conv = tenant.conversations.get(timer.key)
        if conv is None:
            return
        handler = self._timer_handlers[timer.kind]
        handler(self, tenant, conv, timer)

    def _on_offer_timeout(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        if conv.offer_agent is None or conv.offer_seq != timer.gen:
            return
        agent = self._withdraw_offer(tenant, conv, "timeout")
        self._exclude(conv, agent.agent_id)
        agent.responsive = False
        self._emit(
            AgentNotResponding(tenant=tenant.tenant, ts=self.state.clock, agent_id=agent.agent_id)
        )
        self._withdraw_agent_offers(tenant, agent)
        self._sync(tenant, agent)
        self._void_pins(tenant, agent)
        self._requeue(tenant, conv, "offer_timeout")

    def _on_ring(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        waiting = conv.in_queue or conv.offer_agent is not None
        if conv.route_gen != timer.gen or not waiting:
            return
        rings = self.policy.queues[conv.queue].rings
        elapsed = self.state.clock - conv.enqueued_ts
        ring = sum(1 for r in rings if _ms(r.after_s) <= elapsed)
        if ring <= conv.ring:
            return
        conv.ring = ring
        self._arm_ring(tenant, conv)
        self._emit(
            ConversationEscalated(
                tenant=tenant.tenant, ts=self.state.clock,
                conversation_id=conv.conversation_id, ring=ring,
            )
        )  # fmt: skip
        if conv.in_queue:
            self._dirty_conv(tenant, conv)

    def _on_sla(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        self._check_sla(tenant, conv)

    def _on_pin(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        if conv.pin_until == timer.gen:
            conv.pinned = None
            conv.pin_until = None
            if conv.in_queue:
                self._dirty_conv(tenant, conv)

    def _on_bot_window(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        if conv.bot_until == timer.gen and conv.kinds == "bot":
            conv.kinds = "any"
            if conv.in_queue:
                self._dirty_conv(tenant, conv)

    def _on_wrap_up(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        if conv.stage != "wrap_up" or conv.owner is None:
            return
        agent = tenant.agents[conv.owner]
        self._emit(
            WrapUpExpired(
                tenant=tenant.tenant, ts=self.state.clock,
                conversation_id=conv.conversation_id, agent_id=agent.agent_id,
            )
        )  # fmt: skip
        self._release_owner(tenant, conv)
        self._close(tenant, conv)

    def _on_inactive(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        if (
            conv.stage != "assigned"
            or conv.owner is None
            or conv.inactive
            or conv.activity_gen != timer.gen
        ):
            return
        conv.inactive_armed = 0
        if conv.inactive_due > self.state.clock:  # the customer wrote since it was armed
            self._arm_inactivity(tenant, conv, conv.inactive_due)
            return
        agent = tenant.agents[conv.owner]
        limit = self.policy.profiles[agent.profile].classes[conv.media_class]
        delta = conv.owner_units - limit.inactive_cost
        agent.units[CLASS_INDEX[conv.media_class]] -= delta
        conv.owner_units = limit.inactive_cost
        conv.inactive = True
        self._sync(tenant, agent)
        self._settle_reactivations(tenant, agent)
        self._dirty_agent(tenant, agent)

    def _on_callback_due(self, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
        if conv.stage == "scheduled" and conv.route_gen == timer.gen:
            self._enqueue_fresh(tenant, conv, "callback")

    _timer_handlers: dict[str, Callable[[Engine, TenantState, ConversationState, Timer], None]] = {
        "offer": _on_offer_timeout,
        "ring": _on_ring,
        "sla": _on_sla,
        "pin": _on_pin,
        "bot": _on_bot_window,
        "wrap_up": _on_wrap_up,
        "inactive": _on_inactive,
        "callback": _on_callback_due,
    }

    # --- matching ------------------------------------------------------------------------

    def _active_pin(self, tenant: TenantState, conv: ConversationState) -> AgentState | None:
        """The agent a conversation waits for, while that agent is there to take it."""
        if conv.pinned is None:
            return None
        if conv.pin_until is not None and self.state.clock >= conv.pin_until:
            return None
        agent = tenant.agents.get(conv.pinned)
        if agent is None or agent.status != "available" or not agent.responsive:
            return None
        return agent

    def _void_pins(self, tenant: TenantState, agent: AgentState) -> None:
        """The agent left: conversations pinned to them may go to anyone now."""
        for cid in self._matchers[tenant.tenant].pinned_to(agent.agent_id):
            self._dirty_conv(tenant, tenant.conversations[cid])

    def _route(self) -> None:
        while self._dirty_agents or self._dirty_convs:
            agents, self._dirty_agents = self._dirty_agents, {}
            for tname, aid in sorted(agents, key=self._agent_order):
                tenant = self.state.tenants[tname]
                agent = tenant.agents.get(aid)
                matcher = self._matchers[tname]
                while agent is not None and agent.routable:
                    cid = matcher.most_urgent(agent.slot, self.state.clock)
                    if cid is None:
                        break
                    conv = tenant.conversations[cid]
                    score = matcher.score(
                        agent.slot, conv, self._preferred_slot(tenant, conv), self.state.clock,
                        self.state.offer_counter,
                    )  # fmt: skip
                    self._offer(tenant, conv, agent, score, "agent_free")
            convs, self._dirty_convs = self._dirty_convs, {}
            for tname, cid in sorted(convs, key=self._conv_order):
                tenant = self.state.tenants[tname]
                waiting = tenant.conversations.get(cid)
                if waiting is not None and waiting.in_queue:
                    self._route_conversation(tenant, waiting)

    def _agent_order(self, key: tuple[str, str]) -> tuple[str, int]:
        agent = self.state.tenants[key[0]].agents.get(key[1])
        return (key[0], agent.seq if agent is not None else -1)

    def _conv_order(self, key: tuple[str, str]) -> tuple[str, tuple[int, int, int]]:
        conv = self.state.tenants[key[0]].conversations.get(key[1])
        if conv is None:
            return (key[0], (0, 0, -1))
        return (key[0], urgency(conv, self.policy.queues[conv.queue]))

    def _excluded_slots(self, tenant: TenantState, conv: ConversationState) -> list[int]:
        slots = [tenant.agents[a].slot for a in conv.excluded if a in tenant.agents]
        if conv.owner is not None:
            slots.append(tenant.agents[conv.owner].slot)
        return slots

    def _preferred_slot(self, tenant: TenantState, conv: ConversationState) -> int:
        agent = tenant.agents.get(conv.preferred) if conv.preferred else None
        return agent.slot if agent is not None else -1

    def _route_conversation(self, tenant: TenantState, conv: ConversationState) -> None:
        matcher = self._matchers[tenant.tenant]
        pin = self._active_pin(tenant, conv)
        slot, score = matcher.best_agent(
            conv, self._excluded_slots(tenant, conv), self._preferred_slot(tenant, conv),
            pin.slot if pin is not None else -1, self.state.clock, self.state.offer_counter,
        )  # fmt: skip
        if slot < 0:
            return
        agent_id = matcher.agent_at[slot]
        why = "pinned" if pin is not None else self.policy.preset
        self._offer(tenant, conv, tenant.agents[agent_id], score, why)

    def _offer(
        self,
        tenant: TenantState,
        conv: ConversationState,
        agent: AgentState,
        score: float,
        why: str,
    ) -> None:
        now = self.state.clock
        units = self._limit_cost(agent, conv.media_class)
        self.state.offer_counter += 1
        agent.last_offer = self.state.offer_counter
        agent.idle_since = now
        self._leave_queue(tenant, conv)
        self._hold(tenant, agent, conv, units)
        queue = self.policy.queues[conv.queue]
        if agent.kind == "bot" or queue.offer_mode == "auto":
            self._assign(tenant, conv, agent, units, score, why)
            return
        if conv.owner is None:
            conv.stage = "offered"
        conv.offer_agent = agent.agent_id
        conv.offer_units = units
        conv.offer_seq = self.state.offer_counter
        deadline = now + _ms(queue.offer_timeout_s)
        self._schedule("offer", tenant.tenant, conv.conversation_id, deadline, conv.offer_seq)
        self._emit(
            ConversationOffered(
                tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
                agent_id=agent.agent_id, score=score, why=why, deadline=deadline,
            )
        )  # fmt: skip

    def _assign(
        self,
        tenant: TenantState,
        conv: ConversationState,
        agent: AgentState,
        units: int,
        score: float | None,
        why: str | None,
    ) -> None:
        now = self.state.clock
        if conv.owner is not None and conv.owner != agent.agent_id:
            self._release_owner(tenant, conv)
        conv.owner = agent.agent_id
        conv.owner_units = units
        conv.owner_class = conv.media_class
        conv.offer_agent = None
        conv.offer_units = 0
        conv.stage = "assigned"
        conv.pinned = None
        conv.pin_until = None
        conv.inactive = False
        conv.assigned_ts = now
        if conv.kinds == "bot":
            conv.kinds = "any"
        if agent.kind == "human":
            conv.answered_by_human = True
        self._emit(
            ConversationAssigned(
                tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
                agent_id=agent.agent_id, score=score, why=why,
                wait_ms=now - conv.first_contact_ts,
            )
        )  # fmt: skip
        self._schedule_inactivity(tenant, agent, conv)

    def _withdraw_agent_offers(self, tenant: TenantState, agent: AgentState) -> None:
        for cid in list(agent.holding):
            conv = tenant.conversations[cid]
            if conv.offer_agent == agent.agent_id:
                self._withdraw_offer(tenant, conv, "agent_unavailable")
                self._exclude(conv, agent.agent_id)
                self._requeue(tenant, conv, "agent_unavailable")

    # --- agents --------------------------------------------------------------------------

    def _agent_registered(self, event: AgentRegistered) -> None:
        if not event.agent_id:
            raise Rejected("agent_id must not be empty")
        if event.kind not in AGENT_KINDS:
            raise Rejected(f"kind must be one of {AGENT_KINDS}, got {event.kind!r}")
        _check_skills(event.skills)
        default = self.policy.bot_profile if event.kind == "bot" else self.policy.human_profile
        profile = event.capacity_profile or default
        if profile not in self.policy.profiles:
            raise Rejected(f"unknown capacity profile {profile!r}")
        existing = self.state.tenants.get(event.tenant)
        if existing is not None and event.agent_id in existing.agents:
            raise Rejected(f"agent {event.agent_id!r} is already registered")
        tenant = self._tenant(event.tenant)
        slot = tenant.next_slot
        tenant.next_slot += 1
        agent = AgentState(
            agent_id=event.agent_id, seq=self._next_seq(), slot=slot, kind=event.kind,
            skills=dict(event.skills), profile=profile, languages=list(event.languages),
            units=[0] * _N_CLASSES, counts=[0] * _N_CLASSES, idle_since=self.state.clock,
        )  # fmt: skip
        tenant.agents[agent.agent_id] = agent
        self._matchers[tenant.tenant].agent_at[slot] = agent.agent_id
        self._sync(tenant, agent)

    def _agent_updated(self, event: AgentUpdated) -> None:
        tenant = self._known_tenant(event.tenant)
        agent = self._agent(tenant, event.agent_id)
        if event.skills is not None:
            _check_skills(event.skills)
        if event.capacity_profile is not None and event.capacity_profile != agent.profile:
            if event.capacity_profile not in self.policy.profiles:
                raise Rejected(f"unknown capacity profile {event.capacity_profile!r}")
            if agent.holding:
                raise Rejected(
                    "agent holds conversations; change the capacity profile when they are free"
                )
            agent.profile = event.capacity_profile
        if event.skills is not None:
            agent.skills = dict(event.skills)
        if event.languages is not None:
            agent.languages = list(event.languages)
        self._sync(tenant, agent)
        self._dirty_agent(tenant, agent)

    def _known_tenant(self, name: str) -> TenantState:
        tenant = self.state.tenants.get(name)
        if tenant is None:
            raise Rejected(f"unknown tenant {name!r}")
        return tenant

    def _agent_status(self, event: AgentStatusChanged) -> None:
        tenant = self._known_tenant(event.tenant)
        agent = self._agent(tenant, event.agent_id)
        if event.status not in AGENT_STATUSES:
            raise Rejected(f"status must be one of {AGENT_STATUSES}, got {event.status!r}")
        if event.status == "available":
            if agent.status != "available" or not agent.responsive:
                agent.idle_since = self.state.clock
            agent.status = "available"
            agent.responsive = True
            self._sync(tenant, agent)
            self._dirty_agent(tenant, agent)
            return
        agent.status = event.status
        self._sync(tenant, agent)
        self._withdraw_agent_offers(tenant, agent)
        self._void_pins(tenant, agent)
        if event.status == "offline":
            self._hand_back(tenant, agent, "agent_offline")

    def _hand_back(self, tenant: TenantState, agent: AgentState, reason: str) -> None:
        """Return everything an agent holds: nothing is lost when an agent leaves."""
        for cid in list(agent.holding):
            conv = tenant.conversations[cid]
            if conv.offer_agent == agent.agent_id:
                self._withdraw_offer(tenant, conv, "agent_unavailable")
                self._exclude(conv, agent.agent_id)
                self._requeue(tenant, conv, reason)
                continue
            assert conv.owner == agent.agent_id
            self._release_owner(tenant, conv)
            if conv.stage == "wrap_up":
                self._close(tenant, conv)
            elif conv.offer_agent is not None:
                conv.stage = "offered"  # the warm transfer's offer goes on without them
            elif conv.in_queue:
                self._back_in_queue(tenant, conv, reason)
            else:
                self._enqueue_fresh(tenant, conv, reason)

    def _agent_removed(self, event: AgentRemoved) -> None:
        tenant = self._known_tenant(event.tenant)
        agent = self._agent(tenant, event.agent_id)
        agent.status = "offline"
        self._sync(tenant, agent)
        self._void_pins(tenant, agent)
        self._hand_back(tenant, agent, "agent_removed")
        matcher = self._matchers[tenant.tenant]
        matcher.table.clear(agent.slot)
        del matcher.agent_at[agent.slot]
        del tenant.agents[agent.agent_id]

    # --- conversations ---------------------------------------------------------------------

    def _customer_for(
        self, tenant: TenantState, contact: Contact, customer_id: str | None
    ) -> CustomerState:
        key = _contact_key(contact)
        cid = customer_id or tenant.contact_customer.get(key) or f"contact:{key}"
        customer = tenant.customers.get(cid)
        if customer is None:
            customer = CustomerState(customer_id=cid)
            tenant.customers[cid] = customer
        if tenant.contact_customer.get(key) != cid:
            tenant.contact_customer[key] = cid
        if contact not in customer.contacts:
            customer.contacts.append(contact)
        return customer

    def _arrived(self, event: ConversationArrived) -> None:
        if not event.conversation_id:
            raise Rejected("conversation_id must not be empty")
        if event.channel not in CHANNELS:
            raise Rejected(f"unknown channel {event.channel!r}")
        if not event.contact.address:
            raise Rejected("contact.address must not be empty")
        _check_skills(event.skills)
        _check_skills(event.optional_skills, "optional_skills")
        if type(event.priority) is not int:
            raise Rejected(f"priority must be an integer, got {event.priority!r}")
        queue_name = event.queue
        if queue_name not in self.policy.queues:
            if self.policy.unknown_queue != "default":
                raise Rejected(f"unknown queue {queue_name!r}")
            queue_name = "default"
        existing = self.state.tenants.get(event.tenant)
        if existing is not None and (
            event.conversation_id in existing.conversations
            or event.conversation_id in existing.aliases
        ):
            raise Rejected(f"conversation {event.conversation_id!r} is already open")
        tenant = self._tenant(event.tenant)
        customer = self._customer_for(tenant, event.contact, event.customer_id)
        if customer.open_conversation is not None:
            conv = tenant.conversations[customer.open_conversation]
            self._rejoin(tenant, conv, event, queue_name)
            return
        now = self.state.clock
        queue = self.policy.queues[queue_name]
        target = queue.sla_for(event.channel)
        conv = ConversationState(
            conversation_id=event.conversation_id, seq=self._next_seq(), channel=event.channel,
            media_class=CHANNEL_CLASS[event.channel], contact=event.contact,
            customer_id=customer.customer_id, queue=queue_name, skills=dict(event.skills),
            optional_skills=dict(event.optional_skills), language=event.language,
            priority=event.priority + queue.priority, first_contact_ts=now, last_in_ts=now,
            sla_deadline=now + _ms(target), sla_target_s=target,
        )  # fmt: skip
        tenant.conversations[conv.conversation_id] = conv
        customer.open_conversation = conv.conversation_id
        self._schedule("sla", tenant.tenant, conv.conversation_id, conv.sla_deadline + 1, 0)
        if queue.bot_first:
            conv.kinds = "bot"
            conv.bot_until = now + _ms(queue.bot_wait_s)
            self._schedule(
                "bot", tenant.tenant, conv.conversation_id, conv.bot_until, conv.bot_until
            )
        elif (
            customer.last_agent is not None
            and customer.last_ended_ts is not None
            and now - customer.last_ended_ts <= _ms(queue.sticky_window_s)
            and customer.last_agent in tenant.agents
        ):
            conv.preferred = customer.last_agent
            if queue.sticky_wait_s > 0:
                self._pin(tenant, conv, customer.last_agent, queue.sticky_wait_s)
        self._enqueue_fresh(tenant, conv, "arrived")

    def _rejoin(
        self, tenant: TenantState, conv: ConversationState, event: ConversationArrived,
        queue_name: str,
    ) -> None:  # fmt: skip
        """A new contact of a customer with an open conversation joins it (continuity).

        On another media class the conversation is routed as the new contact asks (its
        queue, skills, language; never a lower priority), unless a transfer is under way:
        who can serve the customer depends on the channel they are on now.
        """
        now = self.state.clock
        self._emit(
            ConversationRejoined(
                tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
                new_conversation_id=event.conversation_id, channel=event.channel,
                agent_id=conv.owner,
            )
        )  # fmt: skip
        tenant.aliases[event.conversation_id] = conv.conversation_id
        conv.aliases.append(event.conversation_id)
        conv.last_in_ts = now
        new_class = CHANNEL_CLASS[event.channel]
        conv.channel = event.channel
        conv.contact = event.contact
        if new_class == conv.media_class:
            self._customer_wrote(tenant, conv)
            return
        transferring = conv.owner is not None and (conv.in_queue or conv.offer_agent is not None)
        if conv.offer_agent is not None:
            offered = self._withdraw_offer(tenant, conv, "channel_switch")
            conv.preferred = offered.agent_id
        conv.media_class = new_class
        moved = not transferring and self._route_as(conv, event, queue_name)
        if conv.stage == "scheduled":
            conv.callback = False
            self._enqueue_fresh(tenant, conv, "rejoined")
            return
        if conv.owner is None or conv.stage == "wrap_up":
            if moved:  # another queue: its rings start now
                self._enqueue_fresh(tenant, conv, "channel_switch")
            else:
                self._back_in_queue(tenant, conv, "channel_switch")
            return
        agent = self._release_owner(tenant, conv)
        units = self._limit_cost(agent, new_class)
        table = self._matchers[tenant.tenant].table
        if kernel.fits(table, agent.slot, CLASS_INDEX[new_class], units, True):
            self._hold(tenant, agent, conv, units)
            conv.owner = agent.agent_id
            conv.owner_units = units
            conv.owner_class = new_class
            conv.assigned_ts = now
            self._schedule_inactivity(tenant, agent, conv)
            if transferring:
                self._back_in_queue(tenant, conv, "channel_switch")
            return
        if transferring:  # the agent was handing it over anyway
            self._back_in_queue(tenant, conv, "channel_switch")
            return
        conv.preferred = agent.agent_id
        if new_class in self.policy.profiles[agent.profile].classes:
            # the agent could take it once they have room: they get the first chance
            self._pin(tenant, conv, agent.agent_id, self.policy.queues[conv.queue].sticky_wait_s)
        self._enqueue_fresh(tenant, conv, "channel_switch")

    def _route_as(
        self, conv: ConversationState, event: ConversationArrived, queue_name: str
    ) -> bool:
        """Route ``conv`` as the new contact asks; True if that moved it to another queue."""
        queue = self.policy.queues[queue_name]
        moved = conv.queue != queue_name
        conv.queue = queue_name
        conv.skills = dict(event.skills)
        conv.optional_skills = dict(event.optional_skills)
        if event.language is not None:
            conv.language = event.language
        conv.priority = max(conv.priority, event.priority + queue.priority)
        return moved

    def _back_in_queue(self, tenant: TenantState, conv: ConversationState, reason: str) -> None:
        """Waiting again within the same queue episode (its rings keep running)."""
        if conv.in_queue:
            if conv.owner is None:
                conv.stage = "queued"
            self._dirty_conv(tenant, conv)
        else:
            self._requeue(tenant, conv, reason)

    def _customer_wrote(self, tenant: TenantState, conv: ConversationState) -> None:
        if conv.stage != "assigned" or conv.owner is None:
            return
        agent = tenant.agents[conv.owner]
        if not conv.inactive:
            self._schedule_inactivity(tenant, agent, conv)
            return
        if conv.conversation_id in agent.pending_reactivation:
            return
        agent.pending_reactivation.append(conv.conversation_id)
        self._settle_reactivations(tenant, agent)
        self._sync(tenant, agent)

    def _message(self, event: MessageReceived) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._conv(tenant, event.conversation_id)
        if event.direction not in ("in", "out"):
            raise Rejected(f"direction must be 'in' or 'out', got {event.direction!r}")
        if event.direction == "in":
            conv.last_in_ts = self.state.clock
            self._customer_wrote(tenant, conv)

    def _offered_to(
        self, tenant: TenantState, conversation_id: str, agent_id: str
    ) -> ConversationState:
        conv = self._conv(tenant, conversation_id)
        if conv.offer_agent != agent_id:
            raise Rejected(f"conversation {conversation_id!r} is not offered to {agent_id!r}")
        return conv

    def _offer_accepted(self, event: OfferAccepted) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._offered_to(tenant, event.conversation_id, event.agent_id)
        agent = tenant.agents[event.agent_id]
        self._assign(tenant, conv, agent, conv.offer_units, None, None)

    def _offer_declined(self, event: OfferDeclined) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._offered_to(tenant, event.conversation_id, event.agent_id)
        self._withdraw_offer(tenant, conv, None)
        self._exclude(conv, event.agent_id)
        self._requeue(tenant, conv, "declined")

    def _held_by(
        self, tenant: TenantState, conversation_id: str, agent_id: str
    ) -> ConversationState:
        conv = self._conv(tenant, conversation_id)
        if conv.stage != "assigned" or conv.owner != agent_id:
            raise Rejected(f"conversation {conversation_id!r} is not assigned to {agent_id!r}")
        if conv.in_queue or conv.offer_agent is not None:
            raise Rejected(f"conversation {conversation_id!r} is already being transferred")
        return conv

    def _transfer(self, event: TransferRequested) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._held_by(tenant, event.conversation_id, event.agent_id)
        if event.mode not in ("cold", "warm"):
            raise Rejected(f"mode must be 'cold' or 'warm', got {event.mode!r}")
        if event.to_agent is None and event.to_queue is None and event.skills is None:
            raise Rejected("a transfer needs to_agent, to_queue or skills")
        if event.to_agent is not None and (event.to_queue is not None or event.skills is not None):
            raise Rejected("a transfer to an agent takes no to_queue or skills")
        if event.to_agent is not None:
            target = self._agent(tenant, event.to_agent)
            if target.agent_id == event.agent_id:
                raise Rejected("an agent cannot transfer to themselves")
            if target.status != "available" or not target.responsive:
                raise Rejected(f"target agent {event.to_agent!r} is not available")
        if event.to_queue is not None:
            self._queue(event.to_queue)
        if event.skills is not None:
            _check_skills(event.skills)
        agent = tenant.agents[event.agent_id]
        if agent.kind == "bot" and event.mode == "warm":
            raise Rejected("a bot hands over cold (HandoffRequested), it never shares one")
        conv.transfers += 1
        if event.to_queue is not None:
            conv.queue = event.to_queue
            conv.skills = {}
            conv.optional_skills = {}
        if event.skills is not None:
            conv.skills = dict(event.skills)
            conv.optional_skills = {}
        conv.excluded = [agent.agent_id]
        conv.preferred = None
        if event.mode == "cold":
            self._release_owner(tenant, conv)
        if event.to_agent is not None:
            conv.preferred = event.to_agent
            self._pin(tenant, conv, event.to_agent, self.policy.queues[conv.queue].transfer_wait_s)
        self._enqueue_fresh(tenant, conv, "transfer")

    def _handoff(self, event: HandoffRequested) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._held_by(tenant, event.conversation_id, event.agent_id)
        bot = tenant.agents[event.agent_id]
        if bot.kind != "bot":
            raise Rejected(f"agent {event.agent_id!r} is not a bot; use TransferRequested")
        queue = self._queue(event.queue) if event.queue is not None else None
        if event.skills is not None:
            _check_skills(event.skills)
        self._release_owner(tenant, conv)
        conv.kinds = "human"
        conv.excluded = []
        conv.pinned = None
        conv.pin_until = None
        if event.queue is not None:
            conv.queue = event.queue
            conv.skills = {}
            conv.optional_skills = {}
        if event.skills is not None:
            conv.skills = dict(event.skills)
        conv.priority += (queue or self.policy.queues[conv.queue]).handoff_priority_boost
        self._enqueue_fresh(tenant, conv, "handoff")

    def _ended(self, event: ConversationEnded) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._conv(tenant, event.conversation_id)
        if conv.stage != "assigned" or conv.owner is None:
            raise Rejected(
                f"conversation {event.conversation_id!r} is {conv.stage}, not assigned; "
                "a customer leaving the queue is CustomerAbandoned"
            )
        if event.by not in ("agent", "customer"):
            raise Rejected(f"by must be 'agent' or 'customer', got {event.by!r}")
        if conv.offer_agent is not None:
            self._withdraw_offer(tenant, conv, "ended")
        self._leave_queue(tenant, conv)
        self._end_for_customer(tenant, conv)
        agent = tenant.agents[conv.owner]
        wrap_up_s = self.policy.queues[conv.queue].wrap_up_s
        if agent.kind == "human" and wrap_up_s > 0:
            conv.stage = "wrap_up"
            conv.pinned = None
            self._schedule(
                "wrap_up", tenant.tenant, conv.conversation_id,
                self.state.clock + _ms(wrap_up_s), 0,
            )  # fmt: skip
            return
        self._release_owner(tenant, conv)
        self._close(tenant, conv)

    def _wrap_up_completed(self, event: WrapUpCompleted) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._conv(tenant, event.conversation_id)
        if conv.stage != "wrap_up" or conv.owner != event.agent_id:
            raise Rejected(
                f"conversation {event.conversation_id!r} is not in wrap-up with {event.agent_id!r}"
            )
        self._release_owner(tenant, conv)
        self._close(tenant, conv)

    def _abandoned(self, event: CustomerAbandoned) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._conv(tenant, event.conversation_id)
        if conv.owner is not None:
            raise Rejected(
                f"conversation {event.conversation_id!r} is {conv.stage} with {conv.owner!r}; "
                "a customer leaving it is ConversationEnded(by='customer')"
            )
        if conv.offer_agent is not None:
            self._withdraw_offer(tenant, conv, "abandoned")
        self._end_for_customer(tenant, conv)
        self._close(tenant, conv)

    def _callback(self, event: CallbackRequested) -> None:
        tenant = self._known_tenant(event.tenant)
        conv = self._conv(tenant, event.conversation_id)
        if conv.stage != "queued":
            raise Rejected(
                f"conversation {event.conversation_id!r} is {conv.stage}; "
                "a callback is requested from the queue"
            )
        if event.not_before is not None and type(event.not_before) is not int:
            raise Rejected(f"not_before must be epoch milliseconds, got {event.not_before!r}")
        conv.callback = True
        conv.media_class = "task"
        conv.kinds = "human"  # a person calls back
        if event.not_before is not None and event.not_before > self.state.clock:
            self._leave_queue(tenant, conv)
            conv.stage = "scheduled"
            conv.route_gen += 1
            self._schedule(
                "callback", tenant.tenant, conv.conversation_id, event.not_before, conv.route_gen
            )
            return
        self._requeue(tenant, conv, "callback")

    def _contacts_linked(self, event: ContactsLinked) -> None:
        if not event.customer_id:
            raise Rejected("customer_id must not be empty")
        if not event.contacts:
            raise Rejected("contacts must not be empty")
        for contact in event.contacts:
            if contact.channel not in CHANNELS or not contact.address:
                raise Rejected(f"invalid contact {contact!r}")
        tenant = self._tenant(event.tenant)
        customer = tenant.customers.get(event.customer_id)
        if customer is None:
            customer = CustomerState(customer_id=event.customer_id)
            tenant.customers[event.customer_id] = customer
        for contact in event.contacts:
            key = _contact_key(contact)
            previous_id = tenant.contact_customer.get(key)
            tenant.contact_customer[key] = customer.customer_id
            if contact not in customer.contacts:
                customer.contacts.append(contact)
            previous = tenant.customers.get(previous_id) if previous_id else None
            if previous is None or previous is customer:
                continue
            if customer.open_conversation is None and previous.open_conversation is not None:
                customer.open_conversation = previous.open_conversation
                tenant.conversations[previous.open_conversation].customer_id = customer.customer_id
                previous.open_conversation = None
            if customer.last_agent is None and previous.last_agent is not None:
                customer.last_agent = previous.last_agent
                customer.last_ended_ts = previous.last_ended_ts
