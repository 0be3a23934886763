"""The pure fold of a log's events into the projection's rows: no database here.

How the fold reads the log. The engine appends each input followed by the decisions it
caused: first those of timers that the input's time passed, then its own. The fold
takes decisions as the engine's truth and uses an input only for what no decision says
(a conversation ended, wrapped up, abandoned, an agent's presence, a callback's time,
contacts linked); an input followed by an ``EventRejected`` for it is skipped, and
decisions dated before the input are folded before it. So an input waits for its
decisions: the group still open at the end of a batch is carried into the next one.

A :class:`Fold` is given what it needs from earlier batches: the records of ``_state``
(:meth:`Fold.restore`) and the contacts and customers a batch names
(:meth:`Fold.unknown_keys`, :meth:`Fold.know_contacts`, :meth:`Fold.know_customers`),
and returns a :class:`Batch` of rows and replacements (:meth:`Fold.flush`).
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from omniroute.engine.events import (
    TAGS,
    Decision,
    Event,
    EventRejected,
    OfferAccepted,
    Tick,
)
from omniroute.engine.policy import Policy, Queue

from . import agents, conversations, customers
from .ledger import Handler, Ledger, Row, message_rows
from .records import (
    NONE,
    Conversation,
    Leg,
    decode_agent,
    decode_arrival,
    decode_conversation,
    encode,
)

__all__ = ["Batch", "Fold"]

_SEP = "\x1f"  # joins list values (channels, agents) on their way into a VARCHAR[]
_CACHE_MAX = 1_000_000  # contacts + customers kept in memory between batches
_PENDING_MAX_MS = 3_600_000
_SKIPPED_INPUTS = frozenset({Tick, OfferAccepted})
"""Inputs with nothing to project: the decisions that follow them say what they did."""
_DECISIONS = frozenset(typing.get_args(Decision))
_DECISION_HANDLERS: dict[type, Handler] = {**conversations.DECISIONS, **agents.DECISIONS}
_INPUT_HANDLERS: dict[type, Handler] = {
    **agents.INPUTS, **conversations.INPUTS, **customers.INPUTS,
}  # fmt: skip

StateRow = tuple[str, str, str, bytes]
"""A record for ``_state``: kind (``conv``, ``agent``, ``pending``), tenant, key, msgpack."""


@dataclass(frozen=True)
class Batch:
    """What a batch of events changed, for one transaction.

    The ``stale_*`` keys name rows already in the database that the new rows replace:
    interactions by (tenant, conversation, first contact; their open segments go with
    them, and their legs and the customer messages still waiting for a reply), agents
    by (tenant, agent; their open status interval too), customers, contacts, and
    ``_state`` records by kind.
    """

    interactions: list[Row]
    legs: list[Row]
    segments: list[Row]
    assignments: list[Row]
    replies: list[Row]
    agent_states: list[Row]
    agents: list[Row]
    customers: list[Row]
    contacts: list[Row]
    stale_interactions: list[tuple[str, str, int]]
    stale_agents: list[tuple[str, str]]
    stale_customers: list[tuple[str, str]]
    stale_contacts: list[tuple[str, str, str]]
    stale_pending: list[tuple[str, str]]
    state: list[StateRow]
    as_of: int
    """The projection's clock once this batch is in."""


