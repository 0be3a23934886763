"""Bounded state: the engine forgets customers once routing no longer needs them.

A customer is kept while they have an open conversation, while a returning contact could
still be sticky (the longest ``sticky_window_s`` since their last human agent), and, when
linked (``ContactsLinked`` or an arrival naming ``customer_id``), for
``limits.customer_retention_s`` after the last link or conversation end. Forgetting is
part of the fold (event time), so a snapshot plus its tail replays to the same state; a
contact of a forgotten customer arrives exactly as a never-seen contact would.
"""

from __future__ import annotations

import heapq

import pytest
from hypothesis import event as label
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from omniroute.engine import Engine
from omniroute.engine.events import (
    AgentRegistered,
    AgentStatusChanged,
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    CustomerAbandoned,
    Decision,
    EventRejected,
    Input,
    Tick,
)
from omniroute.engine.policy import Limits, Policy, PolicyError, Queue
from omniroute.engine.state import TenantState

T = "acme"
S = 1000  # ms per second
STICKY_S = 60
RETENTION_S = 120
POLICY = Policy(
    preset="longest_idle",
    queues={
        "default": Queue(sticky_window_s=STICKY_S, sticky_wait_s=5, offer_mode="auto", wrap_up_s=0),
        # a shorter window elsewhere: the longest of the policy's queues is what counts
        "short": Queue(sticky_window_s=10, sticky_wait_s=5, offer_mode="auto", wrap_up_s=0),
    },
    limits=Limits(customer_retention_s=RETENTION_S),
)
WEB_A = Contact("webchat", "a")
VOICE_A = Contact("voice", "+1")


def _engine(*agents: str, bots: tuple[str, ...] = ()) -> Engine:
    engine = Engine(POLICY)
    for name in agents:
        _ok(engine, AgentRegistered(tenant=T, ts=0, agent_id=name))
        _ok(engine, AgentStatusChanged(tenant=T, ts=0, agent_id=name, status="available"))
    for name in bots:
        _ok(engine, AgentRegistered(tenant=T, ts=0, agent_id=name, kind="bot"))
        _ok(engine, AgentStatusChanged(tenant=T, ts=0, agent_id=name, status="available"))
    return engine


def _ok(engine: Engine, event: Input) -> list[Decision]:
    decisions = engine.apply(event)
    assert not any(isinstance(d, EventRejected) for d in decisions), decisions
    return decisions


def _tenant(engine: Engine) -> TenantState:
    tenant = engine.tenant(T)
    assert tenant is not None
    return tenant


def _arrive(
    engine: Engine, ts: int, cid: str, contact: Contact = WEB_A, customer_id: str | None = None
) -> str | None:
    """The agent the conversation was assigned to, if any."""
    decisions = _ok(
        engine,
        ConversationArrived(tenant=T, ts=ts, conversation_id=cid, channel=contact.channel,
                            contact=contact, customer_id=customer_id),
    )  # fmt: skip
    for d in decisions:
        if isinstance(d, ConversationAssigned) and d.conversation_id == cid:
            return d.agent_id
    return None


def _end(engine: Engine, ts: int, cid: str) -> None:
    _ok(engine, ConversationEnded(tenant=T, ts=ts, conversation_id=cid))


def test_a_customer_returning_within_the_sticky_window_gets_their_last_agent() -> None:
    engine = _engine("ann", "bob")
    first = _arrive(engine, 1 * S, "c1")
    assert first is not None
    _end(engine, 10 * S, "c1")  # the agent who served is now the most recently idle
    assert _tenant(engine).customers["contact:webchat:a"].last_agent == first
    again = _arrive(engine, (10 + STICKY_S) * S, "c2")  # at the window's very end
    assert again == first


def test_an_anonymous_customer_is_forgotten_after_the_sticky_window() -> None:
    engine = _engine("ann", "bob")
    first = _arrive(engine, 1 * S, "c1")
    _end(engine, 10 * S, "c1")
    _ok(engine, Tick(tenant=T, ts=(10 + STICKY_S) * S))
    assert "contact:webchat:a" in _tenant(engine).customers  # still sticky
    _ok(engine, Tick(tenant=T, ts=(10 + STICKY_S) * S + 1))
    tenant = _tenant(engine)
    assert tenant.customers == {} and tenant.contact_customer == {} and tenant.forget == []
    # back later: a fresh anonymous customer, routed by idle time alone (the other agent)
    again = _arrive(engine, (20 + STICKY_S) * S, "c2")
    assert again is not None and again != first
    customer = _tenant(engine).customers["contact:webchat:a"]
    assert customer.last_agent is None and customer.contacts == (WEB_A,)


