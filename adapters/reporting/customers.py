"""Customers and contacts in the fold: who a contact belongs to, and which records a batch
needs from the database.

The engine's rule for a conversation's customer: the id the arrival gives, else the
contact's customer, else the contact itself (``contact:<channel>:<address>``, an
anonymous customer). ``ContactsLinked`` moves contacts to a CRM customer; an anonymous
customer whose contact moves is merged into the new owner.

Before a batch is folded, :func:`unknown_keys` says which contacts and customers it
names that the ledger does not know; the writer loads them and hands them in with
:func:`know_contacts` and :func:`know_customers`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from omniroute.engine.events import ContactsLinked, ConversationArrived, Event

from .ledger import Handler, Ledger
from .records import NONE, Arrival, Contact, Customer

__all__ = ["INPUTS", "know_contacts", "know_customers", "resolve_customer", "unknown_keys"]

ContactKey = tuple[str, str, str]
CustomerKey = tuple[str, str]


# --- what a batch needs from the database ------------------------------------------------------


def unknown_keys(
    ledger: Ledger, events: Iterable[Event]
) -> tuple[set[ContactKey], set[CustomerKey]]:
    """The contacts and customers ``events`` (and the arrivals carried over) name that the
    ledger does not know yet.

    A contact's own customer is created with the contact and found as its owner, so only
    contacts, the customer ids events name and (see :func:`know_contacts`) the owners of
    known contacts are looked up.
    """
    contact_keys: set[ContactKey] = set()
    customer_keys: set[CustomerKey] = set()
    for t in ledger.tenants.values():  # arrivals carried over from an earlier batch
        for p in t.pending.values():
            contact_keys.add((p.tenant, p.contact_channel, p.contact_address))
            if p.customer_id:
                customer_keys.add((p.tenant, p.customer_id))
    for e in events:
        if type(e) is ConversationArrived:
            contact = e.contact
            contact_keys.add((e.tenant, contact.channel, contact.address))
            if e.customer_id:
                customer_keys.add((e.tenant, e.customer_id))
        elif type(e) is ContactsLinked:
            customer_keys.add((e.tenant, e.customer_id))
            for c in e.contacts:
                contact_keys.add((e.tenant, c.channel, c.address))
            own = _own_contact(e.customer_id)
            if own is not None:  # see _named_owner
                contact_keys.add((e.tenant, *own))
    contact_keys.difference_update(ledger.contacts)
    customer_keys.difference_update(ledger.customers)
    return contact_keys, customer_keys


def know_contacts(
    ledger: Ledger, asked: Iterable[ContactKey], found: Sequence[Sequence[Any]]
) -> set[CustomerKey]:
    """Remember the contacts ``asked`` for: ``found`` rows (tenant, channel, address,
    customer_id, first_seen, linked) are in the database, the others are not. Returns
    their owners the ledger does not know yet."""
    owners: set[CustomerKey] = set()
    for tenant, channel, address, customer_id, first_seen, linked in found:
        ledger.contacts[(tenant, channel, address)] = Contact(
            tenant=tenant, channel=channel, address=address, customer_id=customer_id,
            first_seen=first_seen, linked=linked, stored=True, dirty=False,
        )  # fmt: skip
        owners.add((tenant, customer_id))
    for key in asked:
        ledger.contacts.setdefault(key, None)
    owners.difference_update(ledger.customers)
    return owners


def know_customers(
    ledger: Ledger, asked: Iterable[CustomerKey], found: Sequence[Sequence[Any]]
) -> None:
    """Remember the customers ``asked`` for: ``found`` rows (tenant, customer_id, source,
    first_seen, merged_into) are in the database, the others are not."""
    for tenant, customer_id, source, first_seen, merged_into in found:
        ledger.customers[(tenant, customer_id)] = Customer(
            tenant=tenant, customer_id=customer_id, source=source,
            first_seen=first_seen, merged_into=merged_into, stored=True, dirty=False,
        )  # fmt: skip
    for key in asked:
        ledger.customers.setdefault(key, None)


# --- the rule ------------------------------------------------------------------------------


def _customer(ledger: Ledger, tenant: str, customer_id: str, source: str, ts: int) -> Customer:
    key = (tenant, customer_id)
    cu = ledger.customers.get(key)
    if cu is None:
        cu = Customer(tenant=tenant, customer_id=customer_id, source=source, first_seen=ts)
        ledger.customers[key] = cu
        ledger.dirty_customers.append(cu)
    return cu


def _customer_changed(ledger: Ledger, cu: Customer) -> None:
    if not cu.dirty:
        cu.dirty = True
        ledger.dirty_customers.append(cu)


def _link_contact(ledger: Ledger, tenant: str, channel: str, address: str, owner: str,
                  ts: int, linked: bool) -> str | None:  # fmt: skip
    """Make ``owner`` the contact's customer; return the previous owner, if another."""
    key = (tenant, channel, address)
    contact = ledger.contacts.get(key)
    if contact is None:
        contact = Contact(
            tenant=tenant, channel=channel, address=address, customer_id=owner,
            first_seen=ts, linked=ts if linked else NONE,
        )  # fmt: skip
        ledger.contacts[key] = contact
        ledger.dirty_contacts.append(contact)
        return None
    previous = contact.customer_id
    if previous == owner:
        return None
    contact.customer_id = owner
    if linked:
        contact.linked = ts
    if not contact.dirty:
        contact.dirty = True
        ledger.dirty_contacts.append(contact)
    auto = ledger.customers.get((tenant, previous))
    if auto is not None and previous == f"contact:{channel}:{address}":
        auto.merged_into = owner  # an anonymous contact's history is the owner's now
        _customer_changed(ledger, auto)
    return previous


