"""Twilio Messaging and Voice webhooks read into inbound items.

Fixtures follow the request parameters Twilio documents for the incoming message webhook
(https://www.twilio.com/docs/messaging/guides/webhook-request: SMS, MMS, WhatsApp), the
message status callback, and the Voice webhook and ``StatusCallback``
(https://www.twilio.com/docs/voice/twiml#request-parameters).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels import (
    BadPayload,
    CustomerMessage,
    Ignored,
    SignatureError,
    check_twilio,
    twilio_signature,
)
from omniroute.adapters.channels.twilio import form, parse
from tests.support.payloads import items_or_bad_payload

NOW = 1_764_474_000_000
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
SM = "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
CA = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
SMS = [
    ("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", SM), ("NumMedia", "0"),
    ("ToCity", "SAN FRANCISCO"), ("FromZip", "94105"), ("SmsSid", SM), ("FromState", "CA"),
    ("SmsStatus", "received"), ("FromCity", "SAN FRANCISCO"), ("Body", "Ahoy! 👋 & bye"),
    ("FromCountry", "US"), ("To", "+14155559999"), ("ToZip", "94105"), ("NumSegments", "1"),
    ("MessageSid", SM), ("AccountSid", ACCOUNT), ("From", "+14155551234"),
    ("ApiVersion", "2010-04-01"),
]  # fmt: skip
MMS = [
    *SMS[:3], ("NumMedia", "2"), ("MediaContentType0", "image/jpeg"),
    ("MediaUrl0", f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{SM}/Media/ME1"),
    ("MediaContentType1", "image/png"),
    ("MediaUrl1", f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{SM}/Media/ME2"),
    *SMS[4:],
]  # fmt: skip
WHATSAPP = [
    ("SmsMessageSid", SM), ("NumMedia", "0"), ("ProfileName", "Sheena"),
    ("MessageType", "text"), ("SmsSid", SM), ("WaId", "14155551234"),
    ("SmsStatus", "received"), ("Body", "Hello"), ("To", "whatsapp:+14155238886"),
    ("NumSegments", "1"), ("MessageSid", SM), ("AccountSid", ACCOUNT),
    ("From", "whatsapp:+14155551234"), ("ApiVersion", "2010-04-01"),
]  # fmt: skip
CALL = [
    ("Called", "+14155559999"), ("ToState", "CA"), ("CallerCountry", "US"),
    ("Direction", "inbound"), ("CallerState", "CA"), ("ToZip", ""), ("CallSid", CA),
    ("To", "+14155559999"), ("ToCountry", "US"), ("CallToken", "%7B%22parentCallInfo%22%7D"),
    ("CalledZip", ""), ("ApiVersion", "2010-04-01"), ("CalledCity", ""),
    ("CallStatus", "ringing"), ("From", "+14155551234"), ("AccountSid", ACCOUNT),
    ("CalledCountry", "US"), ("CallerCity", ""), ("Caller", "+14155551234"),
    ("FromCountry", "US"), ("ToCity", ""), ("FromCity", ""), ("CalledState", "CA"),
    ("FromZip", ""), ("FromState", "CA"),
]  # fmt: skip


def body(params: list[tuple[str, str]]) -> bytes:
    return urlencode(params).encode()


def with_(params: list[tuple[str, str]], **changes: str | None) -> list[tuple[str, str]]:
    """``params`` with each named parameter set to a value, or removed (``None``)."""
    kept = [(k, v) for k, v in params if k not in changes]
    return kept + [(k, v) for k, v in changes.items() if v is not None]


def message(**fields: Any) -> CustomerMessage:
    base: dict[str, Any] = {
        "provider": "twilio", "channel": "sms", "message_id": SM, "sender": "+14155551234",
        "recipient": "+14155559999", "ts": NOW, "text": "Ahoy! 👋 & bye",
    }  # fmt: skip
    return CustomerMessage(**(base | fields))


def ignored(reason: str, ref: str | None) -> Ignored:
    return Ignored(provider="twilio", reason=reason, ref=ref)


def test_an_sms_is_a_customer_message_timed_by_the_gateway() -> None:
    assert parse(body(SMS), NOW) == [message()]


def test_an_mms_is_media_with_its_body() -> None:
    assert parse(body(MMS), NOW) == [message(kind="media")]
    assert parse(body(with_(SMS, NumMedia="00")), NOW) == [message()]
    huge = with_(SMS, NumMedia="9" * 5000)  # past int()'s digit limit: never converted
    assert parse(body(huge), NOW) == [message(kind="media")]


def test_a_whatsapp_message_keeps_the_profile_name_and_wa_id() -> None:
    assert parse(body(WHATSAPP), NOW) == [
        message(channel="whatsapp", recipient="+14155238886", text="Hello", name="Sheena",
                sender_ids={"wa_id": "14155551234"})
    ]  # fmt: skip


def test_national_numbers_are_read_in_the_region() -> None:
    params = with_(SMS, From="07700 900123", To="020 7946 0000")
    assert parse(body(params), NOW, "GB") == [
        message(sender="+447700900123", recipient="+442079460000")
    ]


def test_the_legacy_sms_sid_alone_names_the_message() -> None:
    assert parse(body(with_(SMS, MessageSid=None)), NOW) == [message()]


def test_a_short_code_recipient_is_kept_as_sent() -> None:
    assert parse(body(with_(SMS, To="894546")), NOW) == [message(recipient="894546")]


@pytest.mark.parametrize("status", ["queued", "sent", "delivered", "read", "failed", "undelivered"])
def test_message_status_callbacks_are_ignored(status: str) -> None:
    callback = [
        ("SmsSid", SM), ("SmsStatus", status), ("MessageStatus", status),
        ("To", "+14155551234"), ("MessageSid", SM), ("AccountSid", ACCOUNT),
        ("From", "+14155559999"), ("ApiVersion", "2010-04-01"),
    ]  # fmt: skip
    assert parse(body(callback), NOW) == [ignored("status", SM)]


def test_an_inbound_call_is_a_customer_message() -> None:
    expected = message(channel="voice", message_id=CA, kind="call", text="")
    assert parse(body(CALL), NOW) == [expected]
    assert parse(body(with_(CALL, CallStatus="in-progress")), NOW) == [expected]


@pytest.mark.parametrize("status", ["completed", "busy", "failed", "no-answer", "canceled"])
def test_a_final_call_status_says_the_call_ended(status: str) -> None:
    params = with_(CALL, CallStatus=status, CallDuration="42", Timestamp="Sun, 30 Nov 2026")
    assert parse(body(params), NOW) == [ignored("call_ended", CA)]


@pytest.mark.parametrize(
    "changes",
    [
        {"Direction": "outbound-api"},
        {"Direction": "outbound-dial"},
        {"ParentCallSid": "CA0000", "CallStatus": "completed"},
    ],
)
def test_outbound_legs_are_ignored(changes: dict[str, str]) -> None:
    assert parse(body(with_(CALL, **changes)), NOW) == [ignored("outbound", CA)]


def test_other_call_statuses_and_directions_are_ignored() -> None:
    assert parse(body(with_(CALL, CallStatus="queued")), NOW) == [ignored("status", CA)]
    assert parse(body(with_(CALL, Direction="trunking")), NOW) == [ignored("unsupported", CA)]


@pytest.mark.parametrize(
    "caller", ["anonymous", "Anonymous", "+266696687", "Restricted", "+7378742833",
               "+2562533", "+8656696", "+86282452253", "", "not a number", "tel:"],
)  # fmt: skip
def test_withheld_or_unreadable_callers_are_bad_senders(caller: str) -> None:
    assert parse(body(with_(CALL, From=caller)), NOW) == [ignored("bad_sender", CA)]
    assert parse(body(with_(SMS, From=caller)), NOW) == [ignored("bad_sender", SM)]


@pytest.mark.parametrize("caller", ["client:alice", "sip:alice@example.com", "messenger:123"])
def test_other_address_kinds_are_unsupported(caller: str) -> None:
    assert parse(body(with_(CALL, From=caller)), NOW) == [ignored("unsupported", CA)]
    assert parse(body(with_(SMS, From=caller)), NOW) == [ignored("unsupported", SM)]


def test_a_signed_request_is_verified_over_its_form() -> None:
    url = "https://gw.example.com/twilio/sms?tenant=acme"
    raw = body([*SMS, ("Body", "again")])  # a repeated name is signed once per value
    signature = twilio_signature("auth-token", url, form(raw))
    check_twilio("auth-token", url, form(raw), signature)
    with pytest.raises(SignatureError):
        check_twilio("auth-token", url, form(raw.replace(b"again", b"agaim")), signature)


def test_form_keeps_order_repeats_and_blanks() -> None:
    raw = b"B=2&A=1&A=1&A=x+y%26z&Empty=&%C3%A9=%F0%9F%91%8B"
    assert form(raw) == [("B", "2"), ("A", "1"), ("A", "1"), ("A", "x y&z"), ("Empty", ""),
                         ("é", "👋")]  # fmt: skip
    assert form(b"") == []


def test_one_post_is_one_message_and_a_repeated_parameter_reads_its_first_value() -> None:
    raw = body([*SMS, ("MessageSid", SM), ("Body", "second")])
    assert parse(raw, NOW) == [message()]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "neither MessageSid nor CallSid"),
        (body(with_(SMS, MessageSid=None, SmsSid=None)), "neither MessageSid nor CallSid"),
        (b'{"MessageSid": "SM1"}', "not a Twilio form"),
        (b"MessageSid=SM1&&From=x", "not a Twilio form"),
        (b"MessageSid", "not a Twilio form"),
        (b"MessageSid=SM\xff", "not a Twilio form"),
        (b"MessageSid=SM%ff", "not a Twilio form"),
        (body(with_(SMS, From=None)), "no From"),
        (body(with_(SMS, To=None)), "no To"),
        (body(with_(SMS, NumMedia="two")), "NumMedia"),
        (body(with_(SMS, NumMedia="²")), "NumMedia"),
        (body(with_(SMS, NumMedia="")), "NumMedia"),
        (body(with_(CALL, CallStatus=None)), "no CallStatus"),
        (body(with_(CALL, Direction=None)), "no Direction"),
    ],
)
def test_what_is_not_a_twilio_webhook_is_a_bad_payload(raw: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        parse(raw, NOW)


def _check(raw: bytes, region: str | None = None) -> None:
    items = items_or_bad_payload(lambda: parse(raw, NOW, region))
    assert items is None or len(items) == 1


@given(st.binary())
def test_random_bytes_are_items_or_a_bad_payload(raw: bytes) -> None:
    _check(raw)


FIXTURES = [SMS, MMS, WHATSAPP, CALL]
NAMES = sorted({name for fixture in FIXTURES for name, _ in fixture} | {"ParentCallSid"})


@given(
    st.sampled_from(FIXTURES),
    st.data(),
    st.sampled_from([None, "GB", "US", "XX"]),
)
def test_mutated_fixtures_are_items_or_a_bad_payload(
    fixture: list[tuple[str, str]], data: st.DataObject, region: str | None
) -> None:
    params = list(fixture)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["drop", "set", "add"]))
        index = data.draw(st.integers(0, len(params) - 1)) if params else 0
        if action == "drop" and params:
            del params[index]
        elif action == "set" and params:
            params[index] = (params[index][0], data.draw(st.text()))
        else:
            params.append((data.draw(st.sampled_from(NAMES) | st.text()), data.draw(st.text())))
    _check(body(params), region)


@given(st.sampled_from([body(f) for f in FIXTURES]), st.data())
def test_corrupted_bytes_are_items_or_a_bad_payload(raw: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(raw) - 1))
    _check(raw[:position] + data.draw(st.binary(max_size=4)) + raw[position + 1 :])