def test_forgetting_needs_no_tick_the_next_event_of_the_tenant_does_it() -> None:
    engine = _engine("ann", "bob")
    _arrive(engine, 1 * S, "c1")
    _end(engine, 10 * S, "c1")
    assert engine.next_deadline() is None or engine.next_deadline() != (10 + STICKY_S) * S + 1
    _arrive(engine, 10_000 * S, "c2", Contact("webchat", "someone else"))
    assert "contact:webchat:a" not in _tenant(engine).customers


def test_a_customer_no_human_served_is_forgotten_as_the_conversation_ends() -> None:
    engine = _engine(bots=("robo",))
    assert _arrive(engine, 1 * S, "c1") == "robo"
    assert "contact:webchat:a" in _tenant(engine).customers
    _end(engine, 5 * S, "c1")
    tenant = _tenant(engine)
    assert tenant.customers == {} and tenant.contact_customer == {} and tenant.forget == []


def test_an_abandoning_customer_with_no_agent_is_forgotten_at_once() -> None:
    engine = _engine()
    _arrive(engine, 1 * S, "c1")
    _ok(engine, CustomerAbandoned(tenant=T, ts=2 * S, conversation_id="c1"))
    assert _tenant(engine).customers == {}


def test_links_are_kept_for_the_retention_then_the_contacts_are_strangers() -> None:
    engine = _engine("ann", "bob")
    _ok(engine, ContactsLinked(tenant=T, ts=1 * S, customer_id="crm-1", contacts=[WEB_A, VOICE_A]))
    served_by = _arrive(engine, 2 * S, "c1")
    tenant = _tenant(engine)
    assert tenant.conversations["c1"].customer_id == "crm-1"
    _end(engine, 10 * S, "c1")
    # past the sticky window, within the retention (counted from the end): still linked
    _ok(engine, Tick(tenant=T, ts=(10 + STICKY_S + 30) * S))
    assert tenant.contact_customer == {"webchat:a": "crm-1", "voice:+1": "crm-1"}
    _ok(engine, Tick(tenant=T, ts=(10 + RETENTION_S) * S - 1))
    assert "crm-1" in tenant.customers
    _ok(engine, Tick(tenant=T, ts=(10 + RETENTION_S) * S))
    assert tenant.customers == {} and tenant.contact_customer == {}
    # the phone now is a never-seen contact: an anonymous customer, no sticky agent
    _arrive(engine, (20 + RETENTION_S) * S, "c2", VOICE_A)
    assert tenant.conversations["c2"].customer_id == "contact:voice:+1"
    assert tenant.customers["contact:voice:+1"].last_agent is None
    # and the chat contact no longer joins the phone's conversation: it opens its own
    _arrive(engine, (21 + RETENTION_S) * S, "c3", WEB_A)
    assert "c3" in tenant.conversations and "c3" not in tenant.aliases
    assert served_by is not None


def test_within_the_retention_a_linked_contact_joins_the_open_conversation() -> None:
    engine = _engine("ann", "bob")
    _ok(engine, ContactsLinked(tenant=T, ts=1 * S, customer_id="crm-1", contacts=[WEB_A, VOICE_A]))
    _ok(engine, Tick(tenant=T, ts=(1 + RETENTION_S) * S - 1))
    _arrive(engine, (1 + RETENTION_S) * S - 1, "c1", WEB_A)
    _arrive(engine, (1 + RETENTION_S) * S + 500, "c2", VOICE_A)  # the link outlived its time
    tenant = _tenant(engine)
    assert tenant.aliases == {"c2": "c1"}  # held by the open conversation: a rejoin
    assert tenant.customers["crm-1"].linked_until > 0


def test_an_arrival_naming_its_customer_is_a_link_kept_for_the_retention() -> None:
    engine = _engine("ann", "bob")
    _arrive(engine, 1 * S, "c1", WEB_A, customer_id="crm-9")
    _end(engine, 2 * S, "c1")
    _ok(engine, Tick(tenant=T, ts=(2 + RETENTION_S) * S - 1))
    assert _tenant(engine).contact_customer == {"webchat:a": "crm-9"}
    _arrive(engine, (2 + RETENTION_S) * S - 1, "c2", WEB_A)
    assert _tenant(engine).conversations["c2"].customer_id == "crm-9"
    _end(engine, (3 + RETENTION_S) * S, "c2")
    _ok(engine, Tick(tenant=T, ts=(3 + 2 * RETENTION_S) * S))
    assert _tenant(engine).customers == {}


