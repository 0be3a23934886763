"""Telegram Bot API updates, from the samples in Telegram's webhook guide.

The guide's test updates (https://core.telegram.org/bots/webhooks, "Testing your bot with
updates": update 10000, message 1365 from user 1111111) with the fields the current API
adds (``chat.type``, ``from.is_bot``); media and contact shapes per
https://core.telegram.org/bots/api#message.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels.inbound import BadPayload, CustomerMessage, Ignored
from omniroute.adapters.channels.telegram import parse
from tests.support.payloads import JSON_VALUES, items_or_bad_payload

BOT = "omniroute_support_bot"
USER = {
    "id": 1111111, "is_bot": False, "first_name": "Test", "last_name": "Test Lastname",
    "username": "Test", "language_code": "en",
}  # fmt: skip
CHAT = {
    "id": 1111111, "first_name": "Test", "last_name": "Test Lastname", "username": "Test",
    "type": "private",
}  # fmt: skip


def message(**fields: Any) -> dict[str, Any]:
    return {"message_id": 1365, "from": USER, "chat": CHAT, "date": 1441645532, **fields}


TEXT: dict[str, Any] = {"update_id": 10000, "message": message(text="/start")}
PHOTO = {
    "update_id": 10001,
    "message": message(
        message_id=1366,
        photo=[
            {"file_id": "AgADBAAD1", "file_unique_id": "AQAD1", "width": 90, "height": 67},
            {"file_id": "AgADBAAD2", "file_unique_id": "AQAD2", "width": 320, "height": 240},
        ],
        caption="my broken router",
    ),
}
DOCUMENT = {
    "update_id": 10002,
    "message": message(
        message_id=1367,
        document={
            "file_id": "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", "file_unique_id": "AgADbX",
            "file_name": "Testfile.pdf", "mime_type": "application/pdf", "file_size": 536392,
        },
    ),
}  # fmt: skip
VOICE = {
    "update_id": 10003,
    "message": message(
        message_id=1368,
        voice={"file_id": "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", "file_unique_id": "AgADbY",
               "duration": 5, "mime_type": "audio/ogg", "file_size": 23000},
    ),
}  # fmt: skip
OWN_CONTACT: dict[str, Any] = {
    "update_id": 10004,
    "message": message(
        message_id=1369,
        contact={"phone_number": "447700900123", "first_name": "Test", "user_id": 1111111},
    ),
}
OTHER_CONTACT = {
    "update_id": 10005,
    "message": message(
        message_id=1370,
        contact={"phone_number": "+44 7700 900456", "first_name": "Friend", "user_id": 222},
    ),
}
CALLBACK = {
    "update_id": 10006,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9", "from": USER, "chat_instance": "-5190000000000000000",
        "message": {"message_id": 1371, "from": {"id": 42, "is_bot": True,
                    "first_name": "Support"}, "chat": CHAT, "date": 1441645600,
                    "text": "Did that help?"},
        "data": "Data from button callback",
    },
}  # fmt: skip
INLINE_CALLBACK = {
    "update_id": 10007,
    "callback_query": {
        "id": "4382bfdwdsb323b2da", "from": USER, "chat_instance": "-5190000000000000000",
        "inline_message_id": "1234csdbsk4839", "data": "Data from button callback",
    },
}  # fmt: skip
EDITED = {
    "update_id": 10008,
    "edited_message": message(text="Edited text", edit_date=1441646600),
}
GROUP = {
    "update_id": 10009,
    "message": message(
        chat={"id": -1001234567890, "title": "Test group", "type": "supergroup"},
        text="hello all",
    ),
}
CHANNEL_POST = {
    "update_id": 10010,
    "channel_post": {
        "message_id": 7, "sender_chat": {"id": -1009876543210, "type": "channel"},
        "chat": {"id": -1009876543210, "title": "News", "type": "channel"},
        "date": 1441645532, "text": "announcement",
    },
}  # fmt: skip
FROM_BOT = {
    "update_id": 10011,
    "message": message(text="echo") | {"from": {"id": 42, "is_bot": True, "first_name": "Bot"}},
}
INLINE_QUERY = {
    "update_id": 10012,
    "inline_query": {"id": "134567890097", "from": USER, "query": "inline query", "offset": ""},
}
MY_CHAT_MEMBER = {
    "update_id": 10013,
    "my_chat_member": {
        "chat": CHAT, "from": USER, "date": 1441645532,
        "old_chat_member": {"status": "member", "user": {"id": 42, "is_bot": True,
                            "first_name": "Support"}},
        "new_chat_member": {"status": "kicked", "user": {"id": 42, "is_bot": True,
                            "first_name": "Support"}, "until_date": 0},
    },
}  # fmt: skip
SERVICE = {"update_id": 10014, "message": message(message_id=1372, pinned_message=message())}
FIXTURES: list[dict[str, Any]] = [
    TEXT, PHOTO, DOCUMENT, VOICE, OWN_CONTACT, OTHER_CONTACT, CALLBACK, INLINE_CALLBACK,
    EDITED, GROUP, CHANNEL_POST, FROM_BOT, INLINE_QUERY, MY_CHAT_MEMBER, SERVICE,
]  # fmt: skip


def body(update: dict[str, Any]) -> bytes:
    return json.dumps(update).encode()


def customer(message_id: str, **fields: Any) -> CustomerMessage:
    defaults: dict[str, Any] = {
        "sender": "1111111", "recipient": BOT, "ts": 1441645532000, "name": "Test Test Lastname",
        "sender_ids": {"user_id": "1111111", "username": "Test"}, "thread": "1111111",
    }  # fmt: skip
    return CustomerMessage(
        provider="telegram", channel="telegram", message_id=message_id, **(defaults | fields)
    )


def ignored(reason: str, ref: str) -> Ignored:
    return Ignored(provider="telegram", reason=reason, ref=ref)


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        (TEXT, customer("1111111:1365", text="/start")),
        (PHOTO, customer("1111111:1366", kind="photo", text="my broken router")),
        (DOCUMENT, customer("1111111:1367", kind="document")),
        (VOICE, customer("1111111:1368", kind="voice")),
        (
            OWN_CONTACT,
            customer(
                "1111111:1369",
                kind="contact",
                sender_ids={"user_id": "1111111", "username": "Test", "phone": "+447700900123"},
            ),
        ),
        (OTHER_CONTACT, customer("1111111:1370", kind="contact")),
        (
            CALLBACK,
            customer(
                "callback:4382bfdwdsb323b2d9",
                kind="callback",
                text="Data from button callback",
                ts=1441645600000,
            ),
        ),
        (
            INLINE_CALLBACK,
            customer(
                "callback:4382bfdwdsb323b2da",
                kind="callback",
                text="Data from button callback",
                ts=0,
                thread=None,
            ),
        ),
        (EDITED, ignored("edit", "1111111:1365")),
        (GROUP, ignored("group", "-1001234567890:1365")),
        (CHANNEL_POST, ignored("group", "-1009876543210:7")),
        (FROM_BOT, ignored("echo", "1111111:1365")),
        (INLINE_QUERY, ignored("unsupported", "10012")),
        (MY_CHAT_MEMBER, ignored("unsupported", "10013")),
        (SERVICE, ignored("unsupported", "1111111:1372")),
    ],
    ids=lambda v: v.get("update_id") if isinstance(v, dict) else None,
)
def test_documented_updates(update: dict[str, Any], expected: object) -> None:
    assert parse(body(update), BOT) == [expected]


def test_retried_update_keeps_its_message_id() -> None:
    """Telegram re-sends an unacknowledged update as is: same id, so it dedups."""
    first, again = parse(body(TEXT), BOT), parse(body(TEXT), BOT)
    assert first == again
    assert isinstance(first[0], CustomerMessage)
    assert first[0].message_id == "1111111:1365"


def test_same_message_id_in_two_chats_is_two_messages() -> None:
    other = copy.deepcopy(TEXT)
    other["message"]["chat"] = CHAT | {"id": 3333333}
    [a], [b] = parse(body(TEXT), BOT), parse(body(other), BOT)
    assert isinstance(a, CustomerMessage)
    assert isinstance(b, CustomerMessage)
    assert (a.message_id, b.message_id) == ("1111111:1365", "3333333:1365")


def test_contact_with_impossible_number_is_kept_without_phone() -> None:
    update = copy.deepcopy(OWN_CONTACT)
    update["message"]["contact"]["phone_number"] = "12"
    [item] = parse(body(update), BOT)
    assert isinstance(item, CustomerMessage)
    assert item.sender_ids == {"user_id": "1111111", "username": "Test"}


def test_minimal_user_has_only_the_given_ids() -> None:
    update = copy.deepcopy(TEXT)
    update["message"]["from"] = {"id": 5, "is_bot": False, "first_name": "Ann"}
    [item] = parse(body(update), BOT)
    assert isinstance(item, CustomerMessage)
    assert (item.sender, item.name, item.sender_ids) == ("5", "Ann", {"user_id": "5"})


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not JSON"),
        (b"\xff{", "not JSON"),
        (b"[]", "an update is a JSON object"),
        (b'{"message": {}}', "update.update_id"),
        (b'{"update_id": true, "message": {}}', "update.update_id"),
        (b'{"update_id": 1, "message": "hi"}', "update.message"),
        (body({"update_id": 1, "message": {"message_id": 1, "date": 1}}), "message.chat"),
        (body({"update_id": 1, "message": message(text=5)}), "text"),
        (body({"update_id": 1, "message": message(date="today")}), "message.date"),
        (body({"update_id": 1, "message": message(chat={"id": 1})}), "chat.type"),
        (body({"update_id": 1, "message": {**message(text="x"), "from": None}}), "from"),
        (body({"update_id": 1, "message": message(text="x", chat=CHAT | {"id": 2**70})}), "id"),
        (body({"update_id": 1, "callback_query": {"from": USER}}), "callback_query.id"),
    ],
)
def test_malformed_bodies_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(BadPayload, match=why):
        parse(raw, BOT)


def check(raw: bytes) -> None:
    items_or_bad_payload(lambda: parse(raw, BOT))


json_values = JSON_VALUES


@given(st.binary())
def test_fuzz_random_bytes(raw: bytes) -> None:
    check(raw)


@given(json_values)
def test_fuzz_random_json(value: object) -> None:
    check(json.dumps(value).encode())


def paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


@given(st.data())
def test_fuzz_mutated_fixtures(data: st.DataObject) -> None:
    update: Any = copy.deepcopy(data.draw(st.sampled_from(FIXTURES)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(update)))
        if not path:
            update = data.draw(json_values)
            continue
        parent: Any = update
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(json_values | st.integers(-(2**80), 2**80))
        else:
            del parent[path[-1]]
    check(json.dumps(update).encode())


def test_json_nested_too_deeply_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload, match="not JSON"):
        parse(b"[" * 100_000 + b"]" * 100_000, "bot")
