"""Messenger and Instagram Messaging webhooks -> customer messages.

Format: Meta's Messenger Platform webhook events
(https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events)
and Instagram Messaging webhooks, the same shape with ``"object": "instagram"``
(https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks)::

    {"object": "page" | "instagram",
     "entry": [{"id": PAGE_OR_IG_ID, "time": ms, "messaging": [EVENT, ...]}]}

Each EVENT carries ``sender.id`` (the customer's page- or Instagram-scoped id, kept as
is: it is no phone number), ``recipient.id`` (our page or Instagram account, the
routing key), ``timestamp`` (epoch ms) and one of:

- ``message`` -> :class:`CustomerMessage`, ``kind`` ``text``, ``quick_reply`` or the first
  attachment's type (``image``, ``file``, ``fallback``...); unless it is ``is_echo`` (our
  own message: ``Ignored("echo")``), ``is_deleted`` (an unsend: ``"delete"``) or
  ``is_unsupported`` / empty (``"unsupported"``);
- ``postback`` (a button tap) -> ``kind="postback"`` with the button title as text; a
  postback without ``mid`` (before Graph API v11 on Instagram) gets the stable id
  ``postback:<sender>:<timestamp>:<sha256(payload)[:16]>``, so a retry is the same message;
- ``delivery`` / ``read`` -> ``"status"``; ``message_edit`` -> ``"edit"``; ``reaction`` ->
  ``"reaction"``; anything else (referral, optin, handover...) -> ``"unsupported"``.

Events under ``standby`` (another app controls the conversation) are ``"standby"`` and
page-feed ``changes`` are ``"unsupported"``. Both objects use omniroute's ``messenger``
channel (there is no Instagram channel); ``provider`` stays ``instagram`` so routing can
tell them apart, and ``sender_ids`` names the id ``psid`` or ``igsid``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .inbound import BadPayload, CustomerMessage, Ignored, Item, first_of_each, json_body

__all__ = ["parse"]

_PROVIDERS = {"page": ("messenger", "psid"), "instagram": ("instagram", "igsid")}
_STATUS = ("delivery", "read")
_IGNORED = {"message_edit": "edit", "reaction": "reaction"}


def parse(body: bytes) -> list[Item]:
    """The items of one Messenger or Instagram webhook body, in the order sent.

    A message delivered twice in the body is returned once (first wins).
    """
    doc = json_body(body)
    root = _obj(doc, "body")
    kind = root.get("object")
    if not isinstance(kind, str) or kind not in _PROVIDERS:
        raise BadPayload(f"object is not 'page' or 'instagram': {kind!r}")
    provider, id_name = _PROVIDERS[kind]
    items: list[Item] = []
    for entry in _list(root, "entry"):
        entry = _obj(entry, "entry")
        for event in _list(entry, "messaging", optional=True):
            items.append(_event(_obj(event, "messaging event"), provider, id_name))
        for event in _list(entry, "standby", optional=True):
            ref = _mid(_obj(event, "standby event").get("message"))
            items.append(Ignored(provider=provider, reason="standby", ref=ref))
        for change in _list(entry, "changes", optional=True):
            field = _obj(change, "change").get("field")
            ref = field if isinstance(field, str) else None
            items.append(Ignored(provider=provider, reason="unsupported", ref=ref))
    return first_of_each(items)


def _event(event: dict[str, Any], provider: str, id_name: str) -> Item:
    message, postback = event.get("message"), event.get("postback")
    payload = ""
    if message is not None:
        message = _obj(message, "message")
        reason = _skip_reason(message)
        if reason:
            return Ignored(provider=provider, reason=reason, ref=_mid(message))
        attachments = _list(message, "attachments", optional=True)
        if "quick_reply" in message:
            kind = "quick_reply"
        elif attachments:
            kind = _str(_obj(attachments[0], "attachment"), "type")
        else:
            kind = "text"
        message_id, text = _str(message, "mid"), _str(message, "text", optional=True)
    elif postback is not None:
        postback = _obj(postback, "postback")
        kind, text = "postback", _str(postback, "title", optional=True)
        message_id = _str(postback, "mid", optional=True)
        payload = _str(postback, "payload", optional=True)
    else:
        for key in _STATUS:
            if key in event:
                return Ignored(provider=provider, reason="status", ref=_mid(event[key]))
        for key, reason in _IGNORED.items():
            if key in event:
                return Ignored(provider=provider, reason=reason, ref=_mid(event[key]))
        return Ignored(provider=provider, reason="unsupported")
    sender = _str(_obj(event.get("sender"), "sender"), "id")
    ts = event.get("timestamp")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise BadPayload(f"timestamp is not epoch milliseconds: {ts!r}")
    if not message_id:  # a postback without mid: stable across retries of the same tap
        digest = hashlib.sha256(payload.encode("utf-8", "replace")).hexdigest()[:16]
        message_id = f"postback:{sender}:{ts}:{digest}"
    return CustomerMessage(
        provider=provider,
        channel="messenger",
        message_id=message_id,
        sender=sender,
        recipient=_str(_obj(event.get("recipient"), "recipient"), "id"),
        ts=ts,
        kind=kind,
        text=text,
        sender_ids={id_name: sender},
    )


def _skip_reason(message: dict[str, Any]) -> str | None:
    if message.get("is_echo") is True:
        return "echo"
    if message.get("is_deleted") is True:
        return "delete"
    if message.get("is_unsupported") is True:
        return "unsupported"
    if not any(key in message for key in ("text", "attachments", "quick_reply")):
        return "unsupported"
    return None


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPayload(f"{what} is not an object: {type(value).__name__}")
    return value


def _list(parent: dict[str, Any], key: str, *, optional: bool = False) -> list[Any]:
    value = parent.get(key)
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise BadPayload(f"{key} is not a list: {type(value).__name__}")
    return value


def _str(parent: dict[str, Any], key: str, *, optional: bool = False) -> str:
    value = parent.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or not (value or optional):
        raise BadPayload(f"{key} is not a non-empty string: {value!r}")
    return value


def _mid(value: Any) -> str | None:
    """The ``mid`` a status, edit or reaction refers to, if it names one."""
    mid = value.get("mid") if isinstance(value, dict) else None
    if isinstance(mid, str):
        return mid
    mids = value.get("mids") if isinstance(value, dict) else None
    return mids[0] if isinstance(mids, list) and mids and isinstance(mids[0], str) else None
