"""Contact addresses stored pseudonymised: a keyed hash in place of each phone number,
e-mail address or messaging id, before the fold sees it.

The projection is where analysts read; the log, the engine's record, keeps the real
addresses (it must, to route and to reach the customer). With a key, the projector
passes every event through :meth:`AddressHasher.event`: the contact of a
``ConversationArrived``, the contacts of a ``ContactsLinked``, the number of a
``CallbackRequested`` and the address in an anonymous customer id an event names
(``contact:<channel>:<address>``) become ``h:`` + the first 32 hex digits of
HMAC-SHA256(key, address). So the ``contacts`` table, ``interactions.contact_address``
and the anonymous customer ids made from an address (``contact:<channel>:h:...``) hold
no address, while one address still gives one value: a customer's contacts,
conversations and 360 view join as before, and one number on voice and SMS is still
one customer. Only a holder of the key can find a given address
(:meth:`AddressHasher.address`, used by ``omniroute customer``).

The database records the scheme and a check value of the key (never the key), fixed
when it is created: a database is hashed with one key or not at all
(``projection_info.addresses``; ``omniroute export`` writes it into its manifest).
"""

from __future__ import annotations

import hashlib
import hmac

import msgspec

from omniroute.engine.events import (
    CallbackRequested,
    Contact,
    ContactsLinked,
    ConversationArrived,
    Event,
)

__all__ = ["PLAIN", "SCHEME", "AddressHasher"]

SCHEME = "hmac-sha256"
"""How hashed addresses are made (``projection_info.addresses``)."""
PLAIN = "plain"
"""Addresses stored as they are."""
_PREFIX = "h:"


class AddressHasher:
    """The keyed hash of contact addresses (``key``: at least 16 bytes of secret)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the address hashing key must be at least 16 bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    @property
    def key_check(self) -> str:
        """A value that tells keys apart without revealing them (stored in the database)."""
        return hmac.new(self._key, b"omniroute key check", hashlib.sha256).hexdigest()[:16]

    def address(self, address: str) -> str:
        """The stored form of ``address``."""
        hashed = self._cache.get(address)
        if hashed is None:
            digest = hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()
            hashed = _PREFIX + digest[:32]
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[address] = hashed
        return hashed

    def _contact(self, contact: Contact) -> Contact:
        return Contact(contact.channel, self.address(contact.address))

    def customer_id(self, customer_id: str | None) -> str | None:
        """An anonymous customer id (``contact:<channel>:<address>``, as producers and the
        gateway name a customer they know only by a contact) with its address hashed."""
        if customer_id is None or not customer_id.startswith("contact:"):
            return customer_id
        channel, sep, address = customer_id[len("contact:") :].partition(":")
        return f"contact:{channel}:{self.address(address)}" if sep else customer_id

    def event(self, event: Event) -> Event:
        """``event`` with every contact address it carries hashed (others unchanged)."""
        match event:
            case ConversationArrived():
                return msgspec.structs.replace(
                    event,
                    contact=self._contact(event.contact),
                    customer_id=self.customer_id(event.customer_id),
                )
            case ContactsLinked():
                return msgspec.structs.replace(
                    event,
                    customer_id=self.customer_id(event.customer_id) or "",
                    contacts=[self._contact(c) for c in event.contacts],
                )
            case CallbackRequested(address=str(number)):
                return msgspec.structs.replace(event, address=self.address(number))
            case _:
                return event