def test_a_huge_retention_keeps_everyone_as_before() -> None:
    policy = Policy(limits=Limits(customer_retention_s=10 * 365 * 86_400))
    engine = Engine(policy)
    for i in range(20):
        contact = Contact("webchat", f"u{i}")
        arrived = ConversationArrived(
            tenant=T, ts=i * S, conversation_id=f"c{i}", channel="webchat", contact=contact,
            customer_id=f"k{i}",
        )  # fmt: skip
        _ok(engine, arrived)
        _ok(engine, CustomerAbandoned(tenant=T, ts=i * S + 1, conversation_id=f"c{i}"))
    for day in range(1, 400, 20):  # the clock moves at most clock_horizon_s at a time
        _ok(engine, Tick(tenant=T, ts=day * 86_400 * S))
    assert len(_tenant(engine).customers) == 20


def test_the_retention_is_validated() -> None:
    with pytest.raises(PolicyError, match="customer_retention_s"):
        Limits(customer_retention_s=-1)


def test_snapshot_plus_tail_equals_full_replay_across_forgetting() -> None:
    inputs: list[Input] = [
        AgentRegistered(tenant=T, ts=0, agent_id="ann"),
        AgentStatusChanged(tenant=T, ts=0, agent_id="ann", status="available"),
        ContactsLinked(tenant=T, ts=1 * S, customer_id="crm-1", contacts=[WEB_A, VOICE_A]),
    ]
    for i in range(12):
        contact = Contact("webchat", f"u{i % 5}")
        ts = (1 + 40 * i) * S
        inputs.append(ConversationArrived(tenant=T, ts=ts, conversation_id=f"c{i}",
                                          channel="webchat", contact=contact))  # fmt: skip
        inputs.append(ConversationEnded(tenant=T, ts=ts + 20 * S, conversation_id=f"c{i}"))
    inputs.append(Tick(tenant=T, ts=2_000 * S))
    full = Engine(POLICY)
    decided = [full.apply(e) for e in inputs]
    for cut in range(len(inputs)):
        head = Engine(POLICY)
        for e in inputs[:cut]:
            head.apply(e)
        shadow = Engine.restore(head.snapshot(), POLICY)
        tail = [shadow.apply(e) for e in inputs[cut:]]
        assert tail == decided[cut:]
        assert shadow.snapshot() == full.snapshot()
    assert _tenant(full).customers == {}


# --- long random runs ------------------------------------------------------------------------

CONTACTS = [Contact("webchat", f"w{i}") for i in range(4)] + [
    Contact("voice", f"+{i}") for i in range(3)
]
CRM_IDS = ["crm-1", "crm-2"]
HORIZON_MS = max(STICKY_S, RETENTION_S) * S + 1


