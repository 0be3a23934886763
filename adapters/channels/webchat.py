"""Omniroute's own webchat API: the widget's JSON POSTs, read into customer messages.

Format (ours): the widget POSTs one JSON object, or an array of them (a batch sent after
the visitor was offline), each::

    {"type": "message" | "contact",
     "visitor_id": str,   # the site's user id, or a random one for an anonymous visitor
     "message_id": str,   # made by the widget, unique per tenant (a UUID); a retry reuses it
     "site": str,         # which widget / site: the routing key
     "text": str,         # required for "message"; a "contact" may carry a first text
     "ts": int,           # optional: epoch ms when typed; else when we received it
     "name": str, "email": str,  # optional: what the visitor told the widget
     "user_hash": str,    # optional: hex HMAC-SHA256(identity secret, visitor_id)
     "email_hash": str}   # optional: hex HMAC-SHA256(secret, visitor_id + "\n" + email)

Ids are 1-128 printable ASCII characters without spaces (they become event and NATS
message ids). ``message`` -> :class:`CustomerMessage` ``kind="text"``; ``contact`` (the
visitor opened the chat) -> ``kind="contact"`` with the first text or ``""``, so the
gateway opens a conversation; any other ``type`` (typing...) -> ``Ignored("unsupported")``.
``sender`` and ``thread`` are the ``visitor_id``, ``recipient`` the ``site``.

Identity verification, as Intercom's (https://www.intercom.com/help/en/articles/183-set-up-identity-verification-for-web-and-mobile):
the site's server signs the visitor id with the tenant's identity secret. With a secret
configured, a present but wrong ``user_hash`` raises :class:`.signatures.SignatureError`
(the gateway answers 401), so does a missing one when identity is required (or required
with no secret: nothing could pass). A verified visitor gets ``sender_ids["verified"] ==
"1"``; their lower-cased ``email`` becomes an identity only when ``email_hash`` vouches
for it too (a wrong one is a :class:`.signatures.SignatureError`; an address that is not
one is left out): a visitor can type anyone's address, and linking on it would merge
two customers.

A body that is not JSON or not this shape raises :class:`BadPayload`; a ``message_id``
twice in one body is returned once (the first).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from typing import Any

from .identity import IdentityError, email_address
from .inbound import (
    BadPayload,
    CustomerMessage,
    Ignored,
    Item,
    first_of_each,
    json_body,
    optional_str,
)
from .signatures import SignatureError

__all__ = ["PROVIDER", "parse", "user_hash"]

PROVIDER = "webchat"
_ID = re.compile(r"[\x21-\x7e]{1,128}")
_TYPES = frozenset({"message", "contact"})


def user_hash(secret: bytes, visitor_id: str, email: str | None = None) -> str:
    """The ``user_hash`` a site's server gives its widget for ``visitor_id``; with an
    ``email``, the ``email_hash`` that vouches for that address too."""
    message = visitor_id if email is None else f"{visitor_id}\n{email.strip().lower()}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def parse(
    body: bytes,
    received_ms: int,
    identity_secret: bytes | None = None,
    require_identity: bool = False,
) -> list[Item]:
    """The items of one widget POST, in the order sent; :class:`BadPayload` if it is not
    one, :class:`SignatureError` if a visitor's identity does not verify."""
    doc = json_body(body)
    events = doc if isinstance(doc, list) else [doc]
    items: list[Item] = []
    for event in events:
        if not isinstance(event, dict):
            raise BadPayload(f"an event is a JSON object, not {type(event).__name__}")
        items.append(_event(event, received_ms, identity_secret, require_identity))
    return first_of_each(items)


def _event(event: dict[str, Any], received_ms: int, secret: bytes | None, required: bool) -> Item:
    kind = event.get("type")
    if not isinstance(kind, str):
        raise BadPayload(f"type is not a string: {kind!r:.80}")
    if kind not in _TYPES:
        return Ignored(provider=PROVIDER, reason="unsupported", ref=_ref(event.get("message_id")))
    message_id = _id(event, "message_id")
    visitor, site = _id(event, "visitor_id"), _id(event, "site")
    text = optional_str(event, "text")
    if text is None and kind == "message":
        raise BadPayload("text is not a string")
    ts = event.get("ts", received_ms)
    if type(ts) is not int or not 0 <= ts < 2**63:
        raise BadPayload(f"ts is not epoch milliseconds: {ts!r:.80}")
    name, email = optional_str(event, "name"), optional_str(event, "email")
    ids: dict[str, str] = {}
    if _verified(visitor, optional_str(event, "user_hash"), secret, required):
        ids["verified"] = "1"
        email_hash = optional_str(event, "email_hash")
        if email is not None and email_hash is not None:
            assert secret is not None
            if not hmac.compare_digest(email_hash.lower().encode(),
                                       user_hash(secret, visitor, email).encode()):  # fmt: skip
                raise SignatureError("email_hash does not match visitor_id and email")
            with contextlib.suppress(IdentityError):  # a typo is no reason to refuse
                ids["email"] = email_address(email)
    return CustomerMessage(
        provider=PROVIDER, channel="webchat", message_id=message_id, sender=visitor,
        recipient=site, ts=ts, kind="text" if kind == "message" else "contact",
        text=text or "", name=name or None, sender_ids=ids, thread=visitor,
    )  # fmt: skip


def _verified(visitor: str, given: str | None, secret: bytes | None, required: bool) -> bool:
    """Whether ``given`` proves ``visitor``; :class:`SignatureError` if it must and cannot."""
    if secret is None:
        if required:
            raise SignatureError("identity is required but no identity secret is configured")
        return False
    if given is None:
        if required:
            raise SignatureError("missing user_hash: identity verification is required")
        return False
    if not hmac.compare_digest(given.lower().encode(), user_hash(secret, visitor).encode()):
        raise SignatureError("user_hash does not match visitor_id")
    return True


def _id(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise BadPayload(f"{key} is not 1-128 printable ASCII characters: {value!r:.80}")
    return value


def _ref(value: Any) -> str | None:
    return value if isinstance(value, str) and _ID.fullmatch(value) else None
