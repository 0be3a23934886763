"""Routing invariants every omniroute engine state must satisfy, recomputed independently.

``check_invariants(engine)`` raises ``AssertionError`` listing every violation it finds;
``find_violations(engine)`` returns them as strings. The checks read only public state
(``engine.policy``, ``engine.state``, ``engine.clock``) and re-implement the simple rules
of DESIGN.md §5-§6 from the policy: they never call the engine's private methods or the
matching kernel, so a kernel or bookkeeping bug cannot hide itself. The one shared piece
is ``matching.requirements`` (a pure function of the conversation and its queue).

What is checked, per tenant (the §9 failure each rules out in brackets):

1. capacity: an agent's per-class ``units``/``counts`` equal what the conversations
   referencing it add up to (owner units in the owner class, offer units in the media
   class); ``counts[c] <= max``; active units (a class paused while a class in its
   ``interruptible_by`` is held does not count) ``<= budget`` [agents over capacity];
2. holding: ``agent.holding`` lists exactly the conversations naming the agent as owner or
   offer agent, once each; a conversation has at most one owner and one offer agent, and
   both only during a warm transfer; a bot and a human never hold one conversation outside
   a warm transfer [double assignment; bot and human both holding];
3. stages: every open conversation is in exactly one stage and its fields agree with it;
4. offers: a pending offer is to an available, responsive agent and has a live timeout
   timer [work offered to offline or stale agents];
5. drain: no conversation waits in the queue while an agent of its tenant is eligible for
   it (status, responsiveness, kind, exclusions, pin, skills at the ring's level,
   languages, capacity) [queues that do not drain when capacity frees];
6. tenancy: every agent a conversation names exists in that conversation's tenant;
7. bookkeeping: aliases and customers' open conversations point at open conversations;
   an agent blocked on a reawakened conversation is only blocked while it does not fit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from omniroute.engine.matching import requirements
from omniroute.engine.policy import MEDIA_CLASSES, CapacityProfile, Policy
from omniroute.engine.state import AgentState, ConversationState, TenantState

__all__ = [
    "active_units",
    "check_invariants",
    "eligibility",
    "expected_load",
    "find_violations",
    "fits_new",
]

CLASS_INDEX = {name: i for i, name in enumerate(MEDIA_CLASSES)}
LANGUAGE_PREFIX = "lang:"
LANGUAGE_LEVEL = 5


def check_invariants(engine: Any) -> None:
    """Raise ``AssertionError`` naming every invariant the engine's state violates."""
    problems = find_violations(engine)
    if problems:
        raise AssertionError(
            f"{len(problems)} engine invariant violation(s) at clock={engine.clock}:\n  - "
            + "\n  - ".join(problems)
        )


def find_violations(engine: Any) -> list[str]:
    """Every invariant violation in the engine's current state, as readable strings."""
    policy: Policy = engine.policy
    now: int = engine.clock
    timers = {
        (t.tenant, t.key, t.gen): t.deadline for t in engine.state.timers if t.kind == "offer"
    }
    problems: list[str] = []
    for name, tenant in engine.state.tenants.items():
        if tenant.tenant != name:
            problems.append(f"tenant {name!r} is stored as {tenant.tenant!r}")
        problems.extend(_tenant_violations(policy, tenant, now, timers))
    return problems


# --- capacity, re-implemented from DESIGN.md §5 --------------------------------------------


def active_units(
    profile: CapacityProfile,
    units: list[int],
    counts: list[int],
    adding: str | None = None,
    extra: int = 0,
) -> int | None:
    """Units in use, paused classes not counted; with ``adding`` a new item of that class
    costing ``extra``. ``None`` when the new item would be paused at once."""
    present = {c for c in MEDIA_CLASSES if counts[CLASS_INDEX[c]] > 0}
    if adding is not None:
        present.add(adding)
        limit = profile.classes.get(adding)  # type: ignore[call-overload]
        if limit is not None and set(limit.interruptible_by) & (present - {adding}):
            return None
    total = 0
    for cls in MEDIA_CLASSES:
        if cls not in present:
            continue
        limit = profile.classes.get(cls)
        if limit is not None and set(limit.interruptible_by) & (present - {cls}):
            continue  # paused while a class that interrupts it is held
        total += units[CLASS_INDEX[cls]]
        if cls == adding:
            total += extra
    return total