class Fold:
    """Folds batches of events (given with the log position of the first) into rows;
    ``policy`` is the log's policy, ``clock`` the projection's clock so far (epoch
    milliseconds)."""

    def __init__(self, policy: Policy, clock: int = 0) -> None:
        self.clock = clock
        """The latest event time folded."""
        self._ledger = Ledger(policy)
        self._group_input: Event | None = None  # an input waiting for its decisions
        self._group: list[Event] = []
        self._group_pos = -1
        self._group_clock = clock  # the engine's clock when it took that input

    @property
    def waiting_position(self) -> int:
        """The log position of the input still waiting for its decisions, else -1: the
        projection resumes there (the group is folded whole in the next batch)."""
        return self._group_pos

    # --- what it is given ------------------------------------------------------------------

    def restore(self, records: Iterable[tuple[str, bytes]]) -> None:
        """Take back the ``(kind, data)`` records of ``_state`` an earlier flush gave."""
        lg = self._ledger
        for kind, data in records:
            if kind == "conv":
                c = decode_conversation(data)
                t = lg.tenant(c.tenant)
                t.convs[c.cid] = c
                lg.wire_legs = lg.wire_legs or c.wire_legs
                for alias in c.aliases:
                    t.aliases[alias] = c.cid
                if c.ended < 0:
                    t.open_by_customer[c.customer_id] = c.cid
            elif kind == "agent":
                a = decode_agent(data)
                lg.tenant(a.tenant).agents[a.agent_id] = a
            elif kind == "pending":
                p = decode_arrival(data)
                lg.tenant(p.tenant).pending[p.cid] = p
        for t in lg.tenants.values():  # who holds what follows from the conversations
            for a in t.agents.values():
                a.holding = []
            for c in sorted(t.convs.values(), key=lambda c: (c.first_contact, c.cid)):
                if c.owner is not None:
                    lg.agent(c.tenant, c.owner).holding.append(c.cid)

    def unknown_keys(
        self, events: Sequence[Event]
    ) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
        """The (tenant, channel, address) contacts and (tenant, customer) customers this
        batch names that the fold does not know yet: load them before :meth:`fold`."""
        if self._ledger.known_all:
            return set(), set()
        carried = [] if self._group_input is None else [self._group_input]
        return customers.unknown_keys(self._ledger, itertools.chain(carried, events))

    def know_all(self) -> None:
        """The database holds none of this log's contacts and customers: every one the fold
        meets is new until its cache is cleared, so :meth:`unknown_keys` finds none."""
        self._ledger.known_all = True

    def know_contacts(
        self, asked: Iterable[tuple[str, str, str]], found: Sequence[Sequence[Any]]
    ) -> set[tuple[str, str]]:
        """See :func:`.customers.know_contacts`; returns the owners to load too."""
        return customers.know_contacts(self._ledger, asked, found)

    def know_customers(
        self, asked: Iterable[tuple[str, str]], found: Sequence[Sequence[Any]]
    ) -> None:
        """See :func:`.customers.know_customers`."""
        customers.know_customers(self._ledger, asked, found)

    # --- folding ---------------------------------------------------------------------------

    def fold(self, first: int, events: Sequence[Event]) -> None:
        """Fold a batch of events in log order, the first at log position ``first``."""
        decisions = _DECISIONS
        skipped = _SKIPPED_INPUTS
        handlers = _DECISION_HANDLERS
        lg = self._ledger
        group = self._group
        for position, e in enumerate(events, first):
            cls = type(e)
            if cls in decisions:
                if self._group_input is not None:
                    group.append(e)
                    continue
                if e.ts > self.clock:
                    self.clock = e.ts
                handler = handlers.get(cls)
                if handler is not None:
                    handler(lg, e, e.ts)
            elif cls in skipped:
                # Nothing of these is projected, and what the engine decided on them
                # follows in the log; their decisions join the previous group, whose
                # input they come after anyway.
                if e.ts > self.clock:
                    self.clock = e.ts
            else:
                if self._group_input is not None:
                    self.finish()
                    group = self._group
                self._group_input = e
                self._group_pos = position
                self._group_clock = self.clock

    def finish(self) -> None:
        """Fold the waiting input and its decisions (timer decisions dated earlier first):
        at the end of the log, or when the next input comes."""
        e = self._group_input
        if e is None:
            return
        group = self._group
        self._group_input = None
        self._group = []
        self._group_pos = -1
        # the engine's clock when it took the input: skipped inputs after it do not count
        now = self._group_clock if self._group_clock > e.ts else e.ts
        handlers = _DECISION_HANDLERS
        lg = self._ledger
        i = 0
        n = len(group)
        rejected = False
        if n:
            tag = TAGS[type(e)]
            for d in group:
                if type(d) is EventRejected and d.event_type == tag:
                    rejected = True
            while i < n and group[i].ts < now:
                d = group[i]
                handler = handlers.get(type(d))
                if handler is not None:
                    handler(lg, d, d.ts)
                i += 1
        if now > self.clock:
            self.clock = now
        if not rejected:
            handler = _INPUT_HANDLERS.get(type(e))
            if handler is not None:
                handler(lg, e, now)
        while i < n:
            d = group[i]
            if d.ts > self.clock:
                self.clock = d.ts
            handler = handlers.get(type(d))
            if handler is not None:
                handler(lg, d, d.ts)
            i += 1

    # --- what it gives ---------------------------------------------------------------------

    def flush(self) -> Batch:
        """The batch's rows and replacements; the fold counts them as written from now on."""
        lg = self._ledger
        self._prune_pending()
        convs = lg.dirty_convs
        agents_ = lg.dirty_agents
        open_convs = [c for c in convs if c.closed < 0]
        pending = list(lg.dirty_pending.values())
        contacts = lg.dirty_contacts
        custs = lg.dirty_customers
        segments = lg.segments
        for c in open_convs:
            segments.extend(
                (s.tenant, s.cid, s.seq, s.kind, s.start, NONE, s.agent, s.channel,
                 s.media_class, s.queue, None)
                for s in (c.q_seg, c.o_seg, c.h_seg, c.w_seg, c.s_seg)
                if s is not None
            )  # fmt: skip
        replies = lg.replies
        for c in open_convs:
            for leg in c.legs:
                if leg.waiting:
                    replies.extend(message_rows(c, leg, NONE, None, "waiting"))
        states = lg.agent_states
        states.extend(
            (a.tenant, a.agent_id, a.kind, a.state, a.state_start, NONE)
            for a in agents_
            if a.state_start >= 0
        )
        batch = Batch(
            interactions=[_interaction(c) for c in convs],
            legs=[_leg(lg, c, i, leg) for c in convs for i, leg in enumerate(c.legs, 1)],
            segments=segments,
            assignments=[
                (*r[:8], r[8] if r[8] is not None else float("nan"), *r[9:]) for r in lg.assignments
            ],
            replies=replies,
            agent_states=states,
            agents=[
                (a.tenant, a.agent_id, a.kind, a.name, a.profile, a.skills, a.registered, a.removed)
                for a in agents_
            ],
            customers=[
                (c.tenant, c.customer_id, c.source, c.first_seen, c.merged_into) for c in custs
            ],
            contacts=[
                (c.tenant, c.channel, c.address, c.customer_id, c.first_seen, c.linked)
                for c in contacts
            ],
            stale_interactions=[(c.tenant, c.cid, c.first_contact) for c in convs if c.stored],
            stale_agents=[(a.tenant, a.agent_id) for a in agents_ if a.stored],
            stale_customers=[(c.tenant, c.customer_id) for c in custs if c.stored],
            stale_contacts=[(c.tenant, c.channel, c.address) for c in contacts if c.stored],
            stale_pending=lg.deleted_pending + [(p.tenant, p.cid) for p in pending if p.stored],
            state=[],
            as_of=self._group_clock if self._group_input is not None else self.clock,
        )
        # from here on, what the batch holds is in the database (the records say so,
        # in ``_state`` too)
        for c in open_convs:
            c.stored = True
            c.dirty = False
        for a in agents_:
            a.stored = True
            a.dirty = False
        for p in pending:
            p.stored = True
        for ct in contacts:
            ct.stored = True
            ct.dirty = False
        for cu in custs:
            cu.stored = True
            cu.dirty = False
        batch.state.extend(("conv", c.tenant, c.cid, encode(c)) for c in open_convs)
        batch.state.extend(("agent", a.tenant, a.agent_id, encode(a)) for a in agents_)
        batch.state.extend(("pending", p.tenant, p.cid, encode(p)) for p in pending)
        for c in convs:
            c.dirty = False
        if len(lg.contacts) + len(lg.customers) > _CACHE_MAX:
            lg.contacts.clear()
            lg.customers.clear()
            lg.known_all = False
        lg.new_batch()
        return batch

    def _prune_pending(self) -> None:
        """Forget arrivals no decision took up within an hour (the engine dropped them)."""
        horizon = self.clock - _PENDING_MAX_MS
        lg = self._ledger
        for t in lg.tenants.values():
            for p in [p for p in t.pending.values() if p.ts < horizon]:
                del t.pending[p.cid]
                lg.drop_pending(p)


