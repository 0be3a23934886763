"""Provider webhooks: ``POST /webhooks/<provider>/<name>`` and the GET handshakes.

Each request is checked in this order, answered at the first failure: a configured
source (404), the client's rate (429), the body size (413), the provider's signature on
the exact raw bytes (401 missing, 403 wrong), the body's format (400 with the reason:
nothing reaches the log). Then its items become inputs against the engine's current
state (:mod:`.intake`) and the answer (2xx) is sent only once they are durable; a log
that cannot be written is a 503, so the provider retries. Statuses, echoes, edits and
other items that are not a customer's message are counted, never an error.

GET handshakes: Meta's ``hub.challenge`` (WhatsApp, Messenger, Instagram, Facebook
Page) against the source's ``verify_token``; X's CRC (``crc_token``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..channels import mail, messenger, social, telegram, twilio, webchat, whatsapp
from ..channels.inbound import BadPayload, CustomerMessage, Item
from ..channels.signatures import (
    SignatureError,
    check_meta,
    check_telegram,
    check_twilio,
    check_x,
    x_crc_response,
)
from .config import Source
from .gateway import Gateway
from .intake import event_id
from .limits import BodyTooLarge, read_body

__all__ = ["READERS", "Delivery", "routes"]

_log = logging.getLogger(__name__)

_META = frozenset({"whatsapp", "messenger", "instagram", "facebook"})


@dataclass(frozen=True)
class Delivery:
    """One webhook request, as a provider's reader needs it."""

    request: Request
    public_url: str | None
    source: Source
    secret: bytes | None
    body: bytes
    received_ms: int
    region: str | None

    @property
    def headers(self) -> Headers:
        return self.request.headers

    @property
    def url(self) -> str:
        """The URL the provider called (``public_url`` + path + query behind a proxy)."""
        url = self.request.url
        if not self.public_url:
            return str(url)
        return self.public_url.rstrip("/") + url.path + (f"?{url.query}" if url.query else "")

    @property
    def key(self) -> bytes:
        if self.secret is None:  # refused at start: a signed provider needs a secret
            raise SignatureError(f"source {self.source.name} has no secret")
        return self.secret


def _meta(parse: Callable[[bytes], list[Item]]) -> Callable[[Delivery], list[Item]]:
    """A Meta webhook's reader: ``X-Hub-Signature-256`` (the app secret), then ``parse``."""

    def read(d: Delivery) -> list[Item]:
        check_meta(d.key, d.body, d.headers.get("x-hub-signature-256"))
        return parse(d.body)

    return read


def _telegram(d: Delivery) -> list[Item]:
    check_telegram(d.key.decode(), d.headers.get("x-telegram-bot-api-secret-token"))
    return telegram.parse(d.body, d.source.bot or d.source.name)


def _twilio(d: Delivery) -> list[Item]:
    check_twilio(d.key.decode(), d.url, twilio.form(d.body), d.headers.get("x-twilio-signature"))
    return twilio.parse(d.body, d.received_ms, d.region)


def _email(d: Delivery) -> list[Item]:
    if d.secret is not None:
        given = d.headers.get("authorization", "")
        if not given:
            raise SignatureError("missing Authorization header (Bearer relay token)")
        if not hmac.compare_digest(given.encode(), b"Bearer " + d.secret):
            raise SignatureError("wrong relay token")
    return mail.parse(d.body, d.received_ms)


def _x(d: Delivery) -> list[Item]:
    check_x(d.body, d.headers.get("x-twitter-webhooks-signature"), d.key)
    return social.parse_x(d.body)


READERS: dict[str, Callable[[Delivery], list[Item]]] = {
    "whatsapp": _meta(whatsapp.parse),
    "messenger": _meta(messenger.parse),
    "instagram": _meta(messenger.parse),
    "facebook": _meta(social.parse_facebook),
    "telegram": _telegram,
    "twilio": _twilio,
    "email": _email,
    "webchat": lambda d: webchat.parse(d.body, d.received_ms, d.secret, d.source.require_identity),
    "x": _x,
}
"""Each provider's check and reader: a request's items, or SignatureError / BadPayload."""


