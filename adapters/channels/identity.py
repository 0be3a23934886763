"""Identity: one way to write a person's phone number or email address on every channel.

A customer who texts from ``07700 900123`` and calls from ``+44 7700 900123`` is one
contact only if both are written the same way: phone numbers become E.164 (``+447700900123``,
with the configured default region for national numbers, ``phonenumbers``); email
addresses are lower-cased. A value that is not a possible number or address raises
:class:`IdentityError` with the reason, so a bad webhook is refused, not misfiled.
"""

from __future__ import annotations

import functools
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr

import phonenumbers

__all__ = ["IdentityError", "email_address", "phone_number"]

_MAX_LENGTH = 254


class IdentityError(ValueError):
    """A phone number or address that cannot name a customer; the message says why."""


def phone_number(raw: str, region: str | None = None) -> str:
    """``raw`` in E.164; ``region`` (ISO 3166 code, e.g. ``GB``) reads national numbers.

    Provider prefixes such as Twilio's ``whatsapp:`` and WhatsApp's bare digits (``wa_id``
    carries no ``+``) are accepted. Answers are remembered (a customer writes many times;
    ``phonenumbers`` costs tens of microseconds a number).
    """
    return _phone_number(raw, region)


@functools.lru_cache(maxsize=1 << 16)
def _phone_number(raw: str, region: str | None) -> str:
    text = raw.strip().removeprefix("whatsapp:").removeprefix("tel:")
    if text.isdigit() and region is None:
        text = "+" + text  # wa_id and similar: international digits without the plus
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise IdentityError(f"not a phone number: {raw!r} ({exc})") from exc
    if not phonenumbers.is_possible_number(number):
        raise IdentityError(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_address(raw: str) -> str:
    """The address of ``raw`` (``"Ann <Ann@Example.COM>"`` -> ``ann@example.com``)."""
    _, address = parseaddr(raw)
    if not address or len(address) > _MAX_LENGTH:
        raise IdentityError(f"not an email address: {raw!r}")
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise IdentityError(f"not an email address: {raw!r}") from exc
    if not parsed.username or "." not in parsed.domain:
        raise IdentityError(f"not an email address: {raw!r}")
    return f"{parsed.username}@{parsed.domain}".lower()
