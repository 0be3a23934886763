"""Inbound email: raw RFC 5322 / MIME messages, as an inbound-mail relay POSTs them.

Fixtures are written as the bytes a mail server delivers (RFC 5322 headers, MIME parts
per RFC 2045/2046, an out-of-office per RFC 3834, a delivery-status bounce per RFC 3464).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels.inbound import BadPayload, CustomerMessage, Ignored
from omniroute.adapters.channels.mail import parse
from tests.support.payloads import items_or_bad_payload

RECEIVED = 1_796_000_000_123
HEAD = """\
Return-Path: <ann@example.com>
Delivered-To: help@omniroute.example
From: Ann Smith <Ann.Smith@Example.COM>
To: Support <Support@OmniRoute.example>
Date: Mon, 30 Nov 2026 03:00:00 +0100
"""


def mail(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


PLAIN = mail(
    HEAD
    + """\
Message-ID: <plain-1@mail.example.com>
Subject: Router broken
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

My router is broken.
Please help.
"""
)
ALTERNATIVE = mail(
    HEAD
    + """\
Message-ID: <alt-1@mail.example.com>
Subject: Invoice question
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Why was I charged twice?
--b1
Content-Type: text/html; charset=utf-8

<p>Why was I <b>charged</b> twice?</p>
--b1--
"""
)
HTML_ONLY = mail(
    HEAD
    + """\
Message-ID: <html-1@mail.example.com>
Content-Type: text/html; charset=utf-8

<p>Only HTML</p>
"""
)
ATTACHMENT = mail(
    HEAD
    + """\
Message-ID: <att-1@mail.example.com>
Subject: Receipt
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b2"

--b2
Content-Type: text/plain; charset=utf-8

Receipt attached.
--b2
Content-Type: application/pdf; name="receipt.pdf"
Content-Disposition: attachment; filename="receipt.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--b2--
"""
)
REPLY = mail(
    HEAD
    + """\
Message-ID: <reply-2@mail.example.com>
In-Reply-To: <ours-1@omniroute.example>
References: <plain-1@mail.example.com>
 <ours-1@omniroute.example>
Subject: Re: Router broken

Still broken.

> On Mon, Support wrote:
"""
)
REPLY_TO_ONLY = mail(
    HEAD
    + """\
Message-ID: <reply-3@mail.example.com>
In-Reply-To: <ours-1@omniroute.example>

Thanks
"""
)
OUT_OF_OFFICE = mail(
    """\
Return-Path: <>
From: Ann Smith <ann.smith@example.com>
To: support@omniroute.example
Date: Mon, 30 Nov 2026 03:00:05 +0100
Message-ID: <ooo-1@mail.example.com>
Subject: Automatic reply: Router broken
Auto-Submitted: auto-replied
In-Reply-To: <ours-1@omniroute.example>

I am out of the office until Monday.
"""
)
BOUNCE = mail(
    """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: support@omniroute.example
Date: Mon, 30 Nov 2026 03:00:07 +0100
Message-ID: <dsn-1@mx.example.com>
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b3"

--b3
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.
--b3
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
Final-Recipient: rfc822; gone@example.com
Action: failed
Status: 5.1.1
--b3--
"""
)
NO_MESSAGE_ID = mail(
    HEAD
    + """\
Subject: no id

Hello without an id.
"""
)
ENCODED = mail(
    """\
From: =?UTF-8?B?w4lsb8Ovc2UgTcO8bGxlcg==?= <eloise@example.de>
To: support@omniroute.example
Date: Mon, 30 Nov 2026 03:00:00 +0000
Message-ID: <enc-1@example.de>
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln
"""
)
SEVERAL_FROM = mail(
    """\
From: Ann <ann@example.com>, Bob <bob@example.com>
To: support@omniroute.example
Date: Mon, 30 Nov 2026 03:00:00 +0000
Message-ID: <multi-1@example.com>

