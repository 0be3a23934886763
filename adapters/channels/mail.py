"""Inbound email: one raw RFC 5322 / MIME message, as an inbound-mail relay POSTs it.

The body is the message's bytes, parsed with the standard library
(``email.parser.BytesParser(policy=email.policy.default)``,
https://docs.python.org/3/library/email.parser.html). Headers follow RFC 5322
(https://www.rfc-editor.org/rfc/rfc5322), automated mail RFC 3834 (``Auto-Submitted``,
https://www.rfc-editor.org/rfc/rfc3834) and bounces RFC 3464 (``multipart/report``,
https://www.rfc-editor.org/rfc/rfc3464). The module is named ``mail``: a module named
``email`` would shadow the standard library inside this package.

- A customer's mail -> :class:`CustomerMessage` (``provider`` and ``channel`` ``email``):
  ``message_id`` the ``Message-ID`` without angle brackets, or ``"sha256:<hex digest of the
  raw body>"`` when there is none (a retry of the same bytes gets the same id);
  ``sender`` the ``From`` address, lower-cased (:func:`.identity.email_address`), ``name``
  its display name (encoded words decoded); ``recipient`` the first ``To`` address (else
  ``Delivered-To``): the relay knows the envelope recipient better, this is the header's
  word; ``ts`` the ``Date`` in epoch ms, else ``received_ms`` when missing, unreadable or
  before 1970; ``text`` the ``text/plain`` body, stripped ("" if there is only HTML: no
  tag stripping); ``kind`` ``attachment`` when the message carries parts other than its
  body (files, inline images), else ``text``; ``sender_ids`` empty.
- ``thread`` is the root of the conversation: the first id in ``References`` (RFC 5322
  3.6.4: the parent's references, then the parent), else ``In-Reply-To``, else ``None``
  (a new mail: its own ``message_id`` is the root its replies will reference). Anyone can
  write any ``References``: the gateway must match an open conversation on thread *and*
  sender, or customer B could append to customer A's conversation.
- Not a customer -> :class:`Ignored` with ``ref`` the message id: ``bounce`` for a
  ``multipart/report`` (delivery status; read receipts too), a ``From`` of
  ``MAILER-DAEMON`` or ``postmaster``, or an empty ``Return-Path: <>`` without other
  markers; ``auto_reply`` for ``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
  ``X-Autorespond`` and ``Precedence: bulk|junk|list|auto_reply``; ``bad_sender`` for a
  ``From`` with several mailboxes and no usable single ``Sender``; ``bad_recipient`` when
  no ``To``/``Delivered-To`` holds an address.
- :class:`BadPayload`: no ``From``, ``Message-ID`` nor ``Date`` (not an email); no
  ``From``; a ``From`` (or chosen ``Sender``) that is not one readable address.

The ``email`` package is lenient (almost any bytes parse as a message) but has parsing
bugs on hostile headers, so any exception while reading the message becomes a
:class:`BadPayload`. One message per body: no duplicates.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from .identity import IdentityError, email_address
from .inbound import BadPayload, CustomerMessage, Ignored, Item

__all__ = ["parse"]

PROVIDER = "email"
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse(body: bytes, received_ms: int) -> list[Item]:
    """The item for one raw message ``body`` received at ``received_ms`` (epoch ms);
    :class:`BadPayload` if it is not an email."""
    try:
        msg = BytesParser(policy=policy.default).parsebytes(body)
        assert isinstance(msg, EmailMessage)  # what policy.default builds
        return [_item(msg, body, received_ms)]
    except BadPayload:
        raise
    except Exception as exc:  # the email package's bugs on hostile input
        raise BadPayload(f"unreadable message: {exc!r}") from exc


def _item(msg: EmailMessage, body: bytes, received_ms: int) -> Item:
    if not any(_raw(msg, h) is not None for h in ("From", "Message-ID", "Date")):
        raise BadPayload("not an email: no From, Message-ID or Date header")
    if _raw(msg, "From") is None:
        raise BadPayload("no From header")
    message_id = _first_id(_raw(msg, "Message-ID"))
    message_id = message_id or "sha256:" + hashlib.sha256(body).hexdigest()
    reason = _automated(msg)
    if reason:
        return Ignored(provider=PROVIDER, reason=reason, ref=message_id)
    mailboxes = msg["From"].addresses
    if len(mailboxes) > 1:  # RFC 5322 3.6.2: then Sender names the one who sent it
        mailboxes = msg["Sender"].addresses if msg["Sender"] is not None else ()
        if len(mailboxes) != 1:
            return Ignored(provider=PROVIDER, reason="bad_sender", ref=message_id)
    if not mailboxes:
        raise BadPayload(f"From has no address: {_raw(msg, 'From')!r}")
    try:
        sender = email_address(mailboxes[0].addr_spec)
    except IdentityError as exc:
        raise BadPayload(f"From is not an address: {exc}") from exc
    recipient = _recipient(msg)
    if recipient is None:
        return Ignored(provider=PROVIDER, reason="bad_recipient", ref=message_id)
    text_part = msg.get_body(preferencelist=("plain",))
    text = text_part.get_content().strip() if text_part is not None else ""
    attached = msg.is_attachment() or any(True for _ in msg.iter_attachments())
    return CustomerMessage(
        provider=PROVIDER, channel="email", message_id=message_id, sender=sender,
        recipient=recipient, ts=_date_ms(_raw(msg, "Date"), received_ms),
        kind="attachment" if attached else "text", text=text,
        name=mailboxes[0].display_name or None, thread=_thread(msg),
    )  # fmt: skip


def _automated(msg: EmailMessage) -> str | None:
    """``bounce`` or ``auto_reply`` for mail no person wrote (RFC 3834, RFC 3464)."""
    if msg.get_content_type() == "multipart/report":
        return "bounce"
    sender = _raw(msg, "From") or ""
    local = sender.rsplit("<", 1)[-1].split("@", 1)[0].strip().lower()
    if local in _BOUNCE_SENDERS:
        return "bounce"
    auto = (_raw(msg, "Auto-Submitted") or "no").split(";", 1)[0].strip().lower()
    if auto != "no" or any(_raw(msg, h) is not None for h in ("X-Autoreply", "X-Autorespond")):
        return "auto_reply"
    if (_raw(msg, "Precedence") or "").strip().lower() in _AUTO_PRECEDENCE:
        return "auto_reply"
    if (_raw(msg, "Return-Path") or "").strip() == "<>":
        return "bounce"
    return None


def _recipient(msg: EmailMessage) -> str | None:
    """The first address of ``To``, else of ``Delivered-To`` (lower-cased)."""
    candidates = [a.addr_spec for a in msg["To"].addresses] if msg["To"] is not None else []
    candidates += [v for n, v in msg.raw_items() if n.lower() == "delivered-to"]
    for candidate in candidates:
        try:
            return email_address(candidate)
        except IdentityError:
            continue
    return None


def _thread(msg: Message) -> str | None:
    """The conversation's root: first of ``References``, else ``In-Reply-To``."""
    return _first_id(_raw(msg, "References")) or _first_id(_raw(msg, "In-Reply-To"))


def _first_id(value: str | None) -> str | None:
    """The first ``<id>`` of a header, brackets stripped (a bare token if unbracketed)."""
    if value is None:
        return None
    if match := _MSG_ID.search(value):
        return match.group(1)
    return next(iter(value.split()), None)


def _date_ms(value: str | None, received_ms: int) -> int:
    """``Date`` in epoch ms (no zone: UTC), else ``received_ms``."""
    try:
        when = parsedate_to_datetime(value) if value else None
    except (ValueError, TypeError, IndexError, OverflowError):
        when = None
    if when is None:
        return received_ms
    if when.tzinfo is None:  # "-0000": the zone is unknown, read as UTC
        when = when.replace(tzinfo=UTC)
    ms = (when - _EPOCH) // _MS
    return ms if ms >= 0 else received_ms


def _raw(msg: Message, name: str) -> str | None:
    """The first ``name`` header as sent (unfolded, not decoded), ``None`` if absent."""
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return re.sub(r"\r?\n(?=[ \t])", "", str(value))
    return None
