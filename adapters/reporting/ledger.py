"""The fold's memory and what a batch changed: the records the event handlers work on.

A :class:`Ledger` holds the open conversations, agents and arrivals of each tenant and
the contacts and customers known so far (those of earlier batches are handed in by the
writer before a batch is folded: the ledger never reads a database). The handlers
(:mod:`.conversations`, :mod:`.agents`, :mod:`.customers`) change the records through
it; it collects the rows a batch appends (segments, assignments, agent states) and the
records it must rewrite (marked ``dirty``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omniroute.engine.policy import Policy

from .records import (
    NONE,
    Agent,
    Arrival,
    Contact,
    Conversation,
    Customer,
    Leg,
    Segment,
    Tenant,
)

__all__ = ["Handler", "Ledger", "Row", "message_rows"]

Row = tuple[Any, ...]
"""A row for a table, its fields in the order of the table's :class:`~.schema.Insert`."""


class Ledger:
    """The fold's state: records by tenant, known contacts/customers, the batch's changes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tenants: dict[str, Tenant] = {}
        # contacts and customers: None means "not in the database" (asked, not found)
        self.contacts: dict[tuple[str, str, str], Contact | None] = {}
        self.customers: dict[tuple[str, str], Customer | None] = {}
        self.known_all = False
        """Every contact and customer of the log in the database is in ``contacts`` and
        ``customers`` (the database had none when the fold began, and the cache was never
        cleared): a batch has nothing to look up."""
        self.wire_legs = False
        """The log names legs (a conversation's own flag survives a restart)."""
        self.new_batch()

    def new_batch(self) -> None:
        """Forget the changes of the batch just written."""
        self.dirty_convs: list[Conversation] = []
        self.dirty_agents: list[Agent] = []
        self.dirty_pending: dict[tuple[str, str], Arrival] = {}
        self.deleted_pending: list[tuple[str, str]] = []
        self.segments: list[Row] = []
        self.assignments: list[Row] = []
        self.replies: list[Row] = []
        self.agent_states: list[Row] = []
        self.dirty_contacts: list[Contact] = []
        self.dirty_customers: list[Customer] = []

    # --- lookups ---------------------------------------------------------------------------

    def tenant(self, name: str) -> Tenant:
        t = self.tenants.get(name)
        if t is None:
            t = self.tenants[name] = Tenant()
        return t

    def conv(self, tenant: str, cid: str) -> Conversation | None:
        """The open conversation ``cid`` names (its own id or one it rejoined under)."""
        t = self.tenants.get(tenant)
        if t is None:
            return None
        c = t.convs.get(cid)
        if c is None:
            root = t.aliases.get(cid)
            if root is not None:
                c = t.convs.get(root)
        return c

    def agent(self, tenant: str, agent_id: str) -> Agent:
        t = self.tenant(tenant)
        a = t.agents.get(agent_id)
        if a is None:  # a log that starts after the registration
            a = t.agents[agent_id] = Agent(tenant=tenant, agent_id=agent_id)
        return a

    # --- changes ---------------------------------------------------------------------------

    def touch(self, c: Conversation) -> None:
        if not c.dirty:
            c.dirty = True
            self.dirty_convs.append(c)

    def touch_agent(self, a: Agent) -> None:
        if not a.dirty:
            a.dirty = True
            self.dirty_agents.append(a)

    def drop_pending(self, p: Arrival) -> None:
        """An arrival is taken up (or forgotten): remove it from ``_state``."""
        key = (p.tenant, p.cid)
        if p.stored:
            self.deleted_pending.append(key)
            p.stored = False
        self.dirty_pending.pop(key, None)

    # --- segments and holding --------------------------------------------------------------

    def open_seg(self, c: Conversation, kind: str, ts: int, agent: str | None = None) -> Segment:
        c.nseg += 1
        return Segment(c.tenant, c.cid, c.nseg, kind, ts, agent, c.channel, c.media_class,
                       c.cur_queue)  # fmt: skip

    def end_seg(self, c: Conversation, s: Segment, ts: int, outcome: str) -> None:
        kind = s.kind
        self.segments.append((s.tenant, s.cid, s.seq, kind, s.start, ts, s.agent, s.channel,
                              s.media_class, s.queue, outcome))  # fmt: skip
        if kind == "agent":
            c.handle_ms += ts - s.start
        elif (kind == "queue" or kind == "offer") and 0 <= c.first_answer <= s.start:
            c.transfer_wait_ms += ts - s.start

    def release(self, c: Conversation, ts: int, outcome: str) -> None:
        """The holder lets go: end their segment and free them."""
        if c.h_seg is not None:
            self.end_seg(c, c.h_seg, ts, outcome)
            c.h_seg = None
        if c.w_seg is not None:
            self.end_seg(c, c.w_seg, ts, outcome)
            c.w_seg = None
        if c.owner is not None:
            a = self.tenant(c.tenant).agents.get(c.owner)
            if a is not None and c.cid in a.holding:
                a.holding.remove(c.cid)
        c.owner = None
        c.owner_bot = False

    def end_leg(self, c: Conversation, leg: Leg, ts: int, by: str) -> None:
        """The leg ends at ``ts`` (``by``: who or what ended it): its customer messages
        no agent message followed stay unanswered."""
        leg.ended = ts
        leg.ended_by = by
        if leg.waiting:
            self.replies.extend(message_rows(c, leg, NONE, None, "unreplied"))
            leg.waiting = []

    def end_legs(self, c: Conversation, ts: int, by: str) -> None:
        """Every live leg of ``c`` ends at ``ts``."""
        for leg in c.legs:
            if leg.ended < 0:
                self.end_leg(c, leg, ts, by)

    def reply(self, c: Conversation, leg: Leg, ts: int, agent: str) -> None:
        """``agent``'s message at ``ts`` answers the leg's waiting customer messages (the
        first one answers the leg)."""
        if leg.replied < 0:
            leg.replied = ts
            leg.replied_by = agent
        if leg.waiting:
            self.replies.extend(message_rows(c, leg, ts, agent, "replied"))
            leg.waiting = []

    def close(self, c: Conversation, ts: int, outcome: str) -> None:
        """The conversation leaves: end every open segment and live leg, drop it from the
        state."""
        self.end_legs(c, ts, outcome)
        for attr in ("q_seg", "o_seg", "s_seg"):
            s = getattr(c, attr)
            if s is not None:
                self.end_seg(c, s, ts, outcome)
                setattr(c, attr, None)
        self.release(c, ts, outcome)
        c.closed = ts
        c.stage = "closed"
        c.in_queue = False
        c.offer_agent = None
        t = self.tenant(c.tenant)
        t.convs.pop(c.cid, None)
        for alias in c.aliases:
            t.aliases.pop(alias, None)
        if t.open_by_customer.get(c.customer_id) == c.cid:
            del t.open_by_customer[c.customer_id]
        self.touch(c)

    def set_state(self, a: Agent, state: str, ts: int) -> None:
        """The agent's status interval changes to ``state`` at ``ts``."""
        if a.state == state and a.state_start >= 0:
            return
        self.end_state(a, ts)
        a.state = state
        a.state_start = ts
        self.touch_agent(a)

    def end_state(self, a: Agent, ts: int) -> None:
        """The agent's status interval ends at ``ts`` and no other starts."""
        if a.state_start >= 0:
            self.agent_states.append((a.tenant, a.agent_id, a.kind, a.state, a.state_start, ts))
        a.state_start = NONE


def message_rows(
    c: Conversation, leg: Leg, reply: int, agent: str | None, outcome: str
) -> list[Row]:
    """``replies`` rows of the leg's waiting customer messages: answered at ``reply`` by
    ``agent`` (``replied``), never (``unreplied``: the leg ended) or not yet
    (``waiting``)."""
    first = leg.messages - len(leg.waiting) + 1
    return [
        (c.tenant, c.cid, c.first_contact, leg.leg_id, first + i, leg.channel, leg.queue,
         leg.started, ts, reply, agent, outcome)
        for i, ts in enumerate(leg.waiting)
    ]  # fmt: skip


Handler = Callable[[Ledger, Any, int], None]
"""Folds one event (at the time given) into the ledger."""
