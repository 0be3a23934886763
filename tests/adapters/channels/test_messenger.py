"""Messenger and Instagram webhooks, from the samples in Meta's webhook event references."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniroute.adapters.channels.inbound import BadPayload, CustomerMessage, Ignored
from omniroute.adapters.channels.messenger import parse
from tests.support.payloads import JSON_VALUES, items_or_bad_payload, mutate

PAGE, PSID, IGID, IGSID = "682498302938465", "1254459154682919", "17841405822304914", "5678"


def body(events: list[dict[str, Any]], obj: str = "page", key: str = "messaging") -> bytes:
    entry_id = PAGE if obj == "page" else IGID
    return json.dumps(
        {"object": obj, "entry": [{"id": entry_id, "time": 1458692752478, key: events}]}
    ).encode()


def from_customer(ts: int = 1458692752478, **event: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": ts, **event}


def message(mid: str, kind: str = "text", text: str = "") -> CustomerMessage:
    return CustomerMessage(
        provider="messenger", channel="messenger", message_id=mid, sender=PSID,
        recipient=PAGE, ts=1458692752478, kind=kind, text=text, sender_ids={"psid": PSID},
    )  # fmt: skip


# messages: text (with quick reply), attachment
TEXT = from_customer(
    message={"mid": "mid.1457764197618:41d102a3e1ae206a38", "text": "hello, world!"}
)
QUICK_REPLY = from_customer(
    message={
        "mid": "m_qr1",
        "text": "Red",
        "quick_reply": {"payload": "<DEVELOPER_DEFINED_PAYLOAD>"},
    }
)
IMAGE = from_customer(
    message={
        "mid": "m_img1",
        "attachments": [
            {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/a.jpg"}}
        ],
    }
)
# message_echoes: sender is the page, recipient the customer
ECHO = {
    "sender": {"id": PAGE},
    "recipient": {"id": PSID},
    "timestamp": 1457764197627,
    "message": {"is_echo": True, "app_id": 1517776481860111, "metadata": "x",
                "mid": "mid.1457764197618:41d102a3e1ae206a38", "text": "hello, world!"},
}  # fmt: skip
DELIVERY = from_customer(
    delivery={"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": 1458668856253}
)
READ = from_customer(read={"watermark": 1458668856253})
EDIT = from_customer(message_edit={"mid": "m_img1", "text": "edited", "num_edit": 1})
REACTION = from_customer(
    reaction={"mid": "m_img1", "action": "react", "reaction": "love", "emoji": "\u2764"}
)
POSTBACK = from_customer(
    postback={"mid": "m_pb1", "title": "Get Started", "payload": "GET_STARTED"}
)
REFERRAL = from_customer(referral={"ref": "x", "source": "SHORTLINK", "type": "OPEN_THREAD"})


def test_text_message() -> None:
    assert parse(body([TEXT])) == [
        message("mid.1457764197618:41d102a3e1ae206a38", text="hello, world!")
    ]


def test_quick_reply_and_attachment_kinds() -> None:
    assert parse(body([QUICK_REPLY, IMAGE])) == [
        message("m_qr1", kind="quick_reply", text="Red"),
        message("m_img1", kind="image"),
    ]


def test_postback_uses_its_mid_and_title() -> None:
    assert parse(body([POSTBACK])) == [message("m_pb1", kind="postback", text="Get Started")]


def test_postback_without_mid_gets_a_stable_id() -> None:
    tap = from_customer(postback={"title": "Get Started", "payload": "GET_STARTED"})
    digest = hashlib.sha256(b"GET_STARTED").hexdigest()[:16]
    expected = message(
        f"postback:{PSID}:1458692752478:{digest}", kind="postback", text="Get Started"
    )
    assert parse(body([tap])) == [expected]
    assert parse(body([tap, tap])) == [expected]  # a retried tap is one message


def test_not_customer_messages_are_ignored_with_a_reason() -> None:
    events = [ECHO, DELIVERY, READ, EDIT, REACTION, REFERRAL]
    assert parse(body(events)) == [
        Ignored(provider="messenger", reason="echo", ref="mid.1457764197618:41d102a3e1ae206a38"),
        Ignored(provider="messenger", reason="status", ref="mid.1458668856218:ed81099e15d3f4f233"),
        Ignored(provider="messenger", reason="status"),
        Ignored(provider="messenger", reason="edit", ref="m_img1"),
        Ignored(provider="messenger", reason="reaction", ref="m_img1"),
        Ignored(provider="messenger", reason="unsupported"),
    ]


def test_standby_and_feed_changes_are_ignored() -> None:
    doc = {
        "object": "page",
        "entry": [
            {"id": PAGE, "time": 1570053170926, "standby": [TEXT]},
            {"id": PAGE, "time": 1570053170926, "changes": [{"field": "feed", "value": {}}]},
        ],
    }
    assert parse(json.dumps(doc).encode()) == [
        Ignored(provider="messenger", reason="standby", ref="mid.1457764197618:41d102a3e1ae206a38"),
        Ignored(provider="messenger", reason="unsupported", ref="feed"),
    ]


def test_a_message_twice_in_one_body_is_returned_once() -> None:
    again = copy.deepcopy(TEXT)
    again["message"]["text"] = "second copy"
    doc = json.loads(body([TEXT, DELIVERY]))
    doc["entry"].append({"id": PAGE, "time": 1, "messaging": [again]})
    assert parse(json.dumps(doc).encode()) == [
        message("mid.1457764197618:41d102a3e1ae206a38", text="hello, world!"),
        Ignored(provider="messenger", reason="status", ref="mid.1458668856218:ed81099e15d3f4f233"),
    ]


def ig(**event: Any) -> dict[str, Any]:
    return {"sender": {"id": IGSID}, "recipient": {"id": IGID}, "timestamp": 1569262485349, **event}


def test_instagram_messages_keep_their_provider_on_the_messenger_channel() -> None:
    events = [
        ig(message={"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3", "text": "Hi"}),
        ig(message={"mid": "ig_m2", "attachments": [{"type": "share", "payload": {"url": "u"}}]}),
        ig(postback={"mid": "ig_pb", "title": "Icebreaker", "payload": "ICE"}),
    ]
    common = {"provider": "instagram", "channel": "messenger", "sender": IGSID,
              "recipient": IGID, "ts": 1569262485349, "sender_ids": {"igsid": IGSID}}  # fmt: skip
    assert parse(body(events, obj="instagram")) == [
        CustomerMessage(message_id="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3", text="Hi", **common),
        CustomerMessage(message_id="ig_m2", kind="share", **common),
        CustomerMessage(message_id="ig_pb", kind="postback", text="Icebreaker", **common),
    ]


def test_instagram_deletes_echoes_unsupported_and_seen() -> None:
    events = [
        ig(message={"mid": "ig_m1", "is_deleted": True}),
        {"sender": {"id": IGID}, "recipient": {"id": IGSID}, "timestamp": 1,
         "message": {"mid": "ig_m3", "text": "our reply", "is_echo": True}},
        ig(message={"mid": "ig_m4", "is_unsupported": True}),
        ig(read={"mid": "ig_m3"}),
        ig(reaction={"mid": "ig_m3", "action": "unreact"}),
    ]  # fmt: skip
    assert parse(body(events, obj="instagram")) == [
        Ignored(provider="instagram", reason="delete", ref="ig_m1"),
        Ignored(provider="instagram", reason="echo", ref="ig_m3"),
        Ignored(provider="instagram", reason="unsupported", ref="ig_m4"),
        Ignored(provider="instagram", reason="status", ref="ig_m3"),
        Ignored(provider="instagram", reason="reaction", ref="ig_m3"),
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "body is not an object"),
        (b'{"object": "whatsapp_business_account", "entry": []}', "object is not"),
        (b'{"object": "page"}', "entry is not a list"),
        (b'{"object": "page", "entry": [1]}', "entry is not an object"),
        (b'{"object": "page", "entry": [{"messaging": {}}]}', "messaging is not a list"),
        (body([from_customer(message="hi")]), "message is not an object"),
        (body([from_customer(message={"text": "no mid"})]), "mid is not"),
        (body([from_customer(ts="1458692752478", message={"mid": "m", "text": "t"})]), "timestamp"),
        (body([{"recipient": {"id": PAGE}, "timestamp": 1, "message": {"mid": "m", "text": "t"}}]),
         "sender is not an object"),
        (body([from_customer(message={"mid": "m", "attachments": [{"payload": {}}]})]),
         "type is not"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_bad_payloads(raw: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        parse(raw)


FIXTURES = [TEXT, QUICK_REPLY, IMAGE, ECHO, DELIVERY, READ, EDIT, REACTION, POSTBACK, REFERRAL]
json_values = JSON_VALUES


def only_items_or_bad_payload(raw: bytes) -> None:
    items_or_bad_payload(lambda: parse(raw))


@given(st.binary())
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    only_items_or_bad_payload(raw)


@given(json_values)
def test_random_json_never_raises_anything_else(value: Any) -> None:
    only_items_or_bad_payload(json.dumps(value).encode())


@settings(max_examples=300)
@given(
    st.sampled_from(FIXTURES),
    st.sampled_from(["page", "instagram"]),
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6),
    json_values | st.just("<drop>"),
)
def test_mutated_fixtures_never_raise_anything_else(
    event: dict[str, Any], obj: str, path: list[int], replacement: Any
) -> None:
    doc = json.loads(body([event, event], obj=obj))
    only_items_or_bad_payload(json.dumps(mutate(doc, path, replacement)).encode())


def test_deeply_nested_json_is_a_bad_payload_or_ignored() -> None:
    only_items_or_bad_payload(b"[" * 100_000 + b"]" * 100_000)
    only_items_or_bad_payload(b'{"object": "page", "entry": ' + b"[" * 5000 + b"]" * 5000 + b"}")
