"""Twilio webhooks (Programmable Messaging and Programmable Voice), read into inbound items.

Twilio POSTs ``application/x-www-form-urlencoded`` parameters, one message or call event
per request: https://www.twilio.com/docs/messaging/guides/webhook-request (SMS, MMS and
Twilio's WhatsApp, whose ``From``/``To`` carry a ``whatsapp:`` prefix; its status
callbacks, https://www.twilio.com/docs/messaging/guides/track-outbound-message-status) and
https://www.twilio.com/docs/voice/twiml#request-parameters (a call's webhook and its
``StatusCallback``). :func:`form` gives the parameters as received, for
:func:`.signatures.check_twilio`, which the gateway runs before :func:`parse`.

Twilio's inbound webhooks carry no send time: ``ts`` is ``received_ms``, the gateway's
clock when the request arrived (epoch ms), which the caller passes.

- ``MessageSid`` (or the legacy ``SmsSid``) without a status, or with ``received`` ->
  :class:`CustomerMessage`: channel ``sms`` (``whatsapp`` when ``From`` starts with
  ``whatsapp:``), ``sender``/``recipient`` ``From``/``To`` in E.164 (``region`` reads
  national numbers; a ``To`` that is no phone number, such as a short code, is kept as
  sent), ``kind`` ``media`` when ``NumMedia`` > 0 else ``text``, ``text`` the ``Body``;
  WhatsApp's ``ProfileName`` and ``WaId`` become ``name`` and ``sender_ids["wa_id"]``.
  Any other ``MessageStatus``/``SmsStatus`` (queued, sent, delivered, read, failed,
  undelivered...) is a status callback -> ``Ignored("status", ref=MessageSid)``.
- ``CallSid``: an outbound leg (``Direction`` ``outbound-api``/``outbound-dial``, or a
  ``ParentCallSid``) -> ``Ignored("outbound")``; an inbound call ``ringing`` or
  ``in-progress`` -> :class:`CustomerMessage` (channel ``voice``, ``kind="call"``,
  ``message_id`` the ``CallSid``: the answered status callback repeats it, so it is
  idempotent); a final status (completed, busy, failed, no-answer, canceled) ->
  ``Ignored("call_ended", ref=CallSid)``, on which the gateway ends the voice leg (the
  contract has no "call ended" item yet); any other status -> ``Ignored("status")``.
- A withheld caller (``anonymous``, ``Restricted``, Twilio's keypad spellings such as
  ``+266696687``) or a ``From`` that is no phone number -> ``Ignored("bad_sender")``: there
  is no one to answer. Another address kind (``client:``, ``sip:``, ``messenger:``...) ->
  ``Ignored("unsupported")``.
- A body that is not a UTF-8 form, has neither ``MessageSid`` nor ``CallSid``, or lacks
  ``From``, ``To`` (or, for calls, ``CallStatus``, ``Direction``) -> :class:`BadPayload`.
One POST is one message or call event: a repeated parameter's first value is read.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from .identity import IdentityError, phone_number
from .inbound import BadPayload, CustomerMessage, Ignored, Item

__all__ = ["form", "parse"]

PROVIDER = "twilio"
_FINAL_CALL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_LIVE_CALL = frozenset({"ringing", "in-progress"})
# Caller ID withheld: the words carriers send, and the keypad spellings Twilio puts in
# ``From`` (ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN, UNAVAILABLE).
_WITHHELD = frozenset(
    {"anonymous", "restricted", "blocked", "unknown", "unavailable", "private", "withheld"}
    | {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"}
)
_PHONE_SCHEMES = ("whatsapp", "tel")


def form(body: bytes) -> list[tuple[str, str]]:
    """The form parameters of ``body`` in order, a repeated name once per value (what
    :func:`.signatures.check_twilio` signs); :class:`BadPayload` if it is not a form."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError too: bytes or escapes not UTF-8
        raise BadPayload(f"not a Twilio form: {exc}") from None


