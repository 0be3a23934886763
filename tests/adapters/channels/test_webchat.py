"""Omniroute's webchat API: the widget's messages, contact creates and identity hashes."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniroute.adapters.channels.inbound import BadPayload, CustomerMessage, Ignored
from omniroute.adapters.channels.signatures import SignatureError
from omniroute.adapters.channels.webchat import parse, user_hash
from tests.support.payloads import JSON_VALUES, items_or_bad_payload, mutate

SECRET = b"tenant-identity-secret"
VISITOR, SITE, RECEIVED = "u-8412", "acme-help", 1_764_470_000_000
HASH = hmac.new(SECRET, VISITOR.encode(), hashlib.sha256).hexdigest()

MESSAGE: dict[str, Any] = {
    "type": "message", "visitor_id": VISITOR, "message_id": "9b1deb4d-3b7d-4bad-9bdd",
    "text": "My order never arrived", "ts": 1_764_469_999_000, "site": SITE,
}  # fmt: skip
CONTACT: dict[str, Any] = {
    "type": "contact", "visitor_id": VISITOR, "message_id": "1f0c7e55-contact",
    "site": SITE, "name": "Ann Lee", "email": "Ann.Lee@Example.COM",
}  # fmt: skip


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps(events[0] if len(events) == 1 else list(events)).encode()


def expected(**fields: Any) -> CustomerMessage:
    defaults: dict[str, Any] = {
        "provider": "webchat", "channel": "webchat", "message_id": MESSAGE["message_id"],
        "sender": VISITOR, "recipient": SITE, "ts": MESSAGE["ts"],
        "text": "My order never arrived", "thread": VISITOR,
    }  # fmt: skip
    return CustomerMessage(**(defaults | fields))


def test_a_message_is_a_customer_message() -> None:
    assert parse(body(MESSAGE), RECEIVED) == [expected()]


def test_a_message_without_ts_is_stamped_when_received() -> None:
    untimed = {k: v for k, v in MESSAGE.items() if k != "ts"}
    assert parse(body(untimed), RECEIVED) == [expected(ts=RECEIVED)]


def test_a_contact_create_without_text_opens_a_conversation() -> None:
    assert parse(body(CONTACT), RECEIVED) == [
        expected(message_id="1f0c7e55-contact", ts=RECEIVED, kind="contact", text="",
                 name="Ann Lee"),
    ]  # fmt: skip


def test_a_contact_create_may_carry_the_first_text() -> None:
    first = CONTACT | {"text": "Hi, is anyone there?"}
    assert parse(body(first), RECEIVED) == [
        expected(message_id="1f0c7e55-contact", ts=RECEIVED, kind="contact",
                 text="Hi, is anyone there?", name="Ann Lee"),
    ]  # fmt: skip


def test_a_verified_visitor_is_marked_and_named_by_their_vouched_email() -> None:
    signed = CONTACT | {"user_hash": HASH}
    assert parse(body(signed), RECEIVED, SECRET) == [
        expected(message_id="1f0c7e55-contact", ts=RECEIVED, kind="contact", text="",
                 name="Ann Lee", sender_ids={"verified": "1"}),
    ]  # fmt: skip
    signed["email_hash"] = user_hash(SECRET, CONTACT["visitor_id"], CONTACT["email"])
    assert parse(body(signed), RECEIVED, SECRET) == [
        expected(message_id="1f0c7e55-contact", ts=RECEIVED, kind="contact", text="",
                 name="Ann Lee", sender_ids={"verified": "1", "email": "ann.lee@example.com"}),
    ]  # fmt: skip
    upper = signed | {"user_hash": HASH.upper()}
    assert (
        parse(body(upper), RECEIVED, SECRET, require_identity=True)[0]
        == parse(body(signed), RECEIVED, SECRET)[0]
    )


def test_a_verified_visitor_with_a_bad_email_keeps_the_message_without_it() -> None:
    signed = MESSAGE | {"user_hash": HASH, "email": "not an address"}
    signed["email_hash"] = user_hash(SECRET, MESSAGE["visitor_id"], "not an address")
    assert parse(body(signed), RECEIVED, SECRET) == [expected(sender_ids={"verified": "1"})]


def test_an_email_hash_for_another_address_is_refused() -> None:
    """A signed-in visitor who types someone else's address cannot take their identity."""
    signed = CONTACT | {"user_hash": HASH, "email": "ceo@example.com"}
    signed["email_hash"] = user_hash(SECRET, CONTACT["visitor_id"], CONTACT["email"])
    with pytest.raises(SignatureError, match="email_hash"):
        parse(body(signed), RECEIVED, SECRET)


def test_an_unverified_visitor_email_is_never_an_identity() -> None:
    claimed = MESSAGE | {"email": "ceo@example.com"}
    assert parse(body(claimed), RECEIVED) == [expected()]
    assert parse(body(claimed), RECEIVED, SECRET) == [expected()]  # no hash, not required
    hashed = claimed | {"user_hash": HASH}
    assert parse(body(hashed), RECEIVED) == [expected()]  # no secret: nothing to check with