def fits_new(profile: CapacityProfile, units: list[int], counts: list[int], cls: str) -> bool:
    """Would one more conversation of ``cls`` fit (class max, budget, not paused at once)?"""
    limit = profile.classes.get(cls)  # type: ignore[call-overload]
    if limit is None or counts[CLASS_INDEX[cls]] >= limit.max:
        return False
    active = active_units(profile, units, counts, cls, limit.cost)
    return active is not None and active <= profile.budget


def expected_load(tenant: TenantState) -> dict[str, tuple[list[int], list[int], list[str]]]:
    """Per agent id: (units, counts, held conversation ids) implied by the conversations."""
    n = len(MEDIA_CLASSES)
    load: dict[str, tuple[list[int], list[int], list[str]]] = {}
    for cid, conv in tenant.conversations.items():
        if conv.owner is not None and conv.owner_class is not None:
            units, counts, held = load.setdefault(conv.owner, ([0] * n, [0] * n, []))
            units[CLASS_INDEX[conv.owner_class]] += conv.owner_units
            counts[CLASS_INDEX[conv.owner_class]] += 1
            held.append(cid)
        if conv.offer_agent is not None:
            units, counts, held = load.setdefault(conv.offer_agent, ([0] * n, [0] * n, []))
            units[CLASS_INDEX[conv.media_class]] += conv.offer_units
            counts[CLASS_INDEX[conv.media_class]] += 1
            held.append(cid)
    return load


# --- eligibility, re-implemented from DESIGN.md §6 -----------------------------------------


def _agent_skills(agent: AgentState) -> dict[str, int]:
    skills = dict(agent.skills)
    for language in agent.languages:
        skills[LANGUAGE_PREFIX + language] = LANGUAGE_LEVEL
    return skills


def active_pin(tenant: TenantState, conv: ConversationState, now: int) -> AgentState | None:
    """The agent the conversation is pinned to, while the pin holds and they can take it."""
    if conv.pinned is None or (conv.pin_until is not None and now >= conv.pin_until):
        return None
    agent = tenant.agents.get(conv.pinned)
    if agent is None or agent.status != "available" or not agent.responsive:
        return None
    return agent


def eligibility(
    policy: Policy, tenant: TenantState, agent: AgentState, conv: ConversationState, now: int
) -> str | None:
    """``None`` when the agent may be offered the conversation now, else why not."""
    if agent.status != "available":
        return f"status {agent.status}"
    if not agent.responsive:
        return "not responding"
    if agent.pending_reactivation:
        return f"waiting to reactivate {agent.pending_reactivation}"
    if conv.kinds != "any" and conv.kinds != agent.kind:
        return f"conversation is for {conv.kinds} agents only"
    if agent.agent_id in conv.excluded:
        return "excluded (declined or timed out)"
    if agent.agent_id == conv.owner:
        return "already the owner"
    pin = active_pin(tenant, conv, now)
    if pin is not None and pin is not agent:
        return f"pinned to {pin.agent_id!r} until {conv.pin_until}"
    have = _agent_skills(agent)
    for skill, level in requirements(conv, policy.queues[conv.queue]).items():
        if have.get(skill, 0) < level:
            return f"needs {skill}>={level}, has {have.get(skill, 0)}"
    profile = policy.profiles[agent.profile]
    if not fits_new(profile, agent.units, agent.counts, conv.media_class):
        return f"no room for {conv.media_class}"
    return None


# --- the checks ------------------------------------------------------------------------------


def _describe(conv: ConversationState) -> str:
    return (
        f"{conv.conversation_id!r} (stage={conv.stage}, owner={conv.owner!r}, "
        f"offer={conv.offer_agent!r}, in_queue={conv.in_queue})"
    )


