"""A provider's items -> engine inputs: a new conversation, a message on an open leg, a
call's end.

A customer who writes again while their contact is live in an open conversation sends
a ``MessageReceived`` on that leg, not a second contact. A new contact opens a
conversation (``ConversationArrived``; the engine makes it a rejoin when the customer
already has one open, on another channel). Email follows its thread: a reply joins the
leg its ``References`` name only when it comes from that leg's own address (anyone can
write any ``References``), so customer B never lands in customer A's conversation. A
call is one leg per ``CallSid``; its final status ends that leg. A phone number is one
customer on voice, SMS and WhatsApp (a customer who writes and then calls keeps their
conversation). Ids are the provider's
(``<provider>:<message id>``): the event ``id``, the new ``conversation_id`` and the
NATS ``Nats-Msg-Id``, so a retried webhook is never a second contact.
"""

from __future__ import annotations

import hashlib

from omniroute.engine.events import (
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationEnded,
    CustomerAbandoned,
    Input,
    MessageReceived,
)

from ..channels.inbound import CustomerMessage, Ignored, Item
from .config import Source
from .routing import RoutingTable
from .view import LegRef, LiveView

__all__ = ["event_id", "inputs_for", "outcome_of", "reply_token"]

_MAX_ID = 200
_REAL_TIME = frozenset({"voice", "video"})
_LINKED_IDS = {
    ("whatsapp", "user_id"): "whatsapp",
    ("webchat", "email"): "email",
    ("telegram", "phone"): "voice",
}
"""(channel, ``sender_ids`` key): the channel of another contact of the same person (a
WhatsApp business-scoped user id; a webchat visitor's vouched-for email address; the
phone number a Telegram user shared, which is theirs on every phone channel)."""
_PHONE_CHANNELS = ("voice", "whatsapp", "sms")
"""Channels addressed by a phone number: one number is one customer on all of them."""


def event_id(provider: str, ref: str) -> str:
    """``provider:ref``, or a digest of it when it is longer than an id may be."""
    value = f"{provider}:{ref}"
    if len(value) <= _MAX_ID:
        return value
    return f"{provider}:sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def reply_token(leg_id: str) -> str:
    """The token of ``support+TOKEN@...`` reply addresses that thread mail into ``leg_id``."""
    return hashlib.sha256(leg_id.encode()).hexdigest()[:16]


def inputs_for(
    item: Item, source: Source, tenant: str, now: int, view: LiveView, table: RoutingTable
) -> list[Input]:
    """The inputs one item from ``source`` means now (``[]``: nothing for the engine)."""
    if isinstance(item, Ignored):
        if item.reason == "call_ended" and item.ref is not None:
            return _call_ended(source, tenant, now, view, item.ref)
        return []
    contact = Contact(item.channel, item.sender)
    eid = event_id(source.provider, item.message_id)
    if view.seen(tenant, eid):
        return []  # a retry: the provider's id is applied already, or on its way
    if item.channel in _REAL_TIME:
        leg = view.leg(tenant, eid)
    elif item.channel == "email":
        leg = _mail_thread(item, source, tenant, contact, view)
    else:
        leg = view.live_leg(tenant, contact)
    if leg is not None:
        if item.channel in _REAL_TIME:
            return []  # the call's own status callback: the leg is open already
        return [
            MessageReceived(
                tenant=tenant, ts=now, id=eid, conversation_id=leg.conversation_id, leg=leg.leg_id
            )
        ]
    inputs: list[Input] = []
    linked = _links(item, contact, tenant, now, view)
    if linked is not None:
        inputs.append(linked)
    route = table.route(item, source)
    attributes = {"provider": source.provider, "source": source.name, "kind": item.kind}
    inputs.append(
        ConversationArrived(
            tenant=tenant, ts=now, id=eid, conversation_id=eid, channel=item.channel,
            contact=contact, customer_id=_customer(contact, tenant, view), queue=route.queue,
            skills=route.skills or {}, optional_skills=route.optional_skills or {},
            priority=route.priority, language=route.language, attributes=attributes,
        )
    )  # fmt: skip
    return inputs


def _customer(contact: Contact, tenant: str, view: LiveView) -> str | None:
    """Who a phone number already is on another phone channel (a WhatsApp customer who
    calls is the same customer), or None: the engine's own rule."""
    if contact.channel not in _PHONE_CHANNELS or not contact.address.startswith("+"):
        return None
    if view.known_customer(tenant, [contact]) is not None:
        return None
    same = [Contact(ch, contact.address) for ch in _PHONE_CHANNELS if ch != contact.channel]  # type: ignore[arg-type]
    return view.known_customer(tenant, same)


def outcome_of(item: Item, inputs: list[Input]) -> str:
    """What became of ``item`` (a metrics label): ``arrived``, ``message``, ``duplicate``,
    ``ended``, or why it was ignored."""
    if not isinstance(item, CustomerMessage):
        return "ended" if inputs else item.reason
    if not inputs:
        return "duplicate"
    return "arrived" if isinstance(inputs[-1], ConversationArrived) else "message"


def _mail_thread(
    item: CustomerMessage, source: Source, tenant: str, contact: Contact, view: LiveView
) -> LegRef | None:
    """The live email leg this mail replies to, from its own sender, or None."""
    if item.thread is not None:
        leg = view.live_leg(tenant, contact, event_id(source.provider, item.thread))
        if leg is not None:
            return leg
    local, _, _domain = item.recipient.partition("@")
    _, plus, token = local.partition("+")
    if plus and token:
        leg = view.live_leg(tenant, contact)
        if leg is not None and reply_token(leg.leg_id) == token.lower():
            return leg
    return None


def _links(
    item: CustomerMessage, contact: Contact, tenant: str, now: int, view: LiveView
) -> ContactsLinked | None:
    """A ``ContactsLinked`` when the provider names the sender on another contact too."""
    others = [
        Contact(channel, value)  # type: ignore[arg-type]
        for (on, key), channel in _LINKED_IDS.items()
        if on == item.channel
        and (value := item.sender_ids.get(key))
        and Contact(channel, value) != contact  # type: ignore[arg-type]
    ]
    if not others or view.linked(tenant, [contact, *others]):
        return None
    return ContactsLinked(
        tenant=tenant, ts=now, customer_id=view.customer_of(tenant, contact),
        contacts=[contact, *others],
    )  # fmt: skip


def _call_ended(
    source: Source, tenant: str, now: int, view: LiveView, call_sid: str
) -> list[Input]:
    leg_id = event_id(source.provider, call_sid)
    leg = view.leg(tenant, leg_id)
    eid = f"{leg_id}:ended"
    if leg is None or view.seen(tenant, eid):
        return []  # never answered here, or already ended: a repeated final status
    if leg.served:
        return [
            ConversationEnded(
                tenant=tenant, ts=now, id=eid, conversation_id=leg.conversation_id,
                by="customer", leg=leg_id,
            )
        ]  # fmt: skip
    return [CustomerAbandoned(tenant=tenant, ts=now, id=eid, conversation_id=leg.conversation_id,
                              leg=leg_id)]  # fmt: skip