def _interaction(c: Conversation) -> Row:
    """A conversation's ``interactions`` row (the insert derives waits and ``met``): one
    whose first contact is asynchronous is answered by its first human reply."""
    asynchronous = c.legs[0].asynchronous
    answer = c.first_reply if asynchronous else c.first_answer
    return (
        c.tenant, c.cid, c.customer_id, c.contact_channel, c.contact_address,
        c.channels[0], _SEP.join(c.channels), c.channel, c.queue, c.cur_queue,
        c.priority, c.language, c.first_contact, c.first_offer, c.first_bot,
        c.first_answer, c.answered_by, _SEP.join(c.handled_by), c.last_agent,
        c.ended, c.closed, c.ended_by,
        "closed" if c.closed >= 0 else "bot" if c.owner_bot else c.stage,
        (
            "answered" if answer >= 0 else "open" if c.closed < 0
            else "abandoned" if c.abandoned
            else "unreplied" if c.first_answer >= 0
            else "bot_resolved" if c.first_bot >= 0 else "unanswered"
        ),
        c.transfers, c.handoffs, c.rejoins, c.escalations,
        c.abandoned and answer < 0,  # answered first: the outcome is answered
        c.callback, c.sla_target_s, c.sla_breached, c.transfer_wait_ms, c.handle_ms,
        len(c.legs), _SEP.join(leg.leg_id for leg in c.legs),
        asynchronous, c.first_reply, c.replied_by, answer,
    )  # fmt: skip


_DEFAULT_QUEUE = Queue()


def _leg(lg: Ledger, c: Conversation, seq: int, leg: Leg) -> Row:
    """A leg's ``legs`` row (the insert splits short abandons, derives wait and ``met``).

    Outcome: a human answered it (served it; an asynchronous leg: replied), else it was
    abandoned, else it is live (open), else a human took it on without a reply
    (unreplied), else a bot served it, else it ended unanswered."""
    answer = leg.replied if leg.asynchronous else leg.served
    outcome = (
        "answered" if answer >= 0 else "abandoned" if leg.ended_by == "abandoned"
        else "open" if leg.ended < 0 else "unreplied" if leg.served >= 0
        else "bot_resolved" if leg.bot else "unanswered"
    )  # fmt: skip
    target = lg.policy.queues.get(leg.queue, _DEFAULT_QUEUE).sla_for(leg.channel)  # type: ignore[arg-type]
    return (
        c.tenant, c.cid, c.first_contact, seq, leg.leg_id, leg.channel, leg.media_class,
        leg.queue, c.customer_id, leg.started, leg.served, leg.served_by, leg.bot, leg.ended,
        leg.ended_by, outcome, leg.callback, target, leg.asynchronous, leg.replied,
        leg.replied_by, answer,
    )  # fmt: skip