def _error(gw: Gateway, provider: str, status: int, reason: str, message: str) -> Response:
    gw.metrics.rejects.labels(provider, reason).inc()
    gw.metrics.requests.labels("webhook", provider, str(status)).inc()
    _log.warning("webhook %s refused (%d %s): %s", provider, status, reason, message)
    return JSONResponse({"error": message, "reason": reason}, status_code=status)


def routes(gw: Gateway) -> list[BaseRoute]:
    """The webhook routes of ``gw``'s configured sources."""
    opts = gw.config.gateway

    def source_of(request: Request) -> Source | None:
        return gw.sources.get((request.path_params["provider"], request.path_params["name"]))

    async def receive(request: Request) -> Response:
        provider = request.path_params["provider"]
        source = source_of(request)
        if source is None:
            return _error(gw, "unknown", 404, "unknown_source", f"no source {provider}/"
                          f"{request.path_params['name']}")  # fmt: skip
        client = request.client.host if request.client else "?"
        if not gw.limiter.allow(f"{provider}/{source.name}@{client}"):
            return _error(gw, provider, 429, "rate_limited", "too many requests")
        try:
            body = await read_body(request, opts.max_body_bytes)
        except BodyTooLarge as exc:
            return _error(gw, provider, 413, "too_large", str(exc))
        received = time.time_ns() // 1_000_000
        delivery = Delivery(
            request, opts.public_url, source,
            gw.secrets.get((source.provider, source.name)), body, received, opts.region,
        )  # fmt: skip
        try:
            items = READERS[provider](delivery)
        except SignatureError as exc:
            status = 401 if str(exc).startswith("missing") else 403
            return _error(gw, provider, status, "signature", str(exc))
        except BadPayload as exc:
            return _error(gw, provider, 400, "bad_payload", str(exc))
        if not gw.backend.healthy:
            return _error(gw, provider, 503, "unavailable", "the log cannot be written")
        try:
            inputs, outcomes = await gw.ingest(source, items)
        except Exception as exc:
            return _error(gw, provider, 503, "unavailable", f"not stored: {exc}")
        gw.metrics.requests.labels("webhook", provider, "200").inc()
        if provider == "twilio":
            return _twiml(items)
        return JSONResponse({"accepted": len(inputs), "items": dict(outcomes)})

    async def handshake(request: Request) -> Response:
        provider = request.path_params["provider"]
        source = source_of(request)
        if source is None:
            return _error(gw, "unknown", 404, "unknown_source", "no such source")
        params = request.query_params
        if provider in _META and "hub.challenge" in params:
            token = (source.verify_token or "").encode()
            given = params.get("hub.verify_token", "").encode()
            if (
                params.get("hub.mode") == "subscribe"
                and token
                and hmac.compare_digest(given, token)
            ):
                return PlainTextResponse(params["hub.challenge"])
            return _error(gw, provider, 403, "signature", "wrong hub.verify_token")
        if provider == "x" and "crc_token" in params:
            secret = gw.secrets.get((source.provider, source.name)) or b""
            return JSONResponse({"response_token": x_crc_response(params["crc_token"], secret)})
        return _error(gw, provider, 400, "bad_payload", "no handshake in the query")

    return [
        Route("/webhooks/{provider}/{name}", receive, methods=["POST"]),
        Route("/webhooks/{provider}/{name}", handshake, methods=["GET"]),
    ]


def _twiml(items: list[Item]) -> Response:
    """Twilio's answer: a call waits in a Twilio queue named by its leg (the agent's
    desktop dequeues it), the same answer to a retry; anything else: an empty response."""
    verb = ""
    for item in items:
        if isinstance(item, CustomerMessage) and item.channel == "voice":
            verb = f"<Enqueue>{_xml(event_id('twilio', item.message_id))}</Enqueue>"
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{verb}</Response>',
        media_type="text/xml",
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
