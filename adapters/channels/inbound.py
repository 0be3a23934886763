"""What a provider's webhook says, before omniroute decides what it means.

A normaliser (one module per provider) reads a webhook's raw body into a list of these,
in the order the provider sent them: a customer's :class:`CustomerMessage`, or an
:class:`Ignored` item saying why it is not one (a delivery or read status, an echo of
our own message, a group chat, an edit). A body that is not the provider's format raises
:class:`BadPayload` with the reason (the gateway answers 400). Turning messages into
engine inputs (a new conversation, a message on an open one) is the gateway's job.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omniroute.engine.events import Channel

__all__ = [
    "BadPayload",
    "CustomerMessage",
    "Ignored",
    "Item",
    "first_of_each",
    "json_body",
    "optional_str",
]


class BadPayload(ValueError):
    """The body is not what the provider sends; the message says what is wrong."""


class CustomerMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message a customer sent, as the provider reported it."""

    provider: str
    """The normaliser that read it (``whatsapp``, ``messenger``, ``telegram``...)."""
    channel: Channel
    message_id: str
    """The provider's id of the message: a retry carries the same one (idempotency)."""
    sender: str
    """Who wrote, as the channel names them: E.164 for phone channels, else the
    provider's id of the person (page-scoped id, Telegram user id)."""
    recipient: str
    """Which of our numbers, pages or bots it was sent to (the routing table's key)."""
    ts: int
    """When the provider says it was sent, epoch milliseconds."""
    kind: str = "text"
    """``text``, or the media or interaction type (``image``, ``postback``, ...)."""
    text: str = ""
    name: str | None = None
    """The display name the provider gave, if any."""
    sender_ids: dict[str, str] = {}
    """Further ids the provider gave for the same person (``wa_id``, ``user_id``...)."""
    thread: str | None = None
    """The provider's conversation or chat id, where it has one."""


class Ignored(msgspec.Struct, frozen=True, kw_only=True):
    """Something in the webhook that is not a customer's message, and why."""

    provider: str
    reason: str
    """``status``, ``echo``, ``group``, ``edit``, ``unsupported``..."""
    ref: str | None = None
    """The provider's id of what was ignored, if any."""


Item = CustomerMessage | Ignored


def json_body(body: bytes) -> Any:
    """``body`` decoded as JSON; :class:`BadPayload` if it is not JSON or nests too deeply
    (msgspec raises ``RecursionError`` there, not a decode error)."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadPayload(f"not JSON: {exc}") from exc


def optional_str(parent: dict[str, Any], key: str) -> str | None:
    """``parent[key]`` when it is a string, None when absent or null; :class:`BadPayload`
    when it is something else."""
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise BadPayload(f"{key} is not a string: {type(value).__name__}")
    return value


def first_of_each(items: list[Item]) -> list[Item]:
    """``items`` with a customer message the provider sent twice kept once (the first)."""
    seen: set[str] = set()
    kept: list[Item] = []
    for item in items:
        if isinstance(item, CustomerMessage):
            if item.message_id in seen:
                continue
            seen.add(item.message_id)
        kept.append(item)
    return kept
