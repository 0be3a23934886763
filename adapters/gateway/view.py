"""What the gateway reads of the engine's state: a customer's live legs and who they are.

The engine's state is the truth (an embedded engine, or a replica re-applying the
production log). :class:`LiveView` answers the questions of :mod:`.intake` (is this
contact already in an open conversation, on which leg? which customer is this number?)
with the inputs submitted but not yet applied laid over it: in production an arrival
takes a round trip through the service before the replica shows it, and a customer who
writes again (or calls) meanwhile must still find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from omniroute.engine import Engine
from omniroute.engine.events import Contact, ContactsLinked, ConversationArrived, Input
from omniroute.engine.state import ConversationState, TenantState

__all__ = ["LegRef", "LiveView"]


@dataclass(frozen=True)
class LegRef:
    """A live leg: the conversation it belongs to and whether an agent serves it."""

    conversation_id: str
    leg_id: str
    served: bool


@dataclass
class _InFlight:
    """What one submitted input will change, until the engine has applied it."""

    legs: dict[str, LegRef] = field(default_factory=dict)
    """``channel:address`` and the leg id -> the leg an arrival opens."""
    customers: dict[str, str] = field(default_factory=dict)
    """``channel:address`` -> the customer it will belong to."""


def _key(contact: Contact) -> str:
    return f"{contact.channel}:{contact.address}"


class LiveView:
    """Read-only questions about one engine's state, plus inputs still on their way."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._in_flight: dict[tuple[str, str], _InFlight] = {}
        self._legs: dict[tuple[str, str], LegRef] = {}
        self._customers: dict[tuple[str, str], str] = {}

    @property
    def pending(self) -> int:
        """Inputs submitted and not yet applied."""
        return len(self._in_flight)

    def seen(self, tenant: str, event_id: str) -> bool:
        """True if an input with this id was applied or is on its way (a retry)."""
        return (tenant, event_id) in self._in_flight or self.engine.applied(tenant, event_id)

    def live_leg(self, tenant: str, contact: Contact, leg_id: str | None = None) -> LegRef | None:
        """The customer's live leg on ``contact`` (the latest; ``leg_id``: that one, and only
        if it is on ``contact``), or None."""
        coming = self._legs.get((tenant, _key(contact)))
        if coming is not None and (leg_id is None or coming.leg_id == leg_id):
            return coming
        state = self._tenant(tenant)
        if state is None:
            return None
        customer_id = state.contact_customer.get(_key(contact))
        customer = state.customers.get(customer_id) if customer_id else None
        if customer is None or customer.open_conversation is None:
            return None
        conv = state.conversations.get(customer.open_conversation)
        if conv is None:
            return None
        for leg in reversed(conv.legs):
            if leg.ended_ts is not None or leg.contact != contact:
                continue
            if leg_id is None or leg.leg_id == leg_id:
                return self._ref(conv, leg.leg_id)
        return None

    def leg(self, tenant: str, leg_id: str) -> LegRef | None:
        """The live leg ``leg_id`` (a contact's first ``conversation_id``), or None."""
        coming = self._legs.get((tenant, leg_id))
        if coming is not None:
            return coming
        state = self._tenant(tenant)
        if state is None:
            return None
        conv = state.conversations.get(state.aliases.get(leg_id, leg_id))
        if conv is None:
            return None
        for leg in conv.legs:
            if leg.leg_id == leg_id and leg.ended_ts is None:
                return self._ref(conv, leg_id)
        return None

    def known_customer(self, tenant: str, contacts: Sequence[Contact]) -> str | None:
        """The customer of the first of ``contacts`` known (or on its way), or None."""
        state = self._tenant(tenant)
        for contact in contacts:
            key = _key(contact)
            found = self._customers.get((tenant, key)) or (
                state.contact_customer.get(key) if state is not None else None
            )
            if found is not None:
                return found
        return None

    def customer_of(self, tenant: str, contact: Contact) -> str:
        """The customer ``contact`` belongs to (the engine's own name for a new one)."""
        return self.known_customer(tenant, [contact]) or f"contact:{_key(contact)}"

    def linked(self, tenant: str, contacts: Sequence[Contact]) -> bool:
        """True if these contacts are known as one customer already."""
        ids = {self.known_customer(tenant, [c]) for c in contacts}
        return len(ids) == 1 and None not in ids

    def expect(self, tenant: str, inputs: Sequence[Input]) -> None:
        """``inputs`` are on their way to the log: answer for them until it shows them."""
        for event in inputs:
            if event.id is None or (tenant, event.id) in self._in_flight:
                continue  # no id to settle by, or expected already
            coming = self._in_flight[(tenant, event.id)] = _InFlight()
            if isinstance(event, ConversationArrived):
                key = _key(event.contact)
                coming.customers[key] = event.customer_id or self.customer_of(tenant, event.contact)
                ref = LegRef(event.conversation_id, event.conversation_id, served=False)
                coming.legs[key] = coming.legs[event.conversation_id] = ref
            elif isinstance(event, ContactsLinked):
                for contact in event.contacts:
                    coming.customers[_key(contact)] = event.customer_id
            self._legs.update({(tenant, k): v for k, v in coming.legs.items()})
            self._customers.update({(tenant, k): v for k, v in coming.customers.items()})

    def settle(self, tenant: str, event_id: str) -> None:
        """The input ``event_id`` is applied (or failed): the state answers for it now."""
        coming = self._in_flight.pop((tenant, event_id), None)
        if coming is None:
            return
        for key, ref in coming.legs.items():
            if self._legs.get((tenant, key)) is ref:
                del self._legs[(tenant, key)]
        for key, customer in coming.customers.items():
            if self._customers.get((tenant, key)) == customer:
                del self._customers[(tenant, key)]

    def _tenant(self, tenant: str) -> TenantState | None:
        return self.engine.state.tenants.get(tenant)

    @staticmethod
    def _ref(conv: ConversationState, leg_id: str) -> LegRef:
        served = conv.owner is not None and conv.stage in ("assigned", "wrap_up")
        return LegRef(conv.conversation_id, leg_id, served)