def parse(body: bytes, received_ms: int, region: str | None = None) -> list[Item]:
    """The item in one webhook ``body`` received at ``received_ms`` (epoch ms, the
    gateway's clock); ``region`` reads national numbers. :class:`BadPayload` if not one."""
    params: dict[str, str] = {}
    for name, value in form(body):
        params.setdefault(name, value)
    if sid := params.get("MessageSid") or params.get("SmsSid"):
        return [_message(params, sid, received_ms, region)]
    if sid := params.get("CallSid"):
        return [_call(params, sid, received_ms, region)]
    raise BadPayload("not a Twilio webhook: neither MessageSid nor CallSid")


def _message(params: dict[str, str], sid: str, ts: int, region: str | None) -> Item:
    status = params.get("MessageStatus") or params.get("SmsStatus") or "received"
    if status != "received":
        return Ignored(provider=PROVIDER, reason="status", ref=sid)
    raw = _required(params, "From")
    recipient = _recipient(_required(params, "To"), region)
    media = params.get("NumMedia", "0")
    if not (media.isascii() and media.isdigit()):
        raise BadPayload(f"not a Twilio webhook: NumMedia {media!r} is not a count")
    sender = _sender(raw, region)
    if isinstance(sender, Ignored):
        return Ignored(provider=PROVIDER, reason=sender.reason, ref=sid)
    wa_id = params.get("WaId")
    return CustomerMessage(
        provider=PROVIDER, channel="whatsapp" if raw.startswith("whatsapp:") else "sms",
        message_id=sid, sender=sender, recipient=recipient, ts=ts,
        kind="media" if media.strip("0") else "text", text=params.get("Body", ""),
        name=params.get("ProfileName") or None, sender_ids={"wa_id": wa_id} if wa_id else {},
    )  # fmt: skip


def _call(params: dict[str, str], sid: str, ts: int, region: str | None) -> Item:
    status = _required(params, "CallStatus")
    direction = _required(params, "Direction")
    raw = _required(params, "From")
    recipient = _recipient(_required(params, "To"), region)
    if direction.startswith("outbound") or params.get("ParentCallSid"):
        return Ignored(provider=PROVIDER, reason="outbound", ref=sid)
    if direction != "inbound":
        return Ignored(provider=PROVIDER, reason="unsupported", ref=sid)
    if status in _FINAL_CALL:
        return Ignored(provider=PROVIDER, reason="call_ended", ref=sid)
    if status not in _LIVE_CALL:
        return Ignored(provider=PROVIDER, reason="status", ref=sid)
    sender = _sender(raw, region)
    if isinstance(sender, Ignored):
        return Ignored(provider=PROVIDER, reason=sender.reason, ref=sid)
    return CustomerMessage(
        provider=PROVIDER, channel="voice", message_id=sid, sender=sender,
        recipient=recipient, ts=ts, kind="call",
    )  # fmt: skip


def _sender(raw: str, region: str | None) -> str | Ignored:
    """``From`` in E.164, or why it names no one we can answer."""
    scheme, colon, rest = raw.strip().partition(":")
    if colon and scheme.lower() not in _PHONE_SCHEMES:
        return Ignored(provider=PROVIDER, reason="unsupported")
    address = (rest if colon else scheme).strip()
    if not address or address.lower() in _WITHHELD:
        return Ignored(provider=PROVIDER, reason="bad_sender")
    try:
        return phone_number(address, region)
    except IdentityError:
        return Ignored(provider=PROVIDER, reason="bad_sender")


def _recipient(raw: str, region: str | None) -> str:
    """Our number in E.164; a short code or other address as Twilio sent it."""
    try:
        return phone_number(raw, region)
    except IdentityError:
        return raw.strip()


def _required(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise BadPayload(f"not a Twilio webhook: no {name}")
    return params[name]
