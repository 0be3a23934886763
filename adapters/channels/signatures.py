"""Webhook signatures: is this request really from the provider, byte for byte?

Each check takes the exact raw request (bytes, the URL as the provider called it) and the
configured secret, compares in constant time (``hmac.compare_digest``) and raises
:class:`SignatureError` naming what is wrong; a missing or malformed header is an error,
never a pass.

- Meta (WhatsApp Cloud API, Messenger, Instagram): ``X-Hub-Signature-256: sha256=<hex>``,
  HMAC-SHA256 of the raw body keyed with the app secret.
- Twilio (SMS, MMS, Voice): ``X-Twilio-Signature``, base64 HMAC-SHA1 keyed with the auth
  token of the full URL followed by every form parameter's name and value, sorted by name
  (a repeated name: each of its distinct values, sorted, as Twilio's libraries sign).
  Twilio may sign the URL with or without the scheme's default port: both are tried.
- Telegram Bot API: ``X-Telegram-Bot-Api-Secret-Token`` equals the secret set with
  ``setWebhook``.
- X (Twitter) Account Activity API (https://docs.x.com/x-api/webhooks/quickstart):
  ``x-twitter-webhooks-signature: sha256=<base64>``, HMAC-SHA256 of the raw body keyed
  with the app's consumer secret; the GET challenge-response check (CRC) answers
  ``{"response_token": x_crc_response(crc_token, secret)}``, the same HMAC of the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "SignatureError",
    "check_meta",
    "check_telegram",
    "check_twilio",
    "check_x",
    "meta_signature",
    "twilio_signature",
    "x_crc_response",
]

_DEFAULT_PORTS = {"https": 443, "http": 80}


class SignatureError(ValueError):
    """The request is not signed by the provider; the message says what is wrong."""


def meta_signature(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def check_meta(secret: str | bytes, body: bytes, header: str | None) -> None:
    """Check Meta's ``X-Hub-Signature-256`` header against the raw body."""
    if not header:
        raise SignatureError("missing X-Hub-Signature-256 header")
    if not header.startswith("sha256="):
        raise SignatureError("X-Hub-Signature-256 must start with 'sha256='")
    if not hmac.compare_digest(header.lower().encode(), meta_signature(secret, body).encode()):
        raise SignatureError("X-Hub-Signature-256 does not match the body")


def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` value Twilio sends for a POST of ``params`` to ``url``."""
    signed = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_port(url: str) -> list[str]:
    """``url`` as called, and with the scheme's default port added or removed."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if default is None:
        return [url]
    if parts.port is None:
        other = parts._replace(netloc=f"{prefix}{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=f"{prefix}{host}")
    else:
        return [url]
    return [url, urlunsplit(other)]


def check_twilio(
    token: str, url: str, params: Iterable[tuple[str, str]], header: str | None
) -> None:
    """Check Twilio's ``X-Twilio-Signature`` for a form POST (``params`` as received, a
    repeated name once per value) to the full ``url`` Twilio called."""
    if not header:
        raise SignatureError("missing X-Twilio-Signature header")
    pairs = list(params)
    given = header.encode()
    for candidate in _with_and_without_port(url):
        if hmac.compare_digest(given, twilio_signature(token, candidate, pairs).encode()):
            return
    raise SignatureError("X-Twilio-Signature does not match the URL and parameters")


def check_telegram(secret: str, header: str | None) -> None:
    """Check Telegram's ``X-Telegram-Bot-Api-Secret-Token`` header."""
    if not header:
        raise SignatureError("missing X-Telegram-Bot-Api-Secret-Token header")
    if not hmac.compare_digest(header.encode(), secret.encode()):
        raise SignatureError("X-Telegram-Bot-Api-Secret-Token does not match the secret")


def x_crc_response(crc_token: str, consumer_secret: bytes) -> str:
    """The ``response_token`` answering X's CRC ``crc_token`` (also the
    ``x-twitter-webhooks-signature`` X sends with a body equal to those bytes)."""
    return _x_signature(crc_token.encode(), consumer_secret)


def check_x(body: bytes, header: str | None, consumer_secret: bytes) -> None:
    """Check X's ``x-twitter-webhooks-signature`` header against the raw body."""
    if not header:
        raise SignatureError("missing x-twitter-webhooks-signature header")
    if not header.startswith("sha256="):
        raise SignatureError("x-twitter-webhooks-signature must start with 'sha256='")
    if not hmac.compare_digest(header.encode(), _x_signature(body, consumer_secret).encode()):
        raise SignatureError("x-twitter-webhooks-signature does not match the body")


def _x_signature(message: bytes, consumer_secret: bytes) -> str:
    digest = hmac.new(consumer_secret, message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()
