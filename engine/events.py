"""Every event omniroute reads or writes: one tagged union, the wire schema.

Inputs come from channels, agents' desktops, bots and the platform; decisions are
emitted by the engine and appended to the same log. Each event is a frozen
``msgspec.Struct`` whose ``type`` tag is an explicit, stable string (never a class
name), so the log stays readable when classes are renamed. Schema evolution follows
msgspec's rules: new fields get defaults and unknown fields are skipped on decode.

Times are epoch milliseconds set by the producer (``ts``); the engine's clock is the
event time, never the wall clock.
"""

from __future__ import annotations

import typing
from typing import Literal, TypeAlias

import msgspec

__all__ = [
    "AGENT_KINDS",
    "AGENT_STATUSES",
    "CHANNELS",
    "EVENT_TYPES",
    "TAGS",
    "AgentNotResponding",
    "AgentRegistered",
    "AgentRemoved",
    "AgentStatusChanged",
    "AgentUpdated",
    "CallbackRequested",
    "Channel",
    "Contact",
    "ContactsLinked",
    "ConversationArrived",
    "ConversationAssigned",
    "ConversationEnded",
    "ConversationEscalated",
    "ConversationOffered",
    "ConversationQueued",
    "ConversationRejoined",
    "CustomerAbandoned",
    "Decision",
    "Event",
    "EventRejected",
    "HandoffRequested",
    "Input",
    "LegJoined",
    "MessageReceived",
    "OfferAccepted",
    "OfferDeclined",
    "OfferExpired",
    "OfferExpiry",
    "SlaBreached",
    "Tick",
    "TransferRequested",
    "WrapUpCompleted",
    "WrapUpExpired",
    "decode_json",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "is_decision",
    "tag_of",
]

Channel: TypeAlias = Literal[
    "voice",
    "video",
    "webchat",
    "whatsapp",
    "sms",
    "messenger",
    "telegram",
    "email",
    "social",
    "task",
]
CHANNELS: tuple[Channel, ...] = (
    "voice", "video", "webchat", "whatsapp", "sms", "messenger", "telegram", "email", "social",
    "task",
)  # fmt: skip

AgentKind: TypeAlias = Literal["human", "bot"]
AGENT_KINDS: tuple[AgentKind, ...] = ("human", "bot")
AgentStatus: TypeAlias = Literal["available", "away", "offline"]
AGENT_STATUSES: tuple[AgentStatus, ...] = ("available", "away", "offline")
Skills: TypeAlias = dict[str, int]


