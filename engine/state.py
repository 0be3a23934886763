"""The engine's state: agents, conversations, customers and timers, folded from events.

Everything here is a ``msgspec.Struct`` so that a snapshot is one ``msgpack`` encode
and a restore one decode. Dicts keep insertion order, which is itself a function of
the log, so iteration over them is deterministic; ordering decisions still use the
explicit sequence numbers (``seq``) rather than dict order.

The records there are many of (agents, conversations, legs, customers) are compact: they
reference no container that could lead back to them, so the cyclic garbage collector
does not track them (``gc=False``); a conversation's short sequences are tuples, empty
ones the shared ``()``; skill maps are shared (:func:`shared_skills`), never mutated.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from .events import AgentKind, AgentStatus, Channel, Contact, Skills
from .policy import MediaClass

__all__ = [
    "STATE_VERSION",
    "AgentState",
    "ConversationState",
    "CustomerState",
    "EngineState",
    "Leg",
    "Stage",
    "TenantState",
    "Timer",
    "TimerKind",
    "shared_skills",
]

STATE_VERSION = 4
"""Bumped when the state's shape changes: a snapshot of another version is not restored."""

Stage: TypeAlias = Literal["queued", "offered", "assigned", "wrap_up", "scheduled"]
"""Where an open conversation is. ``scheduled``: a callback waiting for its time.

A closed conversation (ended, abandoned) leaves the state; its customer keeps the
memory needed for stickiness, and for identity links, only as long as the policy says
(see ``arrivals``: customers are forgotten in event time).
"""

_SHARED_SKILLS: dict[tuple[tuple[str, int], ...], Skills] = {}
_MAX_SHARED_SKILLS = 65_536


def shared_skills(skills: Skills) -> Skills:
    """One dict per distinct skill map (same items, same order) for the state to hold.

    The state replaces a skill map, never mutates one, so equal maps can be one object
    (the cache is emptied when full; maps handed out stay valid)."""
    key = tuple(skills.items())
    found = _SHARED_SKILLS.get(key)
    if found is None:
        if len(_SHARED_SKILLS) >= _MAX_SHARED_SKILLS:
            _SHARED_SKILLS.clear()
        found = _SHARED_SKILLS[key] = dict(skills)
    return found


TimerKind: TypeAlias = Literal[
    "offer", "ring", "sla", "pin", "bot", "wrap_up", "inactive", "callback", "leg"
]


class AgentState(msgspec.Struct, kw_only=True, gc=False):
    agent_id: str
    seq: int
    slot: int
    kind: AgentKind
    skills: Skills
    profile: str
    languages: list[str]
    status: AgentStatus = "offline"
    responsive: bool = True
    units: list[int]
    counts: list[int]
    holding: list[str] = []
    """Conversations on this agent's capacity: offered, assigned or in wrap-up."""
    pending: list[str] = []
    """Conversations this agent holds whose cost must grow before the agent gets new work:
    a new leg to take on, or an inactive conversation whose customer wrote again."""
    idle_since: int = 0
    """When the agent last became available, or started or stopped holding work: an agent
    holding nothing has been idle since then (one holding work is not idle)."""
    last_offer: int = 0

    @property
    def routable(self) -> bool:
        return self.status == "available" and self.responsive and not self.pending


class Leg(msgspec.Struct, kw_only=True, gc=False):
    """One channel contact of a conversation: the first one, or a rejoin."""

    leg_id: str
    """The ``conversation_id`` of the contact that opened it."""
    channel: Channel
    contact: Contact
    media_class: MediaClass
    started_ts: int
    ended_ts: int | None = None
    joined: bool = False
    """The conversation's owner serves it: their held capacity covers it."""