def resolve_customer(ledger: Ledger, p: Arrival, ts: int) -> str:
    """The engine's rule: the given id, else the contact's customer, else the contact."""
    tenant = p.tenant
    contact = ledger.contacts.get((tenant, p.contact_channel, p.contact_address))
    auto = f"contact:{p.contact_channel}:{p.contact_address}"
    if p.customer_id:
        customer_id, source = p.customer_id, "crm"
    elif contact is not None:
        customer_id, source = contact.customer_id, "crm"
    else:
        customer_id, source = auto, "contact"
    if customer_id == auto:
        source = "contact"
    _customer(ledger, tenant, customer_id, source, ts)
    _link_contact(ledger, tenant, p.contact_channel, p.contact_address, customer_id, ts, False)
    return customer_id


def _own_contact(customer_id: str) -> tuple[str, str] | None:
    """(channel, address) of an anonymous customer id ``contact:<channel>:<address>``."""
    kind, _, rest = customer_id.partition(":")
    channel, sep, address = rest.partition(":")
    return (channel, address) if kind == "contact" and sep else None


def _named_owner(ledger: Ledger, tenant: str, customer_id: str) -> str:
    """The customer an anonymous id (``contact:<channel>:<address>``) stands for: whoever
    that contact belongs to here. The engine forgets idle customers (bounded state), so a
    producer may link contacts under an anonymous id the projection knows as a named
    customer's contact; the projection keeps the identity for good."""
    own = _own_contact(customer_id)
    if own is None:
        return customer_id
    contact = ledger.contacts.get((tenant, *own))
    if contact is None or contact.customer_id.startswith("contact:"):
        return customer_id
    return contact.customer_id


def _linked(ledger: Ledger, e: ContactsLinked, ts: int) -> None:
    if not e.customer_id or not e.contacts:
        return
    tenant = e.tenant
    t = ledger.tenant(tenant)
    owner = _named_owner(ledger, tenant, e.customer_id)
    cu = _customer(ledger, tenant, owner, "crm", ts)
    if cu.merged_into is not None:  # it names itself: it is a customer of its own again
        cu.merged_into = None
        _customer_changed(ledger, cu)
    for contact in e.contacts:
        previous = _link_contact(ledger, tenant, contact.channel, contact.address, owner, ts,
                                 True)  # fmt: skip
        if previous is None:
            continue
        moving = t.open_by_customer.get(previous)
        if moving is not None and owner not in t.open_by_customer:
            del t.open_by_customer[previous]
            t.open_by_customer[owner] = moving
            c = t.convs.get(moving)
            if c is not None:
                c.customer_id = owner
                ledger.touch(c)


INPUTS: dict[type, Handler] = {ContactsLinked: _linked}
"""The inputs on customers the fold takes, by event type."""