class Contact(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One address a customer can be reached on: a phone number, a WhatsApp id, an email."""

    channel: Channel
    address: str


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    tenant: str
    ts: int
    id: str | None = None


# --- inputs: agents -------------------------------------------------------------------


class AgentRegistered(_Event, frozen=True, tag="agent.registered"):
    """An agent (human or bot) joins the pool; registration order breaks score ties."""

    agent_id: str
    kind: AgentKind = "human"
    skills: Skills = {}
    capacity_profile: str | None = None
    languages: list[str] = []
    name: str | None = None


class AgentUpdated(_Event, frozen=True, tag="agent.updated"):
    """Change an agent's skills, capacity profile or languages (``None`` keeps the value)."""

    agent_id: str
    skills: Skills | None = None
    capacity_profile: str | None = None
    languages: list[str] | None = None


class AgentStatusChanged(_Event, frozen=True, tag="agent.status_changed"):
    """Presence from the agent's desktop. ``offline`` hands back what the agent holds."""

    agent_id: str
    status: AgentStatus
    reason: str | None = None


class AgentRemoved(_Event, frozen=True, tag="agent.removed"):
    """The agent leaves the pool; open work is re-queued, never lost."""

    agent_id: str


# --- inputs: conversations ------------------------------------------------------------


class ConversationArrived(_Event, frozen=True, tag="conversation.arrived"):
    """A customer's contact on any channel enters the one queue."""

    conversation_id: str
    channel: Channel
    contact: Contact
    customer_id: str | None = None
    queue: str = "default"
    skills: Skills = {}
    optional_skills: Skills = {}
    priority: int = 0
    language: str | None = None
    attributes: dict[str, str] = {}


class MessageReceived(_Event, frozen=True, tag="message.received"):
    """A message in a conversation: ``in`` from the customer (wakes an inactive
    conversation), ``out`` from the agent (the first one answers an asynchronous
    conversation's SLA). ``leg`` names the leg it was on (a ``conversation_id`` the
    conversation took in), when the producer knows it."""

    conversation_id: str
    direction: Literal["in", "out"] = "in"
    leg: str | None = None


class OfferAccepted(_Event, frozen=True, tag="offer.accepted"):
    conversation_id: str
    agent_id: str


class OfferDeclined(_Event, frozen=True, tag="offer.declined"):
    conversation_id: str
    agent_id: str
    reason: str | None = None


class TransferRequested(_Event, frozen=True, tag="transfer.requested"):
    """The holding agent moves the conversation to an agent, a queue or a skill set.

    ``cold`` releases the agent at once; ``warm`` keeps them on it until the new
    agent is assigned. The customer's wait clock keeps running from first contact.
    """

    conversation_id: str
    agent_id: str
    to_agent: str | None = None
    to_queue: str | None = None
    skills: Skills | None = None
    mode: Literal["cold", "warm"] = "cold"


class HandoffRequested(_Event, frozen=True, tag="handoff.requested"):
    """A bot hands its conversation to humans; the wait counts from first contact."""

    conversation_id: str
    agent_id: str
    reason: str | None = None
    skills: Skills | None = None
    queue: str | None = None


class ConversationEnded(_Event, frozen=True, tag="conversation.ended"):
    """The conversation ends; naming a ``leg`` ends only that channel leg (the call hangs
    up, the chat goes on) unless it is the last live one."""

    conversation_id: str
    by: Literal["agent", "customer"] = "agent"
    leg: str | None = None


class WrapUpCompleted(_Event, frozen=True, tag="wrapup.completed"):
    conversation_id: str
    agent_id: str


class CustomerAbandoned(_Event, frozen=True, tag="customer.abandoned"):
    """The customer gave up while queued or while the conversation was being offered.

    Naming a ``leg`` drops only that leg (the caller hangs up, the chat still waits)
    unless it is the last live one.
    """

    conversation_id: str
    leg: str | None = None


class CallbackRequested(_Event, frozen=True, tag="callback.requested"):
    """A queued customer asks to be called back; the callback keeps the original wait."""

    conversation_id: str
    address: str | None = None
    not_before: int | None = None


# --- inputs: customers and time -------------------------------------------------------


class ContactsLinked(_Event, frozen=True, tag="contacts.linked"):
    """These contacts are one customer: the basis of continuity across channels."""

    customer_id: str
    contacts: list[Contact]


class Tick(_Event, frozen=True, tag="tick"):
    """Appended by the service at a fixed cadence so timers fire on replay too."""


# --- decisions ------------------------------------------------------------------------


class ConversationQueued(_Event, frozen=True, tag="conversation.queued"):
    """The conversation waits in ``queue``; ``leg`` names the leg that made it wait, when
    one did (a rejoin on another channel, a new leg its agent has no room for)."""

    conversation_id: str
    queue: str
    reason: str = "arrived"
    leg: str | None = None


class ConversationOffered(_Event, frozen=True, tag="conversation.offered"):
    """Offered to ``agent_id`` with its live ``legs``, whose capacity is reserved now.

    ``why``: the policy's preset (the best agent by its score), ``agent_free`` (the agent
    gained room and this was the most urgent it could take), ``spread`` (its best agent
    had its ``max_per_pass`` this pass) or ``pinned`` (it waits for this agent)."""

    conversation_id: str
    agent_id: str
    score: float
    why: str
    deadline: int
    legs: list[str] = []


class ConversationAssigned(_Event, frozen=True, tag="conversation.assigned"):
    """``agent_id`` now serves the conversation and every live leg in ``legs``."""

    conversation_id: str
    agent_id: str
    score: float | None = None
    why: str | None = None
    wait_ms: int = 0
    legs: list[str] = []


OfferExpiry: TypeAlias = Literal[
    "timeout", "agent_unavailable", "channel_switch", "ended", "abandoned", "leg_joined"
]
"""Why an offer was taken back: it lapsed, the agent left, the legs changed, the
conversation ended or was abandoned, or the leg it was offered for joined its own agent."""


class OfferExpired(_Event, frozen=True, tag="offer.expired"):
    conversation_id: str
    agent_id: str
    reason: OfferExpiry = "timeout"


class AgentNotResponding(_Event, frozen=True, tag="agent.not_responding"):
    agent_id: str


class ConversationEscalated(_Event, frozen=True, tag="conversation.escalated"):
    conversation_id: str
    ring: int


class SlaBreached(_Event, frozen=True, tag="sla.breached"):
    conversation_id: str
    target_s: float
    waited_ms: int


class ConversationRejoined(_Event, frozen=True, tag="conversation.rejoined"):
    """A customer's new contact joined their open conversation as a new leg (continuity).

    ``new_conversation_id`` is the new leg's id; ``agent_id`` is who served the
    conversation when it came. A ``LegJoined`` follows when that agent takes the leg on
    (at once if they have room, else within the queue's ``sticky_wait_s``); otherwise the
    conversation waits in the new contact's queue and a ``ConversationQueued`` names it.
    """

    conversation_id: str
    new_conversation_id: str
    channel: Channel
    agent_id: str | None = None


class LegJoined(_Event, frozen=True, tag="leg.joined"):
    """The agent serving the conversation took on this leg: their capacity now covers it."""

    conversation_id: str
    leg: str
    agent_id: str
    channel: Channel


class WrapUpExpired(_Event, frozen=True, tag="wrapup.expired"):
    conversation_id: str
    agent_id: str


class EventRejected(_Event, frozen=True, tag="event.rejected"):
    """Bad input: the event changed nothing, and this says why."""

    reason: str
    event_type: str | None = None
    event_id: str | None = None


Input: TypeAlias = (
    AgentRegistered
    | AgentUpdated
    | AgentStatusChanged
    | AgentRemoved
    | ConversationArrived
    | MessageReceived
    | OfferAccepted
    | OfferDeclined
    | TransferRequested
    | HandoffRequested
    | ConversationEnded
    | WrapUpCompleted
    | CustomerAbandoned
    | CallbackRequested
    | ContactsLinked
    | Tick
)
Decision: TypeAlias = (
    ConversationQueued
    | ConversationOffered
    | ConversationAssigned
    | OfferExpired
    | AgentNotResponding
    | ConversationEscalated
    | SlaBreached
    | ConversationRejoined
    | LegJoined
    | WrapUpExpired
    | EventRejected
)
Event: TypeAlias = Input | Decision

_DECISION_TYPES = (
    ConversationQueued,
    ConversationOffered,
    ConversationAssigned,
    OfferExpired,
    AgentNotResponding,
    ConversationEscalated,
    SlaBreached,
    ConversationRejoined,
    LegJoined,
    WrapUpExpired,
    EventRejected,
)


def is_decision(event: Event) -> bool:
    """True for events the engine emits, False for inputs."""
    return isinstance(event, _DECISION_TYPES)


EVENT_TYPES: tuple[type[Event], ...] = typing.get_args(Event)
"""Every event class, inputs then decisions."""

TAGS: dict[type[Event], str] = {cls: str(cls.__struct_config__.tag) for cls in EVENT_TYPES}
"""The stable wire tag of every event class (``"conversation.arrived"``...)."""


def tag_of(event: Event | type[Event]) -> str:
    """The wire tag of an event or event class; ``"?"`` for anything that is not one."""
    cls = event if isinstance(event, type) else type(event)
    return TAGS.get(cls, "?")


_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_json_encoder = msgspec.json.Encoder()
_json_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode_msgpack(event: Event) -> bytes:
    """Encode one event for the log."""
    return _msgpack_encoder.encode(event)


def decode_msgpack(data: bytes | memoryview) -> Event:
    """Decode one event from the log; raises ``msgspec.ValidationError`` on bad input."""
    return _msgpack_decoder.decode(data)


def encode_json(event: Event) -> bytes:
    """Encode one event as JSON (the edges: integrators, ``omniroute send``/``tail``)."""
    return _json_encoder.encode(event)


def decode_json(data: bytes | str) -> Event:
    """Decode one event from JSON; raises ``msgspec.ValidationError`` on bad input."""
    return _json_decoder.decode(data)
