"""Signed provider webhooks, built as the providers document them (tests, bench, examples).

Each builder returns ``(body, headers)`` for one source's secret; ``POST`` them to
``/webhooks/<provider>/<name>``. Twilio signs the URL it calls, so its builder takes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

from omniroute.adapters.channels.signatures import meta_signature, twilio_signature
from omniroute.adapters.channels.webchat import user_hash

__all__ = [
    "email",
    "facebook_comment",
    "messenger_text",
    "telegram_text",
    "twilio_call",
    "twilio_sms",
    "webchat",
    "whatsapp_text",
    "x_dm",
]

Request = tuple[bytes, dict[str, str]]


def _meta(secret: str, payload: object) -> Request:
    body = json.dumps(payload).encode()
    return body, {
        "x-hub-signature-256": meta_signature(secret, body),
        "content-type": "application/json",
    }


def whatsapp_text(
    secret: str,
    message_id: str,
    sender: str,
    text: str,
    ts: int = 1_764_474_000,
    phone_number_id: str = "106540352242922",
    name: str = "Kim",
) -> Request:
    """A WhatsApp Cloud API ``messages`` webhook with one text message (``sender``: the
    ``wa_id``, digits without ``+``)."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": name}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": message_id,
                "timestamp": str(ts),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return _meta(secret, payload)


def messenger_text(
    secret: str,
    mid: str,
    psid: str,
    text: str,
    page: str = "682498302938465",
    ts: int = 1_764_474_000_000,
) -> Request:
    event = {
        "sender": {"id": psid},
        "recipient": {"id": page},
        "timestamp": ts,
        "message": {"mid": mid, "text": text},
    }
    return _meta(
        secret, {"object": "page", "entry": [{"id": page, "time": ts, "messaging": [event]}]}
    )


def facebook_comment(
    secret: str,
    comment_id: str,
    user: str,
    text: str,
    page: str = "682498302938465",
    ts: int = 1_764_474_000,
) -> Request:
    value = {
        "from": {"id": user, "name": "Kim Lee"},
        "item": "comment",
        "verb": "add",
        "comment_id": comment_id,
        "post_id": f"{page}_1",
        "parent_id": f"{page}_1",
        "message": text,
        "created_time": ts,
        "post": {"id": f"{page}_1"},
    }
    return _meta(
        secret,
        {
            "object": "page",
            "entry": [{"id": page, "time": ts, "changes": [{"field": "feed", "value": value}]}],
        },
    )


def telegram_text(
    secret: str, update_id: int, user_id: int, text: str, ts: int = 1_764_474_000
) -> Request:
    user = {"id": user_id, "is_bot": False, "first_name": "Kim", "language_code": "en"}
    chat = {"id": user_id, "first_name": "Kim", "type": "private"}
    payload = {
        "update_id": update_id,
        "message": {"message_id": update_id, "from": user, "chat": chat, "date": ts, "text": text},
    }
    return json.dumps(payload).encode(), {
        "x-telegram-bot-api-secret-token": secret,
        "content-type": "application/json",
    }


_ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"


def _twilio(token: str, url: str, params: list[tuple[str, str]]) -> Request:
    return urlencode(params).encode(), {
        "x-twilio-signature": twilio_signature(token, url, params),
        "content-type": "application/x-www-form-urlencoded",
    }


def twilio_sms(
    token: str, url: str, sid: str, sender: str, text: str, to: str = "+15557122661"
) -> Request:
    """Twilio Messaging's inbound SMS webhook (``sender``, ``to`` in E.164)."""
    params = [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", text),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", _ACCOUNT),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]
    return _twilio(token, url, params)


def twilio_call(
    token: str, url: str, sid: str, sender: str, status: str = "ringing", to: str = "+15557122661"
) -> Request:
    """Twilio Voice's call webhook (``ringing``) or status callback (``completed``...)."""
    params = [
        ("AccountSid", _ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid),
        ("CallStatus", status),
        ("Called", to),
        ("Caller", sender),
        ("Direction", "inbound"),
        ("From", sender),
        ("To", to),
    ]
    return _twilio(token, url, params)


def email(
    relay_token: str | None,
    message_id: str,
    sender: str,
    text: str,
    to: str = "support@example.com",
    references: str | None = None,
    subject: str = "Help",
) -> Request:
    """A raw RFC 5322 message as an inbound-mail relay POSTs it."""
    lines = [
        f"From: Kim Lee <{sender}>",
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Sun, 30 Nov 2025 04:00:00 +0000",
        f"Message-ID: <{message_id}>",
    ]
    if references is not None:
        lines += [f"In-Reply-To: <{references}>", f"References: <{references}>"]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", text, ""]
    headers = {"content-type": "message/rfc822"}
    if relay_token is not None:
        headers["authorization"] = f"Bearer {relay_token}"
    return "\r\n".join(lines).encode(), headers


def webchat(
    identity_secret: str | None,
    message_id: str,
    visitor: str,
    text: str,
    site: str = "shop",
    email: str | None = None,
) -> Request:
    payload: dict[str, object] = {
        "type": "message",
        "visitor_id": visitor,
        "message_id": message_id,
        "site": site,
        "text": text,
    }
    if email is not None:
        payload["email"] = email
    if identity_secret is not None:
        payload["user_hash"] = user_hash(identity_secret.encode(), visitor)
        if email is not None:
            payload["email_hash"] = user_hash(identity_secret.encode(), visitor, email)
    return json.dumps(payload).encode(), {"content-type": "application/json"}


def x_dm(
    consumer_secret: str,
    dm_id: str,
    sender: str,
    text: str,
    us: str = "3001",
    ts: int = 1_764_474_000_000,
) -> Request:
    """An X Account Activity ``direct_message_events`` webhook."""
    payload = {
        "for_user_id": us,
        "direct_message_events": [
            {
                "type": "message_create",
                "id": dm_id,
                "created_timestamp": str(ts),
                "message_create": {
                    "target": {"recipient_id": us},
                    "sender_id": sender,
                    "message_data": {"text": text},
                },
            }
        ],
        "users": {sender: {"id": sender, "name": "Kim", "screen_name": "kim"}},
    }
    body = json.dumps(payload).encode()
    digest = hmac.new(consumer_secret.encode(), body, hashlib.sha256).digest()
    return body, {
        "x-twitter-webhooks-signature": "sha256=" + base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }
