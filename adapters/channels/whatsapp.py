"""WhatsApp Cloud API (Meta) webhooks, read into customer messages.

Format: the WhatsApp Business Account ``messages`` webhook,
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
(``{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
"value": {"metadata", "contacts", "messages", "statuses"}}]}]}``). The signature
(``X-Hub-Signature-256``) is checked before, by :func:`.signatures.check_meta`.

- each ``messages[]`` item of a customer kind (text, media, location, contacts, button and
  interactive replies, orders) -> :class:`CustomerMessage`: sender in E.164 from ``from``
  (``wa_id`` digits, no ``+``), recipient our ``metadata.phone_number_id``, ``ts`` from unix
  seconds to ms, ``text`` the body, media caption, button text or reply title; ``name`` and
  ``sender_ids`` (``wa_id``, business-scoped ``user_id``, ``parent_user_id``) from the
  contact with that ``wa_id`` or ``user_id``. A username-only user (no ``from``, only
  ``from_user_id``) is named by that business-scoped user id.
- ``statuses[]`` (sent, delivered, read, failed: any order) -> ``Ignored("status")``;
  ``reaction`` (an emoji on one of our messages, not a new message) -> ``Ignored("reaction")``;
  ``system`` (number or user id changed) -> ``Ignored("system")``; any other type
  (``unsupported``, ``request_welcome``...) -> ``Ignored("unsupported")``;
  ``smb_message_echoes`` (our own messages sent from the Business app) -> ``Ignored("echo")``.
- another ``object`` or ``field`` -> ``Ignored("unsupported")``.
- one bad item never loses the others: a ``from`` that is not a phone number ->
  ``Ignored("bad_sender")``, a timestamp that is not unix seconds -> ``Ignored("bad_timestamp")``;
  only a body that is not JSON or not this shape (wrong types, missing ids) is a
  :class:`BadPayload`.
- a message id seen twice in one body is returned once (the first).
"""

from __future__ import annotations

import re

import msgspec

from .identity import IdentityError, phone_number
from .inbound import BadPayload, CustomerMessage, Ignored, Item

__all__ = ["parse"]

PROVIDER = "whatsapp"
_CUSTOMER_KINDS = frozenset(
    {"text", "image", "audio", "video", "document", "sticker", "location", "contacts"}
    | {"interactive", "button", "order"}
)
_IGNORED_KINDS = {"reaction": "reaction", "system": "system"}
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


class _Words(msgspec.Struct):
    """What a customer wrote, wherever the type puts it (text, caption, button, reply)."""

    body: str = ""
    caption: str = ""
    text: str = ""
    title: str = ""


class _Interactive(msgspec.Struct):
    button_reply: _Words | None = None
    list_reply: _Words | None = None


class _Message(msgspec.Struct):
    id: str
    timestamp: str | int
    type: str = "unknown"
    sender: str | None = msgspec.field(name="from", default=None)
    from_user_id: str | None = None
    text: _Words | None = None
    image: _Words | None = None
    video: _Words | None = None
    document: _Words | None = None
    button: _Words | None = None
    interactive: _Interactive | None = None


class _Profile(msgspec.Struct):
    name: str | None = None


class _Contact(msgspec.Struct):
    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    profile: _Profile | None = None


class _Ref(msgspec.Struct):
    id: str


class _Metadata(msgspec.Struct):
    phone_number_id: str


class _Value(msgspec.Struct):
    metadata: _Metadata
    contacts: list[_Contact] = []
    messages: list[_Message] = []
    statuses: list[_Ref] = []


class _Echoes(msgspec.Struct):
    message_echoes: list[_Ref] = []


class _Change(msgspec.Struct):
    field: str
    value: msgspec.Raw


class _Entry(msgspec.Struct):
    changes: list[_Change] = []


class _Head(msgspec.Struct):
    object: str


class _Body(msgspec.Struct):
    entry: list[_Entry]


def parse(body: bytes) -> list[Item]:
    """The items of one webhook POST, in the order sent; :class:`BadPayload` if not one."""
    try:
        if msgspec.json.decode(body, type=_Head).object != "whatsapp_business_account":
            return [Ignored(provider=PROVIDER, reason="unsupported")]
        items: list[Item] = []
        seen: set[str] = set()
        for entry in msgspec.json.decode(body, type=_Body).entry:
            for change in entry.changes:
                items.extend(_change(change, seen))
        return items
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadPayload(f"not a WhatsApp Cloud API webhook: {exc}") from None


def _change(change: _Change, seen: set[str]) -> list[Item]:
    if change.field == "smb_message_echoes":
        echoes = msgspec.json.decode(change.value, type=_Echoes).message_echoes
        return [Ignored(provider=PROVIDER, reason="echo", ref=echo.id) for echo in echoes]
    if change.field != "messages":
        return [Ignored(provider=PROVIDER, reason="unsupported")]
    value = msgspec.json.decode(change.value, type=_Value)
    items: list[Item] = []
    for message in value.messages:
        if message.id not in seen:
            seen.add(message.id)
            items.append(_message(message, value))
    items += [Ignored(provider=PROVIDER, reason="status", ref=s.id) for s in value.statuses]
    return items


def _message(message: _Message, value: _Value) -> Item:
    kind = message.type
    if kind not in _CUSTOMER_KINDS:
        reason = _IGNORED_KINDS.get(kind, "unsupported")
        return Ignored(provider=PROVIDER, reason=reason, ref=message.id)
    ts = _epoch_ms(message.timestamp)
    if ts is None:
        return Ignored(provider=PROVIDER, reason="bad_timestamp", ref=message.id)
    contact = next(
        (
            c
            for c in value.contacts
            if (c.wa_id and c.wa_id == message.sender)
            or (c.user_id and c.user_id == message.from_user_id)
        ),
        _Contact(),
    )
    user_id = message.from_user_id or contact.user_id
    try:
        sender = phone_number(message.sender) if message.sender is not None else user_id
    except IdentityError:
        sender = None
    if not sender:
        return Ignored(provider=PROVIDER, reason="bad_sender", ref=message.id)
    ids = {"wa_id": contact.wa_id, "user_id": user_id, "parent_user_id": contact.parent_user_id}
    return CustomerMessage(
        provider=PROVIDER,
        channel="whatsapp",
        message_id=message.id,
        sender=sender,
        recipient=value.metadata.phone_number_id,
        ts=ts,
        kind=kind,
        text=_text(message),
        name=contact.profile.name if contact.profile else None,
        sender_ids={key: id_ for key, id_ in ids.items() if id_},
    )


def _epoch_ms(timestamp: str | int) -> int | None:
    if isinstance(timestamp, int):
        return timestamp * 1000 if 0 <= timestamp < 10**12 else None
    return int(timestamp) * 1000 if _UNIX_SECONDS.fullmatch(timestamp) else None


def _text(message: _Message) -> str:
    """The words of the message: its body, media caption, or the button or row chosen."""
    reply = message.interactive or _Interactive()
    parts = (message.text, message.image, message.video, message.document, message.button)
    part = next(
        (p for p in (*parts, reply.button_reply, reply.list_reply) if p is not None), _Words()
    )
    return part.body or part.caption or part.text or part.title
