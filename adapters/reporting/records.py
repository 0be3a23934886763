"""The fold's records: what it keeps of open conversations, agents, arrivals, contacts
and customers between events (and, as msgpack in ``_state``, between batches).

A :class:`Conversation` carries its open :class:`Segment` s and its channel
:class:`Leg` s (one per contact the customer made in it); ``stored`` says its row is
in the database already (so it is replaced, not added), ``dirty`` that this batch
changed it. Times are epoch milliseconds, :data:`NONE` for "not yet".
"""

from __future__ import annotations

import msgspec

__all__ = [
    "NONE",
    "Agent",
    "Arrival",
    "Contact",
    "Conversation",
    "Customer",
    "Leg",
    "Segment",
    "Tenant",
    "decode_agent",
    "decode_arrival",
    "decode_conversation",
    "encode",
]

NONE = -1
"""Means "no time yet" in the fold's integer timestamps."""


class Segment(msgspec.Struct, array_like=True, gc=False):
    """An open station of a journey (queue, offer, bot, agent, wrap_up, scheduled)."""

    tenant: str
    cid: str
    seq: int
    kind: str
    start: int
    agent: str | None
    channel: str
    media_class: str
    queue: str


class Leg(msgspec.Struct, array_like=True, kw_only=True):
    """A channel leg: one contact of the customer in a conversation (the first one's id is
    the conversation's, a rejoin's its new conversation id). ``served``: when a human
    agent first served it (``served_by``); ``bot``: a bot served it; ``ended_by``:
    ``agent``, ``customer``, ``abandoned`` (dropped while waiting) or why the
    conversation closed. An asynchronous leg (``asynchronous``: its channel's class is in
    ``REPLY_CLASSES``) is answered by the first human reply (``replied``, ``replied_by``);
    ``waiting`` holds the times of its customer messages no agent message followed yet
    (its contact first), ``messages`` counts them all."""

    leg_id: str
    channel: str
    media_class: str
    queue: str
    started: int
    served: int = NONE
    served_by: str | None = None
    bot: bool = False
    ended: int = NONE
    ended_by: str | None = None
    callback: bool = False
    asynchronous: bool = False
    replied: int = NONE
    replied_by: str | None = None
    waiting: list[int] = []
    messages: int = 0


class Conversation(msgspec.Struct, array_like=True, kw_only=True):
    """An interaction as far as it is folded: its row's fields, its open segments and
    where it stands (``stage``, ``owner``, the offer out). ``first_answer``: the first
    assignment to a human; ``first_reply``: the first agent message while a human held
    it (what answers an asynchronous conversation)."""

    tenant: str
    cid: str
    customer_id: str
    contact_channel: str
    contact_address: str
    channels: list[str]
    channel: str
    media_class: str
    queue: str
    cur_queue: str
    priority: int = 0
    language: str | None = None
    first_contact: int
    first_offer: int = NONE
    first_bot: int = NONE
    first_answer: int = NONE
    answered_by: str | None = None
    first_reply: int = NONE
    replied_by: str | None = None
    handled_by: list[str] = []
    last_agent: str | None = None
    ended: int = NONE
    closed: int = NONE
    ended_by: str | None = None
    abandoned: bool = False
    callback: bool = False
    transfers: int = 0
    handoffs: int = 0
    rejoins: int = 0
    escalations: int = 0
    sla_target_s: float = 0.0
    sla_breached: bool = False
    transfer_wait_ms: int = 0
    handle_ms: int = 0
    stage: str = "queued"
    owner: str | None = None
    owner_bot: bool = False
    offer_agent: str | None = None
    in_queue: bool = False
    transferring: bool = False
    q_seg: Segment | None = None
    o_seg: Segment | None = None
    h_seg: Segment | None = None
    w_seg: Segment | None = None
    s_seg: Segment | None = None
    nseg: int = 0
    nassign: int = 0
    aliases: list[str] = []
    legs: list[Leg] = []
    wire_legs: bool = False
    """The engine names the legs it serves (its assignments list them): a log written
    before legs has no ``LegJoined`` and assigns every live leg."""
    stored: bool = False
    dirty: bool = False

    def leg(self, leg_id: str) -> Leg | None:
        """The leg ``leg_id``, if it is one of this conversation's."""
        for leg in self.legs:
            if leg.leg_id == leg_id:
                return leg
        return None

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs if leg.ended < 0]


class Agent(msgspec.Struct, array_like=True, kw_only=True):
    """An agent's row, presence, current status interval and what they hold."""

    tenant: str
    agent_id: str
    kind: str = "human"
    name: str | None = None
    profile: str | None = None
    skills: str = "{}"
    registered: int = NONE
    removed: int = NONE
    status: str = "offline"
    responsive: bool = True
    state: str = "offline"
    state_start: int = NONE
    holding: list[str] = []
    stored: bool = False
    dirty: bool = False


class Arrival(msgspec.Struct, array_like=True, kw_only=True):
    """A ``ConversationArrived`` waiting for the engine's queueing (or rejoining) of it."""

    tenant: str
    cid: str
    ts: int
    channel: str
    contact_channel: str
    contact_address: str
    customer_id: str | None = None
    priority: int = 0
    language: str | None = None
    queue: str = "default"
    stored: bool = False


class Contact(msgspec.Struct, kw_only=True):
    """A contact address and the customer it belongs to."""

    tenant: str
    channel: str
    address: str
    customer_id: str
    first_seen: int
    linked: int = NONE
    stored: bool = False
    dirty: bool = True


class Customer(msgspec.Struct, kw_only=True):
    """A customer (from the CRM, or anonymous: ``contact:<channel>:<address>``)."""

    tenant: str
    customer_id: str
    source: str
    first_seen: int
    merged_into: str | None = None
    stored: bool = False
    dirty: bool = True


class Tenant:
    """One tenant's open records: conversations (and the ids they rejoined under),
    agents, arrivals, and each customer's open conversation."""

    __slots__ = ("agents", "aliases", "convs", "open_by_customer", "pending")

    def __init__(self) -> None:
        self.convs: dict[str, Conversation] = {}
        self.aliases: dict[str, str] = {}
        self.agents: dict[str, Agent] = {}
        self.pending: dict[str, Arrival] = {}
        self.open_by_customer: dict[str, str] = {}


encode = msgspec.msgpack.Encoder().encode
"""A record as msgpack, for ``_state``."""
decode_conversation = msgspec.msgpack.Decoder(Conversation).decode
decode_agent = msgspec.msgpack.Decoder(Agent).decode
decode_arrival = msgspec.msgpack.Decoder(Arrival).decode