From both of us.
"""
)
SEVERAL_FROM_WITH_SENDER = SEVERAL_FROM.replace(b"To:", b"Sender: Bob <Bob@example.com>\r\nTo:")
FIXTURES = [
    PLAIN, ALTERNATIVE, HTML_ONLY, ATTACHMENT, REPLY, REPLY_TO_ONLY, OUT_OF_OFFICE, BOUNCE,
    NO_MESSAGE_ID, ENCODED, SEVERAL_FROM, SEVERAL_FROM_WITH_SENDER,
]  # fmt: skip
TS = 1_796_004_000_000  # Mon, 30 Nov 2026 03:00:00 +0100


def customer(message_id: str, **fields: object) -> CustomerMessage:
    base: dict[str, object] = {
        "provider": "email", "channel": "email", "message_id": message_id,
        "sender": "ann.smith@example.com", "recipient": "support@omniroute.example",
        "ts": TS, "name": "Ann Smith",
    }  # fmt: skip
    return CustomerMessage(**(base | fields))  # type: ignore[arg-type]


def test_plain_text() -> None:
    assert parse(PLAIN, RECEIVED) == [
        customer("plain-1@mail.example.com", text="My router is broken.\r\nPlease help.")
    ]


def test_alternative_prefers_the_plain_part() -> None:
    assert parse(ALTERNATIVE, RECEIVED) == [
        customer("alt-1@mail.example.com", text="Why was I charged twice?")
    ]


def test_html_only_has_no_text() -> None:
    assert parse(HTML_ONLY, RECEIVED) == [customer("html-1@mail.example.com", text="")]


def test_attachment() -> None:
    assert parse(ATTACHMENT, RECEIVED) == [
        customer("att-1@mail.example.com", kind="attachment", text="Receipt attached.")
    ]


def test_reply_threads_on_the_first_reference() -> None:
    assert parse(REPLY, RECEIVED) == [
        customer(
            "reply-2@mail.example.com",
            text="Still broken.\r\n\r\n> On Mon, Support wrote:",
            thread="plain-1@mail.example.com",
        )
    ]


def test_reply_without_references_threads_on_in_reply_to() -> None:
    [item] = parse(REPLY_TO_ONLY, RECEIVED)
    assert isinstance(item, CustomerMessage)
    assert (item.thread, item.text) == ("ours-1@omniroute.example", "Thanks")


def test_out_of_office_is_an_auto_reply() -> None:
    assert parse(OUT_OF_OFFICE, RECEIVED) == [
        Ignored(provider="email", reason="auto_reply", ref="ooo-1@mail.example.com")
    ]


def test_delivery_status_report_is_a_bounce() -> None:
    assert parse(BOUNCE, RECEIVED) == [
        Ignored(provider="email", reason="bounce", ref="dsn-1@mx.example.com")
    ]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-generated", "auto_reply"),
        ("Auto-Submitted: auto-replied; owner-email=ann@example.com", "auto_reply"),
        ("X-Autoreply: yes", "auto_reply"),
        ("X-Autorespond: vacation", "auto_reply"),
        ("Precedence: bulk", "auto_reply"),
        ("Precedence: Junk", "auto_reply"),
        ("Precedence: list", "auto_reply"),
        ("Precedence: auto_reply", "auto_reply"),
        ("Return-Path: <>", "bounce"),
        ("From: Postmaster <postmaster@example.com>", "bounce"),
        ("From: MAILER-DAEMON@mx.example.com (Mail Delivery System)", "bounce"),
    ],
)
def test_automated_mail_is_ignored(header: str, reason: str) -> None:
    head = HEAD.replace("Return-Path: <ann@example.com>\n", "")
    if header.startswith("From:"):
        head = head.replace("From: Ann Smith <Ann.Smith@Example.COM>\n", "")
    raw = mail(f"{header}\n{head}Message-ID: <auto@example.com>\n\nbody\n")
    assert parse(raw, RECEIVED) == [
        Ignored(provider="email", reason=reason, ref="auto@example.com")
    ]


def test_auto_submitted_no_is_a_person() -> None:
    [item] = parse(b"Auto-Submitted: no\r\n" + PLAIN, RECEIVED)
    assert isinstance(item, CustomerMessage)


def test_missing_message_id_is_the_body_digest() -> None:
    digest = hashlib.sha256(NO_MESSAGE_ID).hexdigest()
    assert parse(NO_MESSAGE_ID, RECEIVED) == [
        customer(f"sha256:{digest}", text="Hello without an id.")
    ]
    assert parse(NO_MESSAGE_ID, 0) == parse(NO_MESSAGE_ID, RECEIVED)  # a retry: same id


def test_encoded_words_and_charsets_are_decoded() -> None:
    assert parse(ENCODED, RECEIVED) == [
        customer(
            "enc-1@example.de",
            sender="eloise@example.de",
            name="Éloïse Müller",
            ts=TS + 3_600_000,
            text="Grüße aus Köln",
        )
    ]


def test_several_from_mailboxes_without_sender_are_ignored() -> None:
    assert parse(SEVERAL_FROM, RECEIVED) == [
        Ignored(provider="email", reason="bad_sender", ref="multi-1@example.com")
    ]


def test_several_from_mailboxes_use_the_sender() -> None:
    assert parse(SEVERAL_FROM_WITH_SENDER, RECEIVED) == [
        customer(
            "multi-1@example.com",
            sender="bob@example.com",
            name="Bob",
            ts=TS + 3_600_000,
            text="From both of us.",
        )
    ]


@pytest.mark.parametrize(
    "date",
    [None, "yesterday", "Thu, 01 Jan 1950 00:00:00 +0000", "Mon, 99 Foo 2026 99:99:99 +9999"],
)
def test_missing_or_bad_date_is_the_receive_time(date: str | None) -> None:
    raw = PLAIN.replace(b"Date: Mon, 30 Nov 2026 03:00:00 +0100\r\n", b"")
    if date is not None:
        raw = f"Date: {date}\r\n".encode() + raw
    [item] = parse(raw, RECEIVED)
    assert isinstance(item, CustomerMessage)
    assert item.ts == RECEIVED


def test_date_without_zone_is_utc() -> None:
    raw = PLAIN.replace(b"+0100", b"-0000")
    [item] = parse(raw, RECEIVED)
    assert isinstance(item, CustomerMessage)
    assert item.ts == TS + 3_600_000


def test_recipient_falls_back_to_delivered_to() -> None:
    [item] = parse(PLAIN.replace(b"To: Support <Support@OmniRoute.example>\r\n", b""), RECEIVED)
    assert isinstance(item, CustomerMessage)
    assert item.recipient == "help@omniroute.example"


def test_no_recipient_is_ignored() -> None:
    raw = PLAIN.replace(b"To: Support <Support@OmniRoute.example>\r\n", b"")
    raw = raw.replace(b"Delivered-To: help@omniroute.example\r\n", b"")
    assert parse(raw, RECEIVED) == [
        Ignored(provider="email", reason="bad_recipient", ref="plain-1@mail.example.com")
    ]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not an email"),
        (b"just some text\r\n", "not an email"),
        (b"\xff\xfe\x00garbage", "not an email"),
        (b'{"from": "ann@example.com"}', "not an email"),
        (b"Message-ID: <x@example.com>\r\n\r\nbody", "no From header"),
        (b"From: \r\nMessage-ID: <x@example.com>\r\n\r\nbody", "From has no address"),
        (b"From: Ann\r\nMessage-ID: <x@example.com>\r\n\r\nbody", "From"),
        (b"From: ann@localhost\r\nTo: s@o.example\r\n\r\nbody", "From is not an address"),
    ],
)
def test_malformed_bodies_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(BadPayload, match=why):
        parse(raw, RECEIVED)


def check(raw: bytes) -> None:
    items = items_or_bad_payload(lambda: parse(raw, RECEIVED))
    assert items is None or len(items) == 1


@given(st.binary())
def test_fuzz_random_bytes(raw: bytes) -> None:
    check(raw)


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=60)), max_size=8), st.text())
def test_fuzz_random_headers(headers: list[tuple[str, str]], text: str) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    check((lines + "\r\n" + text).encode("utf-8", "surrogateescape"))


@given(st.data())
def test_fuzz_mutated_fixtures(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(FIXTURES)))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = data.draw(st.binary(max_size=8) | st.sampled_from([b"\r\n", b":", b"<", b">"]))
        if action == "insert":
            raw[at:at] = chunk
        elif action == "delete":
            del raw[at : at + len(chunk) + 1]
        else:
            raw[at : at + len(chunk)] = chunk
    check(bytes(raw))
