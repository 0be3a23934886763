"""The wire schema: stable tags, round trips on both encodings, tolerant schema evolution."""

from __future__ import annotations

import typing

import msgspec
import pytest

from omniroute.engine import events
from omniroute.engine.events import (
    AgentRegistered,
    Contact,
    ConversationArrived,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
    is_decision,
)

EVENT_TYPES = typing.get_args(events.Event)

STABLE_TAGS = {
    "AgentRegistered": "agent.registered",
    "AgentUpdated": "agent.updated",
    "AgentStatusChanged": "agent.status_changed",
    "AgentRemoved": "agent.removed",
    "ConversationArrived": "conversation.arrived",
    "MessageReceived": "message.received",
    "OfferAccepted": "offer.accepted",
    "OfferDeclined": "offer.declined",
    "TransferRequested": "transfer.requested",
    "HandoffRequested": "handoff.requested",
    "ConversationEnded": "conversation.ended",
    "WrapUpCompleted": "wrapup.completed",
    "CustomerAbandoned": "customer.abandoned",
    "CallbackRequested": "callback.requested",
    "ContactsLinked": "contacts.linked",
    "Tick": "tick",
    "ConversationQueued": "conversation.queued",
    "ConversationOffered": "conversation.offered",
    "ConversationAssigned": "conversation.assigned",
    "OfferExpired": "offer.expired",
    "AgentNotResponding": "agent.not_responding",
    "ConversationEscalated": "conversation.escalated",
    "SlaBreached": "sla.breached",
    "ConversationRejoined": "conversation.rejoined",
    "WrapUpExpired": "wrapup.expired",
    "LegJoined": "leg.joined",
    "EventRejected": "event.rejected",
}


def sample(event_type: type) -> events.Event:
    """One valid instance of an event type, with every required field filled in."""
    values: dict[str, object] = {"tenant": "acme", "ts": 1_700_000_000_000, "id": "e-1"}
    hints = typing.get_type_hints(event_type)
    for field in msgspec.structs.fields(event_type):
        if field.name in values or field.required is False:
            continue
        hint = hints[field.name]
        if field.name == "channel":
            values[field.name] = "whatsapp"
        elif field.name == "contact":
            values[field.name] = Contact("whatsapp", "+331")
        elif field.name == "contacts":
            values[field.name] = [Contact("sms", "+331"), Contact("email", "a@b.c")]
        elif field.name == "status":
            values[field.name] = "available"
        elif hint is int:
            values[field.name] = 7
        elif hint is float:
            values[field.name] = 1.5
        else:
            values[field.name] = f"{field.name}-1"
    return typing.cast(events.Event, event_type(**values))


def test_every_event_type_has_its_stable_tag() -> None:
    tags = {t.__name__: t.__struct_config__.tag for t in EVENT_TYPES}
    assert tags == STABLE_TAGS


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_round_trip_msgpack_and_json(event_type: type) -> None:
    event = sample(event_type)
    assert decode_msgpack(encode_msgpack(event)) == event
    assert decode_json(encode_json(event)) == event


def test_json_carries_the_type_tag() -> None:
    data = encode_json(AgentRegistered(tenant="acme", ts=0, agent_id="ann"))
    assert data.startswith(b'{"type":"agent.registered"')


def test_unknown_fields_from_a_newer_producer_are_skipped() -> None:
    raw = (
        b'{"type":"conversation.arrived","tenant":"acme","ts":5,"conversation_id":"c1",'
        b'"channel":"sms","contact":{"channel":"sms","address":"+1"},"sentiment":0.3}'
    )
    event = decode_json(raw)
    assert isinstance(event, ConversationArrived) and event.queue == "default"


def test_a_wrong_type_is_a_clear_validation_error() -> None:
    raw = b'{"type":"agent.registered","tenant":"acme","ts":"noon","agent_id":"ann"}'
    with pytest.raises(msgspec.ValidationError, match=r"\$\.ts"):
        decode_json(raw)


def test_an_unknown_tag_is_a_clear_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Invalid value 'agent\.teleported'"):
        decode_json(b'{"type":"agent.teleported","tenant":"acme","ts":1}')


def test_inputs_and_decisions_are_told_apart() -> None:
    decisions = {t for t in EVENT_TYPES if is_decision(sample(t))}
    assert decisions == set(typing.get_args(events.Decision))
