"""Stateful property test: random traffic through one Engine, invariants after every step.

A hypothesis ``RuleBasedStateMachine`` drives one :class:`Engine` over three tenants with
everything a contact centre sends it: agents (humans and bots) registering, changing
presence, skills and profile, leaving; conversations arriving on every channel from a small
pool of customers (so continuity, rejoin and ``ContactsLinked`` happen), offers accepted,
declined or left to time out, cold and warm transfers, bot handoffs, endings, wrap-ups,
abandons, callbacks, messages, and time passing. Customers are often on several channels at
once: a new contact while their conversation is queued, offered, served or waiting for a
callback joins it as a new live leg, legs end or are abandoned one by one (the last one
ending the conversation), and transfers, handoffs, callbacks and agents leaving happen to
conversations with several live legs. After every event it checks the routing invariants
of ``tests/oracles/invariants.py`` (recomputed from the policy, not asked of the engine),
that nothing the model knows to be open was lost, and the agents' point of view of
``tests/oracles/agent_view.py``: folded only from the events sent and the decisions
returned, the legs each agent covers never put them above budget or a class max, and the
engine books every live call an agent serves at its full cost. Deliberately invalid events
must be answered by exactly one ``EventRejected`` and leave the snapshot byte-identical;
duplicated event ids must change nothing; a shadow engine restored from a mid-run snapshot
and fed the tail must decide byte for byte like the original, and a fresh engine replaying
the whole log must too (DESIGN.md §4: snapshot + tail == full replay).

``HYPOTHESIS_PROFILE=long pytest -m slow tests/engine/test_stateful.py`` runs the long version.
Below the machine: the minimal reproductions of the engine bugs it found (regression
tests once fixed, ``xfail(strict=True)`` while open; see ``KNOWN_BUGS``) and a check that
every invariant of ``invariants.py`` notices the breakage it is about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as label
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from omniroute.engine import Engine
from omniroute.engine.events import (
    CHANNELS,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    Decision,
    Event,
    EventRejected,
    HandoffRequested,
    LegJoined,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    Tick,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
    decode_msgpack,
    encode_msgpack,
)
from omniroute.engine.policy import (
    MEDIA_CLASSES,
    CapacityProfile,
    ClassLimit,
    Policy,
    Queue,
    Ring,
)
from omniroute.engine.state import AgentState, ConversationState, TenantState, Timer
from omniroute.engine.validation import Rejected, check_can_take
from tests.oracles.agent_view import AgentView
from tests.oracles.invariants import CHECKS, check_invariants, find_violations

# --- the contact centre ------------------------------------------------------------------

HUMAN = CapacityProfile(
    budget=100,
    classes={
        "voice": ClassLimit(cost=100, max=1),
        "video": ClassLimit(cost=100, max=1),
        "chat": ClassLimit(cost=34, max=3),
        "messaging": ClassLimit(cost=20, max=5, inactive_after_s=20, inactive_cost=5),
        "email": ClassLimit(cost=10, max=10, interruptible_by=("voice", "video")),
        "social": ClassLimit(cost=10, max=10, inactive_after_s=30, inactive_cost=2),
        "task": ClassLimit(cost=25, max=4),
    },
)
# A small desk without video or social (missing classes cannot be held) whose messaging is
# costly and goes inactive fast, so reawakened conversations often wait for room.
LITE = CapacityProfile(
    budget=50,
    classes={
        "voice": ClassLimit(cost=50, max=1),
        "chat": ClassLimit(cost=25, max=2),
        "messaging": ClassLimit(cost=25, max=3, inactive_after_s=10, inactive_cost=5),
        "email": ClassLimit(cost=10, max=5, interruptible_by=("voice",)),
        "task": ClassLimit(cost=20, max=2),
    },
)
# A blended desk whose interrupter (voice) is cheaper than the budget: work taken on
# during a call and the email it paused may not fit together once the call ends.
BLENDED = CapacityProfile(
    budget=100,
    classes={
        "voice": ClassLimit(cost=30, max=1),
        "chat": ClassLimit(cost=34, max=2),
        "messaging": ClassLimit(cost=20, max=4, inactive_after_s=20, inactive_cost=5),
        "email": ClassLimit(cost=50, max=2, interruptible_by=("voice",)),
        "task": ClassLimit(cost=25, max=2),
    },
)
# Chat bots: text channels only (voice, video, email and tasks always need a human), and
# few sessions each, so that humans get text work too.
BOT = CapacityProfile(
    budget=1_000,
    classes={
        "chat": ClassLimit(cost=1, max=3),
        "messaging": ClassLimit(cost=1, max=3),
        "social": ClassLimit(cost=1, max=3),
    },
)
POLICY = Policy(
    profiles={
        "default": HUMAN, "lite": LITE, "blended": BLENDED, "bot": BOT,
    },
    queues={
        "default": Queue(
            offer_mode="offer", offer_timeout_s=5, wrap_up_s=3, sticky_wait_s=5,
            transfer_wait_s=10,
        ),
        "auto": Queue(
            offer_mode="auto", skills={"sales": 2}, offer_timeout_s=5, wrap_up_s=2,
            sticky_wait_s=4, aging_s=60,
            rings=(Ring(after_s=5, level_drop=1), Ring(after_s=15, widen=True)),
        ),
        "bots": Queue(
            bot_first=True, bot_wait_s=8, offer_mode="offer", offer_timeout_s=5, wrap_up_s=0,
            rings=(Ring(after_s=10, drop_optional=True),),
        ),
    },
)  # fmt: skip

TENANTS = ("acme", "globex", "initech")
HUMANS = ("h1", "h2", "h3", "h4")
BOTS = ("bot1", "bot2")
AGENT_IDS = HUMANS + BOTS  # shared across tenants, so a cross-tenant leak is visible
SKILLS = ("sales", "billing", "tech")
LANGUAGES = ("en", "fr")
CUSTOMERS = ("c1", "c2", "c3")
QUEUES = tuple(POLICY.queues)

PROFILES = ("default", "lite", "blended")

# Known engine bugs, each with a minimal reproduction in an xfail(strict=True) test at the
# bottom of this file. While a bug is listed here the machine discards the runs that hit it
# (``assume``: its consequences trip other checks too) and checks everything else. When the
# engine is fixed the xfail test passes, fails as strict, and its entry here and its xfail
# mark should go.
KNOWN_BUGS: dict[str, str] = {
    # bug name -> what goes wrong (none open)
}

tenants = st.sampled_from(("acme", "globex", "acme", "initech"))  # busiest first
levels = st.integers(1, 5)
# agents are broadly skilled, conversations ask for little: most traffic is routable, the
# rest waits for rings to lower the bar or for a skills update.
skill_maps = st.dictionaries(st.sampled_from(SKILLS), levels, min_size=1, max_size=3)
small_skill_maps = st.one_of(
    st.just({}), st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=1),
    st.dictionaries(st.sampled_from(SKILLS), levels, max_size=2),
)  # fmt: skip
language_lists = st.sampled_from(([], ["en"], ["en"], ["fr"], ["en", "fr"]))
lags = st.sampled_from((0, 0, 0, 400, 2_500, 6_000))
ENCODER = msgspec.msgpack.Encoder()


_NO_TENANT = TenantState(tenant="")


def could_take(agent: AgentState, conv: ConversationState) -> bool:
    """A transfer target who could ever take ``conv`` (test_validation.py tests the rule)."""
    try:
        check_can_take(POLICY, agent, conv)
    except Rejected:
        return False
    return True


def contact_of(customer: str, channel: str) -> Contact:
    return Contact(channel, f"{customer}-{channel}")  # type: ignore[arg-type]


class EngineMachine(RuleBasedStateMachine):
    """One engine, a model of what must still be open, and a shadow restored mid-run."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(POLICY)
        self.shadow: Engine | None = None
        self.log: list[Event] = []
        self.decisions: list[Decision] = []
        self.n_events = 0
        self.n_convs = 0
        # model: (tenant, conversation id) -> "open" | "ending"; rejoined ids are aliases
        self.open: dict[tuple[str, str], str] = {}
        self.alias: dict[tuple[str, str], str] = {}
        self.registered: dict[str, set[str]] = {t: set() for t in TENANTS}
        # warm transfers under way: (tenant, conversation) -> the agent handing it over
        self.warm: dict[tuple[str, str], str] = {}
        self.with_ids: list[Event] = []
        # the agents' point of view, folded from inputs and decisions only
        self.view = AgentView(POLICY)

    # --- plumbing ------------------------------------------------------------------------

    def at(self, tenant: str) -> int:
        """The tenant's time: each tenant's clock moves only with its own events."""
        return self.engine.clock_of(tenant)

    def event_id(self, data: st.DataObject) -> str | None:
        """About one event in four carries a producer id (de-duplication)."""
        self.n_events += 1
        if data.draw(st.integers(0, 3), label="with id") == 0:
            return f"ev{self.n_events}"
        return None

    def send(self, event: Event, valid: bool = True) -> list[Decision]:
        """Apply to the engine (and the shadow); check the answer, the model, the state."""
        before = self.engine.snapshot() if not valid else b""
        others = {
            name: ENCODER.encode(tenant)
            for name, tenant in self.engine.state.tenants.items()
            if name != event.tenant
        }
        out = self.engine.apply(event)
        for name, was in others.items():
            assert ENCODER.encode(self.engine.state.tenants[name]) == was, (
                f"{event!r} of tenant {event.tenant!r} changed tenant {name!r}"
            )
        self.log.append(event)
        self.decisions.extend(out)
        if event.id is not None and not any(isinstance(d, EventRejected) for d in out):
            self.with_ids.append(event)  # a rejected event's id is not remembered
        if self.shadow is not None:
            shadow_out = self.shadow.apply(event)
            assert ENCODER.encode(shadow_out) == ENCODER.encode(out), (
                f"restored engine decided differently on {event!r}:\n"
                f"  original: {out}\n  restored: {shadow_out}"
            )
            assert self.shadow.snapshot() == self.engine.snapshot(), (
                f"restored engine's state diverged after {event!r}"
            )
        rejected = [d for d in out if isinstance(d, EventRejected)]
        if valid:
            assert not rejected, f"valid event {event!r} was rejected: {rejected[0].reason}"
            self.check_wire(event)
        else:
            assert len(out) == 1 and isinstance(out[0], EventRejected), (
                f"invalid event {event!r} should give exactly one EventRejected, got {out}"
            )
            assert out[0].event_type == type(event).__struct_config__.tag
            after = self.engine.snapshot()
            assert after == before, f"rejected event {event!r} changed the state"
        self.view.fold(event, out)
        self.tally(out)
        self.observe(event, out, rejected=bool(rejected))
        check_invariants(self.engine)
        self.check_model()
        self.check_agents(event.tenant)
        return out

    def tally(self, out: list[Decision]) -> None:
        """Label the runs (``--hypothesis-show-statistics``) by what legs they reached."""
        for d in out:
            if isinstance(d, LegJoined):
                label("a leg joined its agent")
            elif isinstance(d, ConversationQueued) and d.leg is not None:
                label(f"queued for a leg ({d.reason})")
        for view in self.view.tenants.values():
            for conv in view.convs.values():
                if len(conv.served) > 1 and conv.offer is not None:
                    label("several live legs served, offered to another agent")
                elif len(conv.served) > 1:
                    label("several live legs served")

    @staticmethod
    def check_wire(event: Event) -> None:
        """What we send would come back the same from the log."""
        assert decode_msgpack(encode_msgpack(event)) == event

    def observe(self, event: Event, out: list[Decision], rejected: bool) -> None:
        """Fold the event and its decisions into the model of open conversations."""
        t = event.tenant
        opened: tuple[str, str] | None = None
        if isinstance(event, ConversationArrived) and not rejected:
            opened = (t, event.conversation_id)
        for d in out:
            if isinstance(d, ConversationOffered | ConversationAssigned):
                assert d.agent_id in self.registered.get(d.tenant, ()), (
                    f"{type(d).__name__} names {d.agent_id!r}, no agent of tenant {d.tenant!r}"
                )
                key = (d.tenant, d.conversation_id)
                assert self.open.get(key) == "open" or key == opened, (
                    f"{d!r} is about a conversation the model does not have open"
                )
            elif isinstance(d, ConversationRejoined):
                assert isinstance(event, ConversationArrived), d
                assert d.new_conversation_id == event.conversation_id, d
                assert self.open.get((t, d.conversation_id)) == "open", d
                self.alias[(t, d.new_conversation_id)] = d.conversation_id
                opened = None
            elif isinstance(d, WrapUpExpired):
                key = (d.tenant, d.conversation_id)
                assert self.open.get(key) == "ending", f"{d!r} for a conversation not ending"
                self.close(key)
        if rejected:
            return
        if opened is not None:
            self.open[opened] = "open"
        elif isinstance(event, CustomerAbandoned | ConversationEnded):
            key = (t, self.resolve(t, event.conversation_id))
            left = self.view.tenant(t).convs.get(key[1])  # a leg only, or all of it?
            if left is None:
                self.close(key)
            elif left.ended:
                self.open[key] = "ending"
        elif isinstance(event, WrapUpCompleted):
            self.close((t, self.resolve(t, event.conversation_id)))
        elif isinstance(event, AgentRegistered):
            self.registered[t].add(event.agent_id)
        elif isinstance(event, AgentRemoved):
            self.registered[t].discard(event.agent_id)
        elif isinstance(event, TransferRequested) and event.mode == "warm":
            self.warm[(t, self.resolve(t, event.conversation_id))] = event.agent_id

    def resolve(self, tenant: str, cid: str) -> str:
        return self.alias.get((tenant, cid), cid)

    def close(self, key: tuple[str, str]) -> None:
        del self.open[key]
        self.view.forget(*key)
        for alias in [a for a, p in self.alias.items() if a[0] == key[0] and p == key[1]]:
            del self.alias[alias]

    def check_model(self) -> None:
        """7. nothing lost: the model's open conversations are exactly the engine's."""
        engine_convs: dict[tuple[str, str], ConversationState] = {
            (t, cid): conv
            for t, tenant in self.engine.state.tenants.items()
            for cid, conv in tenant.conversations.items()
        }
        for key, status in list(self.open.items()):
            conv = engine_convs.get(key)
            if status == "open":
                assert conv is not None, f"conversation {key} was lost (never ended)"
                assert conv.stage != "wrap_up", f"conversation {key} in wrap-up, never ended"
            elif conv is None:
                self.close(key)  # ended, then wrap-up finished (or the agent left)
            else:
                assert conv.stage == "wrap_up", f"ended conversation {key} is {conv.stage}"
        for key in engine_convs:
            assert key in self.open, f"engine has conversation {key} that never arrived"
        for key, old_owner in list(self.warm.items()):
            conv = engine_convs.get(key)
            if conv is None or conv.owner != old_owner or conv.stage != "assigned":
                del self.warm[key]  # handed over, ended, or the old owner let go
            else:
                assert conv.in_queue or conv.offer_agent is not None, (
                    f"warm transfer of {key} by {old_owner!r} was dropped: the conversation is "
                    "back with them, neither queued nor offered"
                )
        for t, tenant in self.engine.state.tenants.items():
            model_aliases = {a: p for (mt, a), p in self.alias.items() if mt == t}
            assert tenant.aliases == model_aliases, (
                f"[{t}] aliases {tenant.aliases} != rejoins seen {model_aliases}"
            )
            assert set(tenant.agents) == self.registered[t], (
                f"[{t}] agents {sorted(tenant.agents)} != registered {sorted(self.registered[t])}"
            )

    def check_agents(self, tenant: str) -> None:
        """8. the agents' point of view (``tests/oracles/agent_view.py``, folded from what
        was sent and decided, never from the engine's books): no agent above its budget or a
        class max; every live call an agent serves is covered by the units the engine books
        them; each conversation has the owner, offered agent, live legs (each in one
        conversation) and served legs the events and decisions named."""
        state = self.engine.state.tenants.get(tenant)
        if state is None:
            return
        problems = self.view.violations(tenant, state.clock)
        view = self.view.tenant(tenant)
        for aid, agent in state.agents.items():
            floor = self.view.real_time_floor(tenant, aid)
            if sum(agent.units) < floor:
                problems.append(
                    f"[{tenant}] {aid!r} serves live calls worth {floor} units, the engine "
                    f"books {agent.units}"
                )
        assert set(view.profiles) == set(state.agents), (view.profiles, list(state.agents))
        for cid, conv in state.conversations.items():
            mine = view.convs.get(cid)
            if mine is None:
                problems.append(f"[{tenant}] the engine holds {cid!r}; no decision opened it")
            elif (conv.owner, conv.offer_agent) != (mine.owner, mine.offer):
                problems.append(
                    f"[{tenant}] {cid!r} is with owner={conv.owner!r} offer={conv.offer_agent!r} "
                    f"in the engine; the decisions say owner={mine.owner!r} offer={mine.offer!r}"
                )
            else:
                live = {leg.leg_id: leg.media_class for leg in conv.legs if leg.ended_ts is None}
                joined = {leg.leg_id for leg in conv.legs if leg.ended_ts is None and leg.joined}
                if (live, joined) != (mine.legs, mine.served):
                    problems.append(
                        f"[{tenant}] {cid!r} has live legs {live}, {sorted(joined)} served, in "
                        f"the engine; the events say {mine.legs}, {sorted(mine.served)} served"
                    )
        problems.extend(
            f"[{tenant}] {cid!r} is open by the decisions, gone from the engine"
            for cid in view.convs
            if cid not in state.conversations
        )
        assert not problems, "agents' point of view:\n  - " + "\n  - ".join(problems)

    # --- choosing from the engine's state ----------------------------------------------------

    def convs(
        self, pred: Callable[[ConversationState], bool], several: bool = False
    ) -> list[tuple[str, str]]:
        """Open conversations satisfying ``pred``; ``several``: with two live legs or more."""
        return [
            (t, cid)
            for t, tenant in self.engine.state.tenants.items()
            for cid, conv in tenant.conversations.items()
            if pred(conv) and (not several or self.live_legs(t, cid)[1:])
        ]

    def live_legs(self, tenant: str, cid: str) -> list[str]:
        """The conversation's live legs, as the inputs and decisions say."""
        conv = self.view.tenant(tenant).convs.get(cid)
        return list(conv.legs) if conv is not None else []

    def conv(self, key: tuple[str, str]) -> ConversationState:
        return self.engine.state.tenants[key[0]].conversations[key[1]]

    def pick_conv(
        self,
        data: st.DataObject,
        pred: Callable[[ConversationState], bool],
        several: bool = False,
    ) -> tuple[str, str, ConversationState] | None:
        """A conversation satisfying ``pred``, named by its id or one of its aliases."""
        keys = self.convs(pred, several)
        if not keys:
            return None
        t, cid = data.draw(st.sampled_from(keys), label="conversation")
        conv = self.conv((t, cid))
        name = data.draw(st.sampled_from([cid, *conv.aliases]), label="name")
        return t, name, conv

    def agents_of(self, tenant: str) -> list[str]:
        state = self.engine.state.tenants.get(tenant)
        return list(state.agents) if state is not None else []

    def has(self, pred: Callable[[ConversationState], bool], several: bool = False) -> bool:
        return bool(self.convs(pred, several))

    # --- agents ------------------------------------------------------------------------------

    def register(self, data: st.DataObject, tenant: str, agent_id: str, lag: int = 0) -> None:
        bot = agent_id in BOTS
        self.send(
            AgentRegistered(
                tenant=tenant, ts=self.at(tenant) + lag, id=self.event_id(data), agent_id=agent_id,
                kind="bot" if bot else "human",
                skills=data.draw(skill_maps, label="skills"),
                capacity_profile=None if bot else data.draw(
                    st.sampled_from((None, *PROFILES)), label="profile"
                ),
                languages=data.draw(language_lists, label="languages"),
            )
        )  # fmt: skip

    @initialize(data=st.data())
    def staff(self, data: st.DataObject) -> None:
        """Every tenant starts with a few agents, most of them available."""
        for tenant in TENANTS:
            ids = data.draw(
                st.lists(st.sampled_from(AGENT_IDS), min_size=1, max_size=5, unique=True),
                label=f"{tenant} agents",
            )
            for agent_id in ids:
                self.register(data, tenant, agent_id)
                self.maybe_available(data, tenant, agent_id)

    @rule(data=st.data(), tenant=tenants, lag=lags)
    def register_agent(self, data: st.DataObject, tenant: str, lag: int) -> None:
        free = [a for a in AGENT_IDS if a not in self.agents_of(tenant)]
        if free:
            agent_id = data.draw(st.sampled_from(free), label="agent")
            self.register(data, tenant, agent_id, lag)
            self.maybe_available(data, tenant, agent_id)

    def maybe_available(self, data: st.DataObject, tenant: str, agent_id: str) -> None:
        if data.draw(st.integers(0, 4), label="available") > 0:
            self.send(
                AgentStatusChanged(
                    tenant=tenant, ts=self.at(tenant), agent_id=agent_id, status="available"
                )
            )

    @rule(
        data=st.data(), tenant=tenants, lag=lags,
        status=st.sampled_from(("available", "away", "available", "offline", "removed")),
    )  # fmt: skip
    def change_status(self, data: st.DataObject, tenant: str, lag: int, status: str) -> None:
        """Presence changes; ``removed`` is the agent leaving the pool for good."""
        agents = self.agents_of(tenant)
        if not agents:
            return
        agent_id = data.draw(st.sampled_from(agents), label="agent")
        if status == "removed":
            self.send(
                AgentRemoved(
                    tenant=tenant, ts=self.at(tenant), id=self.event_id(data), agent_id=agent_id
                )
            )
            return
        self.send(
            AgentStatusChanged(
                tenant=tenant, ts=self.at(tenant) + lag, id=self.event_id(data), agent_id=agent_id,
                status=status,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    @rule(data=st.data(), tenant=tenants)
    def update_agent(self, data: st.DataObject, tenant: str) -> None:
        agents = self.agents_of(tenant)
        if not agents:
            return
        agent_id = data.draw(st.sampled_from(agents), label="agent")
        agent = self.engine.state.tenants[tenant].agents[agent_id]
        profile = None
        if agent.kind == "human" and not agent.holding:
            profile = data.draw(st.sampled_from((None, *PROFILES)), label="profile")
        self.send(
            AgentUpdated(
                tenant=tenant, ts=self.at(tenant), id=self.event_id(data), agent_id=agent_id,
                skills=data.draw(st.none() | skill_maps, label="skills"),
                languages=data.draw(st.none() | language_lists, label="languages"),
                capacity_profile=profile,
            )
        )  # fmt: skip

    @rule(tenant=tenants)
    def back_to_work(self, tenant: str) -> None:
        """A supervisor gets everyone of a tenant who is away or not responding back."""
        for agent in list(self.engine.state.tenants.get(tenant, _NO_TENANT).agents.values()):
            if agent.status != "available" or not agent.responsive:
                self.send(
                    AgentStatusChanged(
                        tenant=tenant,
                        ts=self.at(tenant),
                        agent_id=agent.agent_id,
                        status="available",
                    )
                )

    # --- conversations ---------------------------------------------------------------------

    @rule(
        data=st.data(), tenant=tenants, lag=lags, n=st.integers(1, 3),
    )  # fmt: skip
    def arrive(self, data: st.DataObject, tenant: str, lag: int, n: int) -> None:
        for i in range(n):
            self.n_convs += 1
            customer = data.draw(st.sampled_from(CUSTOMERS), label="customer")
            channel = data.draw(st.sampled_from(CHANNELS), label="channel")
            self.send(
                ConversationArrived(
                    tenant=tenant, ts=self.at(tenant) + (lag if i == 0 else 0),
                    id=self.event_id(data),
                    conversation_id=f"k{self.n_convs}", channel=channel,
                    contact=contact_of(customer, channel),
                    customer_id=data.draw(st.sampled_from((None, None, customer)), label="cid"),
                    queue=data.draw(st.sampled_from(QUEUES), label="queue"),
                    skills=data.draw(small_skill_maps, label="skills"),
                    optional_skills=data.draw(
                        st.just({}) | st.dictionaries(st.sampled_from(SKILLS), levels, max_size=1),
                        label="optional",
                    ),
                    priority=data.draw(st.integers(0, 3), label="priority"),
                    language=data.draw(
                        st.sampled_from((None, None, None, *LANGUAGES)), label="lang"
                    ),
                )
            )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.offer_agent is not None))
    @rule(data=st.data(), accept=st.sampled_from((True, True, False)))
    def answer_offer(self, data: st.DataObject, accept: bool) -> None:
        """The offered agent accepts or declines (or, see ``tick``, lets it time out)."""
        picked = self.pick_conv(data, lambda c: c.offer_agent is not None)
        assert picked is not None
        t, name, conv = picked
        assert conv.offer_agent is not None
        fields = {"tenant": t, "ts": self.at(t), "id": self.event_id(data), "conversation_id": name}
        if accept:
            self.send(OfferAccepted(**fields, agent_id=conv.offer_agent))
        else:
            self.send(OfferDeclined(**fields, agent_id=conv.offer_agent, reason="busy"))

    @rule(
        data=st.data(),
        dt=st.one_of(st.integers(0, 6_000), st.integers(0, 60_000)),
        tenant=tenants,
    )  # fmt: skip
    def tick(self, data: st.DataObject, dt: int, tenant: str) -> None:
        """Time passes: offers time out, rings escalate, pins, bot windows, wrap-ups end,
        asynchronous conversations go inactive (and some customers then write again)."""
        self.send(Tick(tenant=tenant, ts=self.at(tenant) + dt, id=self.event_id(data)))
        if self.has(lambda c: c.inactive) and data.draw(st.booleans(), label="then write"):
            self.customer_writes_again(data)

    @rule(data=st.data(), tenant=tenants, ahead=st.sampled_from((60_000, 3_600_000, 86_400_000)))
    def skew(self, data: st.DataObject, tenant: str, ahead: int) -> None:
        """One tenant's time runs far ahead (a quiet night, a producer's clock): its own
        timers fire, no other tenant's (``send`` checks the others are untouched)."""
        self.send(Tick(tenant=tenant, ts=self.at(tenant) + ahead, id=self.event_id(data)))

    @staticmethod
    def transferable(conv: ConversationState) -> bool:
        return (
            conv.stage == "assigned"
            and conv.owner is not None
            and not conv.in_queue
            and conv.offer_agent is None
        )

    @precondition(lambda self: self.has(EngineMachine.transferable))
    @rule(
        data=st.data(),
        mode=st.sampled_from(("cold", "warm")),
        to=st.sampled_from(("queue", "skills", "agent", "queue+skills")),
    )  # fmt: skip
    def transfer(self, data: st.DataObject, mode: str, to: str) -> None:
        self.transfer_one(data, mode, to, several=False)

    @precondition(lambda self: self.has(EngineMachine.transferable, several=True))
    @rule(
        data=st.data(),
        mode=st.sampled_from(("cold", "warm")),
        to=st.sampled_from(("queue", "skills", "agent")),
    )  # fmt: skip
    def transfer_several_legs(self, data: st.DataObject, mode: str, to: str) -> None:
        """A conversation with several live legs moves on, all its live legs with it."""
        self.transfer_one(data, mode, to, several=True)

    def transfer_one(self, data: st.DataObject, mode: str, to: str, several: bool) -> None:
        picked = self.pick_conv(data, self.transferable, several)
        assert picked is not None
        t, name, conv = picked
        assert conv.owner is not None
        fields: dict[str, Any] = {}
        tenant = self.engine.state.tenants[t]
        if tenant.agents[conv.owner].kind == "bot":
            mode = "cold"  # a bot never shares a conversation (warm is rejected)
        if to == "agent":
            targets = [
                a.agent_id for a in tenant.agents.values()
                if a.agent_id != conv.owner and a.status == "available" and a.responsive
                and could_take(a, conv)
            ]  # fmt: skip
            if not targets:
                to = "queue"
            else:
                fields["to_agent"] = data.draw(st.sampled_from(targets), label="to agent")
        if "queue" in to:
            fields["to_queue"] = data.draw(st.sampled_from(QUEUES), label="to queue")
        if "skills" in to:
            fields["skills"] = data.draw(small_skill_maps, label="to skills")
        self.send(
            TransferRequested(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                agent_id=conv.owner, mode=mode, **fields,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    def bot_held(self, conv: ConversationState) -> bool:
        if not self.transferable(conv):
            return False
        tenant = next(
            s for s in self.engine.state.tenants.values()
            if s.conversations.get(conv.conversation_id) is conv
        )  # fmt: skip
        return tenant.agents[conv.owner].kind == "bot"  # type: ignore[index]

    @precondition(lambda self: self.has(self.bot_held))
    @rule(data=st.data())
    def handoff(self, data: st.DataObject) -> None:
        self.handoff_one(data, several=False)

    @precondition(lambda self: self.has(self.bot_held, several=True))
    @rule(data=st.data())
    def handoff_several_legs(self, data: st.DataObject) -> None:
        """A bot serving a customer on two text channels hands them over."""
        self.handoff_one(data, several=True)

    def handoff_one(self, data: st.DataObject, several: bool) -> None:
        picked = self.pick_conv(data, self.bot_held, several)
        assert picked is not None
        t, name, conv = picked
        assert conv.owner is not None
        self.send(
            HandoffRequested(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                agent_id=conv.owner, reason="needs a human",
                skills=data.draw(st.none() | small_skill_maps, label="skills"),
                queue=data.draw(st.sampled_from((None, *QUEUES)), label="queue"),
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.stage == "assigned"))
    @rule(data=st.data(), by=st.sampled_from(("agent", "customer")))
    def end(self, data: st.DataObject, by: str) -> None:
        picked = self.pick_conv(data, lambda c: c.stage == "assigned")
        assert picked is not None
        t, name, _ = picked
        self.send(
            ConversationEnded(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                by=by,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.stage == "wrap_up"))
    @rule(data=st.data())
    def complete_wrap_up(self, data: st.DataObject) -> None:
        picked = self.pick_conv(data, lambda c: c.stage == "wrap_up")
        assert picked is not None
        t, name, conv = picked
        assert conv.owner is not None
        self.send(
            WrapUpCompleted(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                agent_id=conv.owner,
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.owner is None))
    @rule(data=st.data())
    def abandon(self, data: st.DataObject) -> None:
        picked = self.pick_conv(data, lambda c: c.owner is None)
        assert picked is not None
        t, name, _ = picked
        self.send(
            CustomerAbandoned(tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name)
        )

    @precondition(lambda self: self.has(lambda c: c.stage == "queued"))
    @rule(data=st.data(), later=st.sampled_from((None, 0, 3_000, 30_000)))
    def callback(self, data: st.DataObject, later: int | None) -> None:
        self.callback_one(data, later, several=False)

    @precondition(lambda self: self.has(lambda c: c.stage == "queued", several=True))
    @rule(data=st.data(), later=st.sampled_from((None, 0, 3_000)))
    def callback_several_legs(self, data: st.DataObject, later: int | None) -> None:
        """A customer waiting on several channels asks to be called back: every live leg
        becomes a task."""
        self.callback_one(data, later, several=True)

    def callback_one(self, data: st.DataObject, later: int | None, several: bool) -> None:
        picked = self.pick_conv(data, lambda c: c.stage == "queued", several)
        assert picked is not None
        t, name, conv = picked
        self.send(
            CallbackRequested(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                address=conv.contact.address,
                not_before=None if later is None else self.at(t) + later,
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: True))
    @rule(data=st.data(), direction=st.sampled_from(("in", "in", "out")))
    def message(self, data: st.DataObject, direction: str) -> None:
        picked = self.pick_conv(data, lambda c: True)
        assert picked is not None
        t, name, _ = picked
        self.send(
            MessageReceived(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                direction=direction,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.stage != "wrap_up"))
    @rule(
        data=st.data(),
        stage=st.sampled_from(("queued", "offered", "assigned", "assigned", "scheduled")),
        channel=st.sampled_from((*CHANNELS, "voice", "email", "webchat")),
    )  # fmt: skip
    def another_leg(self, data: st.DataObject, stage: str, channel: str) -> None:
        """The customer of an open conversation (queued, offered, served, waiting for a
        callback) gets in touch on another channel or the same: the new contact joins the
        conversation as a new live leg (email during a call, a call during a chat)."""
        picked = self.pick_conv(data, lambda c: c.stage == stage) or self.pick_conv(
            data, lambda c: c.stage != "wrap_up"
        )
        assert picked is not None
        t, _, conv = picked
        customer = self.engine.state.tenants[t].customers[conv.customer_id]
        self.n_convs += 1
        self.send(
            ConversationArrived(
                tenant=t, ts=self.at(t), id=self.event_id(data),
                conversation_id=f"k{self.n_convs}", channel=channel,  # type: ignore[arg-type]
                contact=Contact(channel, f"{customer.customer_id}-again-{channel}"),  # type: ignore[arg-type]
                customer_id=customer.customer_id,
                queue=data.draw(st.sampled_from(("default", *QUEUES)), label="queue"),
                skills=data.draw(st.just({}) | small_skill_maps, label="skills"),
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.stage == "assigned"))
    @rule(
        data=st.data(),
        channel=st.sampled_from(("email", "email", "whatsapp", "webchat", "voice", "social")),
    )  # fmt: skip
    def contact_while_served(self, data: st.DataObject, channel: str) -> None:
        """The customer an agent serves sends an email with the document during the call,
        a WhatsApp during the chat, calls during the email: a second live leg."""
        picked = self.pick_conv(data, lambda c: c.stage == "assigned")
        assert picked is not None
        t, _, conv = picked
        self.n_convs += 1
        self.send(
            ConversationArrived(
                tenant=t, ts=self.at(t), id=self.event_id(data),
                conversation_id=f"k{self.n_convs}", channel=channel,  # type: ignore[arg-type]
                contact=Contact(channel, f"{conv.customer_id}-also-{channel}"),  # type: ignore[arg-type]
                customer_id=conv.customer_id,
            )
        )  # fmt: skip

    def open_legs(self, pred: Callable[[ConversationState], bool]) -> list[tuple[str, str]]:
        """(tenant, conversation) of open conversations with live legs satisfying ``pred``."""
        return [
            key for key in self.convs(lambda c: c.stage != "wrap_up" and pred(c))
            if self.live_legs(*key)
        ]  # fmt: skip

    def pick_leg(
        self, data: st.DataObject, keys: list[tuple[str, str]]
    ) -> tuple[str, str, str, ConversationState]:
        """(tenant, a name of the conversation, one of its live legs, the conversation)."""
        t, cid = data.draw(st.sampled_from(keys), label="conversation")
        conv = self.conv((t, cid))
        name = data.draw(st.sampled_from([cid, *conv.aliases]), label="name")
        leg = data.draw(st.sampled_from(self.live_legs(t, cid)), label="leg")
        return t, name, leg, conv

    @precondition(lambda self: bool(self.open_legs(lambda c: True)))
    @rule(data=st.data(), by=st.sampled_from(("agent", "customer")))
    def end_leg(self, data: st.DataObject, by: str) -> None:
        """One leg ends (the call hangs up, the chat goes on). The last live leg ends the
        conversation, which only its agent may do: ending it while it waits is rejected."""
        t, name, leg, conv = self.pick_leg(data, self.open_legs(lambda c: True))
        last = self.live_legs(t, conv.conversation_id) == [leg]
        self.send(
            ConversationEnded(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name,
                by=by, leg=leg,  # type: ignore[arg-type]
            ),
            valid=not last or (conv.stage == "assigned" and conv.owner is not None),
        )  # fmt: skip

    @precondition(lambda self: bool(self.open_legs(lambda c: c.owner is None)))
    @rule(data=st.data())
    def abandon_leg(self, data: st.DataObject) -> None:
        """The customer drops one leg of a waiting conversation (hangs up, the chat still
        waits); dropping the last live leg abandons the conversation."""
        t, name, leg, _ = self.pick_leg(data, self.open_legs(lambda c: c.owner is None))
        self.send(
            CustomerAbandoned(
                tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name, leg=leg
            )
        )

    @precondition(lambda self: bool(self.open_legs(lambda c: c.owner is not None)))
    @rule(data=st.data())
    def abandon_held_leg(self, data: st.DataObject) -> None:
        """The customer drops one leg of a conversation an agent holds (hangs up the call
        that waited for room); dropping its last live leg is rejected (the end of a held
        conversation is ``ConversationEnded``)."""
        t, name, leg, conv = self.pick_leg(data, self.open_legs(lambda c: c.owner is not None))
        last = self.live_legs(t, conv.conversation_id) == [leg]
        self.send(
            CustomerAbandoned(
                tenant=t, ts=self.at(t), id=None if last else self.event_id(data),
                conversation_id=name, leg=leg,
            ),
            valid=not last,
        )  # fmt: skip

    def agents_on_several_legs(self) -> list[tuple[str, str]]:
        """(tenant, agent) serving or offered a conversation with several live legs."""
        return sorted(
            {
                (t, who)
                for t, view in self.view.tenants.items()
                for conv in view.convs.values()
                if len(conv.legs) > 1
                for who in (conv.owner, conv.offer)
                if who is not None
            }
        )

    @precondition(lambda self: bool(self.agents_on_several_legs()))
    @rule(
        data=st.data(), status=st.sampled_from(("offline", "away", "removed"))
    )  # fmt: skip
    def agent_leaves_several_legs(self, data: st.DataObject, status: str) -> None:
        """An agent serving (or offered) a customer on several channels goes away, offline
        or leaves: everything they held goes back, every live leg with it."""
        t, agent_id = data.draw(st.sampled_from(self.agents_on_several_legs()), label="agent")
        if status == "removed":
            self.send(AgentRemoved(tenant=t, ts=self.at(t), agent_id=agent_id))
            return
        self.send(
            AgentStatusChanged(
                tenant=t, ts=self.at(t), agent_id=agent_id,
                status=status,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    @precondition(lambda self: self.has(lambda c: c.inactive))
    @rule(data=st.data())
    def customer_writes_again(self, data: st.DataObject) -> None:
        """A silent asynchronous conversation wakes up and wants its full cost back."""
        picked = self.pick_conv(data, lambda c: c.inactive)
        assert picked is not None
        t, name, _ = picked
        self.send(
            MessageReceived(tenant=t, ts=self.at(t), id=self.event_id(data), conversation_id=name)
        )

    @rule(
        data=st.data(), tenant=tenants, customer=st.sampled_from(CUSTOMERS),
        contacts=st.lists(
            st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(CHANNELS)),
            min_size=1, max_size=3, unique=True,
        ),
    )  # fmt: skip
    def link_contacts(
        self, data: st.DataObject, tenant: str, customer: str, contacts: list[tuple[str, str]]
    ) -> None:
        """Mostly the customer's own contacts; sometimes another's (customers merge)."""
        self.send(
            ContactsLinked(
                tenant=tenant, ts=self.at(tenant), id=self.event_id(data), customer_id=customer,
                contacts=[contact_of(c, ch) for c, ch in contacts],
            )
        )  # fmt: skip

    # --- invalid input, duplicates, snapshots ------------------------------------------------

    @rule(data=st.data())
    def invalid_event(self, data: st.DataObject) -> None:
        """A bad event: exactly one EventRejected, state byte-identical (ts == clock, so no
        timer fires first)."""
        candidates = [e for e in self.invalid_events(data) if e is not None]
        event = data.draw(st.sampled_from(candidates), label="invalid event")
        self.send(event, valid=False)

    def invalid_events(self, data: st.DataObject) -> list[Event | None]:
        t = data.draw(tenants, label="tenant")
        now = self.at(t)
        agents = self.agents_of(t)
        some_agent = agents[0] if agents else None
        bad_level = data.draw(st.sampled_from((0, 6, -1, 99, True, 2.5, "3")), label="bad level")
        bad_skills = {data.draw(st.sampled_from(SKILLS), label="skill"): bad_level}
        contact = contact_of("c1", "sms")
        events: list[Event | None] = [
            AgentStatusChanged(tenant=t, ts=now, agent_id="ghost", status="available"),
            AgentUpdated(tenant=t, ts=now, agent_id="ghost", skills={"sales": 1}),
            AgentRemoved(tenant=t, ts=now, agent_id="ghost"),
            AgentStatusChanged(tenant="nowhere", ts=now, agent_id="h1", status="available"),
            AgentRegistered(tenant=t, ts=now, agent_id="h9", skills=bad_skills),
            AgentRegistered(tenant=t, ts=now, agent_id="h9", skills={"": 2}),
            AgentRegistered(tenant=t, ts=now, agent_id="h9", kind="alien"),  # type: ignore[arg-type]
            AgentRegistered(tenant=t, ts=now, agent_id="h9", capacity_profile="huge"),
            AgentRegistered(tenant=t, ts=now, agent_id=""),
            AgentRegistered(tenant="", ts=now, agent_id="h9"),
            AgentRegistered(tenant=t, ts=-1, agent_id="h9"),
            Tick(tenant=t, ts=-5),
            AgentRegistered(tenant=t, ts=2**63, agent_id="h9"),
            AgentRegistered(tenant=t, ts=now, agent_id=42),  # type: ignore[arg-type]
            AgentRegistered(tenant=t, ts=now, agent_id="h9", languages="en"),  # type: ignore[arg-type]
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="sms",
                contact="+33",  # type: ignore[arg-type]
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="sms", contact=contact,
                priority=data.draw(st.sampled_from((2**64 - 1, -(2**63), 2**31))),
            ),
            Tick(tenant=t, ts=now + 31 * 86_400_000) if t in self.engine.state.tenants else None,
            Tick(tenant=t, ts=now - 61_000) if now >= 61_000 else None,
            ConversationQueued(tenant=t, ts=now, conversation_id="k1", queue="default"),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="voice", contact=contact,
                skills=bad_skills,
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="sms", contact=contact,
                optional_skills=bad_skills,
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="sms", contact=contact,
                queue="nosuchqueue",
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="fax",  # type: ignore[arg-type]
                contact=contact,
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="sms",
                contact=Contact("sms", ""),
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="bad", channel="sms", contact=contact,
                priority=1.5,  # type: ignore[arg-type]
            ),
            ConversationArrived(
                tenant=t, ts=now, conversation_id="", channel="sms", contact=contact
            ),
            MessageReceived(tenant=t, ts=now, conversation_id="nope"),
            ConversationEnded(tenant=t, ts=now, conversation_id="nope"),
            CustomerAbandoned(tenant=t, ts=now, conversation_id="nope"),
            CallbackRequested(tenant=t, ts=now, conversation_id="nope"),
            WrapUpCompleted(tenant=t, ts=now, conversation_id="nope", agent_id="h1"),
            OfferAccepted(tenant=t, ts=now, conversation_id="nope", agent_id="h1"),
            OfferDeclined(tenant=t, ts=now, conversation_id="nope", agent_id="h1"),
            TransferRequested(
                tenant=t, ts=now, conversation_id="nope", agent_id="h1", to_queue="auto"
            ),
            HandoffRequested(tenant=t, ts=now, conversation_id="nope", agent_id="bot1"),
            ContactsLinked(tenant=t, ts=now, customer_id="c1", contacts=[]),
            ContactsLinked(tenant=t, ts=now, customer_id="", contacts=[contact]),
            ContactsLinked(tenant=t, ts=now, customer_id="c1", contacts=[Contact("sms", "")]),
        ]  # fmt: skip
        if some_agent is not None:
            agent = self.engine.state.tenants[t].agents[some_agent]
            events += [
                AgentRegistered(tenant=t, ts=now, agent_id=some_agent),
                AgentUpdated(tenant=t, ts=now, agent_id=some_agent, skills=bad_skills),
                AgentUpdated(tenant=t, ts=now, agent_id=some_agent, capacity_profile="huge"),
                AgentStatusChanged(
                    tenant=t,
                    ts=now,
                    agent_id=some_agent,
                    status="busy",  # type: ignore[arg-type]
                ),
            ]
            if agent.holding and agent.kind == "human":
                other = "lite" if agent.profile != "lite" else "default"
                events.append(
                    AgentUpdated(tenant=t, ts=now, agent_id=some_agent, capacity_profile=other)
                )
        keys = self.convs(lambda c: True)
        if keys:
            tname, cid = data.draw(st.sampled_from(keys), label="conversation")
            tnow = self.at(tname)
            conv = self.conv((tname, cid))
            held = self.transferable(conv)
            events += [
                ConversationArrived(
                    tenant=tname, ts=tnow, conversation_id=data.draw(
                        st.sampled_from([cid, *conv.aliases]), label="dup"
                    ), channel="email", contact=contact_of("c9", "email"),
                ),
                MessageReceived(
                    tenant=tname, ts=tnow, conversation_id=cid,
                    direction="sideways",  # type: ignore[arg-type]
                ),
                OfferAccepted(tenant=tname, ts=tnow, conversation_id=cid, agent_id="ghost"),
                WrapUpCompleted(tenant=tname, ts=tnow, conversation_id=cid, agent_id="ghost"),
                CallbackRequested(
                    tenant=tname, ts=tnow, conversation_id=cid,
                    not_before="soon",  # type: ignore[arg-type]
                ) if conv.stage == "queued" else CallbackRequested(
                    tenant=tname, ts=tnow, conversation_id=cid
                ),
                ConversationEnded(
                    tenant=tname, ts=tnow, conversation_id=cid,
                    by="robot",  # type: ignore[arg-type]
                ) if conv.stage == "assigned" else ConversationEnded(
                    tenant=tname, ts=tnow, conversation_id=cid
                ),
            ]  # fmt: skip
            events += [
                ConversationEnded(tenant=tname, ts=tnow, conversation_id=cid, leg="nope"),
                CustomerAbandoned(tenant=tname, ts=tnow, conversation_id=cid, leg="nope"),
            ]
            if conv.owner is not None:
                events.append(CustomerAbandoned(tenant=tname, ts=tnow, conversation_id=cid))
            if conv.stage != "wrap_up" and conv.owner is not None:
                events.append(
                    WrapUpCompleted(tenant=tname, ts=tnow, conversation_id=cid, agent_id=conv.owner)
                )
            if held:
                assert conv.owner is not None
                owner = self.engine.state.tenants[tname].agents[conv.owner]
                base = {"tenant": tname, "ts": tnow, "conversation_id": cid}
                events += [
                    TransferRequested(**base, agent_id=conv.owner, to_agent=conv.owner),
                    TransferRequested(**base, agent_id=conv.owner),
                    TransferRequested(**base, agent_id=conv.owner, to_queue="nosuchqueue"),
                    TransferRequested(**base, agent_id=conv.owner, skills=bad_skills),
                    TransferRequested(
                        **base, agent_id=conv.owner, to_agent="ghost", to_queue="auto"
                    ),
                    TransferRequested(
                        **base, agent_id=conv.owner, to_queue="auto",
                        mode="tepid",  # type: ignore[arg-type]
                    ),
                    TransferRequested(**base, agent_id="ghost", to_queue="auto"),
                ]  # fmt: skip
                unavailable = [
                    a.agent_id for a in self.engine.state.tenants[tname].agents.values()
                    if a.status != "available" or not a.responsive
                ]  # fmt: skip
                if unavailable:
                    events.append(
                        TransferRequested(**base, agent_id=conv.owner, to_agent=unavailable[0])
                    )
                if owner.kind == "human":
                    events.append(HandoffRequested(**base, agent_id=conv.owner))
                else:
                    events += [
                        TransferRequested(
                            **base, agent_id=conv.owner, to_queue="default", mode="warm"
                        ),
                        HandoffRequested(**base, agent_id=conv.owner, queue="nosuchqueue"),
                        HandoffRequested(**base, agent_id=conv.owner, skills=bad_skills),
                    ]
            if conv.offer_agent is not None:
                others = [a for a in self.agents_of(tname) if a != conv.offer_agent]
                if others:
                    events.append(
                        OfferDeclined(
                            tenant=tname, ts=tnow, conversation_id=cid, agent_id=others[0]
                        )
                    )
        return events

    @precondition(lambda self: bool(self.with_ids))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        """A redelivered event (same tenant and id) changes nothing and decides nothing."""
        event = data.draw(st.sampled_from(self.with_ids), label="duplicate")
        before = self.engine.snapshot()
        out = self.engine.apply(event)
        self.log.append(event)
        if self.shadow is not None:
            assert self.shadow.apply(event) == []
        assert out == [], f"duplicate {event!r} decided {out}"
        assert self.engine.snapshot() == before, f"duplicate {event!r} changed the state"

    @rule()
    def take_snapshot(self) -> None:
        """Restore a shadow engine from here; ``send`` feeds it the tail and compares."""
        snap = self.engine.snapshot()
        self.shadow = Engine.restore(snap, POLICY)
        assert self.shadow.snapshot() == snap
        check_invariants(self.shadow)

    @precondition(lambda self: len(self.log) >= 10)
    @rule()
    def full_replay(self) -> None:
        """A fresh engine replaying the whole log decides byte for byte the same."""
        fresh = Engine(POLICY)
        replayed: list[Decision] = []
        for event in self.log:
            replayed.extend(fresh.apply(event))
        assert ENCODER.encode(replayed) == ENCODER.encode(self.decisions), (
            "full replay decided differently"
        )
        assert fresh.snapshot() == self.engine.snapshot(), "full replay ended in another state"

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.engine)
        self.check_model()
        for tenant in self.engine.state.tenants:
            self.check_agents(tenant)