class ConversationState(msgspec.Struct, kw_only=True, gc=False):
    conversation_id: str
    seq: int
    channel: Channel
    """The channel of the most demanding live leg (the newest such)."""
    media_class: MediaClass
    """The most demanding live leg's class: what the conversation is routed as."""
    contact: Contact
    legs: tuple[Leg, ...] = ()
    customer_id: str
    queue: str
    skills: Skills
    optional_skills: Skills
    language: str | None
    priority: int
    first_contact_ts: int
    stage: Stage = "queued"
    enqueued_ts: int = 0
    ring: int = 0
    route_gen: int = 0
    kinds: Literal["any", "human", "bot"] = "any"
    bot_until: int | None = None
    owner: str | None = None
    owner_units: int = 0
    owner_class: MediaClass | None = None
    """The class the owner's units are charged to (their lead class); None: no owner."""
    owner_also: tuple[MediaClass, ...] = ()
    """The other classes of the legs the owner serves: one item of each is counted."""
    offer_agent: str | None = None
    offer_units: int = 0
    offer_class: MediaClass | None = None
    offer_also: tuple[MediaClass, ...] = ()
    offer_seq: int = 0
    excluded: tuple[str, ...] = ()
    pinned: str | None = None
    pin_until: int | None = None
    preferred: str | None = None
    sla_deadline: int = 0
    sla_target_s: float = 0.0
    sla_breached: bool = False
    answered_by_human: bool = False
    replied: bool = False
    """A human owner has written to the customer (``MessageReceived`` out)."""
    callback: bool = False
    not_before: int | None = None
    last_in_ts: int = 0
    inactive: bool = False
    activity_gen: int = 0
    """Bumped when the holding or the customer's activity changes: stale timers skip."""
    inactive_due: int = 0
    """When the customer's silence makes the conversation inactive (from the last message)."""
    inactive_armed: int = 0
    """Deadline of the one pending inactivity timer (0: none); it re-arms if ``inactive_due``
    moved later, so a busy conversation costs one timer, not one per message."""
    aliases: tuple[str, ...] = ()
    transfers: int = 0
    assigned_ts: int = 0
    in_queue: bool = False
    """Waiting for an agent: stage ``queued``, or ``assigned`` during a warm transfer or
    while a new leg its owner has no room for waits for anyone (``leg_wait``)."""
    leg_wait: bool = False
    leg_gen: int = 0
    """Bumped when a leg starts waiting for its owner's room: stale leg timers skip."""


class CustomerState(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """What routing needs of a customer, kept while they have an open conversation, are
    inside their sticky window or hold identity links within ``customer_retention_s``
    (``arrivals``). Fields at their default are left out of a snapshot."""

    customer_id: str
    contacts: tuple[Contact, ...] = ()
    open_conversation: str | None = None
    last_agent: str | None = None
    last_ended_ts: int | None = None
    linked_until: int = 0
    """Identity links (``ContactsLinked``, an arrival naming ``customer_id``) are kept until
    then (epoch ms; 0: none, an anonymous customer known by its contact alone)."""
    forget_at: int = 0
    """Due time of this customer's one pending entry in ``TenantState.forget`` (0: none)."""


class Timer(msgspec.Struct, frozen=True, order=True, array_like=True):
    deadline: int
    seq: int
    kind: TimerKind
    tenant: str
    key: str
    gen: int


class TenantState(msgspec.Struct, kw_only=True):
    tenant: str
    agents: dict[str, AgentState] = {}
    conversations: dict[str, ConversationState] = {}
    aliases: dict[str, str] = {}
    customers: dict[str, CustomerState] = {}
    contact_customer: dict[str, str] = {}
    """``"channel:address"`` -> customer id."""
    next_slot: int = 0
    clock: int = 0
    """The tenant's time (epoch ms): its latest event ``ts``; only its own events move it."""
    timers: list[Timer] = []
    """The tenant's pending timers, a heap by (deadline, seq)."""
    forget: list[tuple[int, str]] = []
    """Customers to forget, a heap by (due, customer id): each is looked at again when the
    tenant's clock reaches its due time (``arrivals.forget_due``), and forgotten if nothing
    routing needs holds it any more. At most one entry per customer (``forget_at``)."""


class EngineState(msgspec.Struct, kw_only=True):
    seq: int = 0
    offer_counter: int = 0
    tenants: dict[str, TenantState] = {}
    recent_ids: dict[str, None] = {}