class BoundedCustomers(RuleBasedStateMachine):
    """Arrivals, ends, abandons, links and time over a small pool of contacts, on an engine
    and on a shadow restored from its snapshot now and then; after every step the state
    holds only customers something keeps, and each idle one has its one forget entry."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = _engine("ann", "bob", bots=("robo",))
        self.shadow = Engine.restore(self.engine.snapshot(), POLICY)
        self.log: list[Input] = []
        self.now = 1 * S
        self.n = 0
        self.touched: dict[str, int] = {}  # contact key -> when an event last named it
        self.named: dict[str, int] = {}  # CRM id -> when a link or an arrival last named it

    @initialize()
    def start(self) -> None:
        self.now = 1 * S

    def _apply(self, event: Input) -> list[Decision]:
        decisions = self.engine.apply(event)
        assert self.shadow.apply(event) == decisions
        self.log.append(event)
        return decisions

    def _open(self) -> list[str]:
        return sorted(_tenant(self.engine).conversations)

    @rule(
        contact=st.sampled_from(CONTACTS),
        named=st.sampled_from([None, None, None, *CRM_IDS]),
        queue=st.sampled_from(["default", "short"]),
    )
    def arrive(self, contact: Contact, named: str | None, queue: str) -> None:
        self.n += 1
        self._apply(ConversationArrived(tenant=T, ts=self.now, conversation_id=f"c{self.n}",
                                        channel=contact.channel, contact=contact,
                                        customer_id=named, queue=queue))  # fmt: skip
        self.touched[f"{contact.channel}:{contact.address}"] = self.now
        if named is not None:
            self.named[named] = self.now

    def _touch_customer_of(self, cid: str) -> None:
        tenant = _tenant(self.engine)
        conv = tenant.conversations[cid]
        customer = tenant.customers.get(conv.customer_id)
        for c in customer.contacts if customer is not None else [conv.contact]:
            self.touched[f"{c.channel}:{c.address}"] = self.now
        if conv.customer_id in self.named:
            self.named[conv.customer_id] = self.now

    @precondition(lambda self: bool(_tenant(self.engine).conversations))
    @rule(data=st.data())
    def end(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self._open()))
        conv = _tenant(self.engine).conversations[cid]
        self._touch_customer_of(cid)
        if conv.owner is not None and conv.stage == "assigned":
            self._apply(ConversationEnded(tenant=T, ts=self.now, conversation_id=cid))
            if conv.customer_id not in _tenant(self.engine).customers:
                label("forgotten as the conversation ended")
        elif conv.owner is None:
            self._apply(CustomerAbandoned(tenant=T, ts=self.now, conversation_id=cid))

    @rule(owner=st.sampled_from(CRM_IDS), contacts=st.lists(st.sampled_from(CONTACTS),
                                                               min_size=1, max_size=3))  # fmt: skip
    def link(self, owner: str, contacts: list[Contact]) -> None:
        tenant = _tenant(self.engine)
        for c in contacts:  # the contacts' previous customers' other contacts are touched too
            previous = tenant.customers.get(
                tenant.contact_customer.get(f"{c.channel}:{c.address}", "")
            )
            for p in previous.contacts if previous is not None else []:
                self.touched[f"{p.channel}:{p.address}"] = self.now
        for c in tenant.customers[owner].contacts if owner in tenant.customers else []:
            self.touched[f"{c.channel}:{c.address}"] = self.now
        self._apply(ContactsLinked(tenant=T, ts=self.now, customer_id=owner, contacts=contacts))
        self.named[owner] = self.now
        for c in contacts:
            self.touched[f"{c.channel}:{c.address}"] = self.now

    @rule(seconds=st.sampled_from([0, 1, 9, 11, 30, 59, 60, 61, 119, 120, 121, 400]))
    def wait(self, seconds: int) -> None:
        self.now += seconds * S
        before = len(_tenant(self.engine).customers)
        self._apply(Tick(tenant=T, ts=self.now))
        if len(_tenant(self.engine).customers) < before:
            label("a tick forgot customers")

    @rule()
    def restart_shadow(self) -> None:
        self.shadow = Engine.restore(self.engine.snapshot(), POLICY)

    @invariant()
    def the_forget_heap_has_one_entry_per_idle_customer(self) -> None:
        tenant = _tenant(self.engine)
        armed = sorted((c.forget_at, c.customer_id) for c in tenant.customers.values()
                       if c.forget_at)  # fmt: skip
        assert sorted(tenant.forget) == armed
        assert all(tenant.forget[0] <= e for e in tenant.forget)  # a heap's root is its least
        heapq.heapify(copy := list(tenant.forget))
        assert copy[0:1] == tenant.forget[0:1]
        for customer in tenant.customers.values():
            if customer.open_conversation is not None:
                assert customer.open_conversation in tenant.conversations
            else:
                assert customer.forget_at > tenant.clock, customer

    @invariant()
    def only_open_or_recent_customers_are_kept(self) -> None:
        tenant = _tenant(self.engine)
        for customer in tenant.customers.values():
            if customer.open_conversation is not None:
                continue
            recent = max(self.touched.get(f"{c.channel}:{c.address}", 0) for c in customer.contacts)
            assert tenant.clock - recent < HORIZON_MS, (customer, recent)
        # one customer per open conversation, per contact named lately (its anonymous
        # customer) and per CRM id named lately (one that lost its contacts to another)
        holders = {c.open_conversation for c in tenant.customers.values()} - {None}
        within = {k for k, t in self.touched.items() if tenant.clock - t < HORIZON_MS}
        crm = {k for k, t in self.named.items() if tenant.clock - t < HORIZON_MS}
        assert len(tenant.customers) <= len(holders) + len(within) + len(crm)

    @invariant()
    def the_shadow_has_the_same_state(self) -> None:
        assert self.shadow.snapshot() == self.engine.snapshot()

    def teardown(self) -> None:
        fresh = _engine("ann", "bob", bots=("robo",))
        for event in self.log:
            fresh.apply(event)
        assert fresh.snapshot() == self.engine.snapshot()


BoundedCustomers.TestCase.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None
)
TestBoundedCustomers = BoundedCustomers.TestCase