# Default: the active hypothesis profile's examples, 40 steps each (well under a minute).
# Runs that hit a known engine bug are discarded (``KNOWN_BUGS``): not a health problem.
EngineMachine.TestCase.settings = settings(
    settings.default,
    stateful_step_count=40,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.filter_too_much],
)
TestEngineStateMachine = EngineMachine.TestCase


class LongEngineMachine(EngineMachine):
    """The same machine, longer runs: 150 steps, at least 300 examples (2000 under the
    ``long`` profile): ``HYPOTHESIS_PROFILE=long pytest -m slow tests/engine/test_stateful.py``."""


LongEngineMachine.TestCase.settings = settings(
    EngineMachine.TestCase.settings,
    stateful_step_count=150,
    max_examples=max(settings.default.max_examples, 300),
)


@pytest.mark.slow
class TestEngineStateMachineLong(LongEngineMachine.TestCase):  # type: ignore[name-defined,misc]
    pass


# --- engine bugs this machine found: minimal reproductions ----------------------------------
#
# Each test is the smallest event sequence found for one engine bug, checked with the same
# invariants as the machine. All were fixed in the engine while this suite was written
# (commits 73af1ca and c99fa69; with channel legs, f78f5d8, 1fd27d5 and 1a48ef4) and stay
# as regression tests. A new bug goes here as an
# xfail(strict=True) test, with an entry in KNOWN_BUGS if the machine must skip its check.