@pytest.mark.parametrize(
    ("event", "secret", "required", "reason"),
    [
        (MESSAGE | {"user_hash": user_hash(b"other", VISITOR)}, SECRET, False, "does not match"),
        (MESSAGE | {"user_hash": HASH, "visitor_id": "u-8413"}, SECRET, False, "does not match"),
        (MESSAGE | {"user_hash": ""}, SECRET, False, "does not match"),
        (MESSAGE, SECRET, True, "missing user_hash"),
        (MESSAGE | {"user_hash": HASH}, None, True, "no identity secret"),
    ],
)  # fmt: skip
def test_an_identity_that_does_not_verify_is_a_signature_error(
    event: dict[str, Any], secret: bytes | None, required: bool, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        parse(body(event), RECEIVED, secret, require_identity=required)


def test_one_forged_visitor_in_a_batch_refuses_the_batch() -> None:
    forged = MESSAGE | {"message_id": "m2", "visitor_id": "u-1", "user_hash": HASH}
    with pytest.raises(SignatureError):
        parse(body(MESSAGE | {"user_hash": HASH}, forged), RECEIVED, SECRET)


def test_a_batch_is_read_in_order_with_duplicates_once() -> None:
    second = MESSAGE | {"message_id": "m-2", "text": "Order 1182", "ts": 1_764_470_000_500}
    typing = {"type": "typing", "visitor_id": VISITOR, "message_id": "t-1", "site": SITE}
    retried = MESSAGE | {"text": "a retry of the first message"}
    assert parse(body(MESSAGE, typing, second, retried), RECEIVED) == [
        expected(),
        Ignored(provider="webchat", reason="unsupported", ref="t-1"),
        expected(message_id="m-2", text="Order 1182", ts=1_764_470_000_500),
    ]
    assert parse(b"[]", RECEIVED) == []


def test_an_unknown_type_without_a_usable_id_is_ignored_without_a_ref() -> None:
    assert parse(b'{"type": "ping", "message_id": "bad id"}', RECEIVED) == [
        Ignored(provider="webchat", reason="unsupported")
    ]


def test_user_hash_is_hex_hmac_sha256_of_the_visitor_id() -> None:
    assert user_hash(SECRET, VISITOR) == HASH


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"42", "is a JSON object"),
        (b"[1]", "is a JSON object"),
        (body({k: v for k, v in MESSAGE.items() if k != "type"}), "type is not a string"),
        (body(MESSAGE | {"message_id": ""}), "message_id is not"),
        (body(MESSAGE | {"message_id": "has space"}), "message_id is not"),
        (body(MESSAGE | {"message_id": "x" * 129}), "message_id is not"),
        (body(MESSAGE | {"message_id": "evil\r\nNats-Msg-Id: x"}), "message_id is not"),
        (body(MESSAGE | {"visitor_id": 8412}), "visitor_id is not"),
        (body({k: v for k, v in MESSAGE.items() if k != "site"}), "site is not"),
        (body({k: v for k, v in MESSAGE.items() if k != "text"}), "text is not a string"),
        (body(MESSAGE | {"ts": "1764469999000"}), "ts is not epoch milliseconds"),
        (body(MESSAGE | {"ts": -1}), "ts is not epoch milliseconds"),
        (body(MESSAGE | {"ts": True}), "ts is not epoch milliseconds"),
        (body(MESSAGE | {"email": ["a@b.c"]}), "email is not a string"),
        (body(MESSAGE | {"user_hash": 1}), "user_hash is not a string"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_bad_payloads(raw: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        parse(raw, RECEIVED, SECRET)


def only_items_or_refusals(raw: bytes) -> None:
    """Items, a :class:`BadPayload` or a :class:`SignatureError`, under every setting."""
    for secret, required in ((None, False), (SECRET, False), (SECRET, True), (None, True)):
        with contextlib.suppress(SignatureError):
            items_or_bad_payload(partial(parse, raw, RECEIVED, secret, required))


@given(st.binary())
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    only_items_or_refusals(raw)


@given(JSON_VALUES)
def test_random_json_never_raises_anything_else(value: Any) -> None:
    only_items_or_refusals(json.dumps(value).encode())


FIXTURES = [MESSAGE, CONTACT, MESSAGE | {"user_hash": HASH}, CONTACT | {"user_hash": HASH}]


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(FIXTURES), min_size=1, max_size=3),
    st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=3),
    JSON_VALUES | st.just("<drop>"),
)
def test_mutated_fixtures_never_raise_anything_else(
    events: list[dict[str, Any]], path: list[int], replacement: Any
) -> None:
    only_items_or_refusals(json.dumps(mutate(events, path, replacement)).encode())


@given(st.text(min_size=1, max_size=40))
def test_any_visitor_verifies_with_its_own_hash_only(visitor: str) -> None:
    event = {"type": "message", "visitor_id": "v", "message_id": "m", "site": "s", "text": ""}
    event["user_hash"] = user_hash(SECRET, visitor)
    if visitor == "v":
        (item,) = parse(json.dumps(event).encode(), 0, SECRET)
        assert isinstance(item, CustomerMessage) and item.sender_ids == {"verified": "1"}
    else:
        with pytest.raises(SignatureError):
            parse(json.dumps(event).encode(), 0, SECRET)


def test_deeply_nested_json_is_a_bad_payload() -> None:
    only_items_or_refusals(b"[" * 100_000 + b"]" * 100_000)