def _tenant_violations(
    policy: Policy, tenant: TenantState, now: int, offer_timers: dict[tuple[str, str, int], int]
) -> Iterator[str]:
    t = tenant.tenant
    agents = tenant.agents
    load = expected_load(tenant)
    n = len(MEDIA_CLASSES)

    # 6. tenancy: every agent a conversation names is an agent of this tenant.
    for cid, conv in tenant.conversations.items():
        if conv.conversation_id != cid:
            yield f"[{t}] conversation stored as {cid!r} calls itself {conv.conversation_id!r}"
        for role, aid in (("owner", conv.owner), ("offer agent", conv.offer_agent)):
            if aid is not None and aid not in agents:
                yield f"[{t}] {role} {aid!r} of {_describe(conv)} is not an agent of this tenant"

    # 1. capacity.
    for aid, agent in agents.items():
        units, counts, held = load.get(aid, ([0] * n, [0] * n, []))
        if list(agent.units) != units or list(agent.counts) != counts:
            yield (
                f"[{t}] agent {aid!r} books units={agent.units} counts={agent.counts}, "
                f"its conversations add up to units={units} counts={counts}"
            )
        profile = policy.profiles.get(agent.profile)
        if profile is None:
            yield f"[{t}] agent {aid!r} has unknown capacity profile {agent.profile!r}"
            continue
        for cls in MEDIA_CLASSES:
            limit = profile.classes.get(cls)
            cmax = limit.max if limit is not None else 0
            if counts[CLASS_INDEX[cls]] > cmax:
                yield f"[{t}] agent {aid!r} holds {counts[CLASS_INDEX[cls]]} {cls} (max {cmax})"
        active = active_units(profile, units, counts)
        if active is not None and active > profile.budget:
            yield (
                f"[{t}] agent {aid!r} is over capacity: {active} active units > budget "
                f"{profile.budget} (units={units}, counts={counts})"
            )

        # 2. holding lists exactly the conversations that reference the agent, once each.
        if Counter(agent.holding) != Counter(held):
            yield (
                f"[{t}] agent {aid!r} holding={agent.holding} but conversations naming it "
                f"are {held}"
            )

        # 7. an agent blocked on a reawakened conversation stays blocked only while it
        # does not fit (the oldest is settled first).
        if agent.pending_reactivation:
            first = tenant.conversations.get(agent.pending_reactivation[0])
            if first is None or first.owner != aid:
                yield f"[{t}] agent {aid!r} waits to reactivate {agent.pending_reactivation}"
            elif first.media_class in profile.classes:
                delta = profile.classes[first.media_class].cost - first.owner_units
                idx = CLASS_INDEX[first.media_class]
                after = [u + (delta if i == idx else 0) for i, u in enumerate(units)]
                total = active_units(profile, after, counts)
                if total is not None and total <= profile.budget:
                    yield (
                        f"[{t}] agent {aid!r} is blocked on reactivating {first.conversation_id!r}"
                        f" (+{delta} units) although it fits ({total} <= {profile.budget})"
                    )

    # 2. every holding entry exists (covered by the Counter check for known agents).
    for cid, conv in tenant.conversations.items():
        owner = agents.get(conv.owner) if conv.owner else None
        offered = agents.get(conv.offer_agent) if conv.offer_agent else None
        warm = conv.stage == "assigned" and conv.transfers > 0
        if conv.owner is not None and conv.owner == conv.offer_agent:
            yield f"[{t}] {_describe(conv)} is owned by and offered to the same agent"
        if conv.owner is not None and conv.offer_agent is not None and not warm:
            yield f"[{t}] {_describe(conv)} has an owner and a pending offer outside a transfer"
        if owner is not None and offered is not None and owner.kind != offered.kind and not warm:
            yield f"[{t}] {_describe(conv)} is held by a bot and a human at once"

        # 3. stage and fields agree.
        has_owner = conv.owner is not None
        has_offer = conv.offer_agent is not None
        stage_ok = {
            "queued": not has_owner and not has_offer and conv.in_queue,
            "offered": has_offer and not has_owner and not conv.in_queue,
            "assigned": has_owner,
            "wrap_up": has_owner and not has_offer and not conv.in_queue,
            "scheduled": not has_owner and not has_offer and not conv.in_queue,
        }.get(conv.stage)
        if stage_ok is None:
            yield f"[{t}] {_describe(conv)} has unknown stage {conv.stage!r}"
        elif not stage_ok:
            yield f"[{t}] {_describe(conv)}: fields disagree with stage {conv.stage!r}"
        if conv.in_queue and has_offer:
            yield f"[{t}] {_describe(conv)} waits in the queue with an offer pending"
        if has_owner != (conv.owner_class is not None):
            yield f"[{t}] {_describe(conv)} owner_class={conv.owner_class!r} disagrees with owner"
        if not has_owner and conv.owner_units:
            yield f"[{t}] {_describe(conv)} books {conv.owner_units} owner units without owner"
        if not has_offer and conv.offer_units:
            yield f"[{t}] {_describe(conv)} books {conv.offer_units} offer units without offer"
        if conv.stage == "assigned" and has_owner and conv.owner_class != conv.media_class:
            yield (
                f"[{t}] {_describe(conv)} is a {conv.media_class} conversation held as "
                f"{conv.owner_class}"
            )
        if conv.queue not in policy.queues:
            yield f"[{t}] {_describe(conv)} is in unknown queue {conv.queue!r}"

        # 4. a pending offer is to an available, responsive agent, with a live timeout.
        if offered is not None:
            if offered.status != "available" or not offered.responsive:
                yield (
                    f"[{t}] {_describe(conv)} is offered to {offered.agent_id!r} who is "
                    f"{offered.status}{'' if offered.responsive else ', not responding'}"
                )
            deadline = offer_timers.get((t, cid, conv.offer_seq))
            if deadline is None or deadline <= now:
                yield (
                    f"[{t}] the offer of {_describe(conv)} has no live timeout timer "
                    f"(deadline={deadline}, now={now})"
                )

        # 5. the queue drains: nobody eligible while the conversation waits.
        if conv.in_queue and not has_offer and conv.queue in policy.queues:
            for aid, agent in agents.items():
                if eligibility(policy, tenant, agent, conv, now) is None:
                    need = requirements(conv, policy.queues[conv.queue])
                    yield (
                        f"[{t}] {_describe(conv)} waits in queue {conv.queue!r} "
                        f"({conv.media_class}, kinds={conv.kinds}, needs {need}, "
                        f"ring {conv.ring}) while agent {aid!r} ({agent.kind}, "
                        f"skills={_agent_skills(agent)}, units={agent.units}) is eligible"
                    )

    # 7. aliases and customers point at open conversations.
    for alias, cid in tenant.aliases.items():
        conv = tenant.conversations.get(cid)
        if conv is None or alias not in conv.aliases:
            yield f"[{t}] alias {alias!r} -> {cid!r} does not point at an open conversation"
    for cid, conv in tenant.conversations.items():
        for alias in conv.aliases:
            if tenant.aliases.get(alias) != cid:
                yield f"[{t}] {_describe(conv)} lists alias {alias!r} the tenant does not map"
        customer = tenant.customers.get(conv.customer_id)
        if customer is None:
            yield f"[{t}] {_describe(conv)} belongs to unknown customer {conv.customer_id!r}"
        elif conv.stage != "wrap_up" and customer.open_conversation != cid:
            yield (
                f"[{t}] {_describe(conv)} is open but its customer {conv.customer_id!r} "
                f"has open_conversation={customer.open_conversation!r} (continuity lost)"
            )
    for cust_id, customer in tenant.customers.items():
        cid = customer.open_conversation
        if cid is None:
            continue
        conv = tenant.conversations.get(cid)
        if conv is None or conv.customer_id != cust_id or conv.stage == "wrap_up":
            yield (
                f"[{t}] customer {cust_id!r} open_conversation={cid!r} is not an open "
                "conversation of theirs"
            )
