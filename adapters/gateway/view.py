"""What the gateway reads of the engine's state: a customer's live legs, an agent's desk.

The engine's state is the truth (an embedded engine, or a follower re-applying the
production log). :class:`LiveView` answers the questions of :mod:`.intake` (is this
contact already in an open conversation, on which leg?) and of the desk API (what does
this agent hold?), with the arrivals published but not yet in the log laid over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omniroute.engine import Engine
from omniroute.engine.events import Contact, ConversationArrived, Input
from omniroute.engine.state import ConversationState, TenantState

__all__ = ["LegRef", "LiveView"]


@dataclass(frozen=True)
class LegRef:
    """A live leg: the conversation it belongs to and whether an agent serves it."""

    conversation_id: str
    leg_id: str
    served: bool


def _key(contact: Contact) -> str:
    return f"{contact.channel}:{contact.address}"


class LiveView:
    """Read-only questions about one engine's state, plus arrivals still on their way."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: dict[tuple[str, str], LegRef] = {}
        """(tenant, ``channel:address`` or leg id) -> a leg published, not yet applied."""
        self.pending_ids: set[tuple[str, str]] = set()
        """(tenant, event id) of inputs published, not yet applied."""

    def seen(self, tenant: str, event_id: str) -> bool:
        """True if an input with this id was applied or is on its way (a retry)."""
        return (tenant, event_id) in self.pending_ids or self.engine.applied(tenant, event_id)

    def _tenant(self, tenant: str) -> TenantState | None:
        return self.engine.state.tenants.get(tenant)

    def _conversation(self, tenant: TenantState, conversation_id: str) -> ConversationState | None:
        root = tenant.aliases.get(conversation_id, conversation_id)
        return tenant.conversations.get(root)

    def live_leg(self, tenant: str, contact: Contact, leg_id: str | None = None) -> LegRef | None:
        """The customer's live leg on ``contact`` (the latest; ``leg_id``: that one, and only
        if it is on ``contact``), or None."""
        pending = self.pending.get((tenant, leg_id or _key(contact)))
        if pending is not None:
            return pending
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
        pending = self.pending.get((tenant, leg_id))
        if pending is not None:
            return pending
        state = self._tenant(tenant)
        conv = self._conversation(state, leg_id) if state is not None else None
        if conv is None:
            return None
        for leg in conv.legs:
            if leg.leg_id == leg_id and leg.ended_ts is None:
                return self._ref(conv, leg_id)
        return None

    def linked(self, tenant: str, contacts: list[Contact]) -> bool:
        """True if these contacts are already known as one customer."""
        state = self._tenant(tenant)
        if state is None:
            return False
        ids = {state.contact_customer.get(_key(c)) for c in contacts}
        return len(ids) == 1 and None not in ids

    def known_customer(self, tenant: str, contacts: list[Contact]) -> str | None:
        """The customer of the first of ``contacts`` the engine knows, or None."""
        state = self._tenant(tenant)
        if state is None:
            return None
        for contact in contacts:
            found = state.contact_customer.get(_key(contact))
            if found is not None:
                return found
        return None

    def customer_of(self, tenant: str, contact: Contact) -> str:
        """The customer ``contact`` belongs to (the engine's own name for a new one)."""
        state = self._tenant(tenant)
        found = state.contact_customer.get(_key(contact)) if state is not None else None
        return found or f"contact:{_key(contact)}"

    def expect(
        self, tenant: str, event_id: str, contact: Contact | None = None, leg: str | None = None
    ) -> None:
        """An input is on its way to the log: answer for it until the log shows it (an
        arrival on ``contact``: for its new leg ``leg``, default ``event_id``, too)."""
        self.pending_ids.add((tenant, event_id))
        if contact is not None:
            ref = LegRef(leg or event_id, leg or event_id, served=False)
            self.pending[(tenant, _key(contact))] = ref
            self.pending[(tenant, event_id)] = ref
            self.pending[(tenant, ref.leg_id)] = ref

    def expect_all(self, tenant: str, inputs: Sequence[Input]) -> None:
        """``inputs`` are on their way to the log (:meth:`expect` each, arrivals' legs too)."""
        for event in inputs:
            if event.id is None:
                continue
            if isinstance(event, ConversationArrived):
                self.expect(tenant, event.id, event.contact, event.conversation_id)
            else:
                self.expect(tenant, event.id)

    def settle(self, tenant: str, event_id: str) -> None:
        """The input ``event_id`` is applied: the state answers for it now."""
        self.pending_ids.discard((tenant, event_id))
        ref = self.pending.pop((tenant, event_id), None)
        if ref is None:
            return
        for key in [k for k, v in self.pending.items() if v is ref]:
            del self.pending[key]

    @staticmethod
    def _ref(conv: ConversationState, leg_id: str) -> LegRef:
        served = conv.owner is not None and conv.stage in ("assigned", "wrap_up")
        return LegRef(conv.conversation_id, leg_id, served)