def drive(policy: Policy, events: list[Event], ignore: tuple[str, ...] = ()) -> Engine:
    """Apply the events one by one, checking the invariants after each; the engine."""
    engine = Engine(policy)
    for event in events:
        out = engine.apply(event)
        assert not [d for d in out if isinstance(d, EventRejected)], (event, out)
        check_invariants(engine, ignore)
    return engine


def _arrive(cid: str, ts: int, channel: str, address: str, **fields: Any) -> ConversationArrived:
    return ConversationArrived(
        tenant="acme", ts=ts, conversation_id=cid, channel=channel,  # type: ignore[arg-type]
        contact=Contact(channel, address), **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def _agent(agent_id: str, ts: int = 0, **fields: Any) -> list[Event]:
    return [
        AgentRegistered(tenant="acme", ts=ts, agent_id=agent_id, **fields),
        AgentStatusChanged(tenant="acme", ts=ts, agent_id=agent_id, status="available"),
    ]


OFFER_QUEUE = Policy(queues={"default": Queue(offer_mode="offer", offer_timeout_s=5)})


@pytest.mark.parametrize("leaves", ["offline", "removed"])
def test_warm_transfer_owner_leaving_never_double_offers(leaves: str) -> None:
    """Was: _hand_back re-queued a warm transfer whose offer was pending (stage 'queued'
    with offer_agent set); routing offered it again and bob held it twice (§9 double
    assignment)."""
    leave: Event = (
        AgentRemoved(tenant="acme", ts=0, agent_id="ann")
        if leaves == "removed"
        else AgentStatusChanged(tenant="acme", ts=0, agent_id="ann", status="offline")
    )
    engine = drive(
        OFFER_QUEUE,
        [
            *_agent("ann"),
            _arrive("k1", 0, "webchat", "c1"),
            OfferAccepted(tenant="acme", ts=0, conversation_id="k1", agent_id="ann"),
            *_agent("bob"),
            TransferRequested(
                tenant="acme", ts=0, conversation_id="k1", agent_id="ann", to_queue="default",
                mode="warm",
            ),  # offered to bob; ann keeps it until bob takes it
            leave,
        ],
    )  # fmt: skip
    assert engine.state.tenants["acme"].agents["bob"].holding == ["k1"]


def test_callback_from_a_bot_first_queue_reaches_humans() -> None:
    """Was: CallbackRequested bumped route_gen, which voided the bot-window timer, so the
    callback stayed kinds='bot' for ever and no human was offered it."""
    policy = Policy(queues={"default": Queue(), "bots": Queue(bot_first=True, bot_wait_s=8)})
    engine = drive(
        policy,
        [
            _arrive("k1", 0, "voice", "c1", queue="bots"),
            CallbackRequested(tenant="acme", ts=1_000, conversation_id="k1", not_before=2_000),
            *_agent("ann", ts=3_000),
            Tick(tenant="acme", ts=10_000),
        ],
    )
    conv = engine.state.tenants["acme"].conversations["k1"]
    assert conv.offer_agent == "ann", f"still waiting, kinds={conv.kinds!r}"


def test_reactivation_settles_when_inactivity_frees_room() -> None:
    """Was: an agent waiting to reactivate a reawakened conversation stayed blocked when
    another conversation going inactive freed the room (only a release unblocked them)."""
    profile = CapacityProfile(
        budget=100,
        classes={
            "chat": ClassLimit(cost=34, max=3),
            "messaging": ClassLimit(cost=20, max=5, inactive_after_s=20, inactive_cost=5),
        },
    )
    policy = Policy(
        profiles={"default": profile, "bot": BOT}, queues={"default": Queue(offer_mode="auto")}
    )
    engine = drive(
        policy,
        [
            *_agent("ann"),
            _arrive("m1", 0, "whatsapp", "x1"),  # 20
            _arrive("m2", 10_000, "whatsapp", "x2"),  # 40
            _arrive("c1", 20_000, "webchat", "x3"),  # m1 inactive: 5 + 20 + 34
            _arrive("c2", 20_000, "webchat", "x4"),  # 93
            MessageReceived(tenant="acme", ts=25_000, conversation_id="m1"),  # +15 won't fit
            Tick(tenant="acme", ts=31_000),  # m2 inactive: 78, and m1's +15 now fits
        ],
    )
    assert engine.state.tenants["acme"].agents["ann"].pending == []


@pytest.mark.parametrize("leg", ["joins", "ends"])
def test_warm_transfer_survives_a_channel_switch(leg: str) -> None:
    """Was: the customer switching channel while the warm transfer was offered withdrew the
    offer and gave the conversation back to ann, neither queued nor offered: the transfer
    was silently dropped. Again with legs (fixed in 1fd27d5/1a48ef4): a new leg, or a leg
    ending, changed what bob's offer reserves; it was withdrawn and the transfer dropped."""
    email = _arrive("k0", 0, "email", "c1-mail", customer_id="cust")
    email_first = [email] if leg == "ends" else []
    then = (
        ConversationEnded(tenant="acme", ts=1_000, conversation_id="k1", leg="k1")
        if leg == "ends"
        else _arrive("k2", 1_000, "whatsapp", "c1-wa", customer_id="cust")  # rejoins k1
    )
    engine = drive(
        OFFER_QUEUE,
        [
            *_agent("ann"),
            _arrive("k1", 0, "webchat", "c1", customer_id="cust"),
            OfferAccepted(tenant="acme", ts=0, conversation_id="k1", agent_id="ann"),
            *email_first,  # joins k1: ann serves the chat and the email
            *_agent("bob"),
            TransferRequested(
                tenant="acme", ts=0, conversation_id="k1", agent_id="ann", to_queue="default",
                mode="warm",
            ),  # offered to bob with both legs
            then,
        ],
    )  # fmt: skip
    conv = engine.state.tenants["acme"].conversations["k1"]
    assert conv.in_queue or conv.offer_agent is not None or conv.owner != "ann", (
        "the warm transfer was dropped: k1 is back with ann, neither queued nor offered"
    )


@pytest.mark.parametrize("how", ["ended", "abandoned"])
def test_a_leg_ending_leaves_a_callback_scheduled(how: str) -> None:
    """A customer on a call and an email asks to be called back in a minute, then the email
    leg is closed: the callback must still wait for its time."""
    leg_ends: Event = (
        ConversationEnded(tenant="acme", ts=1_000, conversation_id="k1", leg="k2")
        if how == "ended"
        else CustomerAbandoned(tenant="acme", ts=1_000, conversation_id="k1", leg="k2")
    )
    engine = drive(
        OFFER_QUEUE,
        [
            _arrive("k1", 0, "voice", "c1", customer_id="cust"),  # nobody to take it
            _arrive("k2", 0, "email", "c1-mail", customer_id="cust"),  # joins k1
            CallbackRequested(tenant="acme", ts=1_000, conversation_id="k1", not_before=61_000),
            leg_ends,
        ],
    )
    assert engine.state.tenants["acme"].conversations["k1"].stage == "scheduled"


def test_when_a_call_leg_ends_the_hold_covers_the_chat_it_leaves() -> None:
    """Ann ('blended': voice 30, chat 34, no video) serves cust's chat; cust calls (the
    call leads: 30 units and one chat item) and opens a video leg Ann can never take; the
    call hangs up: Ann serves the chat alone, 34 units, and no call any more."""
    blended = Policy(
        profiles={"default": BLENDED, "bot": BOT},
        queues={"default": Queue(offer_mode="auto", sticky_wait_s=5)},
    )
    engine = drive(
        blended,
        [
            *_agent("ann"),
            _arrive("k1", 0, "webchat", "cust-chat", customer_id="cust"),
            _arrive("k2", 1_000, "voice", "cust-call", customer_id="cust"),  # joins: 30
            _arrive("k3", 2_000, "video", "cust-video", customer_id="cust"),  # waits
            ConversationEnded(tenant="acme", ts=3_000, conversation_id="k1", leg="k2"),
        ],
    )
    ann = engine.state.tenants["acme"].agents["ann"]
    voice = MEDIA_CLASSES.index("voice")
    assert (sum(ann.units), ann.counts[voice]) == (34, 0), (ann.units, ann.counts)


def test_a_new_leg_moving_a_waiting_leg_to_another_queue_restarts_its_rings() -> None:
    """Ann serves cust on WhatsApp and two other chats (88 units); cust opens a chat that
    does not fit: after sticky_wait_s the conversation waits for anyone in ``auto`` and
    escalates to ring 1; cust then calls through ``default`` (no rings): the engine crashed
    looking up ring 1 of ``default``."""

    def arrive(cid: str, ts: int, channel: str, address: str, queue: str) -> Event:
        return _arrive(cid, ts, channel, address, customer_id=address, queue=queue)

    drive(
        POLICY,
        [
            *_agent("ann", skills={"sales": 3}),
            _arrive("k1", 0, "whatsapp", "cust-wa", customer_id="cust", queue="auto"),
            arrive("c1", 0, "webchat", "x1", "auto"),
            arrive("c2", 0, "webchat", "x2", "auto"),  # ann: 20 + 34 + 34
            _arrive("k2", 1_000, "webchat", "cust-chat", customer_id="cust", queue="auto"),
            Tick(tenant="acme", ts=5_000),  # sticky_wait_s: k1 waits for anyone (ring 0)
            Tick(tenant="acme", ts=10_000),  # ring 1 in auto
            _arrive("k3", 10_000, "voice", "cust-call", customer_id="cust", queue="default"),
        ],
    )


def test_cheap_interrupter_never_leaves_agent_over_capacity() -> None:
    """Was: work taken on while an interrupter cheaper than the budget paused a class
    overflowed the budget when the interrupter ended (150 > 100 here)."""
    profile = CapacityProfile(
        budget=100,
        classes={
            "voice": ClassLimit(cost=50, max=1),
            "email": ClassLimit(cost=50, max=2, interruptible_by=("voice",)),
            "task": ClassLimit(cost=50, max=1),
        },
    )
    policy = Policy(
        profiles={"default": profile, "bot": BOT},
        queues={"default": Queue(offer_mode="auto", wrap_up_s=0)},
    )
    drive(
        policy,
        [
            *_agent("ann"),
            _arrive("e1", 0, "email", "x1"),
            _arrive("e2", 0, "email", "x2"),  # 100
            _arrive("v1", 0, "voice", "x3"),  # emails paused: 50 in use
            _arrive("t1", 0, "task", "x4"),  # must wait: 150 once the call ends
            ConversationEnded(tenant="acme", ts=0, conversation_id="v1"),
        ],
    )


STALE_TIMER_POLICY = Policy(
    profiles={
        "default": CapacityProfile(
            classes={
                "voice": ClassLimit(cost=100, max=1),
                "chat": ClassLimit(cost=34, max=3),
                "messaging": ClassLimit(cost=20, max=5, inactive_after_s=20, inactive_cost=5),
            }
        ),
        "bot": BOT,
    },
    queues={"default": Queue(offer_mode="auto", wrap_up_s=0)},
)


@pytest.mark.parametrize(
    "then",
    [
        "bot_takes_over",
        "customer_calls",
    ],
)
def test_a_stale_inactivity_timer_spares_the_next_owner(then: str) -> None:
    """Was: inactivity timers were keyed by max(last_in_ts, assigned_ts), so a timer from
    before a reassignment or channel switch in the same millisecond still matched and
    applied messaging inactivity to the new holding: the bot's copy dropped to 0 units, or
    the voice call did and ann was given a chat during the call."""
    switch: list[Event] = (
        [
            *_agent("bot1", kind="bot"),
            TransferRequested(
                tenant="acme", ts=0, conversation_id="m1", agent_id="ann", to_queue="default"
            ),  # the bot takes it in the same millisecond
        ]
        if then == "bot_takes_over"
        else [_arrive("v1", 0, "voice", "cust-voice", customer_id="cust")]  # joins m1
    )
    engine = drive(
        STALE_TIMER_POLICY,
        [
            *_agent("ann"),
            _arrive("m1", 0, "whatsapp", "cust-wa", customer_id="cust"),  # timer: 20 s
            *switch,
            Tick(tenant="acme", ts=20_000),  # the stale timer fires
            _arrive("c1", 20_000, "webchat", "someone-else"),  # ann on a call gets it
        ],
    )
    assert not engine.state.tenants["acme"].conversations["m1"].inactive


def test_a_rejected_event_with_an_id_changes_nothing() -> None:
    """Was: apply() remembered a rejected event's id, so the snapshot changed (EventRejected
    says the event changed nothing) and a corrected event re-sent under that id was
    dropped as a duplicate."""
    engine = Engine(POLICY)
    engine.apply(AgentRegistered(tenant="acme", ts=0, agent_id="ann"))
    before = engine.snapshot()
    bad = AgentStatusChanged(tenant="acme", ts=0, id="e1", agent_id="anne", status="away")
    assert [type(d) for d in engine.apply(bad)] == [EventRejected]
    assert engine.snapshot() == before
    fixed = AgentStatusChanged(tenant="acme", ts=0, id="e1", agent_id="ann", status="available")
    engine.apply(fixed)
    assert engine.state.tenants["acme"].agents["ann"].status == "available"


def test_a_late_reactivation_leaves_no_overdue_timer() -> None:
    profile = CapacityProfile(
        budget=100,
        classes={
            "chat": ClassLimit(cost=34, max=3),
            "messaging": ClassLimit(cost=20, max=5, inactive_after_s=20, inactive_cost=5),
        },
    )
    policy = Policy(
        profiles={"default": profile, "bot": BOT},
        queues={"default": Queue(offer_mode="auto", wrap_up_s=0)},
    )
    engine = drive(
        policy,
        [
            *_agent("ann"),
            _arrive("m1", 0, "whatsapp", "x1"),
            _arrive("c1", 0, "webchat", "x2"),
            _arrive("c2", 0, "webchat", "x3"),  # 88
            _arrive("m2", 20_000, "whatsapp", "x4"),  # m1 inactive: 73 + 20 = 93
            MessageReceived(tenant="acme", ts=35_000, conversation_id="m2"),
            MessageReceived(tenant="acme", ts=35_000, conversation_id="m1"),  # +15: waits
            MessageReceived(tenant="acme", ts=50_000, conversation_id="m2"),
            ConversationEnded(tenant="acme", ts=56_000, conversation_id="c1"),
            # m1 is reactivated at 56 s; silent since 35 s, it is due inactive at 55 s
        ],
    )
    before = engine.snapshot()
    out = engine.apply(CustomerAbandoned(tenant="acme", ts=56_000, conversation_id="nope"))
    assert [type(d) for d in out] == [EventRejected]
    assert engine.snapshot() == before


CHAT = MEDIA_CLASSES.index("chat")


def _same_after_restore(policy: Policy, head: list[Event], tail: list[Event]) -> list[Decision]:
    """Drive ``head``, restore a second engine from its snapshot, feed both ``tail``:
    they must decide the same; the decisions."""
    live = drive(policy, head)
    restored = Engine.restore(live.snapshot(), policy)
    decided = [[d for e in tail for d in engine.apply(e)] for engine in (live, restored)]
    assert ENCODER.encode(decided[0]) == ENCODER.encode(decided[1])
    assert live.snapshot() == restored.snapshot()
    return decided[0]


def _offers(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [
        (d.conversation_id, d.agent_id) for d in decisions if isinstance(d, ConversationOffered)
    ]


def test_an_agent_who_declined_stays_excluded_after_being_removed_and_registered_again() -> None:
    """Was: the queue index kept the declining agent's old slot, so once removed and
    registered again (a new slot) they were offered it again; an engine restored from a
    snapshot (index built from the state) kept them out, so replay and live disagreed."""
    head: list[Event] = [
        *_agent("ann"),
        _arrive("k1", 0, "webchat", "c1"),  # offered to ann
        OfferDeclined(tenant="acme", ts=1_000, conversation_id="k1", agent_id="ann"),
        AgentRemoved(tenant="acme", ts=2_000, agent_id="ann"),
    ]
    tail = [*_agent("ann", ts=3_000), *_agent("bob", ts=4_000)]
    assert _offers(_same_after_restore(OFFER_QUEUE, head, tail)) == [("k1", "bob")]


def test_a_sticky_pin_holds_for_its_agent_removed_and_registered_again() -> None:
    """Was: the queue index kept a pinned conversation's old slot for its agent, so once
    removed and registered again the pin no longer held (another agent got it) while an
    engine restored after the registration kept it for them."""
    one_chat = CapacityProfile(budget=100, classes={"chat": ClassLimit(cost=100, max=1)})
    policy = Policy(
        queues={"default": Queue(sticky_wait_s=60)},
        profiles={"one": one_chat}, human_profile="one", bot_profile="one",
    )  # fmt: skip
    head: list[Event] = [
        *_agent("bob"),
        _arrive("k1", 0, "webchat", "c1"),
        OfferAccepted(tenant="acme", ts=500, conversation_id="k1", agent_id="bob"),
        ConversationEnded(tenant="acme", ts=1_000, conversation_id="k1"),
        WrapUpCompleted(tenant="acme", ts=1_100, conversation_id="k1", agent_id="bob"),
        AgentStatusChanged(tenant="acme", ts=1_200, agent_id="bob", status="away"),
        _arrive("k3", 1_500, "webchat", "c2"),
        _arrive("k2", 2_000, "webchat", "c1"),  # pinned to bob, c1's last agent, for 60 s
        AgentRemoved(tenant="acme", ts=2_500, agent_id="bob"),
        AgentRegistered(tenant="acme", ts=2_600, agent_id="bob"),
    ]
    tail = [
        AgentStatusChanged(tenant="acme", ts=2_800, agent_id="bob", status="available"),
        *_agent("carl", ts=3_000),  # bob is full (k3): k2 waits for him, not for carl
    ]
    assert _offers(_same_after_restore(policy, head, tail)) == [("k3", "bob")]


def _corrupt(check: str, engine: Engine) -> None:
    """Break one thing by hand that the named check must notice."""
    tenant = engine.state.tenants["acme"]
    ann, bob = tenant.agents["ann"], tenant.agents["bob"]
    assigned = tenant.conversations["k1"]  # webchat, ann's
    waiting = tenant.conversations["k2"]  # voice, queued
    match check:
        case "capacity":
            ann.units[CHAT] += 1
        case "holding":
            bob.holding.append("k1")
        case "stage":
            assigned.stage = "queued"
        case "offer":
            assigned.offer_agent, assigned.offer_class = "bob", "chat"
            bob.holding.append("k1")
            bob.counts[CHAT] += 1
        case "drain":
            bob.status = "available"
        case "tenancy":
            engine.state.tenants["globex"].conversations["k1"] = assigned
        case "bookkeeping":
            tenant.aliases["ghost"] = "k1"
        case "pending":
            ann.pending.append("k1")
        case "legs":
            assigned.media_class = "voice"
        case "inactive":
            assigned.inactive = True
        case "bot_window":
            waiting.kinds = "bot"
            waiting.first_contact_ts -= 60_000
        case "timers":
            tenant.timers.insert(0, Timer(0, 0, "sla", "acme", "k2", 0))


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_check_is_live(check: str) -> None:
    """invariants.py notices each kind of breakage, and ``ignore`` silences just that."""
    engine = drive(
        OFFER_QUEUE,
        [
            *_agent("ann"),
            _arrive("k1", 0, "webchat", "c1"),
            OfferAccepted(tenant="acme", ts=0, conversation_id="k1", agent_id="ann"),
            AgentRegistered(tenant="acme", ts=0, agent_id="bob"),  # offline
            _arrive("k2", 1_000, "voice", "c2"),  # ann is on a chat: waits
            AgentRegistered(tenant="globex", ts=1_000, agent_id="gus"),
        ],
    )
    _corrupt(check, engine)
    problems = find_violations(engine)
    assert any(p.startswith(f"{check}: ") for p in problems), problems
    assert not any(p.startswith(f"{check}: ") for p in find_violations(engine, ignore=[check]))
