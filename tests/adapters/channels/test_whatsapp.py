"""WhatsApp Cloud API webhooks read into customer messages.

Fixtures follow the payload samples of Meta's messages webhook reference
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
and its per-type pages: text, image, interactive, button, reaction, system, status,
smb_message_echoes, and the business-scoped user ids page for ``user_id``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels import BadPayload, CustomerMessage, Ignored
from omniroute.adapters.channels.whatsapp import parse
from tests.support.payloads import JSON_VALUES, items_or_bad_payload

WABA = "102290129340398"
PHONE_ID = "106540352242922"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
CONTACT = {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}
TEXT = {
    "from": "16505551234",
    "id": WAMID,
    "timestamp": "1749416383",
    "type": "text",
    "text": {"body": "Does it come in another color?"},
}


def webhook(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    field: str = "messages",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
    }
    if messages is not None:
        value["contacts"] = [CONTACT] if contacts is None else contacts
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    change = {"value": copy.deepcopy(value), "field": field}
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [change]}]}


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def message(**fields: Any) -> CustomerMessage:
    base: dict[str, Any] = {
        "provider": "whatsapp",
        "channel": "whatsapp",
        "message_id": WAMID,
        "sender": "+16505551234",
        "recipient": PHONE_ID,
        "ts": 1749416383000,
        "name": "Sheena Nelson",
        "sender_ids": {"wa_id": "16505551234"},
    }
    return CustomerMessage(**(base | fields))


def ignored(reason: str, ref: str | None = WAMID) -> Ignored:
    return Ignored(provider="whatsapp", reason=reason, ref=ref)


def test_a_text_message_is_a_customer_message() -> None:
    assert parse(body(webhook([TEXT]))) == [message(text="Does it come in another color?")]


IMAGE = {
    "from": "16505551234",
    "id": WAMID,
    "timestamp": "1749416383",
    "type": "image",
    "image": {
        "caption": "Best. Pizza. Ever.",
        "mime_type": "image/jpeg",
        "sha256": "81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3",
        "id": "2754859441498128",
    },
}
BUTTON_REPLY = {
    "context": {"from": "15550783881", "id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNC"},
    "from": "16505551234",
    "id": WAMID,
    "timestamp": "1749416383",
    "type": "interactive",
    "interactive": {
        "type": "button_reply",
        "button_reply": {"id": "cancel-button", "title": "Cancel"},
    },
}
LIST_REPLY = BUTTON_REPLY | {
    "interactive": {
        "type": "list_reply",
        "list_reply": {
            "id": "priority_express",
            "title": "Priority Mail Express",
            "description": "Next Day to 2 Days",
        },
    }
}
TEMPLATE_BUTTON = BUTTON_REPLY | {
    "type": "button",
    "button": {"payload": "Unsubscribe", "text": "Unsubscribe me"},
}
LOCATION = {
    "from": "16505551234",
    "id": WAMID,
    "timestamp": "1749416383",
    "type": "location",
    "location": {"latitude": 37.483307, "longitude": -122.148981, "name": "Philz Coffee"},
}
AUDIO = TEXT | {"type": "audio", "audio": {"mime_type": "audio/ogg; codecs=opus", "id": "1"}}
AUDIO.pop("text")


@pytest.mark.parametrize(
    ("sample", "kind", "text"),
    [
        (IMAGE, "image", "Best. Pizza. Ever."),
        (BUTTON_REPLY, "interactive", "Cancel"),
        (LIST_REPLY, "interactive", "Priority Mail Express"),
        (TEMPLATE_BUTTON, "button", "Unsubscribe me"),
        (LOCATION, "location", ""),
        (AUDIO, "audio", ""),
    ],
)
def test_media_and_replies_carry_their_kind_and_words(
    sample: dict[str, Any], kind: str, text: str
) -> None:
    assert parse(body(webhook([sample]))) == [message(kind=kind, text=text)]


def test_statuses_are_ignored_in_any_order() -> None:
    ids = ["wamid.read", "wamid.sent", "wamid.failed", "wamid.delivered"]
    statuses = [
        {
            "id": id_,
            "status": id_.removeprefix("wamid."),
            "timestamp": "1750857384",
            "recipient_id": "16505551234",
            "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
        }
        for id_ in ids
    ]
    assert parse(body(webhook(statuses=statuses))) == [ignored("status", id_) for id_ in ids]


def test_a_message_and_a_status_in_one_change() -> None:
    payload = webhook([TEXT], [{"id": "wamid.out", "status": "read", "timestamp": "1"}])
    assert parse(body(payload)) == [
        message(text=TEXT["text"]["body"]),
        ignored("status", "wamid.out"),
    ]


def test_business_scoped_user_ids_are_kept_and_name_a_username_only_user() -> None:
    contact = {
        "profile": {"name": "Krish Thakur"},
        "wa_id": "919810218674",
        "user_id": "IN.1410018717833190",
        "parent_user_id": "IN.ENT.11815799212886844830",
    }
    sent = {
        "from": "919810218674",
        "from_user_id": "IN.1410018717833190",
        "id": "wamid.bsuid",
        "timestamp": "1779372805",
        "text": {"body": "Hey"},
        "type": "text",
    }
    ids = {
        "wa_id": "919810218674",
        "user_id": "IN.1410018717833190",
        "parent_user_id": "IN.ENT.11815799212886844830",
    }
    expected = message(
        message_id="wamid.bsuid",
        sender="+919810218674",
        ts=1779372805000,
        text="Hey",
        name="Krish Thakur",
        sender_ids=ids,
    )
    assert parse(body(webhook([sent], contacts=[contact]))) == [expected]

    username_only = {k: v for k, v in sent.items() if k != "from"}
    contact.pop("wa_id")
    ids.pop("wa_id")
    assert parse(body(webhook([username_only], contacts=[contact]))) == [
        msgspec.structs.replace(expected, sender="IN.1410018717833190", sender_ids=ids)
    ]


def test_a_message_without_its_contact_has_no_name_or_ids() -> None:
    assert parse(body(webhook([TEXT], contacts=[]))) == [
        message(text=TEXT["text"]["body"], name=None, sender_ids={})
    ]


def test_reactions_system_messages_and_unsupported_types_are_ignored() -> None:
    reaction = TEXT | {"type": "reaction", "reaction": {"message_id": "wamid.ours", "emoji": "👍"}}
    system = TEXT | {
        "id": "wamid.sys",
        "type": "system",
        "system": {
            "body": "User changed number",
            "wa_id": "12195555358",
            "type": "user_changed_number",
        },
    }
    unsupported = TEXT | {
        "id": "wamid.uns",
        "type": "unsupported",
        "errors": [{"code": 131051, "title": "Message type unknown"}],
    }
    for sample in (reaction, system, unsupported):
        sample.pop("text")
    assert parse(body(webhook([reaction, system, unsupported]))) == [
        ignored("reaction"),
        ignored("system", "wamid.sys"),
        ignored("unsupported", "wamid.uns"),
    ]


def test_echoes_of_our_own_messages_are_ignored() -> None:
    payload = webhook(field="smb_message_echoes")
    payload["entry"][0]["changes"][0]["value"]["message_echoes"] = [
        {
            "from": "15550783881",
            "to": "16505551234",
            "id": "wamid.echo",
            "timestamp": "1739321024",
            "type": "text",
            "text": {"body": "Here's the info you requested!"},
        }
    ]
    assert parse(body(payload)) == [ignored("echo", "wamid.echo")]


def test_other_objects_and_fields_are_unsupported() -> None:
    assert parse(b'{"object": "page", "entry": [{"messaging": []}]}') == [
        ignored("unsupported", None)
    ]
    account_update = webhook(field="account_update")
    account_update["entry"][0]["changes"][0]["value"] = {"event": "VERIFIED_ACCOUNT"}
    assert parse(body(account_update)) == [ignored("unsupported", None)]


def test_a_message_twice_in_one_body_is_returned_once() -> None:
    payload = webhook([TEXT, TEXT | {"text": {"body": "a retry"}}])
    payload["entry"].append(copy.deepcopy(payload["entry"][0]))
    assert parse(body(payload)) == [message(text=TEXT["text"]["body"])]


def test_a_bad_sender_or_timestamp_loses_only_that_message() -> None:
    bad_sender = TEXT | {"id": "wamid.bad", "from": "not-a-number"}
    bad_ts = TEXT | {"id": "wamid.ts", "timestamp": "yesterday"}
    no_sender = {k: v for k, v in TEXT.items() if k != "from"} | {"id": "wamid.none"}
    assert parse(body(webhook([bad_sender, bad_ts, no_sender, TEXT]))) == [
        ignored("bad_sender", "wamid.bad"),
        ignored("bad_timestamp", "wamid.ts"),
        ignored("bad_sender", "wamid.none"),
        message(text=TEXT["text"]["body"]),
    ]


def test_an_empty_entry_list_is_nothing() -> None:
    assert parse(b'{"object": "whatsapp_business_account", "entry": []}') == []


def _without_message_id() -> bytes:
    payload = webhook([TEXT])
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    return body(payload)


def _without_metadata() -> bytes:
    payload = webhook([TEXT])
    del payload["entry"][0]["changes"][0]["value"]["metadata"]
    return body(payload)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}',
        body(webhook([TEXT | {"text": "plain"}])),
        body(webhook([TEXT | {"timestamp": 1.5}])),
        _without_message_id(),
        _without_metadata(),
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b', "field": "x"}]}]}',  # too deep to read
    ],
)
def test_what_is_not_a_whatsapp_webhook_is_a_bad_payload(raw: bytes) -> None:
    with pytest.raises(BadPayload, match="not a WhatsApp Cloud API webhook"):
        parse(raw)


FIXTURES = [
    webhook([TEXT, IMAGE | {"id": "wamid.2"}, BUTTON_REPLY | {"id": "wamid.3"}]),
    webhook([LIST_REPLY, TEMPLATE_BUTTON | {"id": "wamid.4"}], [{"id": "wamid.s"}]),
    webhook(statuses=[{"id": "wamid.s", "status": "read", "timestamp": "1"}]),
]
JSON = JSON_VALUES


def _check(raw: bytes) -> None:
    items_or_bad_payload(lambda: parse(raw))


@given(st.binary())
def test_random_bytes_are_items_or_a_bad_payload(raw: bytes) -> None:
    _check(raw)


@given(JSON)
def test_random_json_is_items_or_a_bad_payload(value: Any) -> None:
    _check(json.dumps(value).encode())


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in children:
        found += _paths(child, (*path, key))
    return found


@given(st.sampled_from(FIXTURES), st.data())
def test_mutated_fixtures_are_items_or_a_bad_payload(fixture: dict[str, Any], data: Any) -> None:
    payload = copy.deepcopy(fixture)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(payload)[1:]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(JSON)
    _check(body(payload))
