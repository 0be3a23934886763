"""Telegram Bot API webhooks: one ``Update`` per request, read into inbound items.

Follows https://core.telegram.org/bots/api#update (and #message, #user, #chat,
#callbackquery, #contact). The webhook URL says which of our bots the update is for;
the caller passes it as ``bot`` and it becomes every message's ``recipient``.

- ``message`` in a private chat -> :class:`CustomerMessage`. Message ids are only unique
  within a chat, so the ``message_id`` is ``"<chat id>:<message id>"``; ``sender`` is the
  user's id, ``thread`` the chat's id, ``kind`` ``text`` or Telegram's name for the
  content (``photo``, ``voice``, ``document``, ``sticker``, ``contact``...), ``text`` the
  text or the media caption. A service message (a pin, a payment...) is ``unsupported``.
- A shared ``contact`` whose ``user_id`` is the sender's own is how Telegram tells us the
  person's phone number (the bot asks with a ``request_contact`` button): it is added as
  ``sender_ids["phone"]`` in E.164, so the person is the same one on phone channels. A
  phone number that is not possible is left out (the message is still the customer's).
- ``callback_query`` (an inline button pressed) -> ``kind="callback"``, ``text`` the
  button's data, ``message_id`` ``"callback:<query id>"``. Telegram gives no time for the
  press: ``ts`` is the date of the message that carried the button (0 if not given).
- Ignored: ``edited_message`` (``edit``); a group, supergroup or channel chat and
  ``channel_post`` (``group``); a message from a bot (``echo``); any other update
  (``unsupported``).

``update_id`` is not used as the id: a retried update carries the same message ids, so
the message id already makes a retry idempotent. One update per body: no duplicates.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .identity import IdentityError, phone_number
from .inbound import BadPayload, CustomerMessage, Ignored, Item, json_body, optional_str

__all__ = ["parse"]

PROVIDER = "telegram"
_EDITS = ("edited_message", "edited_channel_post", "edited_business_message")
_CHANNEL_POSTS = ("channel_post",)
_GROUP_CHATS = ("group", "supergroup", "channel")
# Message content fields, in the order they decide the kind (an ``animation`` also
# carries a ``document`` for old clients, so it comes first).
_MEDIA = (
    "animation", "photo", "video", "video_note", "voice", "audio", "document", "sticker",
    "contact", "location", "venue", "poll", "dice", "game", "story", "invoice",
)  # fmt: skip
_MAX_ID = 2**63  # Telegram ids fit in 64 bits (52 significant bits, per the docs)


def parse(body: bytes, bot: str) -> list[Item]:
    """The items in one webhook ``body`` sent to our bot ``bot``; :class:`BadPayload`
    if it is not a Telegram ``Update``."""
    update = json_body(body)
    if not isinstance(update, dict):
        raise BadPayload("an update is a JSON object")
    update_id = _int(update, "update_id", "update")
    for key in ("message", *_EDITS, *_CHANNEL_POSTS, "callback_query"):
        if key in update:
            value = _obj(update, key, "update")
            if key == "message":
                return [_message(value, bot)]
            if key == "callback_query":
                return [_callback(value, bot)]
            reason = "edit" if key in _EDITS else "group"
            return [Ignored(provider=PROVIDER, reason=reason, ref=_ref(value))]
    return [Ignored(provider=PROVIDER, reason="unsupported", ref=str(update_id))]


def _message(message: dict[str, Any], bot: str) -> Item:
    ref = _ref(message)
    chat = _obj(message, "chat", "message")
    chat_type = _str(chat, "type", "chat")
    date = _int(message, "date", "message")
    if chat_type in _GROUP_CHATS:
        return Ignored(provider=PROVIDER, reason="group", ref=ref)
    if chat_type != "private":
        return Ignored(provider=PROVIDER, reason="unsupported", ref=ref)
    user = _obj(message, "from", "message")
    if _bool(user, "is_bot"):
        return Ignored(provider=PROVIDER, reason="echo", ref=ref)
    text = optional_str(message, "text")
    caption = optional_str(message, "caption")
    kind = "text" if text is not None else next((k for k in _MEDIA if k in message), None)
    if kind is None:
        return Ignored(provider=PROVIDER, reason="unsupported", ref=ref)
    ids = _sender_ids(user)
    if kind == "contact":
        contact = _obj(message, "contact", "message")
        phone = _str(contact, "phone_number", "contact")
        owner = contact.get("user_id")
        if type(owner) is int and owner == int(ids["user_id"]):  # their own number
            # a number we cannot match on other channels is left out
            with contextlib.suppress(IdentityError):
                ids["phone"] = phone_number(phone)
    return CustomerMessage(
        provider=PROVIDER, channel="telegram", message_id=ref, sender=ids["user_id"],
        recipient=bot, ts=date * 1000, kind=kind, text=text or caption or "",
        name=_name(user), sender_ids=ids, thread=str(_int(chat, "id", "chat")),
    )  # fmt: skip


def _callback(query: dict[str, Any], bot: str) -> Item:
    query_id = _str(query, "id", "callback_query")
    ref = f"callback:{query_id}"
    user = _obj(query, "from", "callback_query")
    data = optional_str(query, "data") or ""
    ts, thread = 0, None
    if "message" in query:
        message = _obj(query, "message", "callback_query")
        chat = _obj(message, "chat", "message")
        if _str(chat, "type", "chat") != "private":
            return Ignored(provider=PROVIDER, reason="group", ref=ref)
        ts, thread = _int(message, "date", "message") * 1000, str(_int(chat, "id", "chat"))
    if _bool(user, "is_bot"):
        return Ignored(provider=PROVIDER, reason="echo", ref=ref)
    ids = _sender_ids(user)
    return CustomerMessage(
        provider=PROVIDER, channel="telegram", message_id=ref, sender=ids["user_id"],
        recipient=bot, ts=ts, kind="callback", text=data, name=_name(user),
        sender_ids=ids, thread=thread,
    )  # fmt: skip


def _ref(message: dict[str, Any]) -> str:
    """``"<chat id>:<message id>"``: Telegram numbers messages per chat."""
    chat = _obj(message, "chat", "message")
    return f"{_int(chat, 'id', 'chat')}:{_int(message, 'message_id', 'message')}"


def _sender_ids(user: dict[str, Any]) -> dict[str, str]:
    ids = {"user_id": str(_int(user, "id", "from"))}
    if (username := optional_str(user, "username")) is not None:
        ids["username"] = username
    return ids


def _name(user: dict[str, Any]) -> str | None:
    parts = [p for k in ("first_name", "last_name") if (p := optional_str(user, k))]
    return " ".join(parts) or None


def _obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadPayload(f"{where}.{key} is not an object")
    return value


def _int(parent: dict[str, Any], key: str, where: str) -> int:
    value = parent.get(key)
    if type(value) is not int or not -_MAX_ID < value < _MAX_ID:
        raise BadPayload(f"{where}.{key} is not a 64-bit integer")
    return value


def _str(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        raise BadPayload(f"{where}.{key} is not a string")
    return value


def _bool(parent: dict[str, Any], key: str) -> bool:
    value = parent.get(key, False)
    if not isinstance(value, bool):
        raise BadPayload(f"{key} is not a boolean")
    return value
